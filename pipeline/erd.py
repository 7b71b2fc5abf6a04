"""ERD images of the pipeline, drawn with matplotlib from DataJoint's dependency graph.

DataJoint's own ``Diagram`` rendering needs the graphviz programs (not pip-installable) and
IPython; drawing the same graph with matplotlib works on any machine the pipeline installs on.
A graphviz ``.dot`` file is written too, for those who have graphviz.

Layout (a small Sugiyama-style layered drawing, see :func:`_layout`):

* every schema is a labelled, shaded column; tables sit in rows by dependency depth, so every
  foreign key points down, from the parent to the child (arrowhead at the child);
* a foreign key that skips rows runs through reserved gaps ("dummy" slots) in the rows it
  crosses, and between rows it stays in the free corridor, so no line runs through a table's
  box; boxes are opaque and drawn above the lines;
* a line that runs far sideways between two rows gets a lane of its own in that corridor
  (see :func:`_lanes`), so parallel lines stay apart and can be followed;
* how many tables a row of a column holds is chosen (:func:`_best_layout`) for a landscape
  picture with few long lines;
* line style tells the kind of dependency: solid = foreign key in the child's primary key,
  dashed = secondary (non-key) foreign key, dotted purple = master to its part table.

Per-schema diagrams use the same drawing, with the tables of other schemas that the schema
references directly shown faded in their own columns.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

# --- tables and their graph ------------------------------------------------------------------

#: tier -> (fill, border, text colour, font size, shape); the colours of DataJoint's diagrams
TIER_STYLE = {
    "Manual": ("#d3efcd", "#2e8b2e", "#123d12", 8.5, "box"),
    "Lookup": ("#e6e6e6", "#8a8a8a", "#333333", 8.0, "square"),
    "Imported": ("#d2defd", "#3060c8", "#0d2266", 8.5, "ellipse"),
    "Computed": ("#ffd6d6", "#c83232", "#5c0d0d", 8.5, "ellipse"),
    "Part": ("#ffffff", "#7a7a7a", "#222222", 7.5, "box"),
}
TIER_MEANING = {
    "Manual": "Manual table",
    "Lookup": "Lookup table (fixed contents)",
    "Imported": "Imported table (populated from files)",
    "Computed": "Computed table (populated)",
    "Part": "Part table (rows of its master)",
}

#: edge kind -> (colour, line width, dash pattern or None, legend text)
EDGE_STYLE = {
    "primary": ("#3a3a3a", 1.1, None, "foreign key within the child's primary key"),
    "secondary": ("#3a3a3a", 0.9, (4.0, 2.5), "secondary foreign key (non-key attribute)"),
    "part": ("#8e5bb5", 1.2, (1.0, 1.6), "master \u2192 its part table"),
}
RENAMED_COLOUR = "#d9822b"

#: shaded backgrounds of the schema columns (cycled)
SCHEMA_COLOURS = ("#eef3fb", "#fbf3e6", "#eef8ee", "#f7eef8", "#fbfbe6", "#e9f6f7", "#f8ecec", "#f0f0f6")

ROW_GAP = 0.5  # inches between two rows of tables (the corridor edges cross)
ITEM_GAP = 0.18  # inches between neighbouring tables of a row
DUMMY_W = 0.06  # width of the gap a passing line reserves in a row
DUMMY_GAP = 0.06  # space between such a gap and its neighbours
COL_PAD = 0.15  # inner padding of a schema column
COL_GAP = 0.12  # space between schema columns
LEGEND_TOP = 0.57  # where the legend starts (below the title)
LEGEND_LINE = 0.3  # height of a line of the legend
HEAD_H = 0.5  # height of a schema column's heading
ARROW = (0.085, 0.035)  # arrowhead length and half width
SIDEWAYS = 0.35  # a line moving further sideways than this between two rows gets a lane
LANE = 0.055  # distance between lanes
LANE_MARGIN = 0.13  # between the lanes and the rows above and below
TARGET_ASPECT = 2.2  # width / height the layout aims for (screens are wide; so are pipelines)


def _schema_colour(d: Diagram, module: str) -> str:
    """A schema's shade, the same in every diagram (by the module's place in the pipeline)."""
    order = list(d.databases)
    i = order.index(module) if module in order else len(order)
    return SCHEMA_COLOURS[i % len(SCHEMA_COLOURS)]


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


def _camel(snake: str) -> str:
    return "".join(w.capitalize() for w in snake.split("_"))


def _class_name(table: str) -> str:
    """``#probe_type__electrode`` -> ``ProbeType.Electrode`` (the Python class path)."""
    return ".".join(_camel(p) for p in table.lstrip("#_").split("__"))


def _is_part_of(child: tuple[str, str], parent: tuple[str, str]) -> bool:
    return (
        child[0] == parent[0] and child[1].startswith(parent[1] + "__") and "__" not in child[1][len(parent[1]) + 2 :]
    )


@dataclass
class Diagram:
    """What one picture shows: the table graph, its schema columns and a title."""

    graph: nx.DiGraph  # nodes: full table names; attrs module, label, name, tier, external
    columns: list[str]  # module names, left to right
    databases: dict[str, str]  # module -> database (schema) name
    title: str
    subtitle: str = ""


def table_graph(deps: nx.DiGraph, schema_to_module: dict[str, str]) -> nx.DiGraph:
    """Table-to-table graph of the schemas in ``schema_to_module`` from DataJoint's dependency
    graph (a connection's ``dependencies``). Alias nodes of renamed foreign keys are bridged.

    Nodes carry ``module``, ``name`` (``lab.Subject.Strain``), ``label`` (``Subject.Strain``)
    and ``tier``; edges carry ``kind`` (primary/secondary/part) and ``renamed``."""
    g = nx.DiGraph()
    for n in deps.nodes:
        st = _split(n)
        if st is None or st[0] not in schema_to_module or st[1].startswith("~"):
            continue
        mod = schema_to_module[st[0]]
        label = _class_name(st[1])
        g.add_node(n, module=mod, label=label, name=f"{mod}.{label}", tier=_tier(st[1]), external=False)

    def add(u, v, primary, renamed):
        kind = "part" if _is_part_of(_split(v), _split(u)) else "primary" if primary else "secondary"
        if g.has_edge(u, v):  # two foreign keys to one parent: keep the strongest kind
            order = ("secondary", "primary", "part")
            kind = max(kind, g.edges[u, v]["kind"], key=order.index)
            renamed = renamed or g.edges[u, v]["renamed"]
        g.add_edge(u, v, kind=kind, renamed=renamed)

    for u in list(g.nodes):  # (the dependency graph may be a multigraph: one edge per key)
        for _, v, data in deps.out_edges(u, data=True):
            if v in g:
                add(u, v, bool(data.get("primary")), bool(data.get("aliased")))
            elif _split(v) is None:  # u -> alias node (renamed foreign key) -> child
                for _, w, data2 in deps.out_edges(v, data=True):
                    if w in g:
                        add(u, w, bool(data2.get("primary")), True)
    return g


# --- layout ----------------------------------------------------------------------------------


@dataclass
class _Item:
    """A table box, or a gap reserved in a row for a line passing through (``dummy``)."""

    key: object
    col: int
    rank: int
    w: float
    h: float
    dummy: bool = False
    x: float = 0.0
    up: list = field(default_factory=list)  # (item, weight) in the row above
    down: list = field(default_factory=list)


@dataclass
class Layout:
    items: dict  # key -> _Item (tables keyed by node, dummies by tuple)
    rows: list[list[list[_Item]]]  # rank -> column -> items left to right
    paths: dict  # (u, v) -> list of item keys from u to v
    row_h: list[float]
    col_left: list[float]
    col_w: list[float]
    width: float
    height: float


def _ranks(g: nx.DiGraph, col: dict, cap: list[float], width: dict) -> dict:
    """Row of every table: below all its parents, rows of column c at most ``cap[c]`` inches wide.
    Tables without parents go just above their first child (short lines), or fill the top."""
    sources = {n for n in g if g.in_degree(n) == 0}
    height = {}
    for n in reversed(list(nx.topological_sort(g))):
        height[n] = max((height[c] + 1 for c in g.successors(n)), default=0)
    load: dict = {}
    rank: dict = {}

    def free(n, r):
        used = load.get((col[n], r), 0.0)
        return used == 0.0 or used + width[n] <= cap[col[n]]

    def put(n, r):
        rank[n] = r
        load[(col[n], r)] = load.get((col[n], r), 0.0) + width[n] + ITEM_GAP

    # non-sources row by row (list scheduling): parts as soon as their master is placed, then
    # the tables with the longest chain of descendants
    masters = {v: u for u, v, kind in g.edges(data="kind") if kind == "part"}
    todo = {n for n in g if n not in sources}
    r = 0
    while todo:
        ready = []
        for n in todo:
            parents = [p for p in g.predecessors(n) if p not in sources]
            if all(p in rank and rank[p] < r for p in parents):
                ready.append(n)
        ready.sort(key=lambda n: (masters.get(n) not in rank, -height[n], n))
        for n in ready:
            if free(n, r):
                put(n, r)
                todo.discard(n)
        r += 1
    # tables without parents row by row from the bottom up, each no lower than just above its
    # first child; rows are added on top while some do not fit
    target = {n: min((rank[c] - 1 for c in g.successors(n)), default=0) for n in sources}
    todo = set(sources)
    r = max(rank.values(), default=0)
    while todo:
        ready = sorted((n for n in todo if target[n] >= r), key=lambda n: (-target[n], -g.out_degree(n), n))
        for n in ready:
            if free(n, r):
                put(n, r)
                todo.discard(n)
        r -= 1
    used = sorted(set(rank.values()))  # drop empty rows
    renumber = {r: i for i, r in enumerate(used)}
    return {n: renumber[r] for n, r in rank.items()}


def _crossings(rows, segs_between) -> int:
    total = 0
    for r in range(len(rows) - 1):
        segs = segs_between[r]
        for i in range(len(segs)):
            a0, a1 = segs[i]
            for j in range(i + 1, len(segs)):
                b0, b1 = segs[j]
                if (a0.x - b0.x) * (a1.x - b1.x) < 0:
                    total += 1
    return total


def _isotonic(target, weight, lo, hi):
    """Pool-adjacent-violators: nondecreasing y closest (weighted) to target, clipped to [lo, hi]."""
    blocks = []  # [value, weight, count]
    for t, w in zip(target, weight, strict=True):
        blocks.append([t, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out = []
    for v, _, c in blocks:
        out += [min(max(v, lo), hi)] * c
    return out


def _gap(a: _Item, b: _Item) -> float:
    return ITEM_GAP if not (a.dummy or b.dummy) else DUMMY_GAP


def _span(cell: list[_Item]) -> float:
    return sum(it.w for it in cell) + sum(_gap(a, b) for a, b in zip(cell, cell[1:], strict=False))


def _layout(g: nx.DiGraph, col: dict, ncols: int, size: dict, cap: list[float]) -> Layout:
    rank = _ranks(g, col, cap, {n: size[n][0] for n in g})
    nrows = max(rank.values(), default=-1) + 1
    items = {n: _Item(n, col[n], rank[n], *size[n]) for n in g}
    # lines that skip rows get a gap in each row they cross, in the child's column; lines from
    # one parent into one column share their gaps (they split where their children are)
    paths = {}
    for u, v, data in g.edges(data=True):
        keys = [u]
        for r in range(rank[u] + 1, rank[v]):
            k = ("gap", u, col[v], data["kind"], r)
            if k not in items:
                items[k] = _Item(k, col[v], r, DUMMY_W, 0.0, dummy=True)
            keys.append(k)
        keys.append(v)
        paths[(u, v)] = keys
    seg_weight = {}
    for (u, v), keys in paths.items():  # parts close to their master, passing lines straight
        base = 4.0 if g.edges[u, v]["kind"] == "part" else 1.0
        for a, b in zip(keys, keys[1:], strict=False):
            w = max(base, 2.0) if items[a].dummy and items[b].dummy else base
            seg_weight[(a, b)] = max(seg_weight.get((a, b), 0.0), w)
    for (a, b), w in seg_weight.items():
        items[a].down.append((items[b], w))
        items[b].up.append((items[a], w))

    rows = [[[] for _ in range(ncols)] for _ in range(nrows)]
    for it in sorted(items.values(), key=lambda it: (it.dummy, str(it.key))):
        rows[it.rank][it.col].append(it)
    # column widths: the widest row of the column
    col_w = [0.0] * ncols
    for row in rows:
        for c, cell in enumerate(row):
            col_w[c] = max(col_w[c], _span(cell) + 2 * COL_PAD)
    col_left, x = [], 0.0
    for c in range(ncols):
        col_left.append(x)
        x += col_w[c] + COL_GAP
    width = x - COL_GAP

    def pack(cell, c):
        x = col_left[c] + (col_w[c] - _span(cell)) / 2
        for i, it in enumerate(cell):
            x += _gap(cell[i - 1], it) if i else 0.0
            it.x = x + it.w / 2
            x += it.w

    def pack_all():
        for row in rows:
            for c, cell in enumerate(row):
                pack(cell, c)

    def bary(it, nbrs):
        if not nbrs:
            return it.x
        return sum(n.x * w for n, w in nbrs) / sum(w for _, w in nbrs)

    # order within each row: barycentre sweeps, keeping the order with fewest crossings
    segs_between = [[] for _ in range(max(nrows - 1, 0))]
    for a, b in seg_weight:
        segs_between[items[a].rank].append((items[a], items[b]))
    pack_all()
    best = (_crossings(rows, segs_between), [[list(cell) for cell in row] for row in rows])
    for _ in range(6):
        for down, order in ((True, range(1, nrows)), (False, range(nrows - 2, -1, -1))):
            for r in order:
                for c, cell in enumerate(rows[r]):
                    cell.sort(key=lambda it: bary(it, it.up if down else it.down))
                    pack(cell, c)
        n = _crossings(rows, segs_between)
        if n < best[0]:
            best = (n, [[list(cell) for cell in row] for row in rows])
    rows = best[1]
    pack_all()
    # x positions: pull every item towards its neighbours, keeping the order and the gaps
    for sweep in range(12):
        order = range(nrows) if sweep % 2 == 0 else range(nrows - 1, -1, -1)
        for r in order:
            for c, cell in enumerate(rows[r]):
                if not cell:
                    continue
                offs, o = [], 0.0
                for i, it in enumerate(cell):
                    if i:
                        o += (cell[i - 1].w + it.w) / 2 + _gap(cell[i - 1], it)
                    offs.append(o)
                target, weight = [], []
                for it, o in zip(cell, offs, strict=True):
                    nb = it.up + it.down
                    wsum = sum(w for _, w in nb)
                    t = sum(n.x * w for n, w in nb) / wsum if nb else it.x
                    target.append(t - o)
                    weight.append(wsum + (3.0 if it.dummy else 0.2))
                lo = col_left[c] + COL_PAD + cell[0].w / 2
                hi = col_left[c] + col_w[c] - COL_PAD - cell[-1].w / 2 - offs[-1]
                for it, y, o in zip(cell, _isotonic(target, weight, lo, hi), offs, strict=True):
                    it.x = y + o
    row_h = [max([it.h for cell in row for it in cell if not it.dummy], default=0.2) for row in rows]
    height = sum(row_h) + ROW_GAP * max(nrows - 1, 0)  # (geometry() widens busy corridors)
    return Layout(items, rows, paths, row_h, col_left, col_w, width, height)


def _best_layout(g: nx.DiGraph, col: dict, ncols: int, size: dict, min_w: list[float]) -> Layout:
    """Try a few row-width limits per column (about k * sqrt(tables in the column) tables) and
    keep the layout closest to TARGET_ASPECT (extra height for the titles) with few long lines."""
    counts, total = [0] * ncols, [0.0] * ncols
    for n in g:
        counts[col[n]] += 1
        total[col[n]] += size[n][0] + ITEM_GAP
    best, seen = None, set()
    for k in (0.35, 0.42, 0.5, 0.65, 0.8, 1.0, 1.2, 1.5):
        cap = [k * math.sqrt(c) * t / max(c, 1) for c, t in zip(counts, total, strict=True)]
        if tuple(round(c, 1) for c in cap) in seen:
            continue
        seen.add(tuple(round(c, 1) for c in cap))
        lay = _layout(g, col, ncols, size, cap)
        w = sum(max(a, b) + COL_GAP for a, b in zip(lay.col_w, min_w, strict=True))
        gaps = sum(1 for it in lay.items.values() if it.dummy)  # long lines are hard to follow
        score = abs(math.log(max(w, 0.1) / (lay.height + 2.0) / TARGET_ASPECT)) + 0.5 * gaps / max(
            g.number_of_edges(), 1
        )
        if best is None or score < best[0] - 0.02:
            best = (score, lay)
    return best[1]


# --- drawing ---------------------------------------------------------------------------------


@functools.cache
def _text_size(text: str, size: float, weight: str = "normal") -> tuple[float, float]:
    """Width and height of a text in inches (measured with matplotlib's Agg renderer)."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    r = RendererAgg(10, 10, 72)  # 72 dpi: pixels are points
    w, h, _ = r.get_text_width_height_descent(text, FontProperties(size=size, weight=weight), ismath=False)
    return w / 72, h / 72


def _box_size(label: str, tier: str) -> tuple[float, float]:
    w, _ = _text_size(label, TIER_STYLE[tier][3])
    h = TIER_STYLE[tier][3] / 72 * 1.35
    if TIER_STYLE[tier][4] == "ellipse":
        return w * 1.22 + 0.2, h + 0.14
    return w + 0.14, h + 0.1


def _draw_box(ax, x, y, w, h, tier, label, external=False, gid=None, z=3):
    from matplotlib.patches import Ellipse, FancyBboxPatch

    fill, edge, text, size, shape = TIER_STYLE[tier]
    if external:
        fill, edge, text = "#f4f4f4", "#b0b0b0", "#777777"
    kw = dict(fc=fill, ec=edge, lw=0.8, zorder=z)
    if tier == "Part" and not external:
        kw.update(ls=(0, (3, 1.5)))
    if shape == "ellipse":
        patch = Ellipse((x, y), w, h, **kw)
    else:
        r = 0.0 if shape == "square" else 0.05
        patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=f"round,pad=0,rounding_size={r}", **kw)
    ax.add_patch(patch)
    t = ax.text(x, y, label, ha="center", va="center_baseline", fontsize=size, color=text, zorder=z + 1)
    if gid:
        patch.set_gid(f"box:{gid}")
        t.set_gid(gid)


def _lanes(segments: set[tuple[float, float]]) -> dict[tuple[float, float], int]:
    """Lanes (1, 2, ... from the top) for the segments (x from, x to) that cross a corridor far
    sideways; lines sharing a segment share its lane. Segments that overlap get different lanes,
    ordered so that two lines running the same way do not cross each other."""
    far = [s for s in segments if abs(s[1] - s[0]) > SIDEWAYS]
    # top lanes first for: rightward lines starting far right, leftward lines starting far left
    far.sort(key=lambda s: (s[1] < s[0], -s[0] if s[1] > s[0] else s[0], s[1]))
    taken: list[list[tuple[float, float]]] = []  # per lane: the x ranges in it
    out = {}
    for s in far:
        lo, hi = min(s) - 0.08, max(s) + 0.08
        for i, used in enumerate(taken):
            if all(hi < a or b < lo for a, b in used):
                break
        else:
            i = len(taken)
            taken.append([])
        taken[i].append((lo, hi))
        out[s] = i + 1
    return out


def _arrow_path(points):
    """The line through ``points`` [(x, y_top, y_bottom, lane_y), ...]: straight down through
    each row; across the corridor between two rows an S-curve (vertical at both ends), or, if
    the line has a lane there (``lane_y``), down to the lane, along it and down again."""
    from matplotlib.path import Path as MPath

    verts, codes = [], []
    for i, (x, top, bottom, lane) in enumerate(points):
        if i == 0:
            verts.append((x, top))
            codes.append(MPath.MOVETO)
        elif lane is None:
            px, pb = points[i - 1][0], points[i - 1][2]
            mid = (top - pb) / 2
            verts += [(px, pb + mid), (x, top - mid), (x, top)]
            codes += [MPath.CURVE4] * 3
        else:
            px, pb = points[i - 1][0], points[i - 1][2]
            sign = 1.0 if x > px else -1.0
            r = max(0.0, min(0.07, abs(x - px) / 2, lane - pb, top - lane))  # rounded corners
            verts += [(px, lane - r), (px, lane), (px + sign * r, lane), (x - sign * r, lane), (x, lane), (x, lane + r)]
            codes += [MPath.LINETO, MPath.CURVE3, MPath.CURVE3, MPath.LINETO, MPath.CURVE3, MPath.CURVE3]
            verts.append((x, top))
            codes.append(MPath.LINETO)
        if bottom != top:
            verts.append((x, bottom))
            codes.append(MPath.LINETO)
    return MPath(verts, codes)


def _draw_edge(ax, points, kind, renamed, gid):
    from matplotlib.patches import PathPatch, Polygon

    colour, lw, dash, _ = EDGE_STYLE[kind]
    if renamed:
        colour = RENAMED_COLOUR
    ah, aw = ARROW
    x, top, tip, lane = points[-1]  # the last run ends at the child's box
    points = points[:-1] + [(x, min(top, tip - ah), tip - ah, lane)]
    ls = (0, dash) if dash else "-"
    patch = PathPatch(_arrow_path(points), fc="none", ec=colour, lw=lw, ls=ls, zorder=1, capstyle="butt")
    patch.set_gid(f"edge:{gid}")
    ax.add_patch(patch)
    ax.add_patch(
        Polygon([(x - aw, tip - ah), (x + aw, tip - ah), (x, tip)], closed=True, fc=colour, ec="none", zorder=2)
    )


def _legend_items(has_external: bool, has_renamed: bool):
    out = [("tier", t) for t in TIER_STYLE] + [("edge", k) for k in EDGE_STYLE]
    if has_renamed:
        out.append(("edge", "renamed"))
    if has_external:
        out.append(("tier", "external"))
    return out


def _legend_grid(widths: list[float], avail: float) -> tuple[list[tuple[float, int]], int]:
    """Legend entries in as many columns as fit in ``avail`` inches (entries run row-wise);
    returns each entry's (x, line) and the number of lines."""
    gap = 0.35
    for ncols in range(len(widths), 0, -1):
        colw = [max(widths[c::ncols]) for c in range(ncols)]
        if sum(colw) + gap * (ncols - 1) <= avail or ncols == 1:
            break
    xs = [sum(colw[:c]) + gap * c for c in range(ncols)]
    return [(xs[i % ncols], i // ncols) for i in range(len(widths))], -(-len(widths) // ncols)


@dataclass
class Geometry:
    """Where everything goes, in inches from the top left corner of the figure."""

    width: float
    height: float
    boxes: dict  # node -> (centre x, centre y, width, height)
    lines: dict  # (parent, child) -> [(x, top, bottom), ...] runs, see _arrow_path
    columns: list  # (module, left, top, width, height)
    legend: list  # (kind, key, text, x, y)
    legend_heading: bool


def geometry(d: Diagram) -> Geometry:
    """Lay ``d`` out: schema columns, table boxes, the lines' runs and the legend."""
    g = d.graph
    col_index = {m: i for i, m in enumerate(d.columns)}
    col = {n: col_index[g.nodes[n]["module"]] for n in g}
    size = {n: _box_size(g.nodes[n]["label"], g.nodes[n]["tier"]) for n in g}
    ncols = len(d.columns)
    heads = [  # a column is at least as wide as its heading
        max(_text_size(m, 11, "bold")[0], _text_size(d.databases.get(m, ""), 7)[0]) + 2 * COL_PAD + 0.1
        for m in d.columns
    ]
    lay = _best_layout(g, col, ncols, size, heads)
    extra = 0.0
    for c in range(ncols):  # widen narrow columns to fit their headings
        grow = max(0.0, heads[c] - lay.col_w[c])
        for row in lay.rows:
            for it in row[c]:
                it.x += extra + grow / 2
        lay.col_left[c] += extra
        lay.col_w[c] += grow
        extra += grow
    lay.width += extra

    # legend entries: a 0.8 in sample, then the text; in a grid under the title
    has_ext = any(g.nodes[n]["external"] for n in g)
    has_ren = any(data["renamed"] for _, _, data in g.edges(data=True))
    entries = []
    for kind, key in _legend_items(has_ext, has_ren):
        if kind == "tier":
            text = "table of another schema" if key == "external" else TIER_MEANING[key]
        else:
            text = "renamed foreign key" if key == "renamed" else EDGE_STYLE[key][3]
        entries.append((kind, key, text))
    margin, legend_x = 0.35, 1.0
    fig_w = max(lay.width + 2 * margin, 8.0)
    widths = [0.8 + _text_size(t, 8)[0] for *_, t in entries]
    grid, nlines = _legend_grid(widths, fig_w - 2 * margin - legend_x)
    if nlines > 2:  # narrow figure: no "Legend" heading, the entries start at the margin
        legend_x = 0.0
        grid, nlines = _legend_grid(widths, fig_w - 2 * margin)
    legend = [
        (kind, key, text, margin + legend_x + x, LEGEND_TOP + 0.15 + line * LEGEND_LINE)
        for (kind, key, text), (x, line) in zip(entries, grid, strict=True)
    ]
    top = LEGEND_TOP + nlines * LEGEND_LINE + 0.25  # where the schema columns start
    oy = top + HEAD_H  # the first row of tables
    ox = (fig_w - lay.width) / 2  # centre the columns

    # ports: lines leave a box spread along its bottom and arrive spread along its top
    def spread(n, nbr_keys):
        it = lay.items[n]
        xs = sorted({k: lay.items[k].x for k in nbr_keys}.items(), key=lambda kv: (kv[1], str(kv[0])))
        step = min(0.16, 0.8 * it.w / max(len(xs), 1))
        return {key: ox + it.x + (i - (len(xs) - 1) / 2) * step for i, (key, _) in enumerate(xs)}

    nexts, prevs = {n: set() for n in g}, {n: set() for n in g}
    for (u, v), keys in lay.paths.items():
        nexts[u].add(keys[1])
        prevs[v].add(keys[-2])
    out_ports = {n: spread(n, nexts[n]) for n in g}
    in_ports = {n: spread(n, prevs[n]) for n in g}
    xs = {}  # each line's x in the rows it goes through
    for (u, v), keys in lay.paths.items():
        xs[(u, v)] = [out_ports[u][keys[1]]] + [ox + lay.items[k].x for k in keys[1:-1]] + [in_ports[v][keys[-2]]]

    # a line that runs far sideways between two rows gets a lane of its own there, so that
    # parallel lines do not merge into one; corridors with many lanes are made taller
    nrows = len(lay.rows)
    crossing: list[set] = [set() for _ in range(nrows)]  # corridor below row r -> segments
    for (u, _), x in xs.items():
        for i in range(len(x) - 1):
            crossing[lay.items[u].rank + i].add((x[i], x[i + 1]))
    lanes = [_lanes(segs) for segs in crossing]
    gaps = [max(ROW_GAP, 2 * LANE_MARGIN + (max(ln.values(), default=0)) * LANE) for ln in lanes]
    row_top, y = [], oy
    for r in range(nrows):
        row_top.append(y)
        y += lay.row_h[r] + gaps[r]
    fig_h = (y - gaps[-1] if nrows else oy) + 0.4
    columns = [(m, ox + lay.col_left[c], top, lay.col_w[c], fig_h - 0.15 - top) for c, m in enumerate(d.columns)]

    def row_span(r):
        return row_top[r], row_top[r] + lay.row_h[r]

    boxes = {}
    for n in g:
        it = lay.items[n]
        boxes[n] = (ox + it.x, row_top[it.rank] + lay.row_h[it.rank] / 2, it.w, it.h)
    lines = {}
    for (u, v), keys in sorted(lay.paths.items()):
        x, r0 = xs[(u, v)], lay.items[u].rank
        pts = [(x[0], boxes[u][1] + boxes[u][3] / 2, row_span(r0)[1], None)]
        for i in range(1, len(keys)):
            r = r0 + i  # the row this run is in; the corridor above it is r - 1
            n_lanes = max(lanes[r - 1].values(), default=0)
            lane = lanes[r - 1].get((x[i - 1], x[i]))
            lane_y = None
            if lane is not None:  # the lanes sit in the middle of the corridor
                lane_y = row_span(r - 1)[1] + gaps[r - 1] / 2 + (lane - (n_lanes + 1) / 2) * LANE
            t, b = row_span(r)
            if i == len(keys) - 1:
                b = boxes[v][1] - boxes[v][3] / 2  # into the child's box
            pts.append((x[i], t, b, lane_y))
        lines[(u, v)] = pts
    return Geometry(fig_w, fig_h, boxes, lines, columns, legend, bool(legend_x))


def render(d: Diagram, path_stem: Path, formats: tuple[str, ...] = ("svg", "png"), dpi: int = 110) -> list[Path]:
    """Draw ``d`` to ``path_stem.<fmt>`` (and ``path_stem.dot``); returns the files written.

    In the SVG every table's text is in a group with id ``<module>.<Class>``, every line has id
    ``edge:<parent>-><child>`` and every legend text ``legend:<text>``."""
    import matplotlib
    from matplotlib.figure import Figure  # not pyplot: no backend switch, no global figures
    from matplotlib.patches import FancyBboxPatch, Polygon

    g = d.graph
    geo = geometry(d)
    fig = Figure(figsize=(geo.width, geo.height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, geo.width)
    ax.set_ylim(geo.height, 0)
    ax.axis("off")
    margin = 0.35
    ax.text(margin, 0.3, d.title, fontsize=14, fontweight="bold", va="baseline", color="#222222")
    if d.subtitle:
        tw = _text_size(d.title, 14, "bold")[0]
        ax.text(margin + tw + 0.25, 0.3, d.subtitle, fontsize=9, va="baseline", color="#555555")

    if geo.legend_heading:
        ax.text(margin, LEGEND_TOP + 0.15, "Legend", fontsize=8, fontweight="bold", va="center", color="#333333")
    for kind, key, text, x, y in geo.legend:
        if kind == "tier":
            tier = "Manual" if key == "external" else key
            bw, bh = _box_size("Table", tier)
            _draw_box(ax, x + 0.33, y, min(bw, 0.62), bh, tier, "Table", external=key == "external")
        else:
            colour, lw, dash, _ = EDGE_STYLE["primary" if key == "renamed" else key]
            colour = RENAMED_COLOUR if key == "renamed" else colour
            ax.plot([x + 0.05, x + 0.55], [y, y], color=colour, lw=lw, ls=(0, dash) if dash else "-", zorder=1)
            ah, aw = ARROW  # the arrowhead of the diagram's lines, pointing right
            ax.add_patch(Polygon([(x + 0.55, y - aw), (x + 0.55, y + aw), (x + 0.55 + ah, y)], fc=colour, ec="none"))
        ax.text(x + 0.8, y, text, fontsize=8, va="center", color="#222222", gid=f"legend:{text}")

    for m, x0, top, w, h in geo.columns:
        ax.add_patch(
            FancyBboxPatch(
                (x0, top),
                w,
                h,
                boxstyle="round,pad=0,rounding_size=0.08",
                fc=_schema_colour(d, m),
                ec="#c8cdd8",
                lw=0.8,
                zorder=0,
            )
        )
        xm = x0 + w / 2
        ax.text(
            xm,
            top + 0.22,
            m,
            ha="center",
            va="baseline",
            fontsize=11,
            fontweight="bold",
            color="#333333",
            gid=f"schema:{m}",
        )
        ax.text(xm, top + 0.38, d.databases.get(m, ""), ha="center", va="baseline", fontsize=7, color="#777777")

    for (u, v), pts in geo.lines.items():
        data = g.edges[u, v]
        _draw_edge(ax, pts, data["kind"], data["renamed"], f"{g.nodes[u]['name']}->{g.nodes[v]['name']}")
    for n, (x, y, w, h) in geo.boxes.items():
        nd = g.nodes[n]
        _draw_box(ax, x, y, w, h, nd["tier"], nd["label"], external=nd["external"], gid=nd["name"])

    out = []
    # table names stay searchable text in the SVG; ids are stable
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "erd"}):
        for fmt in formats:
            p = path_stem.with_suffix(f".{fmt}")
            # a wide pipeline stays a PNG viewers open whole: at most 4000 x 2500 pixels
            fit = min(dpi, 4000 / geo.width, 2500 / geo.height)
            fig.savefig(p, format=fmt, dpi=fit, facecolor="white")
            out.append(p)
    p = path_stem.with_suffix(".dot")
    p.write_text(_dot(d))
    out.append(p)
    return out


def _dot(d: Diagram) -> str:
    """The diagram as graphviz DOT text (one cluster per schema), written here: DataJoint's
    ``make_dot`` looks every node's class up by scanning the loaded modules (~15 s at 100 tables)."""

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    g = d.graph
    shapes = {"box": "box", "square": "box", "ellipse": "ellipse"}
    lines = [
        "digraph erd {",
        "  rankdir=TB; newrank=true; compound=true;",
        f"  label={q(d.title)}; labelloc=t; fontname=Helvetica;",
        "  node [fontname=Helvetica, fontsize=10, style=filled];",
        "  // edges: solid = foreign key in the child's primary key, dashed = secondary foreign key,",
        "  //        dotted = master -> part; arrows point from parent to child",
    ]
    for m in d.columns:
        lines += [
            f"  subgraph {q('cluster_' + m)} {{",
            f"    label={q(m)}; style=filled; color={q('#c8cdd8')}; fillcolor={q(_schema_colour(d, m))};",
        ]
        for n in sorted(n for n in g if g.nodes[n]["module"] == m):
            nd = g.nodes[n]
            fill, edge, text, size, shape = TIER_STYLE[nd["tier"]]
            style = "filled,dashed" if nd["tier"] == "Part" else "filled"
            if nd["external"]:
                fill, edge, text = "#f4f4f4", "#b0b0b0", "#777777"
            lines.append(
                f"    {q(nd['name'])} [label={q(nd['name'])}, shape={shapes[shape]}, style={q(style)}, "
                f"fillcolor={q(fill)}, color={q(edge)}, fontcolor={q(text)}, fontsize={size:g}, "
                f"tooltip={q(nd['tier'])}];"
            )
        lines.append("  }")
    for u, v, data in sorted(g.edges(data=True)):
        colour, _, _, _ = EDGE_STYLE[data["kind"]]
        style = {"primary": "solid", "secondary": "dashed", "part": "dotted"}[data["kind"]]
        if data["renamed"]:
            colour = RENAMED_COLOUR
        lines.append(
            f"  {q(g.nodes[u]['name'])} -> {q(g.nodes[v]['name'])} "
            f"[style={style}, color={q(colour)}, arrowhead=normal, arrowsize=0.6];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- entry point -----------------------------------------------------------------------------


def diagrams(deps: nx.DiGraph, schemas: dict[str, str]) -> dict[str, Diagram]:
    """The whole-pipeline diagram (key ``pipeline``) and one per schema module.

    ``schemas`` maps module name -> database name, in column order."""
    schema_to_module = {db_name: m for m, db_name in schemas.items()}
    g = table_graph(deps, schema_to_module)
    out = {}
    modules = list(schemas)
    n_schemas = len({g.nodes[n]["module"] for n in g})
    out["pipeline"] = Diagram(
        g,
        [m for m in modules if any(g.nodes[n]["module"] == m for n in g)] or modules[:1],
        dict(schemas),
        "MAP pipeline",
        f"{g.number_of_nodes()} tables in {n_schemas} schemas, {g.number_of_edges()} dependencies",
    )
    for m in modules:
        own = {n for n in g if g.nodes[n]["module"] == m}
        parents = {p for n in own for p in g.predecessors(n)} - own
        sub = g.subgraph(own | parents).copy()
        for p in parents:
            sub.nodes[p]["external"] = True
            sub.nodes[p]["label"] = sub.nodes[p]["name"].split(".", 1)[1]
        for u, v in list(sub.edges):  # between context tables: not this schema's business
            if u in parents and v in parents:
                sub.remove_edge(u, v)
        used = {sub.nodes[n]["module"] for n in sub}
        cols = [c for c in modules if c in used] or [m]
        ext = len(parents)
        subtitle = f"{len(own)} tables" + (f"; faded: {ext} tables of other schemas they reference" if ext else "")
        out[m] = Diagram(sub, cols, dict(schemas), f"schema {m}", subtitle)
    return out


def write_erd(folder: str | Path = "erd", formats: tuple[str, ...] = ("svg", "png")) -> list[Path]:
    """Write the whole pipeline's ERD (``pipeline.*``) and one per schema module into ``folder``."""
    from . import db

    db.load_modules()
    order = list(db.SCHEMA_MODULE_ORDER)  # columns left to right; others (if any) after them
    registered = sorted(db.schemas().items(), key=lambda ms: order.index(ms[0]) if ms[0] in order else len(order))
    schemas = {m: s for m, s in registered if s.database is not None}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not schemas:
        return []
    conn = next(iter(schemas.values())).connection
    conn.dependencies.load()
    written = []
    for stem, d in diagrams(conn.dependencies, {m: s.database for m, s in schemas.items()}).items():
        written += render(d, folder / stem, formats=formats)
    return written
