"""ERD images of the pipeline, drawn with matplotlib from DataJoint's dependency graph.

DataJoint's own ``Diagram`` rendering needs the graphviz programs (not pip-installable) and
IPython; drawing the same graph with matplotlib works on any machine the pipeline installs on.
A graphviz ``.dot`` file is written too, for those who have graphviz.
"""

from __future__ import annotations

import re
from pathlib import Path

import datajoint as dj
import networkx as nx

TIER_STYLE = {  # fill colour, text colour, font size (DataJoint's conventional palette)
    "Manual": ("#00aa00", "#004400", 9),
    "Lookup": ("#c0c0c0", "#333333", 8),
    "Imported": ("#3377ff", "#001a66", 9),
    "Computed": ("#ff3333", "#660000", 9),
    "Part": ("#ffffff", "#000000", 7),
}


def _split(node: str) -> tuple[str, str] | None:
    m = re.fullmatch(r"[`\"]([^`\"]+)[`\"]\.[`\"]([^`\"]+)[`\"]", node)
    return (m.group(1), m.group(2)) if m else None


def _tier(table: str) -> str:
    if "__" in table.lstrip("_"):
        return "Part"
    if table.startswith("__"):
        return "Computed"
    if table.startswith("_"):
        return "Imported"
    if table.startswith("#"):
        return "Lookup"
    return "Manual"


def _label(schema: str, table: str, schema_to_module: dict[str, str], home: str | None) -> str:
    camel = "".join(w.capitalize() for w in table.lstrip("#_").split("__")[-1].split("_"))
    if "__" in table.lstrip("_"):  # part: Master.Part
        master = "".join(w.capitalize() for w in table.lstrip("#_").split("__")[0].split("_"))
        camel = f"{master}.{camel}"
    mod = schema_to_module.get(schema, schema)
    return camel if mod == home else f"{mod}.{camel}"


def _graph(diagram: dj.Diagram) -> nx.DiGraph:
    """Table-to-table graph (alias nodes of renamed foreign keys bridged), edges marked primary."""
    shown = {n for n in diagram.nodes_to_show if _split(n)}
    g = nx.DiGraph()
    g.add_nodes_from(shown)
    for u, v, data in diagram.edges(data=True):
        if u not in shown:
            continue
        if v in shown:
            g.add_edge(u, v, primary=bool(data.get("primary")))
        elif not _split(v):  # u -> alias node (renamed foreign key) -> child
            for w in diagram.successors(v):
                if w in shown:
                    g.add_edge(u, w, primary=False)
    return g


def _dot(g: nx.DiGraph, labels: dict[str, str]) -> str:
    """The graph as graphviz DOT text, written here: DataJoint's ``make_dot`` looks every node's
    class up by scanning the loaded modules, which took ~15 s per diagram at 100 tables."""

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph erd {", "  rankdir=TB;", "  node [fontname=Helvetica, fontsize=10];"]
    for n in sorted(g.nodes):
        tier = _tier(_split(n)[1])
        shape = "box" if tier == "Lookup" else "plaintext" if tier == "Part" else "ellipse"
        lines.append(f"  {q(n)} [label={q(labels[n])}, shape={shape}, color={q(TIER_STYLE[tier][0])}];")
    for u, v, data in sorted(g.edges(data=True)):
        lines.append(f"  {q(u)} -> {q(v)} [arrowhead=none, style={'solid' if data['primary'] else 'dashed'}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(
    diagram: dj.Diagram,
    path_stem: Path,
    schema_to_module: dict[str, str],
    home: str | None,
    formats: tuple[str, ...] = ("svg", "png"),
) -> list[Path]:
    """Draw ``diagram`` to ``path_stem.<fmt>`` files; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # keep table names as searchable text in the SVG

    g = _graph(diagram)
    max_per_row = 7
    pos: dict[str, tuple[float, float]] = {}
    y = 0.0
    for layer in nx.topological_generations(g):
        # order by the mean x of the parents (fewer crossings), then wrap long layers into rows
        def bary(n):
            xs = [pos[p][0] for p in g.predecessors(n) if p in pos]
            return (sum(xs) / len(xs) if xs else -1.0, n)

        ordered = sorted(layer, key=bary)
        for start in range(0, len(ordered), max_per_row):
            row = ordered[start : start + max_per_row]
            for i, n in enumerate(row):
                pos[n] = ((i + 0.5) * max_per_row / len(row), y)
            y -= 1.0
    width, n_rows = max_per_row, int(-y)
    fig, ax = plt.subplots(figsize=(2.6 * width, max(4.0, 0.9 * n_rows)))
    for u, v, data in g.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops=dict(
                arrowstyle="-",
                lw=1.2 if data["primary"] else 0.8,
                ls="-" if data["primary"] else "--",
                color="#555555",
                shrinkA=8,
                shrinkB=8,
            ),
        )
    for n, (x, y) in pos.items():
        schema, table = _split(n)
        tier = _tier(table)
        fill, text, size = TIER_STYLE[tier]
        ax.text(
            x,
            y,
            _label(schema, table, schema_to_module, home),
            ha="center",
            va="center",
            fontsize=size,
            color=text,
            bbox=dict(
                boxstyle="round,pad=0.3" if tier != "Lookup" else "square,pad=0.3",
                fc=fill,
                alpha=0.35 if tier != "Part" else 1.0,
                ec=fill if tier != "Part" else "#999999",
            ),
        )
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-n_rows + 0.4, 0.6)
    ax.axis("off")
    fig.tight_layout()
    out = []
    for fmt in formats:
        p = path_stem.with_suffix(f".{fmt}")
        fig.savefig(p, format=fmt, dpi=110)
        out.append(p)
    plt.close(fig)
    p = path_stem.with_suffix(".dot")
    p.write_text(_dot(g, {n: _label(*_split(n), schema_to_module, home) for n in g.nodes}))
    out.append(p)
    return out


def write_erd(folder: str | Path = "erd", formats: tuple[str, ...] = ("svg", "png")) -> list[Path]:
    """Write the whole pipeline's ERD and one per schema module into ``folder``."""
    from . import db

    db.load_modules()
    schemas = {m: s for m, s in db.schemas().items() if s.database is not None}
    schema_to_module = {s.database: m for m, s in schemas.items()}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    whole = None
    for m, s in schemas.items():
        d = dj.Diagram(s)
        whole = d if whole is None else whole + d
        written += draw(d, folder / m, schema_to_module, home=m, formats=formats)
    if whole is not None:
        written += draw(whole, folder / "pipeline", schema_to_module, home=None, formats=formats)
    return written
