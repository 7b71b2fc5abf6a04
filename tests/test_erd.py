"""erd: whole-pipeline and per-schema diagrams, checked against DataJoint's own view of the schemas.

* every table of every schema is drawn (SVG group ids, .dot nodes) and every foreign key is an
  arrow from the parent to the child, in the style of its kind (.dot edges, SVG line ids);
* no line runs through a table's box, no two boxes overlap, every box is inside its schema column;
* the PNGs decode, are not blank and have a sensible size; the legend explains tiers and lines.
"""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image as mpimg
import networkx as nx
import numpy as np
import pytest
from conftest import run_mapshell
from datajoint.utils import to_camel_case

from pipeline import db, erd

SVG = "{http://www.w3.org/2000/svg}"
LEGEND = (
    "Manual table",
    "Lookup table (fixed contents)",
    "Imported table (populated from files)",
    "Computed table (populated)",
    "Part table (rows of its master)",
    "foreign key within the child's primary key",
    "secondary foreign key (non-key attribute)",
    "master \u2192 its part table",
)
# (parent, child, .dot style) of foreign keys whose kind we know from the table definitions
KNOWN_EDGES = (
    ("lab.Subject", "experiment.Session", "solid"),  # -> lab.Subject above the ---
    ("lab.Person", "experiment.Session", "dashed"),  # -> lab.Person below the ---
    ("lab.Subject", "lab.Subject.Strain", "dotted"),  # master -> part
    ("experiment.Session", "experiment.SessionTrial", "solid"),
    ("ephys.ProbeInsertion", "histology.ElectrodeCCFPosition", "solid"),
    ("ccf.AnnotationVersion", "histology.ElectrodeCCFPosition", "dashed"),
    ("lab.ElectrodeConfig.Electrode", "histology.ElectrodeCCFPosition.ElectrodePosition", "solid"),
)


def _class_path(table: str) -> str:
    return ".".join(to_camel_case(p) for p in table.lstrip("#_").split("__"))


def _expected(database):
    """Tables (``module.Class.Part``) and foreign keys (parent, child) from DataJoint itself."""
    modules = {s.database: m for m, s in db.schemas().items() if s.database is not None}
    tables = {f"{m}.{_class_path(t)}" for name, m in modules.items() for t in db.schemas()[m].list_tables()}
    deps = database.conn.dependencies
    deps.load()
    full = {}
    for node in deps.nodes:
        found = re.fullmatch(r'[`"](.+)[`"]\.[`"](.+)[`"]', node)
        if found and found.group(1) in modules:
            full[node] = f"{modules[found.group(1)]}.{_class_path(found.group(2))}"
    assert set(full.values()) == tables
    fks = set()
    for u in full:
        for v in deps.successors(u):
            for w in [v] if v in full else deps.successors(v):  # (v: alias node of a renamed key)
                if w in full:
                    fks.add((full[u], full[w]))
    return tables, fks


def _dot(path):
    text = path.read_text()
    nodes = set(re.findall(r'^\s+"([^"]+)" \[label=', text, re.M))
    edges = {(a, b): style for a, b, style in re.findall(r'^\s+"([^"]+)" -> "([^"]+)" \[style=(\w+)', text, re.M)}
    return text, nodes, edges


def _svg_ids(path):
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return {el.get("id") for el in root.iter() if el.get("id")}, ET.tostring(root, encoding="unicode")


@pytest.fixture(scope="module")
def drawn(backend, tmp_path_factory):
    """``mapshell erd <folder>`` (which calls :func:`write_erd`) once per backend: its output folder
    and run serve the drawing, PNG and command-line tests (the drawing takes ~5 s)."""
    folder = tmp_path_factory.mktemp("erd") / "out"
    r = run_mapshell(["erd", str(folder)], backend.env())
    return folder, r


def test_write_erd_draws_every_table_and_foreign_key(backend, drawn):
    folder, r = drawn
    assert r.returncode == 0, r.stderr
    files = [Path(line) for line in r.stdout.splitlines() if line.strip()]  # write_erd's files, one a line
    assert all(f.parent == folder and f.is_file() for f in files)
    tables, fks = _expected(backend)
    assert len(tables) > 90 and len(fks) > 100
    modules = [m for m, s in db.schemas().items() if s.database is not None]
    assert len(files) == len({f.name for f in files}) and {f.name for f in files} == {
        f"{stem}.{ext}" for stem in ["pipeline", *modules] for ext in ("svg", "png", "dot")
    }

    text, nodes, edges = _dot(folder / "pipeline.dot")
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    assert nodes == tables
    assert set(edges) == fks
    for parent, child, style in KNOWN_EDGES:
        assert edges[(parent, child)] == style, (parent, child)
    for m in modules:  # one labelled cluster per schema
        assert f'subgraph "cluster_{m}"' in text
    pydot = pytest.importorskip("pydot")  # graphviz syntax (graphviz itself is not installed)
    (graph,) = pydot.graph_from_dot_data(text)
    assert len(graph.get_subgraphs()) == len(modules)

    ids, svg = _svg_ids(folder / "pipeline.svg")
    assert tables <= ids  # every table's label, by its full name
    assert {f"edge:{a}->{b}" for a, b in fks} <= ids  # every foreign key's line
    assert {f"schema:{m}" for m in modules} <= ids  # every schema's column heading
    assert {f"legend:{t}" for t in LEGEND} <= ids
    for t in LEGEND:
        assert t in svg
    for name in ("Subject", "Session", "ProbeType.Electrode", "ElectrodeCCFPosition.ElectrodePosition"):
        assert f">{name}<" in svg  # table names are text, not paths

    # per schema: its own tables, plus the tables of other schemas it references (faded)
    _, lab_nodes, _ = _dot(folder / "lab.dot")
    assert lab_nodes == {t for t in tables if t.startswith("lab.")}
    text, exp_nodes, exp_edges = _dot(folder / "experiment.dot")
    own = {t for t in tables if t.startswith("experiment.")}
    assert own <= exp_nodes and {"lab.Subject", "lab.Person", "lab.Rig"} <= exp_nodes
    assert {(a, b) for a, b in fks if b in own} == set(exp_edges)
    ids, _ = _svg_ids(folder / "experiment.svg")
    assert "legend:table of another schema" in ids and "lab.Subject" in ids


def test_erd_pngs_are_readable_images(drawn):
    folder, _ = drawn
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 1 + len([s for s in db.schemas().values() if s.database is not None])
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(png)
        h, w = img.shape[:2]
        assert 300 < w <= 4000 and 300 < h <= 2500, (png.name, img.shape)
        grey = img[..., :3].mean(axis=2)
        assert grey.std() > 0.03, png.name  # not blank
        assert (grey < 0.3).mean() > 0.002, png.name  # dark text and lines on it
    whole = mpimg.imread(folder / "pipeline.png")
    assert whole.shape[1] > whole.shape[0]  # landscape, schemas side by side


def _samples(points) -> np.ndarray:
    """(n, 2) points along the line's path: 25 on each of its Bezier segments (their ends included)."""
    from matplotlib.path import Path as MPath

    path = erd._arrow_path(points)
    t = np.linspace(0, 1, 25)
    out = [bez(t) for bez, code in path.iter_bezier() if code != MPath.MOVETO]
    return np.concatenate(out) if out else np.empty((0, 2))


def _check_geometry(d: erd.Diagram) -> erd.Geometry:
    geo = erd.geometry(d)
    boxes = geo.boxes
    assert set(boxes) == set(d.graph.nodes)
    names = list(boxes)
    for i, a in enumerate(names):  # boxes never overlap
        ax, ay, aw, ah = boxes[a]
        for b in names[i + 1 :]:
            bx, by, bw, bh = boxes[b]
            assert abs(ax - bx) >= (aw + bw) / 2 or abs(ay - by) >= (ah + bh) / 2, (a, b)
    cols = {m: (x0, top, w, h) for m, x0, top, w, h in geo.columns}
    for n, (x, y, w, h) in boxes.items():  # inside their schema's column, inside the figure
        x0, top, cw, ch = cols[d.graph.nodes[n]["module"]]
        assert x0 <= x - w / 2 and x + w / 2 <= x0 + cw and top < y - h / 2 and y + h / 2 < top + ch, n
        assert 0 < x - w / 2 and x + w / 2 < geo.width and y + h / 2 < geo.height
    assert set(geo.lines) == set(d.graph.edges)
    bx, by, bw, bh = (np.array([boxes[n][i] for n in names], dtype=float) for i in range(4))
    for (u, v), pts in geo.lines.items():
        # from the parent's bottom edge down into the child's top edge (where the arrowhead is)
        (ux, uy, uw, uh), (vx, vy, vw, vh) = boxes[u], boxes[v]
        assert abs(pts[0][1] - (uy + uh / 2)) < 1e-6 and abs(pts[0][0] - ux) <= uw / 2
        assert abs(pts[-1][2] - (vy - vh / 2)) < 1e-6 and abs(pts[-1][0] - vx) <= vw / 2
        assert uy < vy
        # and through no other table's box (by more than 0.01): every sample point against every box
        xy = _samples(pts)
        inside = (np.abs(xy[:, None, 0] - bx) < bw / 2 - 0.01) & (np.abs(xy[:, None, 1] - by) < bh / 2 - 0.01)
        hit = inside.any(axis=0) & np.array([n not in (u, v) for n in names])
        assert not hit.any(), f"{u} -> {v} runs through {names[int(np.argmax(hit))]}"
    return geo


def test_layout_keeps_lines_out_of_table_boxes(database):
    database.conn.dependencies.load()
    schemas = {m: s.database for m, s in db.schemas().items() if s.database is not None}
    ds = erd.diagrams(database.conn.dependencies, schemas)
    geo = _check_geometry(ds["pipeline"])
    # inches: a column per schema (about 3.5 in each) and rows by dependency depth; readable at 100 %
    assert geo.width < 3.6 * len(schemas) + 4 and geo.height < 20
    for m in schemas:
        _check_geometry(ds[m])


def _synthetic(quote: str = "`") -> nx.MultiDiGraph:
    def q(schema, table):
        return f"{quote}{schema}{quote}.{quote}{table}{quote}"

    deps = nx.MultiDiGraph()
    deps.add_edge(q("x_a", "#kind"), q("x_a", "thing"), primary=False, aliased=False)
    deps.add_edge(q("x_a", "thing"), q("x_a", "thing__part"), primary=True, aliased=False)
    deps.add_edge(q("x_a", "thing__part"), q("x_a", "thing__other"), primary=True, aliased=False)
    deps.add_edge(q("x_a", "thing"), "1", primary=False, aliased=True)  # renamed foreign key
    deps.add_edge("1", q("x_b", "_imp"), primary=True, aliased=True)
    deps.add_edge(q("x_b", "_imp"), q("x_b", "__comp"), primary=True, aliased=False)
    deps.add_edge(q("x_a", "#kind"), q("x_b", "__comp"), primary=False, aliased=False)
    deps.add_node(q("x_b", "lonely"))
    deps.add_node(q("elsewhere", "ignored"))
    return deps


@pytest.mark.parametrize("quote", ["`", '"'])
def test_table_graph_tiers_parts_and_renamed_keys(quote):
    g = erd.table_graph(_synthetic(quote), {"x_a": "a", "x_b": "b"})
    names = {g.nodes[n]["name"]: n for n in g}
    assert set(names) == {"a.Kind", "a.Thing", "a.Thing.Part", "a.Thing.Other", "b.Imp", "b.Comp", "b.Lonely"}
    tiers = {name: g.nodes[n]["tier"] for name, n in names.items()}
    assert tiers["a.Kind"] == "Lookup" and tiers["b.Imp"] == "Imported" and tiers["b.Comp"] == "Computed"
    assert tiers["a.Thing"] == "Manual" and tiers["a.Thing.Part"] == "Part"
    kinds = {(g.nodes[u]["name"], g.nodes[v]["name"]): (k, r) for u, v, k, r in _edges(g)}
    assert kinds == {
        ("a.Kind", "a.Thing"): ("secondary", False),
        ("a.Thing", "a.Thing.Part"): ("part", False),
        ("a.Thing.Part", "a.Thing.Other"): ("primary", False),  # a part referencing another part
        ("a.Thing", "b.Imp"): ("primary", True),  # bridged over the alias node
        ("b.Imp", "b.Comp"): ("primary", False),
        ("a.Kind", "b.Comp"): ("secondary", False),
    }


def _edges(g):
    return [(u, v, d["kind"], d["renamed"]) for u, v, d in g.edges(data=True)]


def test_render_synthetic_and_empty_diagrams(tmp_path):
    ds = erd.diagrams(_synthetic(), {"a": "x_a", "b": "x_b", "empty": "x_empty"})
    assert set(ds) == {"pipeline", "a", "b", "empty"}
    assert ds["b"].columns == ["a", "b"]  # b's diagram shows the a tables it references
    assert {ds["b"].graph.nodes[n]["name"] for n in ds["b"].graph if ds["b"].graph.nodes[n]["external"]} == {
        "a.Thing",
        "a.Kind",
    }
    for stem, d in ds.items():
        if d.graph.number_of_nodes():
            _check_geometry(d)
        files = erd.render(d, tmp_path / stem)
        assert [f.suffix for f in files] == [".svg", ".png", ".dot"]
        assert mpimg.imread(files[1]).std() > 0.01
    ids, _ = _svg_ids(tmp_path / "pipeline.svg")
    assert "legend:renamed foreign key" in ids and "edge:a.Thing->b.Imp" in ids
    _, nodes, edges = _dot(tmp_path / "pipeline.dot")
    assert edges[("a.Thing", "b.Imp")] == "solid" and edges[("a.Thing", "a.Thing.Part")] == "dotted"


def test_erd_cli(drawn):
    folder, r = drawn
    assert r.returncode == 0, r.stderr
    assert (folder / "pipeline.png").stat().st_size > 10_000
    printed = set(r.stdout.split())
    assert {str(folder / f"pipeline.{ext}") for ext in ("png", "svg", "dot")} <= printed
