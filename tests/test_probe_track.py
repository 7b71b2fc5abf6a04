"""InterpolatedElectrodeCCF and InterpolatedShankTrack: electrodes the histology did not place are
interpolated along their shank; each shank's track is fitted and sampled inside the brain."""

import numpy as np
import pytest
from test_ingest_histology import IKEY, annotation, expected_regions, np1_probe  # noqa: F401  (fixtures)

from pipeline import histology
from pipeline.analysis.probe_track import fit_track, interpolate_positions, sample_track
from pipeline.ingest.histology import ingest_histology as ingest
from pipeline.synthetic.histology import track_positions, write_ibl_alignment


def test_interpolate_positions_on_lines():
    along = np.arange(10, dtype=float) * 20  # two columns, 10 sites each
    group = np.repeat([1, 2], 10)
    along = np.r_[along, along]
    truth = np.c_[100 + 0.5 * along, 4000 - along, 5000 + 0.25 * along] + np.r_[np.zeros(10), 40 * np.ones(10)][:, None]
    known = np.ones(20, bool)
    known[[0, 4, 5, 9]] = False  # below, inside and above column 1's placed sites
    known[10:19] = False  # column 2 has one placed site: its shank (fallback) is used
    got, placed = interpolate_positions(
        group, along, known, np.where(known[:, None], truth, np.nan), fallback=np.ones(20)
    )
    assert placed.all()
    np.testing.assert_array_equal(got[known], truth[known])  # placed electrodes keep theirs
    np.testing.assert_array_equal(
        got[:10], np.round(truth[:10] / 20) * 20 * ~known[:10, None] + truth[:10] * known[:10, None]
    )
    # column 2 from the whole shank: off by at most the columns' 40 um apart and the rounding
    assert np.all(np.abs(got[10:19] - truth[10:19]) <= 50) and np.all(got[10:19] % 20 == 0)
    # a shank with one placed electrode: nothing to interpolate from
    _, placed = interpolate_positions(np.ones(5), np.arange(5.0), np.eye(5, dtype=bool)[0], np.zeros((5, 3)))
    assert placed.tolist() == [True, False, False, False, False]


def test_fit_and_sample_track():
    rng = np.random.default_rng(1)
    dv = rng.uniform(1000, 4000, 60)
    pts = np.c_[2000 + 0.1 * dv, dv, 7000 - 0.3 * dv] + rng.normal(0, 5, (60, 3))
    a_ml, b_ml, a_ap, b_ap = fit_track(pts)
    assert a_ml == pytest.approx(0.1, abs=0.01) and a_ap == pytest.approx(-0.3, abs=0.01)
    assert b_ml == pytest.approx(2000, abs=25) and b_ap == pytest.approx(7000, abs=25)
    line = sample_track((a_ml, b_ml, a_ap, b_ap), 4000)
    assert line[0, 1] == 0 and line[-1, 1] == 4000 and np.all(np.diff(line[:, 1]) == 20)
    with pytest.raises(ValueError):
        fit_track(np.array([[0, 5, 0], [1, 5, 1.0]]))


def _truth_at_dv(seed, dv):
    """The generator's straight track (ML, DV, AP) at depths ``dv``."""
    a, b = track_positions([0.0, 1000.0], seed)
    f = (np.asarray(dv, dtype=float) - a[1]) / (b[1] - a[1])
    return a[None, :] + f[:, None] * (b - a)[None, :]


def test_interpolated_electrodes_and_track(annotation, np1_probe, tmp_path):  # noqa: F811
    t = write_ibl_alignment(np1_probe, n_channels=384, seed=5)
    assert ingest([str(tmp_path / "histology")]).ok
    positions = histology.ElectrodeCCFPosition.ElectrodePosition
    # the histology did not place some electrodes: the deepest 20, a run in the middle, the top 30
    missing = [*range(1, 21), *range(150, 171), *range(355, 385)]
    (positions & IKEY & [dict(electrode=e) for e in missing]).delete_quick()
    histology.InterpolatedElectrodeCCF.populate()
    histology.InterpolatedShankTrack.populate()

    master = (histology.InterpolatedElectrodeCCF & IKEY).fetch1()
    assert (master["n_placed"], master["n_interpolated"], master["n_unplaced"]) == (384 - len(missing), len(missing), 0)
    got = (histology.InterpolatedElectrodeCCF.Electrode & IKEY).to_pandas().reset_index().sort_values("electrode")
    assert got.electrode.tolist() == list(range(1, 385))
    xyz = got[["ccf_x", "ccf_y", "ccf_z"]].to_numpy()
    interpolated = got.interpolated.to_numpy().astype(bool)  # MySQL returns 0/1
    assert np.flatnonzero(interpolated).tolist() == [e - 1 for e in missing]
    np.testing.assert_array_equal(xyz[~interpolated], t.ccf[~interpolated])  # placed: unchanged
    # interpolated: within one voxel and the generator's < 7 um wobble of the truth, on the grid
    assert np.abs(xyz[interpolated] - t.ccf[interpolated]).max() <= 20 and np.all(xyz[interpolated] % 20 == 0)
    np.testing.assert_array_equal(got.region_id.to_numpy(), expected_regions(annotation, xyz))

    shank = (histology.InterpolatedShankTrack.Shank & IKEY).fetch1()
    assert shank["shank"] == 1 and shank["n_fitted"] == 384 - len(missing) + len(t.picks_ccf)
    placed_dv = t.ccf[~interpolated][:, 1]
    deepest = _truth_at_dv(5, [placed_dv.max()])[0]
    bottom = np.array([shank["deepest_x"], shank["deepest_y"], shank["deepest_z"]])
    assert bottom[1] == placed_dv.max() and np.abs(bottom - deepest).max() <= 20
    pts = (histology.InterpolatedShankTrack.Point & IKEY).to_pandas().reset_index().sort_values("point_order")
    line = pts[["ccf_x", "ccf_y", "ccf_z"]].to_numpy()
    assert len(pts) > 10 and (pts.region_id > 0).all()
    np.testing.assert_array_equal(pts.region_id.to_numpy(), expected_regions(annotation, line))
    assert np.abs(line - _truth_at_dv(5, line[:, 1])).max() <= 20  # on the generator's track
    surface = np.array([shank["surface_x"], shank["surface_y"], shank["surface_z"]])
    np.testing.assert_array_equal(surface, line[0])
    above = np.array([[*_truth_at_dv(5, [dv])[0]] for dv in np.arange(0, surface[1], 20)])
    above = np.round(above / 20) * 20
    assert not (expected_regions(annotation, above) > 0).any() if len(above) else True  # nothing in the brain above it
    # re-running computes nothing more
    histology.InterpolatedElectrodeCCF.populate()
    histology.InterpolatedShankTrack.populate()
    assert len(histology.InterpolatedShankTrack.Point & IKEY) == len(pts)
