"""ccfload: the real Allen ontology files and a generated annotation volume with known labels."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_mapshell

from pipeline import ccf
from pipeline.errors import ConfigError, InputError
from pipeline.synthetic.ccf import write_annotation_nrrd, write_annotation_tiff


@pytest.fixture
def ccf_paths(real_data, tmp_path):
    ont = real_data / "allen_ccf_ontology"
    nrrd = tmp_path / "annotation_10.nrrd"
    truth = write_annotation_nrrd(nrrd, shape=(66, 40, 58), seed=2)
    return dict(
        version_name="CCF_2017",
        region_csv=str(ont / "mousebrainontology_2.csv"),
        hexcode_csv=str(ont / "hexcode.csv"),
        annotation_nrrd=str(nrrd),
    ), truth


def test_load_regions_and_annotation(database, ccf_paths):
    paths, truth = ccf_paths
    n_rows = len(pd.read_csv(paths["region_csv"], header=None))  # the MAP file has no header row
    assert ccf.CCFBrainRegion.load_regions(paths) == n_rows == 1327
    assert ccf.CCFBrainRegion.load_regions(paths) == 0  # idempotent
    root = (ccf.CCFBrainRegion & {"region_id": 997}).fetch1()
    assert root["region_name"].lower() == "root" and len(root["color_code"]) == 6
    assert ccf.CCFAnnotation.load_ccf_annotation(paths) is True
    assert ccf.CCFAnnotation.load_ccf_annotation(paths) is False
    row = ccf.CCFAnnotation.fetch1()
    assert row["voxel_um"] == 20 and (row["shape_ap"], row["shape_dv"], row["shape_ml"]) == (33, 20, 29)
    expected = truth[::2, ::2, ::2]
    np.testing.assert_array_equal(np.asarray(row["annotation"]), expected)
    # region lookup: coordinates (x=ML, y=DV, z=AP) in um at voxel centres of the 20 um grid
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(0, s, 500) for s in expected.shape], axis=1)
    xyz = np.stack([idx[:, 2] * 20.0, idx[:, 1] * 20.0, idx[:, 0] * 20.0], axis=1)
    ccf._volume_cache.clear()
    np.testing.assert_array_equal(ccf.region_at(xyz), expected[idx[:, 0], idx[:, 1], idx[:, 2]])


def test_allen_tree_and_descendants(database, real_data):
    tree = real_data / "allen_ccf_ontology/allenCCF/structure_tree_safe_2017.csv"
    n = ccf.CCFBrainRegion.load_regions(dict(version_name="allen_2017_tree", region_csv=str(tree)))
    assert n == 1327
    ids = ccf.descendants_of("MOs", version="allen_2017_tree")
    mos = (ccf.CCFBrainRegion & {"annotation_version": "allen_2017_tree", "acronym": "MOs"}).fetch1("region_id")
    assert mos in ids and len(ids) > 5
    layers = (ccf.CCFBrainRegion & {"annotation_version": "allen_2017_tree"} & "acronym LIKE 'MOs%%'").to_arrays(
        "region_id"
    )
    assert set(layers) <= set(ids)


def test_ccfload_cli(database, ccf_paths, tmp_path):
    paths, _ = ccf_paths
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"custom": {"ccf_data_paths": paths}}))
    r = run_mapshell(["ccfload"], database.env(MAP_CONFIG=str(conf)))
    assert r.returncode == 0, r.stderr
    assert "regions: 1327 added" in r.stdout and "33 x 20 x 29 voxels of 20 um" in r.stdout


@pytest.mark.embedded_only("a missing setting is refused before anything is read or written; test_ccfload_cli loads")
def test_ccfload_cli_without_setting(database, tmp_path):
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"custom": {}}))
    r = run_mapshell(["ccfload"], database.env(MAP_CONFIG=str(conf)))
    assert r.returncode == 2 and "ccf_data_paths" in r.stderr


def _stored(version):
    row = (ccf.CCFAnnotation & {"annotation_version": version}).fetch1()
    return np.asarray(row["annotation"]), row


def test_annotation_from_nrrd_and_tiff_is_the_same(database, ccf_paths, tmp_path):
    """The 10 um NRRD (every 2nd voxel kept) and the 20 um TIFF stack of the same volume store the
    same (AP, DV, ML) array at 20 um."""
    paths, truth = ccf_paths
    tiff = tmp_path / "annotation_20.tif"
    written = write_annotation_tiff(tiff, shape=truth.shape, seed=2)
    np.testing.assert_array_equal(written, truth[::2, ::2, ::2])  # the generator's own claim, checked
    nrrd_only = dict(paths, version_name="from_nrrd")
    tiff_only = {k: v for k, v in paths.items() if k != "annotation_nrrd"} | {"version_name": "from_tiff"}
    assert ccf.CCFAnnotation.load_ccf_annotation(nrrd_only) is True
    assert ccf.CCFAnnotation.load_ccf_annotation(tiff_only, r3_20um_path=str(tiff)) is True
    assert ccf.CCFAnnotation.last_load["source"] == "tiff" and ccf.CCFAnnotation.last_load["step"] == 1
    a, row_a = _stored("from_nrrd")
    b, row_b = _stored("from_tiff")
    assert a.dtype == b.dtype == np.uint32
    np.testing.assert_array_equal(a, truth[::2, ::2, ::2])
    np.testing.assert_array_equal(b, a)
    assert row_a["voxel_um"] == row_b["voxel_um"] == 20
    assert (row_b["shape_ap"], row_b["shape_dv"], row_b["shape_ml"]) == (33, 20, 29)
    assert row_b["source_file"] == str(tiff)
    # the lookup sees the same regions through either
    ccf._volume_cache.clear()
    xyz = np.array([[20.0 * ml, 20.0 * dv, 20.0 * ap] for ap, dv, ml in [(16, 10, 14), (5, 3, 2), (30, 18, 27)]])
    np.testing.assert_array_equal(ccf.region_at(xyz, "from_nrrd"), ccf.region_at(xyz, "from_tiff"))


def test_both_configured_nrrd_wins(database, ccf_paths, tmp_path):
    paths, truth = ccf_paths
    tiff = tmp_path / "other_20.tif"
    write_annotation_tiff(tiff, np.zeros((3, 4, 5), np.uint32))  # would give another volume
    assert ccf.annotation_source(paths, str(tiff)) == ("nrrd", paths["annotation_nrrd"])
    assert ccf.CCFAnnotation.load_ccf_annotation(paths, r3_20um_path=str(tiff)) is True
    a, row = _stored("CCF_2017")
    np.testing.assert_array_equal(a, truth[::2, ::2, ::2])
    assert row["source_file"] == paths["annotation_nrrd"]
    no_annotation = {k: v for k, v in paths.items() if k != "annotation_nrrd"}
    assert ccf.annotation_source(no_annotation, None) is None
    with pytest.raises(ConfigError, match=r"annotation_nrrd \(or the setting ccf.r3_20um_path"):
        ccf.CCFAnnotation.load_ccf_annotation(no_annotation, r3_20um_path=None)


@pytest.mark.parametrize(
    "damage,match",
    [
        ("float", "pixel type float32 is not an integer type"),
        ("2d", r"image shape \(40, 58\) .* is not a 3-D stack"),
        ("truncated", "damaged TIFF|unreadable TIFF"),
        ("missing", "file not found"),
    ],
)
def test_bad_tiff_is_one_clear_line(database, ccf_paths, tmp_path, damage, match):
    paths, truth = ccf_paths
    tiff = tmp_path / "bad_20.tif"
    if damage == "float":
        write_annotation_tiff(tiff, truth[::2, ::2, ::2].astype(np.float32))
    elif damage == "2d":
        write_annotation_tiff(tiff, truth[0])
    elif damage == "truncated":
        write_annotation_tiff(tiff, shape=truth.shape, seed=2)
        tiff.write_bytes(tiff.read_bytes()[: tiff.stat().st_size // 2])
    no_nrrd = {k: v for k, v in paths.items() if k != "annotation_nrrd"}
    with pytest.raises(InputError, match=match) as e:
        ccf.CCFAnnotation.load_ccf_annotation(no_nrrd, r3_20um_path=str(tiff))
    assert str(e.value).startswith(f"{tiff}: ") and "\n" not in str(e.value)
    assert len(ccf.CCFAnnotation()) == 0


def test_ccfload_cli_tiff(database, ccf_paths, tmp_path):
    """The original's setting ccf.r3_20um_path: used without annotation_nrrd, named as not read with it."""
    paths, truth = ccf_paths
    tiff = tmp_path / "annotation_20.tif"
    write_annotation_tiff(tiff, shape=truth.shape, seed=2)
    conf = tmp_path / "c.json"
    tiff_only = {k: v for k, v in paths.items() if k != "annotation_nrrd"}
    conf.write_text(json.dumps({"custom": {"ccf_data_paths": tiff_only, "ccf.r3_20um_path": str(tiff)}}))
    r = run_mapshell(["ccfload"], database.env(MAP_CONFIG=str(conf)))
    assert r.returncode == 0, r.stderr
    assert "33 x 20 x 29 voxels of 20 um (read at 20 um, stored at 20 um)" in r.stdout and str(tiff) in r.stdout
    np.testing.assert_array_equal(_stored("CCF_2017")[0], truth[::2, ::2, ::2])
    conf.write_text(
        json.dumps({"custom": {"ccf_data_paths": dict(paths, version_name="v2"), "ccf.r3_20um_path": str(tiff)}})
    )
    r = run_mapshell(["ccfload", "--verbose"], database.env(MAP_CONFIG=str(conf)))
    assert r.returncode == 0, r.stderr
    assert f"ccf.r3_20um_path={tiff} not read" in r.stdout + r.stderr
    assert _stored("v2")[1]["source_file"] == paths["annotation_nrrd"]
