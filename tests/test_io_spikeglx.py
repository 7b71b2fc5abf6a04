"""SpikeGLX .meta reader (pure, no database): every real sample, generated files with ground truth,
ElectrodeConfig naming/hash, and clear errors."""

from __future__ import annotations

import hashlib
import re
import uuid
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from pipeline import probes
from pipeline.io.spikeglx import SpikeGLXError, UnsupportedProbe, electrode_config, expand_channel_subset, read_meta
from pipeline.synthetic.spikeglx import write_meta

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
META_DIR = REAL / "spikeglx_meta" / "ibl-neuropixel"
PI_META_DIR = REAL / "spikeglx_meta" / "probeinterface"

NP1A, NP1B = "neuropixels 1.0 - 3A", "neuropixels 1.0 - 3B"
SS, MS = "neuropixels 2.0 - SS", "neuropixels 2.0 - MS"
NHP, ULTRA, QB = "neuropixels 1.0 - NHP long", "neuropixels 1.0 - ultra", "neuropixels 2.0 - quad base"
NHP_SHORT, UHD2 = "neuropixels 1.0 - NHP short", "neuropixels 1.0 - UHD switchable"
NP1_UV, NP1_LF_UV, NP2_UV, NP2C_UV = 2.34375, 4.6875, 0.762939453125, 3.02734375
STRIPE = "1-96; 1281-1376; 2561-2656; 3841-3936"
QUAD = "1-384; 1281-1664; 2561-2944; 3841-4224"

# file -> (stream, probe type, nSavedChans, saved neural channels, electrode config name (None: long), uV/bit)
EXPECTED = {
    "np2split/NP1_meta/_spikeglx_ephysData_g0_t0.imec0.ap.meta": ("ap", NP1B, 385, 384, "1-384", NP1_UV),
    "np2split/NP21_meta/_spikeglx_ephysData_g0_t0.imec0.ap.meta": ("ap", SS, 385, 384, "1-384", NP2_UV),
    "np2split/NP24_meta/_spikeglx_ephysData_g0_t0.imec0.ap.meta": ("ap", MS, 385, 384, STRIPE, NP2_UV),
    "np2split/NP2QB_meta/_spikeglx_ephysData_g0_t0.imec0.ap.meta": ("ap", QB, 1540, 1536, QUAD, NP2C_UV),
    "np2split/NP2QB_single_shank_meta/_spikeglx_ephysData_g0_t0.imec0.ap.meta": ("ap", QB, 388, 384, None, NP2C_UV),
    "np2split/_spikeglx_ephysData_g0_t0.imec0.ap.meta": ("ap", MS, 385, 384, STRIPE, NP2_UV),
    "sample3A_376_channels.ap.meta": ("ap", NP1A, 277, 276, "1-276", NP1_UV),
    "sample3A_g0_t0.imec.ap.meta": ("ap", NP1A, 385, 384, "1-384", NP1_UV),
    "sample3A_g0_t0.imec.lf.meta": ("lf", NP1A, 385, 384, "1-384", NP1_LF_UV),
    "sample3A_short_g0_t0.imec.ap.meta": ("ap", NP1A, 385, 384, "1-384", NP1_UV),
    "sample3B2_exported.imec0.ap.meta": ("ap", NP1B, 302, 301, "1-301", NP1_UV),
    "sample3B_catgt.ap.meta": ("ap", NP1B, 385, 384, "1-384", NP1_UV),
    "sample3B_g0_t0.imec1.ap.meta": ("ap", NP1B, 385, 384, "1-384", NP1_UV),
    "sample3B_g0_t0.imec1.lf.meta": ("lf", NP1B, 385, 384, "1-384", NP1_LF_UV),
    "sample3B_g0_t0.nidq.meta": ("nidq", None, 2, 0, None, 10 / 65536 * 1e6),  # +-5 V, 16 bit, XA gain 1
    "sample3B_version202304.ap.meta": ("ap", NP1B, 385, 384, "1-384", NP1_UV),
    "sampleNHPlong_prototype.ap.meta": ("ap", NHP, 385, 384, "1-384", NP1_UV),
    "sampleNP2.1_g0_t0.imec.ap.meta": ("ap", SS, 385, 384, "1-384", NP2_UV),
    "sampleNP2.4_1shank_g0_t0.imec.ap.meta": ("ap", MS, 385, 384, "1-384", NP2_UV),
    "sampleNP2.4_4shanks_appVersion20230905.ap.meta": ("ap", MS, 385, 384, STRIPE, NP2C_UV),
    "sampleNP2.4_4shanks_g0_t0.imec.ap.meta": ("ap", MS, 385, 384, STRIPE, NP2_UV),
    "sampleNP2.4_4shanks_while_acquiring_incomplete.ap.meta": ("ap", MS, 385, 384, None, NP2_UV),
    "sampleNP2QB.imec.ap.meta": ("ap", QB, 1540, 1536, QUAD, NP2C_UV),
    "sampleNPultra_g0_t0.imec0.ap.meta": ("ap", ULTRA, 385, 384, "1-384", NP1_UV),
}


@pytest.fixture(scope="module")
def real_data():
    if not META_DIR.is_dir():
        pytest.skip(f"real SpikeGLX samples not found at {META_DIR}")
    return META_DIR


def _plain(path: Path) -> dict[str, str]:
    """Independent parse: key=value lines, '~' stripped."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.lstrip("~")] = v
    return out


def _plain_subset(text: str, n: int) -> list[int]:
    if text == "all":
        return list(range(n))
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _probeinterface(path: Path):
    from probeinterface import read_spikeglx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_spikeglx(path)


def test_every_real_sample_is_listed(real_data):
    found = {str(p.relative_to(real_data)) for p in real_data.rglob("*.meta")}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_real_sample(real_data, rel):
    path = real_data / rel
    stream, probe_type, n_saved, n_neural, config_name, uv = EXPECTED[rel]
    meta = read_meta(path)
    plain = _plain(path)
    assert meta.path == path
    assert meta.stream == stream
    assert meta.probe_type == probe_type
    assert meta.n_saved_channels == n_saved == int(plain["nSavedChans"])
    np.testing.assert_array_equal(meta.saved_channels, _plain_subset(plain["snsSaveChanSubset"], n_saved))
    assert len(meta.electrodes) == len(meta.shank) == len(meta.x) == len(meta.y) == len(meta.is_used) == n_neural
    assert meta.uv_per_bit == pytest.approx(uv)
    rate_key = "niSampRate" if stream == "nidq" else "imSampRate"
    assert meta.sampling_rate == float(plain[rate_key])
    assert meta.file_create_time == datetime.fromisoformat(
        plain.get("fileCreateTime_original", plain["fileCreateTime"])
    )
    assert meta.first_sample == (int(plain["firstSample"]) if "firstSample" in plain else None)
    # raw keeps every key as written
    written = [line.split("=", 1)[0] for line in path.read_text(errors="replace").splitlines() if "=" in line]
    assert list(meta.raw) == written
    if stream == "nidq":
        assert meta.part_number is None and meta.serial is None
        return
    assert meta.serial == (plain.get("imDatPrb_sn") or plain.get("imProbeSN"))
    assert meta.part_number == plain.get("imDatPrb_pn", "NP1000")
    cfg = meta.electrode_config()
    if config_name is None:
        assert len(cfg["electrode_config_name"]) <= 64 and cfg["electrode_config_name"].startswith(
            f"{n_neural} electrodes"
        )
    else:
        assert cfg["electrode_config_name"] == config_name == cfg["electrode_ranges"]
    # geometry is the lab's (pipeline.probes) for the electrode numbers
    table = probes.electrode_table(probe_type)
    i = meta.electrodes - 1
    np.testing.assert_array_equal(meta.shank, table["shank"][i])
    np.testing.assert_array_equal(meta.x, table["x_coord"][i])
    np.testing.assert_array_equal(meta.y, table["y_coord"][i])
    assert len(np.unique(meta.electrodes)) == n_neural


@pytest.mark.parametrize("rel", sorted(r for r, e in EXPECTED.items() if e[0] == "ap"))
def test_real_geometry_matches_probeinterface(real_data, rel):
    """read_spikeglx slices the catalogue probe to the saved channels: same sites, same positions."""
    path = real_data / rel
    meta = read_meta(path)
    probe = _probeinterface(path)
    assert probe.get_contact_count() == len(meta.electrodes)
    np.testing.assert_allclose(probe.contact_positions, np.c_[meta.x, meta.y])
    table = probes.electrode_table(meta.probe_type)
    per_shank = len(table["electrode"]) // table["shank"].max()
    ids = [re.fullmatch(r"(?:s(\d+))?e(\d+)", c).groups() for c in probe.contact_ids]
    expected = np.array([int(s or 0) * per_shank + int(e) + 1 for s, e in ids])
    np.testing.assert_array_equal(meta.electrodes, expected)


# probeinterface's own SpikeGLX samples of the newer probe types: file -> (probe type, part number,
# saved neural channels, electrode config name or None when long)
PI_EXPECTED = {
    "NP1110_bank0_g0_t0.imec0.ap.meta": (UHD2, "NP1110", 384, "1-384"),
    "NP1110_botrow80_g0_t0.imec0.ap.meta": (UHD2, "NP1110", 384, "641-1024"),
    "NP1110_2x192_bank4_g0_t0.imec0.ap.meta": (UHD2, "NP1110", 384, None),
    "NP1110_vstripe_g0_t0.imec0.ap.meta": (UHD2, "NP1110", 384, None),  # column mode INNER
    "non_human_primate_short_linear_probe_type_0.meta": (NHP_SHORT, "NP1015", 384, "1-384"),
    "NP2_2013_all_channels.imec0.ap.meta": (MS, "NP2013", 384, None),
    "NP2_2013_subset_channels.imec0.ap.meta": (MS, "NP2013", 120, None),
}


@pytest.mark.parametrize("rel", sorted(PI_EXPECTED))
def test_real_newer_probe_types(rel):
    """Read with the right type; the sites agree with probeinterface's reader and with SpikeGLX's own
    ~snsGeomMap / ~snsShankMap of the file (the reader refuses a disagreement)."""
    if not PI_META_DIR.is_dir():
        pytest.skip(f"real SpikeGLX samples not found at {PI_META_DIR}")
    path = PI_META_DIR / rel
    probe_type, pn, n, name = PI_EXPECTED[rel]
    meta = read_meta(path)
    assert (meta.probe_type, meta.part_number, len(meta.electrodes)) == (probe_type, pn, n)
    pi = _probeinterface(path)
    np.testing.assert_allclose(np.c_[meta.x, meta.y], pi.contact_positions)
    cfg = meta.electrode_config()
    if name is not None:
        assert cfg["electrode_config_name"] == name
    plain = _plain(path)
    if "snsGeomMap" in plain:  # SpikeGLX's x (on the shank) and z per saved channel
        geom = np.array(
            [e.split(":") for e in re.findall(r"\(([\d.]+:[\d.]+:[\d.]+:\d)\)", plain["snsGeomMap"])], float
        )
        np.testing.assert_allclose(geom[:, 2], meta.y)
        dx = geom[:, 1] + geom[:, 0] * float(plain["snsGeomMap"].split(")")[0].split(",")[2]) - meta.x
        np.testing.assert_allclose(dx, dx[0])


@pytest.mark.parametrize("ap,lf", [("sample3B_g0_t0.imec1.ap.meta", "sample3B_g0_t0.imec1.lf.meta")])
def test_real_lf_stream_matches_its_ap_stream(real_data, ap, lf):
    a, b = read_meta(real_data / ap), read_meta(real_data / lf)
    np.testing.assert_array_equal(a.electrodes, b.electrodes)
    np.testing.assert_array_equal(b.saved_channels, np.r_[384:769])
    assert b.sampling_rate == pytest.approx(a.sampling_rate / 12, rel=1e-6)


def test_real_np1_imro_decoded_independently(real_data):
    """NP1-format imro entries are (channel bank ref apgain lfgain [hp]): electrode = bank*384 + channel + 1."""
    for rel in ("sample3A_g0_t0.imec.lf.meta", "sample3A_376_channels.ap.meta", "sample3B2_exported.imec0.ap.meta"):
        path = real_data / rel
        plain = _plain(path)
        entries = re.findall(r"\((\d+) (\d+) \d+ \d+ \d+[^)]*\)", plain["imroTbl"])
        by_channel = {int(c): int(b) * 384 + int(c) + 1 for c, b in entries}
        n_ap = int(plain["acqApLfSy"].split(",")[0])
        saved = _plain_subset(plain["snsSaveChanSubset"], int(plain["nSavedChans"]))
        readout = [c if c < n_ap else c - n_ap for c in saved if c < 2 * n_ap]
        np.testing.assert_array_equal(read_meta(path).electrodes, [by_channel[c] for c in readout])


def test_real_subset_and_catgt_files(real_data):
    exported = read_meta(real_data / "sample3B2_exported.imec0.ap.meta")
    np.testing.assert_array_equal(exported.saved_channels, np.r_[0:301, 768])
    np.testing.assert_array_equal(exported.electrodes, np.arange(1, 302))
    np.testing.assert_array_equal(exported.neural_channels, np.arange(301))
    assert exported.file_create_time == datetime(2019, 5, 31, 16, 14, 4)  # the original, not the export's
    catgt = read_meta(real_data / "sample3B_catgt.ap.meta")
    assert catgt.file_create_time == datetime(2022, 9, 15, 23, 5, 18)
    qb1 = read_meta(real_data / "np2split/NP2QB_single_shank_meta/_spikeglx_ephysData_g0_t0.imec0.ap.meta")
    np.testing.assert_array_equal(qb1.saved_channels, np.r_[0:384, 1536:1540])
    # channels alternate between bank 0 and bank 1 of shank 1 (imro '(1 0 1 1 385)': electrode 385 -> 386)
    np.testing.assert_array_equal(qb1.electrodes[:4], [1, 386, 3, 388])
    assert set(qb1.shank) == {1}
    np.testing.assert_array_equal(qb1.y[:2], [0.0, 2880.0])
    ultra = read_meta(real_data / "sampleNPultra_g0_t0.imec0.ap.meta")
    assert sorted(set(np.diff(np.unique(ultra.x)))) == [6.0] and len(np.unique(ultra.x)) == 8
    # the NP2.4 files of np2split/ write their tables without '~': raw keeps them as written
    np24 = read_meta(real_data / "np2split/NP24_meta/_spikeglx_ephysData_g0_t0.imec0.ap.meta")
    assert "imroTbl" in np24.raw and "~imroTbl" not in np24.raw
    assert "~imroTbl" in read_meta(real_data / "sampleNP2QB.imec.ap.meta").raw
    # reference sites (SpikeGLX's used flag 0) are reported
    assert (~read_meta(real_data / "sample3A_g0_t0.imec.ap.meta").is_used).sum() == 10


# ---------------------------------------------------------------------------------------------
# generated files


GENERATED = [
    ("np1", {}),
    ("np1", {"layout": "random", "saved": np.r_[0:150, 200:384]}),
    ("np1", {"stream": "lf", "layout": "random"}),
    ("np1", {"layout": "random", "site_map": "geom", "tilde": False}),
    ("np1", {"banks": np.r_[np.full(192, 2), np.ones(192, int)], "site_map": None}),
    ("np2_4shank", {"layout": "stripe"}),
    ("np2_4shank", {"layout": "bank", "bank": 2, "shank": 3}),
    ("np2_4shank", {"layout": "random", "saved": np.arange(0, 384, 3)}),
    ("np2_4shank_commercial", {"layout": "random"}),
    ("np2_4shank_commercial", {"layout": "stripe", "site_map": "shank", "saved": np.r_[5:90]}),
    ("np2_4shank_np2013", {"layout": "stripe"}),
    ("np2_4shank_np2013", {"layout": "random", "saved": np.r_[0:40, 100:120]}),
    ("np2_1shank_commercial", {"layout": "random"}),
    ("np2_1shank_commercial", {"layout": "bank", "bank": 2, "site_map": "shank", "saved": np.r_[3:200]}),
    ("np1_nhp_short", {}),
    ("np1_nhp_short", {"layout": "random", "site_map": "geom", "saved": np.r_[0:100]}),
    ("np1_nhp_short", {"stream": "lf", "layout": "random"}),
    ("np1110", {"bank": 7}),
    ("np1110", {"layout": "random", "saved": np.arange(0, 384, 5)}),
    ("np1110", {"banks": np.arange(24) % 16, "site_map": "shank"}),
    ("np1110", {"stream": "lf", "layout": "random"}),
]


@pytest.mark.parametrize("probe,kw", GENERATED)
@pytest.mark.parametrize("seed", [0, 1])
def test_generated_meta_roundtrip(tmp_path, probe, kw, seed):
    stream = kw.get("stream", "ap")
    truth = write_meta(tmp_path / f"gen_g0_t0.imec0.{stream}.meta", probe, seed=seed, **kw)
    meta = read_meta(truth.path)
    for name in (
        "stream",
        "probe_type",
        "part_number",
        "serial",
        "sampling_rate",
        "n_saved_channels",
        "file_create_time",
        "first_sample",
    ):
        assert getattr(meta, name) == getattr(truth, name), name
    for name in ("saved_channels", "electrodes", "shank", "x", "y", "is_used"):
        np.testing.assert_array_equal(getattr(meta, name), getattr(truth, name), err_msg=name)
    assert meta.uv_per_bit == pytest.approx(truth.uv_per_bit)
    if stream == "ap":
        probe_pi = _probeinterface(truth.path)
        np.testing.assert_allclose(probe_pi.contact_positions, np.c_[truth.x, truth.y])


# generator probe -> (lab probe type, part number, electrodes of the lab type, shanks)
NEW_TYPES = {
    "np1110": (UHD2, "NP1110", 6144, 1),
    "np1_nhp_short": (NHP_SHORT, "NP1015", 960, 1),
    "np2_4shank_np2013": (MS, "NP2013", 5120, 4),
    "np2_4shank_commercial": (MS, "NP2014", 5120, 4),
    "np2_1shank_commercial": (SS, "NP2003", 1280, 1),
}


@pytest.mark.parametrize("probe", sorted(NEW_TYPES))
def test_generated_new_probe_types_match_probeinterface(tmp_path, probe):
    """Probe type, channel count and every site's position, checked against probeinterface directly:
    its reader of the same file and its catalogue probe of the part number."""
    from probeinterface.neuropixels_tools import build_neuropixels_probe

    probe_type, pn, n_sites, n_shanks = NEW_TYPES[probe]
    saved = np.r_[0:120, 200:384]
    truth = write_meta(tmp_path / f"{probe}_g0_t0.imec0.ap.meta", probe, layout="random", saved=saved, seed=7)
    meta = read_meta(truth.path)
    assert (meta.probe_type, meta.part_number) == (probe_type, pn)
    assert meta.n_saved_channels == len(saved) + 1 and len(meta.electrodes) == len(saved)
    assert len(probes.electrode_table(probe_type)["electrode"]) == n_sites
    pi = _probeinterface(truth.path)
    assert pi.get_contact_count() == len(saved)
    np.testing.assert_allclose(np.c_[meta.x, meta.y], pi.contact_positions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        catalogue = build_neuropixels_probe(pn)
    assert catalogue.get_contact_count() == n_sites
    np.testing.assert_allclose(np.c_[meta.x, meta.y], catalogue.contact_positions[meta.electrodes - 1])
    shanks = catalogue.shank_ids.astype(int) + 1 if n_shanks > 1 else np.ones(n_sites, int)
    np.testing.assert_array_equal(meta.shank, shanks[meta.electrodes - 1])
    np.testing.assert_array_equal(meta.electrodes, truth.electrodes)


def test_generated_np1110_bank_covers_its_rows(tmp_path):
    """NP1110 in column mode ALL, one bank for all groups: the 384 channels are the bank's 48 rows x 8
    columns (6 um pitch), each site once."""
    meta = read_meta(write_meta(tmp_path / "u_g0_t0.imec0.ap.meta", "np1110", bank=5).path)
    np.testing.assert_array_equal(np.sort(meta.electrodes), np.arange(5 * 384 + 1, 6 * 384 + 1))
    assert meta.electrode_config()["electrode_config_name"] == "1921-2304"
    np.testing.assert_array_equal(np.unique(meta.x), np.arange(8) * 6.0)
    np.testing.assert_array_equal(np.unique(meta.y), (5 * 48 + np.arange(48)) * 6.0)


def test_generated_catgt_time_and_geometry(tmp_path):
    original = datetime(2020, 2, 3, 4, 5, 6)
    truth = write_meta(tmp_path / "cat_tcat.imec0.ap.meta", "np1", original_create_time=original)
    assert read_meta(truth.path).file_create_time == original
    # NP1 geometry: even 0-based rows shifted 16 um, 20 um rows
    g = write_meta(tmp_path / "b_g0_t0.imec0.ap.meta", "np1")
    np.testing.assert_array_equal(g.x[:4], [16, 48, 0, 32])
    np.testing.assert_array_equal(g.y[:4], [0, 0, 20, 20])


# ---------------------------------------------------------------------------------------------
# errors


def test_unsupported_probe_type(tmp_path):
    # NP1020 (NHP medium, type 1020) is in probeinterface's catalogue but has no lab.ProbeType
    path = write_meta(
        tmp_path / "nhp_g0_t0.imec0.ap.meta", "np1", overrides={"imDatPrb_type": "1020", "imDatPrb_pn": "NP1020"}
    ).path
    with pytest.raises(UnsupportedProbe, match=r"imDatPrb_type=1020 \(part number NP1020\)") as e:
        read_meta(path)
    assert str(e.value).startswith(str(path))
    assert isinstance(e.value, SpikeGLXError)


@pytest.mark.parametrize("code", ["0", "1110", "2013", "4321"])
def test_unknown_part_number_is_one_clear_line(tmp_path, code):
    """A part number outside probeinterface's catalogue has no known geometry: refused, whatever the
    type code, in one line naming the file and the part number."""
    path = write_meta(
        tmp_path / "odd_g0_t0.imec0.ap.meta", "np1", overrides={"imDatPrb_type": code, "imDatPrb_pn": "NP9876"}
    ).path
    with pytest.raises(UnsupportedProbe) as e:
        read_meta(path)
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{path}: ")
    assert f"part number NP9876 (imDatPrb_type={code})" in text and "site layout is unknown" in text


def test_type0_part_number_picks_its_layout(tmp_path):
    """SpikeGLX writes imDatPrb_type=0 for NP1015/NP1016/NP1017 (NHP short linear): the part number
    gives the geometry; a type-0 file naming a part with a type code of its own (NP1030) is refused."""
    for pn in ("NP1015", "NP1016", "NP1017"):
        meta = read_meta(write_meta(tmp_path / f"{pn}_g0_t0.imec0.ap.meta", "np1_nhp_short",
                                    overrides={"imDatPrb_pn": pn}).path)  # fmt: skip
        assert meta.probe_type == NHP_SHORT and meta.part_number == pn
        np.testing.assert_array_equal(meta.x[:4], [0, 32, 0, 32])  # linear: no stagger
    # NP1000-layout parts written as type 0 stay NP1.0 3B
    assert (
        read_meta(
            write_meta(tmp_path / "a_g0_t0.imec0.ap.meta", "np1", overrides={"imDatPrb_pn": "NP1010"}).path
        ).probe_type
        == NP1B
    )


def test_np1110_bad_group_table(tmp_path):
    imro = "(1110,2,0,500,250,1)" + "".join(f"({g} 0 0)" for g in range(23))
    path = write_meta(tmp_path / "u_g0_t0.imec0.ap.meta", "np1110", overrides={"imroTbl": imro}).path
    with pytest.raises(SpikeGLXError, match="NP1110 probe has 23 group entries, expected 24") as e:
        read_meta(path)
    assert str(e.value).startswith(str(path))
    bad_bank = "(1110,2,0,500,250,1)" + "".join(f"({g} 16 16)" for g in range(24))
    path = write_meta(tmp_path / "v_g0_t0.imec0.ap.meta", "np1110", overrides={"imroTbl": bad_bank}).path
    with pytest.raises(SpikeGLXError) as e:
        read_meta(path)
    assert str(e.value).startswith(str(path))


def test_part_number_with_another_layout_is_unsupported(tmp_path):
    path = write_meta(tmp_path / "x_g0_t0.imec0.ap.meta", "np1", overrides={"imDatPrb_pn": "NP1030"}).path
    with pytest.raises(UnsupportedProbe, match="NP1030.*site layout different"):
        read_meta(path)


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"nSavedChans": None}, "required key nSavedChans missing"),
        ({"nSavedChans": "380"}, "snsSaveChanSubset lists 385 channels but nSavedChans=380"),
        ({"imroTbl": None}, "no ~imroTbl"),
        ({"imroTbl": "(0,384)(0 9 0 500 250 1)"}, "imroTbl"),
        ({"snsShankMap": "(1,2,480)" + "(0:0:5:1)" * 384}, "~imroTbl and ~snsShankMap disagree on"),
        ({"typeThis": "obx"}, "typeThis='obx' is not supported"),
        ({"snsApLfSy": "0,384,1"}, "file name says AP"),
        ({"acqApLfSy": None}, "acqApLfSy missing"),
        ({"snsSaveChanSubset": "0:383,900"}, "beyond the 769 acquired"),
        ({"acqApLfSy": "384,x,1"}, "unreadable value"),
        ({"snsShankMap": "(1,2,480)(0:0:a:1)"}, "unreadable value"),
    ],
)
def test_clear_errors(tmp_path, overrides, match):
    path = write_meta(tmp_path / "bad_g0_t0.imec0.ap.meta", "np1", overrides=overrides).path
    with pytest.raises(SpikeGLXError, match=match) as e:
        read_meta(path)
    assert str(e.value).startswith(str(path))


def test_file_errors(tmp_path):
    with pytest.raises(SpikeGLXError, match="file not found"):
        read_meta(tmp_path / "missing.ap.meta")
    empty = tmp_path / "empty.ap.meta"
    empty.write_text("")
    with pytest.raises(SpikeGLXError, match="no key=value lines"):
        read_meta(empty)
    binary = tmp_path / "data.ap.meta"
    binary.write_bytes(b"\x00\x01\x02=\x00" * 10)
    with pytest.raises(SpikeGLXError, match="binary content"):
        read_meta(binary)


def test_expand_channel_subset():
    np.testing.assert_array_equal(expand_channel_subset("0:3,7,10:11"), [0, 1, 2, 3, 7, 10, 11])
    np.testing.assert_array_equal(expand_channel_subset("all", 3), [0, 1, 2])


# ---------------------------------------------------------------------------------------------
# electrode configurations


def _independent_hash(probe_type, electrodes) -> uuid.UUID:
    md5 = hashlib.md5()
    for e in sorted(set(int(x) for x in electrodes)):
        md5.update(str({"probe_type": probe_type, "electrode": e}).encode())
    return uuid.UUID(md5.hexdigest())


def test_electrode_config_name_and_hash():
    cfg = electrode_config(NP1B, np.r_[385:577, 1:193][::-1])
    assert cfg["electrode_config_name"] == "1-192; 385-576"
    assert cfg["probe_type"] == NP1B
    np.testing.assert_array_equal(cfg["electrodes"], np.r_[1:193, 385:577])
    # the same on every machine: a fixed value, and the documented rule recomputed here
    assert cfg["electrode_config_hash"] == uuid.UUID("2ed492c0-8070-2701-0d09-201550b83376")
    assert cfg["electrode_config_hash"] == _independent_hash(NP1B, cfg["electrodes"])
    assert electrode_config(NP1B, np.arange(1, 385))["electrode_config_hash"] == uuid.UUID(
        "8fab1933-00b2-4ad1-cbad-7617ef6a4090"
    )
    # order and duplicates do not matter; the probe type does
    again = electrode_config(NP1B, list(range(1, 193)) + list(range(385, 577)) + [5, 5])
    assert again["electrode_config_hash"] == cfg["electrode_config_hash"]
    assert electrode_config(NP1A, cfg["electrodes"])["electrode_config_hash"] != cfg["electrode_config_hash"]
    assert electrode_config(NP1B, [7])["electrode_config_name"] == "7-7"
    assert electrode_config(NP1B, [1, 2, 4])["electrode_config_name"] == "1-2; 4-4"


def test_electrode_config_long_names_fit_the_table():
    cfg = electrode_config(MS, np.arange(1, 5121, 2))
    assert len(cfg["electrode_config_name"]) <= 64
    assert cfg["electrode_config_name"] == (
        f"2560 electrodes 1-5119, 2560 ranges #{cfg['electrode_config_hash'].hex[:8]}"
    )
    assert cfg["electrode_ranges"].startswith("1-1; 3-3; 5-5")


def test_electrode_config_rejects_bad_input():
    with pytest.raises(ValueError, match="outside 1..960"):
        electrode_config(NP1B, [0, 1])
    with pytest.raises(ValueError, match="outside 1..960"):
        electrode_config(NP1B, [961])
    with pytest.raises(ValueError, match="no electrodes"):
        electrode_config(NP1B, [])
    with pytest.raises(KeyError, match="unknown probe type"):
        electrode_config("neuropixels 9000", [1])


def test_new_probe_types_have_catalogue_geometry():
    from probeinterface.neuropixels_tools import build_neuropixels_probe

    for name, pn, n in ((NHP, "NP1030", 4416), (ULTRA, "NP1100", 384), (QB, "NP2020", 5120)):
        info = probes.info(name)
        assert info.part_number == pn
        t = probes.electrode_table(name)
        assert len(t["electrode"]) == n
        np.testing.assert_allclose(np.c_[t["x_coord"], t["y_coord"]], build_neuropixels_probe(pn).contact_positions)


# ---------------------------------------------------------------------------------------------
# channel tables with the wrong number of entries, or broken: an error naming the key


def _tables(tmp_path, probe="np1", **kw):
    """The tables write_meta writes for a good file (without their '~')."""
    g = write_meta(tmp_path / "good_g0_t0.imec0.ap.meta", probe, **kw)
    raw = read_meta(g.path).raw
    return {k.lstrip("~"): v for k, v in raw.items() if k.startswith("~")}


def _meta_error(tmp_path, overrides, probe="np1", **kw) -> str:
    path = write_meta(tmp_path / "bad_g0_t0.imec0.ap.meta", probe, overrides=overrides, **kw).path
    with pytest.raises(SpikeGLXError) as e:
        read_meta(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    return msg


def _drop_last_entry(text: str) -> str:
    return text[: text.rfind("(")]


def test_entry_counts_must_match_the_channels(tmp_path):
    t = _tables(tmp_path)
    msg = _meta_error(tmp_path, {"snsShankMap": _drop_last_entry(t["snsShankMap"])})
    assert "~snsShankMap has 383 entries but the file saves 384 neural channels" in msg
    msg = _meta_error(tmp_path, {"snsShankMap": t["snsShankMap"] + "(0:1:5:1)"})
    assert "~snsShankMap has 385 entries" in msg
    msg = _meta_error(tmp_path, {"imroTbl": _drop_last_entry(t["imroTbl"])})
    assert "~imroTbl header says 384 channels but it has 383 entries" in msg
    msg = _meta_error(tmp_path, {"imroTbl": "(0,383)" + t["imroTbl"].split(")", 1)[1].rsplit("(", 1)[0]})
    assert "~imroTbl has 383 entries but acqApLfSy=384,384,1 acquires 384 channels" in msg
    msg = _meta_error(tmp_path, {"snsChanMap": _drop_last_entry(t["snsChanMap"])})
    assert "~snsChanMap has 384 entries but the file saves 385 channels" in msg
    g = _tables(tmp_path, probe="np2_4shank_commercial", site_map="geom")
    msg = _meta_error(
        tmp_path, {"snsGeomMap": _drop_last_entry(g["snsGeomMap"])}, probe="np2_4shank_commercial", site_map="geom"
    )
    assert "~snsGeomMap has 383 entries but the file saves 384 neural channels" in msg
    msg = _meta_error(
        tmp_path,
        {"snsGeomMap": g["snsGeomMap"].replace("(0:", "(7:", 1)},
        probe="np2_4shank_commercial",
        site_map="geom",
    )
    assert "~snsGeomMap: entry 0 is shank 7 but the header has 4 shanks" in msg


@pytest.mark.parametrize(
    "key, edit, pattern",
    [
        ("snsShankMap", lambda t: t.replace("(0:0:0:1)", "(0:0:0)", 1), r"~snsShankMap: unreadable value in entry 0"),
        ("snsShankMap", lambda t: t.replace("(0:0:0:1)", "(0:0:x:1)", 1), r"~snsShankMap: unreadable value in entry 0"),
        ("snsShankMap", lambda t: t + "junk", r"~snsShankMap has text outside its '\(\.\.\.\)' entries"),
        ("snsShankMap", lambda t: t.replace("(0:0:0:1)", "(0:0:0:2)", 1), r"~snsShankMap: entry 0 has 'used' flag 2"),
        (
            "snsShankMap",
            lambda t: t.replace("(0:0:0:1)", "(3:0:0:1)", 1),
            r"~snsShankMap: entry 0 is shank 3 but the header has 1 shanks",
        ),
        (
            "snsShankMap",
            lambda t: t.replace("(0:0:0:1)", "(0:0.5:0:1)", 1),
            r"~snsShankMap: entry 0 .* negative or fractional",
        ),
        ("snsShankMap", lambda t: "0:0:0:1" + t, r"~snsShankMap does not start with a '\(\.\.\.\)' header"),
        (
            "snsChanMap",
            lambda t: t.replace("(AP3;3:3)", "(AP3;4:3)"),
            r"~snsChanMap entry 3 \('AP3;4:3'\) is channel 4 but snsSaveChanSubset saves channel 3",
        ),
        (
            "snsChanMap",
            lambda t: t.replace("(AP3;3:3)", "(LF3;3:3)"),
            r"~snsChanMap entry 3 \('LF3;3:3'\) should be named AP3",
        ),
        (
            "snsChanMap",
            lambda t: t.replace("(AP3;3:3)", "(AP3-3-3)"),
            r"~snsChanMap: entry 3 \('AP3-3-3'\) is not NAME;channel:order",
        ),
        (
            "snsChanMap",
            lambda t: t.replace("(384,384,1)", "(384,0,1)", 1),
            r"~snsChanMap header \(384,0,1\) is not acqApLfSy=384,384,1",
        ),
        (
            "imroTbl",
            lambda t: t.replace("(3 0 0 500 250 1)", "(3 0 0 500)"),
            r"~imroTbl: entry 3 \('3 0 0 500'\) has a different number of fields",
        ),
        (
            "imroTbl",
            lambda t: t.replace("(0,384)", "(0,x)"),
            r"~imroTbl header \(0,x\) does not end with a channel count",
        ),
    ],
)
def test_broken_tables_name_the_key(tmp_path, key, edit, pattern):
    t = _tables(tmp_path)
    msg = _meta_error(tmp_path, {key: edit(t[key])})
    assert re.search(pattern, msg), msg


def test_good_tables_read_as_before(tmp_path):
    g = write_meta(tmp_path / "ok_g0_t0.imec0.ap.meta", "np1", seed=3, saved=np.arange(0, 384, 2))
    m = read_meta(g.path)
    np.testing.assert_array_equal(m.electrodes, g.electrodes)
    np.testing.assert_array_equal(m.saved_channels, g.saved_channels)
    np.testing.assert_array_equal(m.is_used, g.is_used)
    g = write_meta(tmp_path / "lf_g0_t0.imec0.lf.meta", "np1", stream="lf", seed=3)
    np.testing.assert_array_equal(read_meta(g.path).electrodes, g.electrodes)
