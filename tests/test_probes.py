"""Probe geometry (pure, no database): checked against probeinterface's catalogue directly."""

import numpy as np
import pytest
from probeinterface.neuropixels_tools import build_neuropixels_probe

from pipeline import probes


@pytest.mark.parametrize(
    "probe_type,n,shanks,pitch",
    [
        ("neuropixels 1.0 - 3A", 960, 1, 20.0),
        ("neuropixels 1.0 - 3B", 960, 1, 20.0),
        ("neuropixels 2.0 - SS", 1280, 1, 15.0),
        ("neuropixels 2.0 - MS", 5120, 4, 15.0),
    ],
)
def test_geometry_matches_catalogue(probe_type, n, shanks, pitch):
    t = probes.electrode_table(probe_type)
    ref = build_neuropixels_probe(probes.info(probe_type).part_number)
    assert len(t["electrode"]) == n
    np.testing.assert_array_equal(t["electrode"], np.arange(1, n + 1))
    np.testing.assert_allclose(np.c_[t["x_coord"], t["y_coord"]], ref.contact_positions)
    assert sorted(set(t["shank"])) == list(range(1, shanks + 1))
    per_shank = n // shanks
    for s in range(1, shanks + 1):
        on = t["shank"] == s
        assert on.sum() == per_shank
        ys = np.unique(t["y_coord"][on])
        assert np.allclose(np.diff(ys), pitch)
        # rows are 1-based ranks of y; two sites per row in every Neuropixels layout here
        assert t["shank_row"][on].min() == 1 and t["shank_row"][on].max() == len(ys)
        assert set(t["shank_col"][on]) == {1, 2}
        assert np.all(np.bincount(t["shank_row"][on])[1:] == 2)


def test_np1_stagger_and_np2_ms_shank_offsets():
    np1 = probes.electrode_table("neuropixels 1.0 - 3B")
    # even 0-based rows are shifted by 16 um (the original pipeline's rule)
    row0 = np1["shank_row"] == 1
    row1 = np1["shank_row"] == 2
    assert sorted(np1["x_coord"][row0]) == [16.0, 48.0]
    assert sorted(np1["x_coord"][row1]) == [0.0, 32.0]
    ms = probes.electrode_table("neuropixels 2.0 - MS")
    # electrode = 1280 * shank_index + i + 1, shank s at +250 um per shank
    for s in range(4):
        first = 1280 * s  # 0-based index of the shank's first electrode
        assert ms["shank"][first] == s + 1
        assert ms["x_coord"][first] == 250.0 * s
        assert ms["y_coord"][first] == 0.0


def test_probe_type_without_geometry_and_unknown():
    assert len(probes.electrode_table("silicon_probe")["electrode"]) == 0
    with pytest.raises(KeyError, match="unknown probe type"):
        probes.info("neuropixels 9000")


@pytest.mark.parametrize(
    "probe_type,part_number,n,cols,rows,pitch",
    [
        ("neuropixels 1.0 - NHP short", "NP1015", 960, 2, 480, 20.0),
        ("neuropixels 1.0 - UHD switchable", "NP1110", 6144, 8, 768, 6.0),
    ],
)
def test_newer_types_match_catalogue(probe_type, part_number, n, cols, rows, pitch):
    assert probes.info(probe_type).part_number == part_number
    t = probes.electrode_table(probe_type)
    ref = build_neuropixels_probe(part_number)
    assert len(t["electrode"]) == ref.get_contact_count() == n
    np.testing.assert_allclose(np.c_[t["x_coord"], t["y_coord"]], ref.contact_positions)
    assert set(t["shank"]) == {1}
    assert t["shank_col"].max() == cols and t["shank_row"].max() == rows
    assert np.all(np.bincount(t["shank_row"])[1:] == cols)
    assert np.allclose(np.diff(np.unique(t["y_coord"])), pitch)
    # NHP short is linear (no stagger): every row has the same x
    if part_number == "NP1015":
        assert sorted(set(t["x_coord"])) == [0.0, 32.0]


def test_every_probe_type_name_fits_lab_probe_type():
    assert all(len(p.probe_type) <= 32 and len(p.part_number or "") <= 32 for p in probes.PROBE_TYPES)
    assert len({p.probe_type for p in probes.PROBE_TYPES}) == len(probes.PROBE_TYPES)
