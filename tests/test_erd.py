"""erd: whole-pipeline and per-schema diagrams written as valid PNG and SVG files."""

import xml.etree.ElementTree as ET

import matplotlib.image as mpimg
from conftest import run_mapshell

from pipeline.erd import write_erd


def test_write_erd_files_are_valid_images(database, tmp_path):
    files = write_erd(tmp_path / "erd")
    names = {f.name for f in files}
    for stem in ("pipeline", "lab", "experiment"):
        assert f"{stem}.png" in names and f"{stem}.svg" in names
    for f in files:
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            img = mpimg.imread(f)
            assert img.shape[0] > 200 and img.shape[1] > 200
        elif f.suffix == ".svg":
            root = ET.parse(f).getroot()
            assert root.tag.endswith("svg")
    whole = (tmp_path / "erd" / "pipeline.svg").read_text()
    for table in ("lab.Subject", "experiment.Session", "lab.ProbeType.Electrode"):
        assert table in whole
    dot = (tmp_path / "erd" / "pipeline.dot").read_text()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    edges = [ln for ln in dot.splitlines() if " -> " in ln]
    assert len(edges) > 50 and any("subject" in e and "water_restriction" in e for e in edges)
    assert '"lab.Subject"' in dot
    lab_svg = (tmp_path / "erd" / "lab.svg").read_text()
    assert "WaterRestriction" in lab_svg and "Session" not in lab_svg


def test_erd_cli(database, tmp_path):
    r = run_mapshell(["erd", str(tmp_path / "out")], database.env())
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "pipeline.png").stat().st_size > 10_000
