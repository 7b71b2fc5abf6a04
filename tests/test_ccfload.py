"""ccfload: the real Allen ontology files and a generated annotation volume with known labels."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_mapshell

from pipeline import ccf
from pipeline.synthetic.ccf import write_annotation_nrrd


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
    conf.write_text(json.dumps({"custom": {}}))
    r = run_mapshell(["ccfload"], database.env(MAP_CONFIG=str(conf)))
    assert r.returncode == 2 and "ccf_data_paths" in r.stderr
