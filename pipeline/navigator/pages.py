"""The navigator's HTML pages, rendered on the server from :mod:`pipeline.navigator.data`.

Every value from the database goes through :func:`esc` (HTML-escaped); numbers carry their raw
value in ``data-v`` so the browser sorts and filters them as numbers.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from .data import BADGES, TRIALS_PER_PAGE, join_rows

#: size (px) of each figure as pipeline.figures draws it (width, height), so the page keeps its
#: layout while the PNGs load
FIG_SIZE = {
    "performance": (1050, 400),
    "photostim_effect_session": (750, 400),
    "foraging": (1100, 400),
    "clustering_quality": (1200, 600),
    "unit_characteristics": (1000, 700),
    "group_psth": (1000, 700),
    "photostim_effect": (900, 400),
    "drift_map": (1000, 500),
    "coronal_slice": (800, 600),
    "unit": (1000, 600),
    "condition": (800, 500),
}
NONE = "—"


def esc(v) -> str:
    if v is None:
        return ""
    v = str(v)
    if "&" in v or "<" in v or ">" in v or '"' in v or "'" in v:
        return escape(v, quote=True)
    return v


def num(v, digits: int = 2, unit: str = "") -> str:
    if v is None:
        return NONE
    text = f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"
    return f"{text}{unit}"


def pct(v) -> str:
    return NONE if v is None else f"{100 * v:.0f} %"


def td_num(v, digits: int = 2, unit: str = "") -> str:
    """A number: right-aligned (by its data-v), its value (6 significant digits) in data-v."""
    if v is None:
        return '<td data-v="">—</td>'
    return f'<td data-v="{v:.6g}">{num(v, digits, unit)}</td>'  # digits, separators, a unit: nothing to escape


_NUM_NONE = '<td data-v="">—</td>'


def num_cell(digits: int, unit: str = ""):
    """``td_num(v, digits, unit)`` as a function of ``v`` alone, for long tables: %-formatting
    (faster) when no thousands separator can appear."""
    small = f'<td data-v="%.6g">%.{digits}f{unit}</td>'
    large = f'<td data-v="{{0:.6g}}">{{0:,.{digits}f}}{unit}</td>'.format
    other = f'<td data-v="{{0:.6g}}">{{0:,}}{unit}</td>'.format

    def cell(v):
        if v is None:
            return _NUM_NONE
        if type(v) is float:
            return small % (v, v) if -999.0 < v < 999.0 else large(v)
        return large(v) if isinstance(v, float) else other(v)

    return cell


_TEXT_NONE = '<td class="none">—</td>'


def memo_cell(tag: bool = False):
    """``td_text`` (or ``td_tag``) for long tables whose text repeats: each value escaped once."""
    memo: dict = {}

    def cell(v):
        if v is None or v == "":
            return _TEXT_NONE
        got = memo.get(v)
        if got is None:
            if len(memo) > 4096:
                memo.clear()
            e = esc(v)
            got = memo[v] = f'<td><span class="tag {e}">{e}</span></td>' if tag else f"<td>{e}</td>"
        return got

    return cell


# --- the unit table's columns, as UTF-8 ------------------------------------------------------------
# A probe has hundreds of units: its table is written column by column, each cell as UTF-8 bytes
# (joined with no re-encoding of the 200 kB), a number with one %-format and no Python call where
# the column allows it, and a value several units share written once.

_NONE_TYPE = type(None)
_ONLY_NONE, _INT, _FLOAT_NONE = {_NONE_TYPE}, {int}, {float, _NONE_TYPE}
_NUM_NONE_B, _TEXT_NONE_B = _NUM_NONE.encode(), _TEXT_NONE.encode()


def _encoded(texts) -> list[bytes]:
    return list(map(str.encode, texts))


def num_cells(digits: int, unit: str = ""):
    """``[td_num(v, digits, unit).encode() for v in col]`` as a function of the column ``col``."""
    u = unit.replace("{", "{{").replace("}", "}}")
    small = f'<td data-v="%.6g">%.{digits}f{unit.replace("%", "%%")}</td>'.encode().__mod__  # no separator
    large = f'<td data-v="{{0:.6g}}">{{0:,.{digits}f}}{u}</td>'.format
    whole = f'<td data-v="{{0:.6g}}">{{0:,}}{u}</td>'.format
    cell = num_cell(digits, unit)
    none = _NUM_NONE_B

    def cells(col: list) -> list[bytes]:
        types = set(map(type, col))
        if types == _INT:
            values = set(col)
            if 2 * len(values) <= len(col):
                return list(map({v: whole(v).encode() for v in values}.__getitem__, col))
            return _encoded(map(whole, col))
        if types == _ONLY_NONE:
            return [none] * len(col)
        if float not in types or not types <= _FLOAT_NONE:
            return _encoded(map(cell, col))
        values = set(col)
        values.discard(None)
        fast = -999.0 < min(values) and max(values) < 999.0  # no separator (a NaN may fail the test: then with)
        if 2 * len(values) <= len(col):  # many repeated values: each distinct one written once
            memo = {v: small((v, v)) if fast else large(v).encode() for v in values}
            memo[None] = none
            if 0.0 not in memo:
                return list(map(memo.__getitem__, col))
            # 0.0 and -0.0: one key, two texts
            return [memo[v] if v else none if v is None else cell(v).encode() for v in col]
        if len(types) == 1:
            return list(map(small, zip(col, col))) if fast else _encoded(map(large, col))
        if fast:
            return [none if v is None else small((v, v)) for v in col]
        return [none if v is None else large(v).encode() for v in col]

    return cells


def text_cells(tag: bool = False):
    """``[td_text(v).encode() for v in col]`` (or ``td_tag``) as a function of the column ``col``."""
    one = memo_cell(tag)

    def cells(col: list) -> list[bytes]:
        try:
            memo = {v: one(v).encode() for v in set(col)}
        except TypeError:  # unhashable
            return _encoded(map(one, col))
        memo[None] = memo[""] = _TEXT_NONE_B
        return list(map(memo.__getitem__, col))

    return cells


_C0, _C1, _C2, _C3 = num_cells(0), num_cells(1), num_cells(2), num_cells(3)
_TEXTS, _TAGS = text_cells(), text_cells(tag=True)
_YES_NO = {
    None: _TEXT_NONE_B,
    True: b'<td><span class="tag yes">yes</span></td>',
    False: b'<td><span class="tag no">no</span></td>',
}
#: where the unit table's rows go on the probe's page, until they are put in as UTF-8; nothing else
#: on the page can hold it (text from the database is escaped: no "<")
_ROWS = "<=>"


def td_id(v) -> str:
    return f'<td data-v="{esc(v)}">{esc(v)}</td>'


def when(v) -> str | None:
    """'2024-06-03 09:00:00' -> '2024-06-03 09:00'."""
    return None if v is None else str(v)[:16]


def td_text(v) -> str:
    """Text (sorted and filtered by what it shows, case-insensitively)."""
    if v is None or v == "":
        return '<td class="none">—</td>'
    return f"<td>{esc(v)}</td>"


def yes_no(v) -> str:
    if v is None:
        return '<td class="none">—</td>'
    word = "yes" if v else "no"
    return f'<td><span class="tag {word}">{word}</span></td>'


def td_tag(v) -> str:
    if v is None:
        return '<td class="none">—</td>'
    return f'<td><span class="tag {esc(v)}">{esc(v)}</span></td>'


def flag(v) -> str:
    """A yes/no that is usually no: only yes stands out."""
    if v is None:
        return '<td class="none">—</td>'
    return '<td><span class="tag on">yes</span></td>' if v else '<td class="none">no</td>'


def th(label: str, key: str, numeric: bool = False, title: str = "") -> str:
    attrs = f' data-key="{esc(key)}"' + (' data-type="num" class="n"' if numeric else "")
    attrs += f' title="{esc(title)}"' if title else ""
    return f"<th{attrs}>{esc(label)}</th>"


def link(url: str, text) -> str:
    return f'<a href="{esc(url)}">{esc(text)}</a>'


def kv(pairs, cls: str = "") -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v if raw else esc(NONE if v is None else v)}</dd>" for k, v, raw in pairs)
    return f'<dl class="kv {cls}">{rows}</dl>'


def stat(value, label: str) -> str:
    return f'<div class="stat"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def figure(fig: dict, size_key: str | None = None, cls: str = "", eager: bool = False) -> str:
    w, h = FIG_SIZE.get(size_key or fig["name"], (1000, 600))
    return (
        f'<figure class="{esc(cls)}" id="fig-{esc(fig["name"])}"><a href="{esc(fig["url"])}">'
        f'<img src="{esc(fig["url"])}" width="{w}" height="{h}" alt="{esc(fig["title"])}"'
        f'{"" if eager else " loading=lazy"} decoding="async"></a>'
        f"<figcaption>{esc(fig['title'])}</figcaption></figure>"
    )


def layout(title: str, crumbs: list[tuple[str, str | None]], body: str, where: str = "") -> str:
    trail = '<span class="sep">›</span>'.join(link(u, t) if u else f"<span>{esc(t)}</span>" for t, u in crumbs)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · MAP navigator</title>"
        '<link rel="stylesheet" href="/static/nav.css"><script src="/static/nav.js" defer></script>'
        "</head><body>"
        f'<header class="top"><a class="brand" href="/">MAP navigator</a><nav>{trail}</nav>'
        f'<span class="db" title="database and schema prefix">{esc(where)}</span></header>'
        f"<main>{body}</main>"
        '<footer>read-only view of the MAP pipeline database · JSON of every table under <a href="/api/subjects">/api</a></footer>'
        "</body></html>"
    )


def error_page(status: int, message: str, where: str = "") -> str:
    titles = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 500: "Server error"}
    title = titles.get(status, "Error")
    body = (
        f'<div class="error"><div class="code">{status}</div><h1>{esc(title)}</h1>'
        f'<p>{esc(message)}</p><p><a href="/">Back to the subjects</a></p></div>'
    )
    return layout(f"{status} {title}", [("Subjects", "/")], body, where)


# --- pages ---------------------------------------------------------------------------------------


def _filter_form(table_id: str, controls: str, placeholder: str) -> str:
    return (
        f'<form class="filters" data-table="{esc(table_id)}" role="search">'
        f'<label>filter<input type="search" data-filter="text" name="q" placeholder="{esc(placeholder)}"'
        f' aria-label="filter the table"></label>{controls}'
        '<button type="reset">reset</button><span class="count"></span></form>'
    )


def subjects_page(rows: list[dict], where: str) -> str:
    n_sessions = sum(r["sessions"] for r in rows)
    body = [
        "<h1>Subjects</h1>",
        f'<p class="sub">{len(rows)} subjects, {n_sessions} sessions. Click a subject for its sessions.</p>',
        _filter_form("subjects", "", "water-restriction id, sex, date…"),
        '<div class="tablewrap"><table class="data sortable" id="subjects"><thead><tr>',
        th("Water restriction", "h2o"),
        th("Subject id", "subject_id", True),
        th("Sex", "sex"),
        th("Date of birth", "dob"),
        th("Sessions", "sessions", True),
        th("Last session", "last"),
        "</tr></thead><tbody>",
    ]
    for r in rows:
        label = r["h2o"] if r["h2o"] is not None else f"subject {r['subject_id']}"
        body.append(
            f"<tr><td>{link(r['url'], label)}</td>"
            + td_id(r["subject_id"])
            + td_text(r["sex"])
            + td_text(r["date_of_birth"])
            + td_num(r["sessions"], 0)
            + td_text(r["last_session"])
            + "</tr>"
        )
    if not rows:
        body.append('<tr><td colspan="6" class="none">No subjects in this database.</td></tr>')
    body.append("</tbody></table></div>")
    return layout("Subjects", [("Subjects", None)], "".join(body), where)


def _badges(loaded: dict) -> str:
    return "".join(
        f'<span class="badge {esc(name)}{" on" if on else ""}" title="{esc(BADGES[name])}{"" if on else ": not yet"}">'
        f"{esc(name)}</span>"
        for name, on in loaded.items()
    )


def subject_page(d: dict, where: str) -> str:
    s, rows = d["subject"], d["sessions"]
    facts = [f"subject {s['subject_id']}"]
    if s.get("sex"):
        facts.append({"M": "male", "F": "female"}.get(s["sex"], s["sex"]))
    if s.get("date_of_birth"):
        facts.append(f"born {s['date_of_birth']}")
    body = [
        f"<h1>{esc(s['h2o'])}</h1>",
        f'<p class="sub">{esc(" · ".join(facts))} · {len(rows)} sessions</p>',
        _filter_form("sessions", "", "date, rig, task…"),
        '<div class="tablewrap"><table class="data sortable" id="sessions"><thead><tr>',
        th("Session", "session", True),
        th("Date / time", "datetime"),
        th("Rig", "rig"),
        th("Task", "task"),
        th("Trials", "trials", True),
        th("Performance", "performance", True, "hits / (hits + misses)"),
        th("Probes", "probes", True),
        th("Units", "units", True),
        th("Loaded", "loaded"),
        "</tr></thead><tbody>",
    ]
    for r in rows:
        body.append(
            f'<tr><td data-v="{r["session"]}">{link(r["url"], r["session"])}</td>'
            + f"<td>{link(r['url'], when(r['datetime']))}</td>"
            + td_text(r["rig"])
            + td_text(r["task"])
            + td_num(r["trials"], 0)
            + (
                f'<td data-v="{r["performance"]:.6g}" title="{r["hits"]} hits, {r["misses"]} misses">'
                f"{esc(pct(r['performance']))}</td>"
                if r["performance"] is not None
                else '<td data-v="">—</td>'
            )
            + td_num(r["probes"], 0)
            + td_num(r["units"], 0)
            + f"<td>{_badges(r['loaded'])}</td></tr>"
        )
    if not rows:
        body.append('<tr><td colspan="9" class="none">No sessions yet.</td></tr>')
    body.append("</tbody></table></div>")
    body.append(
        '<ul class="legend note">'
        + "".join(f'<li><span class="badge on {esc(k)}">{esc(k)}</span>{esc(v)}</li>' for k, v in BADGES.items())
        + "</ul>"
    )
    return layout(s["h2o"], [("Subjects", "/"), (s["h2o"], None)], "".join(body), where)


def _probe_table(probes: list[dict]) -> str:
    if not probes:
        return '<p class="note">No probe recorded in this session.</p>'
    out = [
        '<div class="tablewrap"><table class="data sortable" id="probes"><thead><tr>',
        th("Probe", "probe", True),
        th("Type", "type"),
        th("Serial", "serial"),
        th("Sorting", "method"),
        th("Units", "units", True),
        th("Good", "good", True, "unit_quality = good"),
        th("Passing", "passing", True, "units passing their region's criteria"),
        th("AP / ML / depth (µm)", "location"),
        th("Recorded regions", "regions"),
        th("Histology", "histology"),
        "</tr></thead><tbody>",
    ]
    for p in probes:
        loc = p["location"]
        where = f"{num(loc['ap_location'], 0)} / {num(loc['ml_location'], 0)} / {num(loc['depth'], 0)}" if loc else None
        out.append(
            f'<tr><td data-v="{p["insertion_number"]}">{link(p["url"], p["insertion_number"])}</td>'
            + td_text(p["probe_type"])
            + td_text(p["probe"])
            + td_text(p["clustering_method"])
            + td_num(p["units"], 0)
            + td_num(p["good_units"], 0)
            + td_num(p["passing_units"], 0)
            + td_text(where)
            + td_text(", ".join(p["regions"]) or None)
            + yes_no(p["histology"])
            + "</tr>"
        )
    out.append("</tbody></table></div>")
    return "".join(out)


def session_page(d: dict, trials: dict, where: str) -> str:
    s, subj = d["session"], d["subject"]
    figs = {f["name"]: f for f in d["figures"]}
    facts = [when(s["datetime"]) or s["date"], s["rig"], ", ".join(s["tasks"]) or None]
    if s["task_protocols"]:
        facts.append("protocol " + ", ".join(str(p) for p in s["task_protocols"]))
    if s["experimenter"]:
        facts.append(f"by {s['experimenter']}")
    body = [
        f"<h1>{esc(subj['h2o'])} · session {s['session']}</h1>",
        f'<p class="sub">{esc(" · ".join(str(f) for f in facts if f))}</p>',
        '<div class="stats">',
        stat(num(s["trials"], 0), "trials"),
        stat(num(s["hits"], 0), "hits"),
        stat(num(s["misses"], 0), "misses"),
        stat(num(s["ignored"], 0), "ignored"),
        stat(pct(s["performance"]), "performance (hit / hit+miss)"),
        stat(num(s["early_licks"], 0), "early licks"),
        stat(num(s["photostim_trials"], 0), "photostim trials"),
        stat(num(len(d["probes"]), 0), "probes"),
        "</div>",
    ]
    if "performance" in figs or "foraging" in figs:
        body.append("<h2>Behaviour</h2>")
        for name in ("performance", "foraging"):
            if name in figs:
                body.append(f'<div class="figs">{figure(figs[name], cls="wide main", eager=True)}</div>')
    body.append("<h2>Probes</h2>" + _probe_table(d["probes"]))
    body.append("<h2>Photostimulation</h2>")
    summary = d["photostim"]["summary"]
    if summary:
        body.append(
            '<div class="grid2"><div class="tablewrap"><table class="data" id="photostim"><thead><tr>'
            "<th>Stimulation</th><th class=n>Trials</th><th class=n>Correct</th><th class=n>Left trials correct</th>"
            "<th class=n>Right trials correct</th><th class=n>Mean power</th></tr></thead><tbody>"
        )
        for r in summary:
            body.append(
                f"<tr>{td_text(r['condition'])}{td_num(r['trials'], 0)}"
                f'<td class="n">{esc(pct(r["correct"]))}</td>'
                f'<td class="n">{esc(pct(r["left_correct"]))} <span class="note">({r["left_trials"]})</span></td>'
                f'<td class="n">{esc(pct(r["right_correct"]))} <span class="note">({r["right_trials"]})</span></td>'
                f"{td_num(r['mean_power_mw'], 1, ' mW')}</tr>"
            )
        body.append("</tbody></table></div>")
        if "photostim_effect" in figs:
            body.append(figure(figs["photostim_effect"], "photostim_effect_session"))
        body.append("</div>")
    else:
        body.append('<p class="note">No photostimulation in this session.</p>')
    body.append(_trials_section(d, trials))
    crumbs = [("Subjects", "/"), (subj["h2o"], subj["url"]), (f"session {s['session']}", None)]
    return layout(f"{subj['h2o']} session {s['session']}", crumbs, "".join(body), where)


def _trials_section(d: dict, t: dict) -> str:
    url = d["session"]["url"]
    page, pages = t["page"], t["pages"]
    first = (page - 1) * TRIALS_PER_PAGE + 1
    last = first + len(t["trials"]) - 1
    nav = [f"<span>trials {first}–{last} of {t['total']} (page {page} of {pages})</span>"]
    if page > 1:
        nav.insert(0, link(f"{url}?page={page - 1}#trials", "← previous"))
    if page < pages:
        nav.append(link(f"{url}?page={page + 1}#trials", "next →"))
    pager = f'<div class="pager">{" ".join(nav)}</div>'
    out = [
        f'<h2 id="trials">Trials</h2>{pager}',
        '<div class="tablewrap"><table class="data sortable" id="trial-table"><thead><tr>',
        th("Trial", "trial", True),
        th("Start (s)", "start", True),
        th("Duration (s)", "duration", True),
        th("Go cue (s)", "go", True, "from the trial start"),
        th("Instruction", "instruction"),
        th("Outcome", "outcome"),
        th("Early lick", "early"),
        th("Auto water", "auto"),
        th("Free water", "free"),
        th("Protocol", "protocol", True),
        th("Photostimulation", "stim"),
        "</tr></thead><tbody>",
    ]
    n0, n2, text, tags = num_cell(0), num_cell(2), memo_cell(), {}  # the same cells, built faster
    for r in t["trials"]:
        outcome = r["outcome"]
        tag = tags.get(outcome)
        if tag is None:
            tag = tags[outcome] = td_tag(outcome)
        out.append(
            "<tr>"
            + n0(r["trial"])
            + n2(r["start_time"])
            + n2(r["duration"])
            + n2(r["go_time"])
            + text(r["instruction"])
            + tag
            + text(r["early_lick"])
            + flag(r["auto_water"])
            + flag(r["free_water"])
            + n0(r["task_protocol"])
            + text(r["photostim"])
            + "</tr>"
        )
    out.append(f"</tbody></table></div>{pager}")
    return "".join(out)


def _units_filters(units) -> str:
    def options(key, label):
        values = sorted({str(v) for v in set(units.column(key)) if v is not None})
        opts = '<option value="">any</option>' + "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        return f'<label>{esc(label)}<select data-filter="equals" data-key="{esc(key)}" name="{esc(key)}">{opts}</select></label>'

    passing = (
        '<label>passes criteria<select data-filter="equals" data-key="passing" name="passing">'
        '<option value="">any</option><option value="yes">yes</option><option value="no">no</option></select></label>'
    )
    minimum = "".join(
        f'<label>{esc(label)}<input type="number" step="any" min="0" data-filter="min" data-key="{key}" name="min_{key}"'
        f' placeholder="min"></label>'
        for key, label in (("firing_rate", "rate ≥ (Hz)"), ("amplitude", "amplitude ≥ (µV)"))
    )
    return (
        options("quality", "quality")
        + options("region", "region")
        + options("cell_type", "cell type")
        + options("selectivity", "selectivity")
        + passing
        + minimum
    )


def _unit_links(units) -> list[bytes]:
    """The first cell of each row: the unit id, linked (relative to the probe's page)."""
    ids = units.column("unit")
    if set(map(type, ids)) == _INT:  # nothing to escape in an integer
        tail = esc(units.base.rsplit("/probe/", 1)[1]).replace("%", "%%").encode()
        link = b'<tr><td data-v="%d"><a href="' + tail + b'/unit/%d">%d</a></td>'
        return list(map(link.__mod__, zip(ids, ids, ids)))
    return [
        f'<tr><td data-v="{u}"><a href="{esc(url.rsplit("/probe/", 1)[1])}">{u}</a></td>'.encode()
        for u, url in zip(ids, units.column("url"))
    ]


def _unit_table(units) -> tuple[str, bytes, str]:
    """The unit table of a :class:`~pipeline.navigator.data.UnitTable`, written column by column:
    (what comes before its rows, the rows in UTF-8, what comes after)."""
    out = [
        _filter_form("units", _units_filters(units), "unit id, region, type…"),
        f'<div class="tablewrap"><table class="data sortable{" partial" if len(units) > 60 else ""}" id="units"><thead><tr>',
        th("Unit", "unit", True),
        th("Quality", "quality"),
        th("Depth (µm)", "depth", True, "position along the probe from the tip (unit_posy, else its peak electrode)"),
        th("Region", "region", title="CCF region at the unit's peak electrode (histology)"),
        th("Rate (Hz)", "firing_rate", True, "spikes in the probe's trials / their duration"),
        th("Amplitude (µV)", "amplitude", True),
        th("SNR", "snr", True),
        th("ISI violation", "isi_violation", True),
        th("Presence ratio", "presence_ratio", True),
        th("Amp. cutoff", "amplitude_cutoff", True),
        th("Drift", "drift", True),
        th("Cell type", "cell_type"),
        th("Selectivity", "selectivity"),
        th("Passes", "passing", title="passes its region's quality criteria"),
        th("Spikes", "n_spikes", True),
        "</tr></thead><tbody>",
    ]
    col = units.column
    passing = col("passing")
    try:
        passing = list(map(_YES_NO.__getitem__, passing))
    except (KeyError, TypeError):
        passing = [_YES_NO[None if v is None else bool(v)] for v in passing]
    cells = (  # (join_rows: a column with the same cell in every row is written as one text)
        _unit_links(units),
        _TEXTS(col("quality")),
        _C0(col("depth")),
        _TEXTS(col("region")),
        _C2(col("firing_rate")),
        _C0(col("amplitude")),
        _C1(col("snr")),
        _C3(col("isi_violation")),
        _C2(col("presence_ratio")),
        _C3(col("amplitude_cutoff")),
        _C2(col("drift")),
        _TEXTS(col("cell_type")),
        _TAGS(col("selectivity")),
        passing,
        _C0(col("n_spikes")),
        b"</tr>",
    )
    rows = join_rows(list(cells), b"")
    if not units:
        rows = b'<tr><td colspan="15" class="none">No units in this sorting.</td></tr>'
    return "".join(out), rows, "</tbody></table></div>"


def _location(p: dict) -> str:
    loc = p["location"]
    if not loc:
        return '<p class="note">No insertion location loaded (load-insertion-location).</p>'
    angles = ", ".join(f"{k} {num(loc[k], 0)}°" for k in ("theta", "phi", "beta") if loc.get(k) is not None)
    return kv(
        [
            ("reference", loc["skull_reference"], False),
            ("AP", num(loc["ap_location"], 0, " µm"), False),
            (
                "ML",
                num(loc["ml_location"], 0, " µm") + (" (right)" if (loc["ml_location"] or 0) > 0 else " (left)"),
                False,
            ),
            ("depth", num(loc["depth"], 0, " µm"), False),
            ("angles", angles or None, False),
            ("recorded regions", ", ".join(p["regions"]) or None, False),
        ]
    )


def _track_card(track: dict) -> str:
    if not track["regions"] and not track["points"]:
        return '<p class="note">No histology for this probe yet (ingest-histology).</p>'
    out = []
    if track["regions"]:
        out.append(
            '<table class="data" id="track"><thead><tr><th>Region</th><th>Name</th><th class=n>Depth on probe (µm)</th>'
            "<th class=n>Electrodes</th></tr></thead><tbody>"
        )
        for r in reversed(track["regions"]):  # surface first
            out.append(
                f"<tr>{td_text(r['acronym'])}{td_text(r['name'])}"
                f'<td class="n">{esc(num(r["depth_from"], 0))}–{esc(num(r["depth_to"], 0))}</td>'
                f"{td_num(r['electrodes'], 0)}</tr>"
            )
        out.append("</tbody></table>")
    notes = []
    if track["annotation_version"]:
        notes.append(f"electrode positions in {track['annotation_version']}, surface first")
    if track["points"]:
        notes.append(
            f"labelled track: {track['points']} points" + (f", dye {track['dye']}" if track.get("dye") else "")
        )
    out.append(f'<p class="note">{esc("; ".join(notes))}</p>')
    return "".join(out)


def probe_page(d: dict, units, where: str) -> bytes:
    """The page of a probe, UTF-8 (``units``: its :class:`~pipeline.navigator.data.UnitTable`)."""
    p, s, subj = d["probe"], d["session"], d["subject"]
    table_head, rows, table_tail = _unit_table(units)
    q = d["quality"]
    n_pass = sum(1 for v in units.column("passing") if v)
    body = [
        f"<h1>{esc(subj['h2o'])} · session {s['session']} · probe {p['insertion_number']}</h1>",
        f'<p class="sub">{esc(" · ".join(str(x) for x in (s["datetime"], p["probe_type"], p["probe"], p["clustering_method"]) if x))}</p>',
        '<div class="stats">',
        stat(num(len(units), 0), "units"),
        stat(num(p["good_units"], 0), "good"),
        stat(num(n_pass, 0), "pass criteria" + (f" ({d['criteria_region']})" if d["criteria_region"] else "")),
        stat(num(sum(1 for v in units.column("selectivity") if v not in (None, "non-selective")), 0), "selective"),
        stat(num(sum(units.column("n_spikes")), 0), "spikes"),
        "</div>",
        '<div class="grid2">',
        f'<div class="card"><h3>Insertion</h3>{_location(p)}</div>',
        '<div class="card"><h3>Sorting</h3>'
        + kv(
            [
                ("method", p["clustering_method"], False),
                ("sorted", p["clustering_time"], False),
                ("curated", None if p["manual_curation"] is None else ("yes" if p["manual_curation"] else "no"), False),
                ("sampling rate", num(p["sampling_rate"], 0, " Hz"), False),
                ("electrodes", p["electrode_config"], False),
                ("drift noted", None if not q else ("yes" if q.get("drift_presence") else "no"), False),
                ("alignment confident", None if not q else ("yes" if q.get("alignment_confidence") else "no"), False),
                ("comment", (q or {}).get("insertion_comment") or None, False),
            ]
        )
        + "</div>",
        f'<div class="card"><h3>Track</h3>{_track_card(d["track"])}</div>',
        "</div>",
        f'<h2 id="unit-list">Units</h2>{table_head}',
        _ROWS,
        table_tail,
        '<h2 id="figures">Figures</h2>',
    ]
    if d["figures"]:
        body.append('<div class="figs">' + "".join(figure(f) for f in d["figures"]) + "</div>")
    else:
        body.append('<p class="note">No figures for this probe.</p>')
    crumbs = [
        ("Subjects", "/"),
        (subj["h2o"], subj["url"]),
        (f"session {s['session']}", s["url"]),
        (f"probe {p['insertion_number']}", None),
    ]
    page = layout(f"{subj['h2o']} session {s['session']} probe {p['insertion_number']}", crumbs, "".join(body), where)
    before, _, after = page.partition(_ROWS)
    return before.encode() + rows + after.encode()


def unit_page(d: dict, condition: str | None, where: str) -> str:
    u, p, s, subj = d["unit"], d["probe"], d["session"], d["subject"]
    m, w = d["metrics"], d["waveform_metrics"]
    tags = [u["quality"], u["cell_type"], u["selectivity"]]
    if u["passing"] is not None:
        tags.append("passes criteria" if u["passing"] else "fails criteria")
    region = d["ccf"]["acronym"] if d["ccf"] else None
    if region:
        tags.append(region)

    def neighbour(n, arrow_left: bool):
        if n is None:
            return "<span></span>"
        text = f"unit {n['unit']} (depth {num(n['depth'], 0)} µm)"
        return link(n["url"], f"← {text}" if arrow_left else f"{text} →")

    body = [
        f"<h1>Unit {u['unit']}</h1>",
        f'<p class="sub">{esc(subj["h2o"])} · session {s["session"]} ({esc(s["date"])}) · probe {p["insertion_number"]}'
        f" · {esc(' · '.join(t for t in tags if t))}</p>",
        f'<div class="neighbours">{neighbour(d["below"], True)}<span class="note">neighbours by depth on the probe</span>'
        f"{neighbour(d['above'], False)}</div>",
        '<div class="stats">',
        stat(num(u["firing_rate"], 2, " Hz"), "firing rate"),
        stat(num(u["amplitude"], 0, " µV"), "amplitude"),
        stat(num(u["depth"], 0, " µm"), "depth on probe"),
        stat(num(u["isi_violation"], 3), "ISI violation"),
        stat(num(u["n_spikes"], 0), "spikes"),
        "</div>",
    ]
    figs = {f["name"]: f for f in d["figures"]}
    metrics = [
        ("quality", u["quality"], False),
        ("peak electrode", u["electrode"], False),
        ("x / depth on probe", f"{num(u['x'], 0)} / {num(u['depth'], 0)} µm", False),
        ("spikes", num(u["n_spikes"], 0), False),
        ("firing rate", num(u["firing_rate"], 2, " Hz"), False),
        ("amplitude", num(u["amplitude"], 1, " µV"), False),
        ("SNR", num(u["snr"], 2), False),
        ("ISI violation", num(u["isi_violation"], 4), False),
        ("drift metric", num(u["drift"], 3), False),
        ("cell type", u["cell_type"], False),
        ("trough to peak", num(u["trough_to_peak"], 3, " ms"), False),
        (
            "criteria",
            None
            if u["passing"] is None
            else ("passes" if u["passing"] else "fails")
            + (f" ({u['criteria_region']})" if u["criteria_region"] else ""),
            False,
        ),
        ("selectivity", u["selectivity"], False),
    ]
    sorter = [
        (k.replace("_", " "), num(v, 3) if isinstance(v, float) else v, False)
        for k, v in {**m, **w}.items()
        if v is not None
    ]
    sorter += [(f"label ({lab['source']})", lab["label"], False) for lab in d["labels"]]
    c = d["ccf"]
    ccf = (
        kv(
            [
                ("region", f"{c['acronym'] or ''} {c['region_name'] or ''}".strip() or None, False),
                ("ML (x)", num(c["x"], 0, " µm"), False),
                ("DV (y)", num(c["y"], 0, " µm"), False),
                ("AP (z)", num(c["z"], 0, " µm"), False),
                ("annotation", c["annotation_version"], False),
            ]
        )
        if c
        else '<p class="note">No CCF position (no histology for this probe, or no peak electrode).</p>'
    )
    body.append('<div class="unit-top">')
    body.append(figure(figs["unit"], eager=True) if "unit" in figs else "<div></div>")
    body.append(
        f'<div class="side"><div class="card"><h3>Metrics</h3>{kv(metrics)}</div>'
        f'<div class="card"><h3>CCF position</h3>{ccf}</div></div></div>'
    )
    body.append('<div class="grid2">')
    body.append(
        '<div class="card"><h3>Sorter metrics</h3>'
        + (
            kv(sorter, "two") + '<p class="note">as the sorter computed them (metrics.csv, labels)</p>'
            if sorter
            else ""
        )
        + ("" if sorter else '<p class="note">None loaded.</p>')
        + "</div>"
    )
    if d["periods"]:
        rows = "".join(
            f"<tr>{td_text(r['period'])}<td><span class='tag {esc(r['selectivity'])}'>{esc(r['selectivity'])}</span></td>"
            f"{td_num(r['ipsi_rate'], 2)}{td_num(r['contra_rate'], 2)}{td_num(r['p_value'], 4)}</tr>"
            for r in d["periods"]
        )
        body.append(
            '<div class="card"><h3>Selectivity by period</h3><table class="data" id="periods"><thead><tr><th>Period</th>'
            "<th>Selectivity</th><th class=n>Ipsi (Hz)</th><th class=n>Contra (Hz)</th><th class=n>p</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
        )
    body.append("</div>")
    if d["conditions"]:
        options = "".join(
            f'<option value="{esc(cnd["name"])}"{" selected" if cnd["name"] == condition else ""}>'
            f"{esc(cnd['name'].replace('_', ' '))} ({cnd['trials']} trials)</option>"
            for cnd in d["conditions"]
        )
        src = f"{u['url']}/figure/condition.png?condition={quote(condition or '')}"
        body.append(
            '<h2 id="condition">Raster and PSTH by condition</h2>'
            f'<form class="filters" method="get" action="{esc(u["url"])}#condition"><label>trial condition'
            f'<select name="condition">{options}</select></label><button type="submit">show</button></form>'
            + figure(
                dict(
                    name="condition",
                    url=src,
                    title=f"{(condition or '').replace('_', ' ')}: go-aligned raster and PSTH",
                ),
                cls="condition",
            )
        )
    crumbs = [
        ("Subjects", "/"),
        (subj["h2o"], subj["url"]),
        (f"session {s['session']}", s["url"]),
        (f"probe {p['insertion_number']}", p["url"]),
        (f"unit {u['unit']}", None),
    ]
    return layout(
        f"unit {u['unit']} · {subj['h2o']} session {s['session']} probe {p['insertion_number']}",
        crumbs,
        "".join(body),
        where,
    )
