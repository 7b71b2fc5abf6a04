"""Allen CCF: ontology CSVs (MAP's pair and Allen's structure tree, real samples), streamed
annotation NRRD reads of generated volumes against their truth and pynrrd, bounded memory,
region lookup and broken files. No database; small volumes only."""

from __future__ import annotations

import gzip
import re
import shutil
import tracemalloc
from pathlib import Path

import nrrd
import numpy as np
import pandas as pd
import pytest
import tifffile

from pipeline.io.ccf import (
    CCFError,
    descendants,
    read_annotation,
    read_annotation_header,
    read_annotation_tiff,
    read_ontology,
    region_lookup,
)
from pipeline.synthetic.ccf import (
    REGIONS,
    annotation_labels,
    write_annotation_nrrd,
    write_annotation_tiff,
    write_large_annotation_nrrd,
)

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
ONTO = REAL / "allen_ccf_ontology"


def real(*parts) -> Path:
    p = ONTO.joinpath(*parts)
    if not p.is_file():
        pytest.skip(f"real sample {p} not present")
    return p


@pytest.fixture(scope="module")
def allen_tree() -> pd.DataFrame:
    return read_ontology(real("allenCCF", "structure_tree_safe_2017.csv"))


@pytest.fixture(scope="module")
def map_onto() -> pd.DataFrame:
    return read_ontology(real("mousebrainontology_2.csv"), real("hexcode.csv"))


# ------------------------------------------------------------------------------------ ontology
def test_map_ontology_real(map_onto):
    ref = pd.read_csv(real("mousebrainontology_2.csv"), header=None, names=["id", "name"])
    hexes = pd.read_csv(real("hexcode.csv"), header=None, names=["id", "hex"], dtype=str)
    o = map_onto
    assert list(o.columns) == ["region_id", "region_name", "acronym", "parent_id", "color_code", "structure_id_path"]
    assert len(o) == 1327 == len(ref)
    np.testing.assert_array_equal(o["region_id"].to_numpy(), ref["id"].to_numpy())
    assert o["region_id"].dtype == np.int64
    assert o["region_name"].tolist() == ref["name"].tolist()
    assert o.loc[o.region_id == 1, "region_name"].item() == "Tuberomammillary nucleus, ventral part"
    assert o["acronym"].map(lambda a: a is None).all()
    assert o["parent_id"].isna().all() and o["structure_id_path"].map(lambda a: a is None).all()
    # colours: 6 upper-case hex digits, leading zeros restored (the file has '19399' for 019399)
    assert hexes["hex"].str.len().min() == 5
    assert o["color_code"].str.fullmatch(r"[0-9A-F]{6}").all()
    assert o.loc[o.region_id == 156, "color_code"].item() == "019399"
    assert o.loc[o.region_id == 1, "color_code"].item() == "FF4C3E"


def test_map_colours_match_allen_tree(map_onto, allen_tree):
    m = map_onto.merge(allen_tree, on="region_id", suffixes=("_map", "_allen"))
    assert len(m) == 1327
    assert (m["color_code_map"] == m["color_code_allen"]).all()


def test_allen_tree_real(allen_tree):
    raw = pd.read_csv(real("allenCCF", "structure_tree_safe_2017.csv"), dtype={"color_hex_triplet": str})
    t = allen_tree
    assert len(t) == 1327
    np.testing.assert_array_equal(t["region_id"].to_numpy(), raw["id"].to_numpy())
    assert t["acronym"].tolist() == raw["acronym"].tolist()
    mos = t[t.region_id == 993].iloc[0]
    assert (mos.region_name, mos.acronym, mos.parent_id, mos.color_code) == (
        "Secondary motor area",
        "MOs",
        500,
        "1F9D5A",
    )
    assert mos.structure_id_path == "/997/8/567/688/695/315/500/993/"
    assert pd.isna(t.loc[t.region_id == 997, "parent_id"].item())  # root
    assert t["parent_id"].dtype == "Int64"
    assert (t["parent_id"].dropna().astype(int).isin(set(t["region_id"]))).all()


def _children_closure(t: pd.DataFrame, rid: int) -> set[int]:
    """Independent descendant set from parent ids only."""
    kids: dict[int, list[int]] = {}
    for r, p in zip(t.region_id, t.parent_id):
        if not pd.isna(p):
            kids.setdefault(int(p), []).append(int(r))
    out, todo = {rid}, [rid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


@pytest.mark.parametrize("key", ["MOs", "Isocortex", 549, "993", "mos", "root"])
def test_descendants_against_parent_closure(allen_tree, key):
    d = descendants(allen_tree, key)
    rid = {"MOs": 993, "Isocortex": 315, "mos": 993, "root": 997}.get(
        key, int(key) if not isinstance(key, str) or key.isdigit() else None
    )
    assert set(d.tolist()) == _children_closure(allen_tree, rid)
    assert rid in d and np.all(np.diff(d) > 0)


def test_descendants_without_paths_uses_parents(allen_tree):
    t = allen_tree.copy()
    t["structure_id_path"] = None
    assert set(descendants(t, "TH").tolist()) == set(descendants(allen_tree, "TH").tolist())
    # as read back from a table: '' for unknown paths, float parent ids with NaN, object acronyms
    db_like = allen_tree.assign(structure_id_path="", parent_id=allen_tree["parent_id"].astype("float64"))
    assert set(descendants(db_like, "TH").tolist()) == set(descendants(allen_tree, "TH").tolist())
    assert len(descendants(allen_tree, "root")) == 1327


def test_descendants_errors(map_onto, allen_tree):
    with pytest.raises(CCFError, match="no acronyms"):
        descendants(map_onto, "MOs")
    with pytest.raises(CCFError, match="no hierarchy"):
        descendants(map_onto, 993)
    with pytest.raises(CCFError, match="not in the ontology"):
        descendants(allen_tree, 123456789)
    with pytest.raises(CCFError, match="matches 0 regions"):
        descendants(allen_tree, "NOPE")


def test_format_detected_from_content(tmp_path, allen_tree):
    """File names lie; the layout is read from the content."""
    a = tmp_path / "mousebrainontology_2.csv"
    shutil.copy(real("allenCCF", "structure_tree_safe_2017.csv"), a)
    m = tmp_path / "structure_tree_safe_2017.csv"
    shutil.copy(real("mousebrainontology_2.csv"), m)
    assert read_ontology(a)["acronym"].tolist() == allen_tree["acronym"].tolist()
    mo = read_ontology(m)
    assert mo["acronym"].map(lambda x: x is None).all() and mo["color_code"].map(lambda x: x is None).all()
    # Allen tree + MAP hexcodes: hexcodes override (and agree here)
    both = read_ontology(a, real("hexcode.csv"))
    assert both["color_code"].tolist() == allen_tree["color_code"].tolist()


def test_generated_region_ids_are_real(allen_tree):
    t = allen_tree.set_index("region_id")
    for rid, (acr, name) in REGIONS.items():
        assert t.loc[rid, "acronym"] == acr
        assert t.loc[rid, "region_name"] == name


@pytest.mark.parametrize(
    "region_text, hex_text, pattern",
    [
        (
            '1,"a"\n1,"b"\n',
            None,
            r"line 2: structure id 1 is listed twice under two names, 'a' and 'b' \(first on line 1\)",
        ),
        ('1,"a"\nx2,"b"\n', None, r"line 2: structure id 'x2' is not an integer"),
        ("1,a,b\n", None, "unknown ontology layout"),
        ('1,"a"\n2,"b"\n', "1,FF0000\n2,GG0000\n", r"hexcode\.csv: line 2: colour 'GG0000'"),
        ('1,"a"\n2,"b"\n', "id,hex\n1,FF0000\n", "expected header-less 'id,RRGGBB'"),
        ("id,name,acronym\n1,a,A\nzz,b,B\n", None, r"line 3: id 'zz' is not an integer"),
    ],
)
def test_bad_ontology(tmp_path, region_text, hex_text, pattern):
    r = tmp_path / "regions.csv"
    r.write_text(region_text)
    h = None
    if hex_text is not None:
        h = tmp_path / "hexcode.csv"
        h.write_text(hex_text)
    with pytest.raises(CCFError, match=pattern):
        read_ontology(r, h)


def test_ontology_missing_and_empty(tmp_path):
    with pytest.raises(CCFError, match="file not found"):
        read_ontology(tmp_path / "none.csv")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(CCFError, match="empty file"):
        read_ontology(tmp_path / "e.csv")


def test_small_map_ontology_with_missing_colour(tmp_path):
    (tmp_path / "r.csv").write_text('10,"Ten, with comma"\n20,Twenty\n')
    (tmp_path / "h.csv").write_text("10,#00ff0a\n")
    o = read_ontology(tmp_path / "r.csv", tmp_path / "h.csv")
    assert o["region_name"].tolist() == ["Ten, with comma", "Twenty"]
    assert o["color_code"].tolist() == ["00FF0A", None]


# ---------------------------------------------------------------------------------- annotation
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("ccf")
    out = {}
    for enc in ("gzip", "raw"):
        p = d / f"annotation_10_{enc}.nrrd"
        out[enc] = (p, write_annotation_nrrd(p, encoding=enc, seed=4))
    return out


@pytest.mark.parametrize("enc", ["gzip", "raw"])
@pytest.mark.parametrize("step", [1, 2, 3])
def test_read_annotation_against_truth(small, enc, step):
    path, truth = small[enc]
    vol, vox = read_annotation(path, step=step)
    assert vol.dtype == np.uint32
    assert vol.shape == truth[::step, ::step, ::step].shape
    assert vox == 10.0 * step
    np.testing.assert_array_equal(vol, truth[::step, ::step, ::step])


def test_truth_layout_and_pynrrd(small):
    path, truth = small["gzip"]
    assert truth.shape == (132, 80, 114)
    ids = set(np.unique(truth).tolist())
    assert ids == {0, *REGIONS}  # every labelled block/sphere present
    data, header = nrrd.read(str(path))  # independent reader
    np.testing.assert_array_equal(data, truth)
    assert list(header["sizes"]) == [132, 80, 114]
    # (AP, DV, ML): anterior-dorsal is motor cortex, the CP/ACB split is along ML
    assert truth[40, 22, 57] == 993 and truth[110, 40, 57] == 549
    assert truth[40, 40, 30] == 672 and truth[40, 40, 84] == 56


def test_slab_writer_matches_pynrrd(tmp_path):
    shape = (40, 30, 26)
    p = write_large_annotation_nrrd(tmp_path / "big.nrrd", shape=shape, seed=2, planes_per_chunk=3)
    data, header = nrrd.read(str(p))
    A, D, M = shape
    truth = annotation_labels(
        shape, np.arange(A)[:, None, None], np.arange(D)[None, :, None], np.arange(M)[None, None, :], seed=2
    )
    np.testing.assert_array_equal(data, truth)
    vol, vox = read_annotation(p, step=2)
    np.testing.assert_array_equal(vol, truth[::2, ::2, ::2])
    raw = write_large_annotation_nrrd(tmp_path / "big_raw.nrrd", shape=shape, seed=2, encoding="raw")
    np.testing.assert_array_equal(read_annotation(raw, step=1)[0], truth)


def test_streaming_memory_is_bounded(tmp_path):
    """Peak Python allocation reading a 264 x 160 x 228 gzip volume at step 2 stays near the
    output size, far below the full-resolution volume."""
    shape = (264, 160, 228)
    p = write_large_annotation_nrrd(tmp_path / "mid.nrrd", shape=shape, seed=1)
    full_bytes = np.prod(shape) * 4  # 38.5 MB
    out_bytes = np.prod([-(-s // 2) for s in shape]) * 4  # 4.8 MB
    tracemalloc.start()
    try:
        vol, vox = read_annotation(p, step=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert vol.nbytes == out_bytes
    assert peak < out_bytes + 8 * 160 * 264 * 4 + 2_000_000, peak  # output + a few planes
    assert peak < full_bytes / 4
    # and the values: spot-check against the closed-form truth
    rng = np.random.default_rng(0)
    ai, di, mi = (rng.integers(0, n, 5000) for n in vol.shape)
    np.testing.assert_array_equal(vol[ai, di, mi], annotation_labels(shape, 2 * ai, 2 * di, 2 * mi, seed=1))


def test_other_encodings_types_and_detached(tmp_path, small):
    _, truth = small["gzip"]
    t16 = truth.copy()
    t16[t16 > 65535] = 1
    t16 = t16.astype(np.uint16)
    base = {"space directions": np.diag([25.0] * 3), "kinds": ["domain"] * 3}
    nrrd.write(str(tmp_path / "be.nrrd"), t16, {**base, "encoding": "raw", "endian": "big"})
    nrrd.write(str(tmp_path / "bz.nrrd"), t16, {**base, "encoding": "bzip2"})
    nrrd.write(str(tmp_path / "det.nhdr"), t16, {**base, "encoding": "gzip"}, detached_header=True)
    for name in ("be.nrrd", "bz.nrrd", "det.nhdr"):
        vol, vox = read_annotation(tmp_path / name, step=2)
        assert vox == 50.0
        np.testing.assert_array_equal(vol, t16[::2, ::2, ::2].astype(np.uint32))


def test_voxel_size_from_spacings_and_override(tmp_path, small):
    _, truth = small["raw"]
    t = truth[:10, :10, :10]
    nrrd.write(str(tmp_path / "sp.nrrd"), t, {"spacings": [10.0, 10.0, 10.0], "encoding": "raw"})
    assert read_annotation(tmp_path / "sp.nrrd", step=1)[1] == 10.0
    nrrd.write(str(tmp_path / "none.nrrd"), t, {"encoding": "raw"})
    with pytest.raises(CCFError, match="pass voxel_um"):
        read_annotation(tmp_path / "none.nrrd")
    assert read_annotation(tmp_path / "none.nrrd", step=2, voxel_um=10)[1] == 20.0
    nrrd.write(str(tmp_path / "aniso.nrrd"), t, {"spacings": [10.0, 20.0, 10.0], "encoding": "raw"})
    with pytest.raises(CCFError, match="not isotropic"):
        read_annotation(tmp_path / "aniso.nrrd")


def test_broken_annotation_files(tmp_path, small):
    gz, truth = small["gzip"]
    raw, _ = small["raw"]
    cut = tmp_path / "cut.nrrd"
    cut.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    with pytest.raises(CCFError, match=r"cut\.nrrd: .*(truncated|corrupt)"):
        read_annotation(cut)
    cut_raw = tmp_path / "cut_raw.nrrd"
    cut_raw.write_bytes(raw.read_bytes()[:-100])
    with pytest.raises(CCFError, match="truncated"):
        read_annotation(cut_raw)
    (tmp_path / "not.nrrd").write_bytes(b"hello world\n")
    with pytest.raises(CCFError, match="not a NRRD file"):
        read_annotation(tmp_path / "not.nrrd")
    with pytest.raises(CCFError, match="file not found"):
        read_annotation(tmp_path / "missing.nrrd")
    nrrd.write(str(tmp_path / "f.nrrd"), truth[:4, :4, :4].astype(np.float32), {"encoding": "raw"})
    with pytest.raises(CCFError, match="not an integer type"):
        read_annotation(tmp_path / "f.nrrd")
    nrrd.write(str(tmp_path / "2d.nrrd"), truth[:, :, 0], {"encoding": "raw"})
    with pytest.raises(CCFError, match="3-D"):
        read_annotation(tmp_path / "2d.nrrd")
    nrrd.write(
        str(tmp_path / "neg.nrrd"), -np.ones((4, 4, 4), dtype=np.int32), {"encoding": "raw", "spacings": [10.0] * 3}
    )
    with pytest.raises(CCFError, match="negative region id"):
        read_annotation(tmp_path / "neg.nrrd")
    # a gzip header claiming data that is not gzip
    bad = tmp_path / "notgz.nrrd"
    bad.write_bytes(raw.read_bytes().replace(b"encoding: raw", b"encoding: gzip"))
    with pytest.raises(CCFError, match="does not start with a gzip header"):
        read_annotation(bad)
    for step in (0, -1, 1.5, True):
        with pytest.raises(CCFError, match="step must be a positive integer"):
            read_annotation(gz, step=step)


def test_gzip_multi_member(tmp_path, small):
    """Concatenated gzip members (some tools write them) read as one stream."""
    _, truth = small["gzip"]
    p = tmp_path / "mm.nrrd"
    nrrd.write(str(p), truth, {"encoding": "raw", "space directions": np.diag([10.0] * 3)})
    data = p.read_bytes()
    h_end = data.index(b"\n\n") + 2
    body = data[h_end:]
    half = len(body) // 2
    p.write_bytes(
        data[:h_end].replace(b"encoding: raw", b"encoding: gzip")
        + gzip.compress(body[:half])
        + gzip.compress(body[half:])
    )
    np.testing.assert_array_equal(read_annotation(p, step=2)[0], truth[::2, ::2, ::2])
    # trailing bytes after the data (a newline, padding) are never read
    p.write_bytes(p.read_bytes() + b"\n\0\0")
    np.testing.assert_array_equal(read_annotation(p, step=1)[0], truth)


# -------------------------------------------------------------------------------------- lookup
def test_region_lookup_grid_and_jitter(small):
    path, truth = small["gzip"]
    vol, vox = read_annotation(path, step=2)
    rng = np.random.default_rng(7)
    n = 20000
    ap, dv, ml = (rng.integers(0, s, n) for s in vol.shape)
    xyz = np.column_stack([ml, dv, ap]) * vox  # (x=ML, y=DV, z=AP) um
    np.testing.assert_array_equal(region_lookup(vol, vox, xyz), truth[2 * ap, 2 * dv, 2 * ml])
    jitter = rng.uniform(-0.49, 0.49, xyz.shape) * vox  # nearest voxel
    np.testing.assert_array_equal(region_lookup(vol, vox, xyz + jitter), truth[2 * ap, 2 * dv, 2 * ml])
    one = region_lookup(vol, vox, np.array([28 * 20, 15 * 20, 10 * 20]))  # a single (3,) point
    assert one.shape == (1,) and one[0] == vol[10, 15, 28] == truth[20, 30, 56]
    assert region_lookup(vol, vox, np.zeros((0, 3))).shape == (0,)


def test_region_lookup_axes(small):
    """x is ML, z is AP: the ML-split CP/ACB block and an AP-only block tell the axes apart."""
    path, truth = small["raw"]
    vol, vox = read_annotation(path, step=2)
    cp = [30 * 10, 40 * 10, 40 * 10]  # ML 30 (left), DV 40, AP 40 at 10 um -> step-2 grid
    acb = [84 * 10, 40 * 10, 40 * 10]
    res = region_lookup(vol, vox, np.array([cp, acb], dtype=float))
    assert res.tolist() == [truth[40, 40, 30], truth[40, 40, 84]] == [672, 56]


def test_region_lookup_outside(small):
    path, _ = small["gzip"]
    vol, vox = read_annotation(path, step=2)
    xyz = np.array(
        [[100.0, 100.0, 100.0], [-30.0, 0.0, 0.0], [0.0, 0.0, 1400.0], [0.0, np.nan, 0.0], [200.0, 200.0, 200.0]]
    )
    with pytest.raises(CCFError) as e:
        region_lookup(vol, vox, xyz)
    msg = str(e.value)
    assert "3 of 5 coordinates are outside" in msg
    assert "row 1: (-30, 0, 0)" in msg and "row 2: (0, 0, 1400)" in msg and "row 3: (0, nan, 0)" in msg
    assert "row 0" not in msg and "row 4" not in msg
    assert "z=AP 0..1300" in msg
    # the last voxel is inside, half a voxel further is not
    edge = np.array([[(vol.shape[2] - 1) * vox, 0, 0]], dtype=float)
    region_lookup(vol, vox, edge)
    with pytest.raises(CCFError):
        region_lookup(vol, vox, edge + [vox / 2 + 0.01, 0, 0])
    with pytest.raises(CCFError, match=r"\(N, 3\)"):
        region_lookup(vol, vox, np.zeros((4, 2)))
    with pytest.raises(CCFError, match="3-D"):
        region_lookup(vol[0], vox, np.zeros((1, 3)))


# ------------------------------------------------------------- damaged files: file, expected and found size


def ccf_error(fn, path, *a, **kw) -> str:
    with pytest.raises(CCFError) as e:
        fn(path, *a, **kw)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg and "Traceback" not in msg, msg
    return msg


@pytest.mark.parametrize("enc", ["gzip", "raw", "bzip2"])
def test_annotation_cut_in_half_or_header_only(tmp_path, small, enc):
    _, truth = small["gzip"]
    src = tmp_path / f"full_{enc}.nrrd"
    nrrd.write(str(src), truth, {"encoding": enc, "space directions": np.diag([10.0] * 3)}, index_order="F")
    np.testing.assert_array_equal(read_annotation(src, step=1)[0], truth)  # the good file reads exactly
    data = src.read_bytes()
    start = read_annotation_header(src)["_data_start"]
    need = truth.size * 4
    half = tmp_path / f"half_{enc}.nrrd"
    half.write_bytes(data[: start + (len(data) - start) // 2])
    msg = ccf_error(read_annotation, half)
    assert "truncated file: found " in msg and f"needs {need}" in msg and "sizes 132 80 114 of" in msg
    found = int(msg.split("found ")[1].split(" bytes")[0])
    assert 0 < found < need
    header_only = tmp_path / f"header_{enc}.nrrd"
    header_only.write_bytes(data[:start])
    msg = ccf_error(read_annotation, header_only)
    assert "found 0 bytes of voxel data (0 %)" in msg and f"needs {need}" in msg


def test_annotation_with_more_data_than_its_sizes(tmp_path, small):
    raw, truth = small["raw"]
    p = tmp_path / "long.nrrd"
    p.write_bytes(raw.read_bytes() + b"\0" * (132 * 80 * 4))  # one plane too many
    assert "more data than the header describes" in ccf_error(read_annotation, p)
    p.write_bytes(raw.read_bytes() + b"\n")  # a stray line end is tolerated
    np.testing.assert_array_equal(read_annotation(p, step=1)[0], truth)
    gz = tmp_path / "long_gz.nrrd"
    start = read_annotation_header(raw)["_data_start"]
    header, body = raw.read_bytes()[:start], raw.read_bytes()[start:]
    gz.write_bytes(header.replace(b"encoding: raw", b"encoding: gzip") + gzip.compress(body + b"\0" * (132 * 80 * 4)))
    assert "holds more than the 4815360 bytes" in ccf_error(read_annotation, gz)


def test_region_csv_not_utf8(tmp_path):
    p = tmp_path / "regions.csv"
    p.write_bytes(b'1,"root"\n2,"Caudoputamen"\n' + b'3,"Nucl\xe9us"\n')
    assert "line 3: not UTF-8 text (byte b'\\xe9'" in ccf_error(read_ontology, p)
    p.write_bytes(b'1,"r\xf6\xf6t"\n')
    assert "line 1: not UTF-8 text" in ccf_error(read_ontology, p)
    t = tmp_path / "tree.csv"
    t.write_bytes(b"id,name,acronym\n1,root,root\n2,\xff\xfe,X\n")
    assert "line 3: not UTF-8 text" in ccf_error(read_ontology, t)
    h = tmp_path / "hexcode.csv"
    h.write_bytes(b"1,FF0000\n2,00FF\xe900\n")
    (tmp_path / "ok.csv").write_text('1,"a"\n2,"b"\n')
    with pytest.raises(CCFError) as e:
        read_ontology(tmp_path / "ok.csv", h)
    assert str(e.value).startswith(f"{h}: line 2: not UTF-8 text")


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("id,name,acronym\n1,root,root\n\n2.5,child,ch\n", r"line 4: id '2\.5' is not an integer"),
        (
            "id,name,acronym\n997,root,root\n8,grey,grey\n997,root2,root2\n",
            r"line 4: id 997 is listed twice under two names, 'root' and 'root2' \(first on line 2\)",
        ),
        (
            "id,name,acronym,parent_structure_id\n997,root,root,\n8,grey,grey,12\n",
            r"line 3: structure 8 has parent_structure_id 12, which is not a structure of this file",
        ),
        (
            "id,name,acronym,parent_structure_id,structure_id_path\n997,root,root,,/997/\n8,grey,grey,997,/997/9/\n",
            r"line 3: structure_id_path '/997/9/' does not end with the structure's id 8",
        ),
        ('1,"a"\n\n\n7,"b"\n7,"b"\n', r"line 5: structure id 7 is listed twice \(both as 'b'\) \(first on line 4\)"),
    ],
)
def test_region_csv_bad_rows(tmp_path, text, pattern):
    p = tmp_path / "regions.csv"
    p.write_text(text)
    msg = ccf_error(read_ontology, p)
    assert re.search(pattern, msg), msg


def test_real_allen_tree_unchanged_by_the_checks(allen_tree):
    raw = pd.read_csv(real("allenCCF", "structure_tree_safe_2017.csv"))
    assert allen_tree["region_id"].tolist() == raw["id"].tolist()
    assert allen_tree["region_name"].tolist() == raw["name"].str.strip().tolist()
    assert allen_tree["parent_id"].isna().sum() == 1


# ------------------------------------------------------------------------ annotation TIFF stack
@pytest.mark.parametrize("shaped", [False, True])
def test_tiff_stack_equals_nrrd_at_20um(tmp_path, shaped):
    """The 20 um TIFF of a 10 um NRRD's volume (every 2nd voxel) reads as the NRRD read with step 2:
    same array, same (AP, DV, ML) orientation, both uint32 at 20 um."""
    shape = (66, 40, 57)
    truth = write_annotation_nrrd(tmp_path / "a10.nrrd", shape=shape, seed=5)
    tif = tmp_path / "a20.tif"
    written = write_annotation_tiff(tif, shape=shape, seed=5, shaped=shaped)
    np.testing.assert_array_equal(written, truth[::2, ::2, ::2])
    from_nrrd, vox_nrrd = read_annotation(tmp_path / "a10.nrrd", step=2)
    from_tiff, vox_tiff = read_annotation_tiff(tif)
    assert from_tiff.dtype == from_nrrd.dtype == np.uint32 and vox_tiff == vox_nrrd == 20.0
    assert from_tiff.shape == (33, 20, 29)
    np.testing.assert_array_equal(from_tiff, from_nrrd)
    # orientation, independently: page k of the file is AP section k (DV rows x ML columns)
    with tifffile.TiffFile(tif) as t:
        assert len(t.pages) == 33 and t.pages[0].shape == (20, 29)
        np.testing.assert_array_equal(t.pages[7].asarray(), truth[14, ::2, ::2])


def test_tiff_integer_types(tmp_path):
    vol = annotation_labels((8, 6, 10), *np.indices((8, 6, 10)))
    small = (vol % 60000).astype(np.uint16)
    write_annotation_tiff(tmp_path / "u16.tif", small)
    out, vox = read_annotation_tiff(tmp_path / "u16.tif", voxel_um=25)
    assert out.dtype == np.uint32 and vox == 25.0
    np.testing.assert_array_equal(out, small)
    write_annotation_tiff(tmp_path / "i32.tif", vol.astype(np.int32))
    np.testing.assert_array_equal(read_annotation_tiff(tmp_path / "i32.tif")[0], vol)


def _tiff_damage(tmp_path, kind) -> Path:
    p = tmp_path / f"{kind}.tif"
    good = annotation_labels((12, 8, 10), *np.indices((12, 8, 10)), seed=1)
    if kind == "float":
        write_annotation_tiff(p, good.astype(np.float32))
    elif kind == "2d":
        write_annotation_tiff(p, good[0])
    elif kind == "rgb":
        write_annotation_tiff(p, np.zeros((4, 6, 7, 3), np.uint8), photometric="rgb")
    elif kind == "mixed":
        with tifffile.TiffWriter(p) as w:
            w.write(good[0], photometric="minisblack", metadata=None)
            w.write(good[0, :, :5], photometric="minisblack", metadata=None)
    elif kind == "negative":
        write_annotation_tiff(p, -good.astype(np.int32))
    elif kind == "text":
        p.write_text("region ids\n")
    elif kind.startswith("cut"):
        write_annotation_tiff(p, good, shaped=kind.endswith("shaped"))
        p.write_bytes(p.read_bytes()[: p.stat().st_size * 2 // 5])
    return p


@pytest.mark.parametrize(
    "kind,pattern",
    [
        ("float", "pixel type float32 is not an integer type"),
        ("2d", r"image shape \(8, 10\) \(axes YX\) is not a 3-D stack"),
        ("rgb", r"image shape \(4, 6, 7, 3\) .* is not a 3-D stack"),
        ("mixed", "pages are not all of one size"),
        ("negative", "negative region id"),
        ("text", "unreadable TIFF .*not a TIFF file"),
        ("cut", "damaged TIFF|unreadable TIFF"),
        ("cut_shaped", "damaged TIFF|unreadable TIFF"),
        ("missing", "file not found"),
    ],
)
def test_bad_tiff_one_line(tmp_path, caplog, kind, pattern):
    p = _tiff_damage(tmp_path, kind)
    with pytest.raises(CCFError, match=pattern) as e:
        read_annotation_tiff(p)
    text = str(e.value)
    assert text.startswith(f"{p}: ") and "\n" not in text
    assert not [r for r in caplog.records if r.name == "tifffile"]  # reported once, in the error
