"""ingest-histology on a real database: generated IBL alignments and MAP siteInfo files with known
CCF positions, the real Lasagna track-points sample, a generated annotation volume with known
labels, and the failures that must leave nothing behind."""

import datetime as dt
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_mapshell

from pipeline import ccf, ephys, histology, lab
from pipeline.ingest import histology as ingest_histology
from pipeline.ingest.behavior import ingest_behavior
from pipeline.ingest.ephys import ingest_ephys
from pipeline.ingest.histology import ingest_histology as ingest
from pipeline.io.histology import lasagna_to_ccf, read_track_points
from pipeline.io.spikeglx import read_meta
from pipeline.synthetic.bpod_delay_response import write_session_file
from pipeline.synthetic.ccf import REGIONS, write_annotation_nrrd, write_ontology_csv
from pipeline.synthetic.histology import histology_filename, write_ibl_alignment, write_landmarks_csv, write_site_info
from pipeline.synthetic.sorting import write_kilosort
from pipeline.synthetic.spikeglx import write_bitcode_mat, write_meta

WHEN = dt.datetime(2023, 5, 4, 10, 0, 0)
VOXEL_NRRD = 100  # um; a full-extent Allen-shaped volume at 100 um, stored at 200 um
SHAPE = (132, 80, 114)
IKEY = dict(subject_id=56, session=1, insertion_number=1)


@pytest.fixture
def annotation(database, tmp_path):
    """The generated ontology and annotation loaded; returns the stored (AP, DV, ML) truth volume."""
    nrrd = tmp_path / "annotation.nrrd"
    truth = write_annotation_nrrd(nrrd, shape=SHAPE, voxel_um=VOXEL_NRRD, seed=0)
    paths = dict(
        version_name="CCF_2017", region_csv=str(write_ontology_csv(tmp_path / "tree.csv")), annotation_nrrd=str(nrrd)
    )
    ccf.CCFBrainRegion.load_regions(paths)
    ccf.CCFAnnotation.load_ccf_annotation(paths, step=2)  # kept coarse: the truth below is [::2]
    ccf._volume_cache.clear()
    return truth[::2, ::2, ::2]


def expected_regions(volume, xyz):
    idx = np.rint(np.asarray(xyz, dtype=np.float64) / (2 * VOXEL_NRRD)).astype(int)
    return volume[idx[:, 2], idx[:, 1], idx[:, 0]]


def _probe(tmp_path, probe="np1", **meta_kw):
    """Behaviour session dm6 and one ingested probe; returns its probe folder."""
    lab.Subject.insert1(dict(subject_id=56, sex="M"), skip_duplicates=True)
    lab.WaterRestriction.insert1(
        dict(subject_id=56, water_restriction_number="dm6", wr_start_date="2023-01-01", wr_start_weight=22),
        skip_duplicates=True,
    )
    truth = write_session_file(tmp_path / "rig", h2o="dm6", when=WHEN, n_trials=20, seed=8)
    assert ingest_behavior([["RRig", str(tmp_path / "rig"), 0]]).ok
    codes = truth.notes[truth.notes.trial_note_type == "bitcode"].sort_values("trial")
    pdir = tmp_path / "ephys" / "dm6" / WHEN.strftime("%Y%m%d") / "1"
    write_meta(pdir / "dm6_g0_tcat.imec0.ap.meta", probe=probe, seed=1, **meta_kw)
    write_bitcode_mat(pdir / "dm6_g0_bitcode.mat", list(codes.trial_note), seed=2)
    meta = read_meta(next(pdir.glob("*.ap.meta")))
    write_kilosort(
        pdir / "kilosort2", n_units=6, n_spikes=4000, seed=3, duration_s=300.0, positions=np.c_[meta.x, meta.y]
    )
    s = ingest_ephys([str(tmp_path / "ephys")])
    assert s.ok and len(s.loaded) == 1, s.report()
    (tmp_path / "histology").mkdir(exist_ok=True)
    return pdir


@pytest.fixture
def np1_probe(database, tmp_path):
    return _probe(tmp_path)


def _counts():
    return (
        len(histology.ElectrodeCCFPosition()),
        len(histology.ElectrodeCCFPosition.ElectrodePosition()),
        len(histology.LabeledProbeTrack.Point()),
        len(ingest_histology.HistologyIngest()),
    )


def test_ibl_alignment_np1(annotation, np1_probe, tmp_path):
    t = write_ibl_alignment(np1_probe, n_channels=384, seed=5)
    s = ingest([str(tmp_path / "histology")])
    assert s.ok and len(s.loaded) == 1, s.report()
    pos = (histology.ElectrodeCCFPosition.ElectrodePosition & IKEY).to_pandas().reset_index().sort_values("electrode")
    # bank 0 of a Neuropixels 1.0: channel i recorded electrode i + 1 (IBL's layout is mirrored)
    assert pos.electrode.tolist() == list(range(1, 385))
    np.testing.assert_array_equal(pos[["ccf_x", "ccf_y", "ccf_z"]].to_numpy(), t.ccf)
    np.testing.assert_array_equal(pos.region_id.to_numpy(), expected_regions(annotation, t.ccf))
    assert (pos.region_id > 0).sum() > 100 and len(set(pos.region_id) - {0}) >= 2
    pts = (histology.LabeledProbeTrack.Point & IKEY).to_pandas().reset_index().sort_values("point_order")
    np.testing.assert_allclose(pts[["ccf_x", "ccf_y", "ccf_z"]].to_numpy(), t.picks_ccf, atol=1e-6)
    assert set(pts.shank) == {1}
    files = (ingest_histology.HistologyIngest.HistologyFile & IKEY).to_pandas().reset_index()
    assert sorted(files.file_role) == ["channel_locations", "xyz_picks"]
    assert (ingest_histology.HistologyIngest & IKEY).fetch1("histology_format") == "ibl"
    # units get their region through their peak electrode
    units = (ephys.Unit & IKEY).to_pandas().reset_index()
    with_peak = units[units.electrode.notna()]
    assert len(with_peak) > 0
    uc = histology.unit_ccf().to_pandas().reset_index()
    by_unit = pos.set_index("electrode").region_id
    in_brain = with_peak[by_unit.loc[with_peak.electrode.astype(int)].to_numpy() > 0]
    assert sorted(uc.unit) == sorted(in_brain.unit)
    for r in uc.itertuples():
        assert r.region_id == by_unit.loc[int(units.set_index("unit").electrode.loc[r.unit])]
        assert r.acronym == REGIONS[r.region_id][0]
    # idempotent
    before = _counts()
    again = ingest([str(tmp_path / "histology")])
    assert again.ok and not again.loaded and len(again.skipped) == 1, again.report()
    assert _counts() == before
    # a changed file is reported, not reloaded
    t.channel_locations_path.write_text(t.channel_locations_path.read_text() + " ")
    changed = ingest([str(tmp_path / "histology")])
    assert not changed.ok and "changed since" in changed.report() and _counts() == before


def test_site_info_four_shanks_with_landmarks(annotation, database, tmp_path):
    _probe(tmp_path, probe="np2_4shank", layout="stripe")
    ikey = IKEY
    ins = (ephys.ProbeInsertion & ikey).fetch1()
    configured = (
        (
            lab.ElectrodeConfig.Electrode * lab.ProbeType.Electrode
            & {"probe_type": ins["probe_type"], "electrode_config_name": ins["electrode_config_name"]}
        )
        .to_pandas()
        .reset_index()
    )
    allsites = (lab.ProbeType.Electrode & {"probe_type": ins["probe_type"]}).to_pandas().reset_index()
    folder = tmp_path / "histology" / "dm6" / "histology"
    expected, tracks = [], {}
    for shank in (1, 2, 3, 4):
        sites = allsites[allsites.shank == shank].sort_values("electrode")
        name = histology_filename("dm6", WHEN.date(), 1, "siteInfo", shank=shank)
        t = write_site_info(folder / name, n_sites=len(sites), site_pitch_um=2.5, seed=10 + shank)
        keep = t.ont_id > 0
        rows = pd.DataFrame(
            {"electrode": sites.electrode.to_numpy(), "x": t.ccf[:, 0], "y": t.ccf[:, 1], "z": t.ccf[:, 2]}
        )[keep]
        expected.append(rows[rows.electrode.isin(configured.electrode)])
        lm = write_landmarks_csv(
            folder / histology_filename("dm6", WHEN.date(), 1, "landmarks", shank=shank),
            n_warp=12 if shank == 1 else 0,
            n_track=10 + shank,
            seed=20 + shank,
            quoted=shank == 2,
        )
        tracks[shank] = lm
    expected = pd.concat(expected).sort_values("electrode")
    s = ingest([str(tmp_path / "histology")])
    assert s.ok and len(s.loaded) == 1, s.report()
    pos = (histology.ElectrodeCCFPosition.ElectrodePosition & ikey).to_pandas().reset_index().sort_values("electrode")
    assert 0 < len(pos) == len(expected) <= 384
    assert pos.electrode.tolist() == expected.electrode.tolist()
    np.testing.assert_array_equal(pos[["ccf_x", "ccf_y", "ccf_z"]].to_numpy(), expected[["x", "y", "z"]].to_numpy())
    np.testing.assert_array_equal(pos.region_id.to_numpy(), expected_regions(annotation, expected[["x", "y", "z"]]))
    pts = (histology.LabeledProbeTrack.Point & ikey).to_pandas().reset_index()
    for shank, lm in tracks.items():
        got = pts[pts.shank == shank].sort_values("point_order")[["ccf_x", "ccf_y", "ccf_z"]].to_numpy()
        np.testing.assert_allclose(got, lm[~lm.warp][["ccf_x", "ccf_y", "ccf_z"]].to_numpy())
    marks = (histology.SubjectToCCFTransformation.Landmark & {"subject_id": 56}).to_pandas().reset_index()
    assert sorted(marks.landmark_name) == sorted(tracks[1][tracks[1].warp].landmark_name)
    assert (ingest_histology.HistologyIngest & ikey).fetch1("histology_format") == "siteInfo"
    assert len(ingest_histology.HistologyIngest.HistologyFile & ikey) == 8


def test_real_lasagna_track_points(annotation, np1_probe, tmp_path, real_data):
    write_ibl_alignment(np1_probe, n_channels=384, seed=6)
    for p in np1_probe.glob("xyz_picks*.json"):
        p.unlink()
    src = real_data / "histology_track_points" / "ibllib" / "2019-12-04_KS014_001_probe00_pts.csv"
    folder = tmp_path / "histology" / "dm6" / "histology"
    folder.mkdir(parents=True)
    shutil.copy(src, folder / f"{WHEN:%Y-%m-%d}_dm6_001_probe00_pts.csv")
    # warp landmarks only (no track rows) next to an IBL alignment: loaded, and no second track
    lm = write_landmarks_csv(
        folder / histology_filename("dm6", WHEN.date(), 1, "landmarks"), n_warp=8, n_track=0, seed=3
    )
    s = ingest([str(tmp_path / "histology")])
    assert s.ok and len(s.loaded) == 1, s.report()
    marks = (histology.SubjectToCCFTransformation.Landmark & {"subject_id": 56}).to_pandas().reset_index()
    np.testing.assert_allclose(
        marks.sort_values("landmark_name")[["subj_x", "ccf_z"]].to_numpy(),
        lm.sort_values("landmark_name")[["subj_x", "ccf_z"]].to_numpy(),
    )
    pts = (histology.LabeledProbeTrack.Point & IKEY).to_pandas().reset_index().sort_values("point_order")
    raw = np.loadtxt(src, delimiter=",")
    assert len(pts) == len(raw) == 82
    # independent of the reader: Allen 25 um voxels, columns (AP from the back, ML, DV), surface first
    want = np.column_stack([raw[:, 1] * 25, raw[:, 2] * 25, (527 - raw[:, 0]) * 25])
    want = want[np.argsort(want[:, 1], kind="stable")]
    np.testing.assert_allclose(pts[["ccf_x", "ccf_y", "ccf_z"]].to_numpy(), want)
    np.testing.assert_allclose(lasagna_to_ccf(read_track_points(src)), want)


def test_failures_leave_nothing(annotation, np1_probe, tmp_path):
    root = str(tmp_path / "histology")
    # a root that does not exist is a failure, not 'nothing found'
    s = ingest([str(tmp_path / "no-such-folder")])
    assert not s.ok and "histology folder does not exist" in s.report()
    # a channel count that disagrees with the probe
    t = write_ibl_alignment(np1_probe, n_channels=380, seed=5)
    s = ingest([root])
    assert not s.ok and t.channel_locations_path.name in s.report() and "380 channels" in s.report()
    assert _counts() == (0, 0, 0, 0)
    # coordinates outside the annotation volume
    t = write_ibl_alignment(np1_probe, n_channels=384, seed=5)
    doc = json.loads(t.channel_locations_path.read_text())
    doc["origin"]["bregma"][2] = -6000.0  # the channels end up 6.3 mm above the volume
    t.channel_locations_path.write_text(json.dumps(doc))
    s = ingest([root])
    assert not s.ok and "outside the annotation volume" in s.report() and t.channel_locations_path.name in s.report()
    assert _counts() == (0, 0, 0, 0)
    # a file for an insertion that does not exist, next to a good one
    t = write_ibl_alignment(np1_probe, n_channels=384, seed=5)
    stray = tmp_path / "histology" / "dm6" / "histology" / histology_filename("dm6", WHEN.date(), 3, "landmarks")
    write_landmarks_csv(stray, seed=1)
    s = ingest([root])
    assert len(s.loaded) == 1 and [f for f, _ in s.failed] == [str(stray)], s.report()
    assert "matches no probe insertion" in s.report()


def test_one_bad_shank_fails_the_whole_insertion(annotation, database, tmp_path):
    _probe(tmp_path, probe="np2_4shank", layout="stripe")
    allsites = (lab.ProbeType.Electrode & {"probe_type": "neuropixels 2.0 - MS"}).to_pandas().reset_index()
    folder = tmp_path / "histology" / "dm6" / "histology"
    for shank in (1, 2, 3, 4):
        n = int((allsites.shank == shank).sum()) - (7 if shank == 3 else 0)
        write_site_info(
            folder / histology_filename("dm6", WHEN.date(), 1, "siteInfo", shank=shank),
            n_sites=n,
            site_pitch_um=2.5,
            seed=shank,
        )
    s = ingest([str(tmp_path / "histology")])
    bad = histology_filename("dm6", WHEN.date(), 1, "siteInfo", shank=3)
    assert not s.ok and bad in s.report() and "1273 sites" in s.report(), s.report()
    assert _counts() == (0, 0, 0, 0)


def test_needs_the_annotation(np1_probe, tmp_path):
    write_ibl_alignment(np1_probe, n_channels=384, seed=5)
    s = ingest([str(tmp_path / "histology")])
    assert not s.ok and "ccfload" in s.report() and _counts() == (0, 0, 0, 0)


def test_cli(annotation, np1_probe, tmp_path, database):
    write_ibl_alignment(np1_probe, n_channels=384, seed=5)
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"custom": {"histology_data_paths": [str(tmp_path / "histology")]}}))
    env = database.env(MAP_CONFIG=str(conf))
    r = run_mapshell(["ingest-histology"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 found, 1 loaded, 0 skipped, 0 failed" in r.stdout
    r = run_mapshell(["ingest-histology"], env)
    assert r.returncode == 0 and "0 loaded, 1 skipped" in r.stdout, r.stdout + r.stderr
    assert len(histology.ElectrodeCCFPosition.ElectrodePosition & IKEY) == 384
