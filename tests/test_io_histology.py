"""Histology readers: the real IBL track-point CSV, and generated IBL channel_locations /
xyz_picks json, MAP siteInfo .mat and landmark CSVs against their ground truth. No database."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io as sio

from pipeline.io.ccf import read_annotation, region_lookup
from pipeline.io.histology import (
    CHANNEL_COLUMNS,
    LANDMARK_COLUMNS,
    HistologyError,
    ibl_to_ccf,
    ibl_xyz_to_ccf,
    match_ibl_channels,
    parse_histology_filename,
    parse_track_points_filename,
    read_channel_locations,
    read_landmarks_csv,
    read_site_info,
    read_track_points,
    read_xyz_picks,
)
from pipeline.synthetic.histology import (
    IBL_BREGMA_MLAPDV_UM,
    histology_filename,
    ibl_np1_layout,
    write_ibl_alignment,
    write_landmarks_csv,
    write_site_info,
)

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
PTS = REAL / "histology_track_points" / "ibllib" / "2019-12-04_KS014_001_probe00_pts.csv"


# ------------------------------------------------------------------------------- track points
def test_real_track_points():
    if not PTS.is_file():
        pytest.skip(f"real sample {PTS} not present")
    pts = read_track_points(PTS)
    ref = np.loadtxt(PTS, delimiter=",")
    assert pts.shape == (82, 3) == ref.shape
    assert pts.dtype == np.int64
    np.testing.assert_array_equal(pts, ref.astype(np.int64))
    assert pts[0].tolist() == [200, 279, 165]


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("1,2\n", "line 1: expected 3 columns, found 2"),
        ("1,2,3\n4,x,6\n", "line 2: not numbers"),
        ("1,2,3.5\n", "line 1: expected integers"),
        ("\n\n", "no points"),
    ],
)
def test_bad_track_points(tmp_path, text, pattern):
    p = tmp_path / "x_pts.csv"
    p.write_text(text)
    with pytest.raises(HistologyError, match=pattern):
        read_track_points(p)


# ------------------------------------------------------------------------------------ IBL json
@pytest.mark.parametrize("shank, prefix", [(None, ""), (3, ""), (None, "SC030_20191002_1_")])
def test_channel_locations_against_truth(tmp_path, shank, prefix):
    truth = write_ibl_alignment(tmp_path, n_channels=384, shank=shank, prefix=prefix, seed=5)
    loc = read_channel_locations(truth.channel_locations_path)
    assert loc.shank == shank
    assert loc.origin_name == "bregma"
    np.testing.assert_array_equal(loc.origin, IBL_BREGMA_MLAPDV_UM)
    assert list(loc.channels.columns) == list(CHANNEL_COLUMNS)
    pd.testing.assert_frame_equal(loc.channels, truth.channels, check_dtype=False)
    assert loc.channels["brain_region_id"].dtype == np.int64
    ccf = ibl_to_ccf(loc)
    assert ccf.dtype == np.int64 and ccf.shape == (384, 3)
    np.testing.assert_array_equal(ccf, truth.ccf)
    assert (ccf % 20 == 0).all()
    picks = read_xyz_picks(truth.xyz_picks_path)
    np.testing.assert_allclose(picks, truth.picks)
    np.testing.assert_allclose(ibl_xyz_to_ccf(picks, loc.origin, round_to=None), truth.picks_ccf, atol=1e-9)


def test_ibl_axes_by_hand():
    """x = ML (+right), y = AP (+anterior), z = DV (+up) around bregma (5739, 5400, 332)."""
    xyz = np.array([[0.0, 0.0, 0.0], [1000.0, 0.0, 0.0], [0.0, 1000.0, 0.0], [0.0, 0.0, -1000.0]])
    ccf = ibl_xyz_to_ccf(xyz, IBL_BREGMA_MLAPDV_UM)
    assert ccf.tolist() == [[5740, 340, 5400], [6740, 340, 5400], [5740, 340, 4400], [5740, 1340, 5400]]
    assert ibl_xyz_to_ccf(xyz[:1], IBL_BREGMA_MLAPDV_UM, round_to=None).tolist() == [[5739.0, 332.0, 5400.0]]


def test_channel_order_follows_number_not_file(tmp_path):
    truth = write_ibl_alignment(tmp_path, n_channels=24, seed=1)
    raw = json.loads(truth.channel_locations_path.read_text())
    shuffled = {k: raw[k] for k in ["origin", *reversed([k for k in raw if k.startswith("channel_")])]}
    p = tmp_path / "channel_locations_shuffled.json"
    p.write_text(json.dumps(shuffled))
    loc = read_channel_locations(p)
    assert loc.channels["channel"].tolist() == list(range(24))
    np.testing.assert_array_equal(ibl_to_ccf(loc), truth.ccf)


def test_channel_locations_lookup_in_generated_volume(tmp_path):
    """End to end: generated channels land in the generated annotation at their truth voxels."""
    from pipeline.synthetic.ccf import annotation_labels, write_large_annotation_nrrd

    shape = (132, 80, 114)  # the CCF's extent (13.2 x 8 x 11.4 mm) at a coarse 100 um
    p = write_large_annotation_nrrd(tmp_path / "ann100.nrrd", shape=shape, voxel_um=100, seed=0)
    vol, vox = read_annotation(p, step=1)
    assert vox == 100.0
    truth = write_ibl_alignment(tmp_path, n_channels=384, seed=2)
    ccf = ibl_to_ccf(read_channel_locations(truth.channel_locations_path))
    ids = region_lookup(vol, vox, ccf)
    i = np.rint(truth.ccf / 100).astype(int)  # 20 um multiples never tie at 100 um voxels
    np.testing.assert_array_equal(ids, annotation_labels(shape, i[:, 2], i[:, 1], i[:, 0], seed=0))
    assert len(set(ids.tolist()) - {0}) >= 2  # the track crosses labelled regions


def _write_json(tmp_path, obj, name="channel_locations.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def test_channel_locations_errors(tmp_path):
    good = {"x": 1, "y": 2, "z": 3, "axial": 20, "lateral": 43, "brain_region_id": 549, "brain_region": "TH"}
    loc = read_channel_locations(_write_json(tmp_path, {"channel_0": good}, "no_origin.json"))
    assert loc.origin is None
    with pytest.raises(HistologyError, match="no 'origin'"):
        ibl_to_ccf(loc)
    cases = [
        ({"channel_0": good, "origin": {"bregma": [1, 2, 3], "lambda": [1, 2, 3]}}, "exactly one named point"),
        ({"channel_0": good, "origin": {"bregma": [1, 2]}}, "must be 3 numbers"),
        ({"origin": {"bregma": [1, 2, 3]}}, "no channel_N entries"),
        ({"channel_0": {k: v for k, v in good.items() if k != "axial"}}, r"channel_0 lacks \['axial'\]"),
        ({"channel_0": {**good, "x": "abc"}}, "non-numeric"),
        ({"channel_0": {**good, "brain_region_id": 1.5}}, "must be integers"),
        ([1, 2, 3], "JSON object"),
    ]
    for obj, pattern in cases:
        with pytest.raises(HistologyError, match=pattern):
            read_channel_locations(_write_json(tmp_path, obj))
    bad = tmp_path / "broken.json"
    bad.write_text('{"channel_0": ')
    with pytest.raises(HistologyError, match=r"broken\.json: not valid JSON"):
        read_channel_locations(bad)
    with pytest.raises(HistologyError, match="file not found"):
        read_channel_locations(tmp_path / "missing.json")


def test_xyz_picks_errors(tmp_path):
    for obj, pattern in [
        ({"picks": []}, "no 'xyz_picks'"),
        ({"xyz_picks": [[1, 2]]}, "N x 3"),
        ({"xyz_picks": []}, "N x 3"),
        ({"xyz_picks": [[1, 2, "a"]]}, "N x 3 list of numbers"),
    ]:
        with pytest.raises(HistologyError, match=pattern):
            read_xyz_picks(_write_json(tmp_path, obj, "xyz_picks.json"))


# ------------------------------------------------------------------------------- MAP siteInfo
def test_site_info_against_truth(tmp_path):
    name = histology_filename("dl25", dt.date(2018, 2, 25), 1, kind="siteInfo")
    truth = write_site_info(tmp_path / name, n_sites=1000, n_in_brain=812, seed=3)
    s = read_site_info(truth.path)
    assert s.mm_per_pixel == 0.02
    np.testing.assert_array_equal(s.pos, truth.pos)
    np.testing.assert_array_equal(s.warp, truth.warp)
    np.testing.assert_array_equal(s.ccf, truth.ccf)
    assert s.ccf.dtype == np.int64 and (s.ccf % 20 == 0).all()
    np.testing.assert_array_equal(s.ont_id, truth.ont_id)
    assert s.ont_name == truth.ont_name
    assert s.in_brain.sum() == 812 and s.in_brain[:812].all()
    np.testing.assert_allclose(s.warp_um, truth.warp * 20.0)
    # independent read of the same file with scipy's record structs
    site = sio.loadmat(truth.path, struct_as_record=False, squeeze_me=True)["site"]
    np.testing.assert_array_equal(s.pos[:, 0], site.pos.x)
    assert np.isnan(site.ont.id[-1]) and s.ont_id[-1] == 0


def test_site_info_errors(tmp_path):
    sio.savemat(tmp_path / "a.mat", {"other": 1})
    with pytest.raises(HistologyError, match="no variable 'site'"):
        read_site_info(tmp_path / "a.mat")
    base = {
        "pos": {"x": [1.0, 2.0], "y": [1.0, 2.0], "z": [1.0, 2.0], "mmPerPixel": 0.02},
        "warp": {"x": [1.0, 2.0], "y": [1.0, 2.0], "z": [1.0, 2.0]},
        "ont": {"id": [549.0, np.nan], "name": np.array(["Thalamus", ""], dtype=object)},
    }
    sio.savemat(tmp_path / "ok.mat", {"site": base})
    s = read_site_info(tmp_path / "ok.mat")
    assert s.ont_id.tolist() == [549, 0] and s.ont_name == ["Thalamus", None]
    cases = [
        (
            {**base, "pos": {k: v for k, v in base["pos"].items() if k != "mmPerPixel"}},
            "site.pos has no field 'mmPerPixel'",
        ),
        ({**base, "pos": {**base["pos"], "mmPerPixel": -1.0}}, "positive number"),
        ({**base, "pos": {**base["pos"], "z": [1.0]}}, "site.pos.x/y/z have different lengths"),
        ({**base, "ont": {"id": [549.0], "name": base["ont"]["name"]}}, "site.ont.id 1"),
        ({**base, "ont": {"id": [549.5, 1.0], "name": base["ont"]["name"]}}, "non-negative integers or NaN"),
        ({k: v for k, v in base.items() if k != "warp"}, "site has no field 'warp'"),
    ]
    for site, pattern in cases:
        sio.savemat(tmp_path / "bad.mat", {"site": site})
        with pytest.raises(HistologyError, match=pattern):
            read_site_info(tmp_path / "bad.mat")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(HistologyError, match=r"junk\.mat"):
        read_site_info(tmp_path / "junk.mat")


# ------------------------------------------------------------------------------ landmark CSVs
@pytest.mark.parametrize("quoted", [False, True])
def test_landmarks_against_truth(tmp_path, quoted):
    p = tmp_path / histology_filename("dl25", dt.date(2018, 2, 25), 1, kind="landmarks")
    truth = write_landmarks_csv(p, n_warp=12, n_track=20, seed=1, quoted=quoted)
    df = read_landmarks_csv(p)
    assert list(df.columns) == list(LANDMARK_COLUMNS)
    pd.testing.assert_frame_equal(df, truth)
    assert df["warp"].sum() == 12 and (~df["warp"]).sum() == 20
    assert df.loc[~df.warp, "landmark_name"].tolist()[0] == "Pt-12"


def test_landmarks_infinity_and_case(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text('Pt-0,TRUE,1,2,3,4,5,6\n"Pt-1","false","7","8","9",Infinity,Infinity,Infinity\n\n')
    df = read_landmarks_csv(p)
    assert df["warp"].tolist() == [True, False]
    assert np.isinf(df.loc[1, ["ccf_x", "ccf_y", "ccf_z"]].to_numpy(dtype=float)).all()
    assert df.loc[0, "ccf_z"] == 6.0


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("Pt-0,true,1,2,3,4,5\n", "line 1: expected 8 columns"),
        ("Pt-0,yes,1,2,3,4,5,6\n", "line 1: warp flag must be true or false, got 'yes'"),
        ("Pt-0,true,1,2,3,4,5,6\nPt-1,true,1,2,x,4,5,6\n", "line 2: coordinates are not numbers"),
        ("", "empty file"),
    ],
)
def test_bad_landmarks(tmp_path, text, pattern):
    p = tmp_path / "l.csv"
    p.write_text(text)
    with pytest.raises(HistologyError, match=pattern):
        read_landmarks_csv(p)


# -------------------------------------------------------------------------------- file names
@pytest.mark.parametrize(
    "name, expected",
    [
        ("landmarks_dl25_20180225_1_siteInfo.mat", ("dl25", dt.date(2018, 2, 25), None, 1, None, "siteInfo")),
        ("landmarks_dl25_20180225_1.csv", ("dl25", dt.date(2018, 2, 25), None, 1, None, "landmarks")),
        (
            "landmarks_SC030_20191002_143015_2_siteInfo.mat",
            ("SC030", dt.date(2019, 10, 2), dt.time(14, 30, 15), 2, None, "siteInfo"),
        ),
        ("landmarks_SC030_20191002_2_3.csv", ("SC030", dt.date(2019, 10, 2), None, 2, 3, "landmarks")),
        (
            "landmarks_SC030_20191002_143015_2_4_siteInfo.mat",
            ("SC030", dt.date(2019, 10, 2), dt.time(14, 30, 15), 2, 4, "siteInfo"),
        ),
        ("/some/dir/landmarks_dl7_20200101_1.csv", ("dl7", dt.date(2020, 1, 1), None, 1, None, "landmarks")),
    ],
)
def test_parse_histology_filename(name, expected):
    got = parse_histology_filename(name)
    assert (got["h2o"], got["date"], got["time"], got["probe"], got["shank"], got["kind"]) == expected


@pytest.mark.parametrize(
    "name",
    [
        "landmarks_dl25_2018022_1.csv",
        "landmarks_dl25_20181345_1.csv",
        "landmarks_dl25_20180225_256199_1.csv",
        "landmarks_dl25_20180225_1_siteInfo.csv",
        "landmarks_dl25_20180225.csv",
        "channel_locations.json",
        "landmarks_dl25_20180225_1.csv.bak",
    ],
)
def test_parse_histology_filename_rejects(name):
    assert parse_histology_filename(name) is None


def test_filename_round_trip():
    for kw in [dict(), dict(time=dt.time(10, 25, 8)), dict(shank=2), dict(time=dt.time(0, 0, 1), shank=4)]:
        for kind in ("siteInfo", "landmarks"):
            name = histology_filename("dl25", dt.date(2018, 2, 25), 1, kind=kind, **kw)
            got = parse_histology_filename(name)
            assert got == {
                "h2o": "dl25",
                "date": dt.date(2018, 2, 25),
                "time": kw.get("time"),
                "probe": 1,
                "shank": kw.get("shank"),
                "kind": kind,
            }


# ------------------------------------------------------------------- IBL channel -> electrode
def _electrodes(probe_type, n=384, shank=None):
    from pipeline import probes

    t = probes.electrode_table(probe_type)
    keep = np.ones(len(t["electrode"]), dtype=bool) if shank is None else t["shank"] == shank
    return t["electrode"][keep][:n], t["x_coord"][keep][:n], t["y_coord"][keep][:n]


def test_match_np1_bank0_channel_i_is_electrode_i_plus_1():
    electrode, x, y = _electrodes("neuropixels 1.0 - 3B")
    lateral, axial = ibl_np1_layout(384)  # ibllib's NP1 formula: x 43, 11, 59, 27; y from 20
    idx = match_ibl_channels(lateral, axial, x, y)
    np.testing.assert_array_equal(electrode[idx], np.arange(1, 385))
    # the channels in any order still land on their electrodes
    perm = np.random.default_rng(0).permutation(384)
    np.testing.assert_array_equal(electrode[match_ibl_channels(lateral[perm], axial[perm], x, y)], perm + 1)


@pytest.mark.parametrize("x0", [0.0, 27.0])  # ibllib's NP2 x: col*32 (older) or 27 + col*32 (newer)
def test_match_np2_both_ibllib_conventions(x0):
    electrode, x, y = _electrodes("neuropixels 2.0 - SS")
    ch = np.arange(384)
    idx = match_ibl_channels(x0 + 32.0 * (ch % 2), 20.0 + 15.0 * (ch // 2), x, y)
    np.testing.assert_array_equal(electrode[idx], ch + 1)


def test_match_one_shank_of_a_four_shank_probe():
    electrode, x, y = _electrodes("neuropixels 2.0 - MS", n=96, shank=3)
    ch = np.arange(96)
    idx = match_ibl_channels(27.0 + 32.0 * (ch % 2), 20.0 + 15.0 * (ch // 2), x, y)
    np.testing.assert_array_equal(electrode[idx], electrode[:96])
    assert electrode.min() == 2 * 1280 + 1


def test_match_refuses_what_does_not_fit():
    _, x, y = _electrodes("neuropixels 1.0 - 3B")
    lateral, axial = ibl_np1_layout(384)
    with pytest.raises(HistologyError, match="383 channels but 384"):
        match_ibl_channels(lateral[:383], axial[:383], x, y)
    moved = lateral.copy()
    moved[100] += 5.0
    with pytest.raises(HistologyError, match="do not match"):
        match_ibl_channels(moved, axial, x, y)
    # a channel on the next bank (y beyond the recorded electrodes) does not fit either
    with pytest.raises(HistologyError, match="do not match"):
        match_ibl_channels(lateral, axial + 20.0 * (np.arange(384) == 383) * 2, x, y)


@pytest.mark.parametrize(
    "name, want",
    [
        ("2019-12-04_KS014_001_probe00_pts.csv", {"insertion_number": 1, "shank": None}),
        ("2019-12-04_KS014_001_probe01_shank2_pts.csv", {"insertion_number": 2, "shank": 2}),
        ("dl25_20240603_2_pts.csv", {"insertion_number": 2, "shank": None}),
        ("dl25_20240603_2_3_pts.csv", {"insertion_number": 2, "shank": 3}),
        ("dl25_20240603_pts_transformed.csv", None),
        ("track_pts.csv", None),
    ],
)
def test_track_points_names(name, want):
    assert parse_track_points_filename(name) == want
