"""What the navigator shows: one function per page (and JSON endpoint), returning plain dicts and
lists of JSON types (str, int, float, bool, None), so the HTML pages and the JSON API show the
same numbers. A probe's units come as a :class:`UnitTable` (the same values column by column:
the probe page and its JSON write hundreds of rows from the columns, without a dict per unit).

Only reads: every query is one of the prebuilt SELECTs of :mod:`pipeline.navigator.sql`, sent
straight through DataJoint's connection (the server refuses anything else while it answers a
request, see :mod:`pipeline.navigator.guard`). No spike array is loaded here; the figures do that
(:mod:`pipeline.navigator.plots`). Schema modules whose schema does not exist on the database
(e.g. no ``report`` or ``histology`` yet) are treated as empty.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections import Counter
from itertools import chain, repeat
from json.encoder import encode_basestring as _json_str  # json.dumps' own, for ensure_ascii=False

import numpy as np

from .. import db
from .sql import Statements, have, statements

TRIALS_PER_PAGE = 100
MAX_ID = 2**31 - 1

SESSION_FIGURES = {
    "performance": "Performance over trials",
    "photostim_effect": "Photostimulation effect on performance",
    "foraging": "Choices, rewards and block probabilities",
}
PROBE_FIGURES = {
    "clustering_quality": "Clustering quality",
    "unit_characteristics": "Units on the probe",
    "group_psth": "Group PSTH of selective units",
    "photostim_effect": "Photostimulation effect on units",
    "drift_map": "Drift map",
    "coronal_slice": "Track in a coronal slice (CCF)",
}
UNIT_FIGURES = {"unit": "Unit summary", "condition": "Raster and PSTH of a condition"}
BADGES = {
    "behavior": "behaviour trials loaded (ingest-behavior / ingest-foraging)",
    "tracking": "video tracking loaded (ingest-tracking)",
    "ephys": "a probe's spike sorting loaded (ingest-ephys)",
    "histology": "electrode CCF positions or a labelled track loaded (ingest-histology)",
    "computed": "PSTHs computed (populate-psth: psth tables)",
}


class NotFound(LookupError):
    """The URL names something that is not in the database (HTTP 404)."""


class BadRequest(ValueError):
    """The URL is malformed (HTTP 400)."""


# --- helpers -----------------------------------------------------------------------------------


def plain(v):
    """A database value as a JSON value (NaN -> None, dates as ISO text)."""
    t = type(v)
    if t is str or v is None or t is int:
        return v
    if t is float:
        return v if math.isfinite(v) else None
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating | decimal.Decimal):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ", timespec="seconds")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _mod(name: str):
    return db.import_module(name)


def _sql() -> Statements:
    return statements()


def flag(v) -> bool | None:
    """A boolean column (MySQL returns 0/1)."""
    return None if v is None else bool(v)


def _fraction(hits, misses):
    hits, misses = int(hits or 0), int(misses or 0)
    return hits / (hits + misses) if hits + misses else None


def subject_url(h2o: str) -> str:
    from urllib.parse import quote

    return f"/subject/{quote(h2o, safe='')}"


def session_url(h2o: str, session: int) -> str:
    return f"{subject_url(h2o)}/session/{int(session)}"


def probe_url(h2o: str, session: int, insertion: int) -> str:
    return f"{session_url(h2o, session)}/probe/{int(insertion)}"


def unit_url(h2o: str, session: int, insertion: int, unit: int) -> str:
    return f"{probe_url(h2o, session, insertion)}/unit/{int(unit)}"


# --- subjects ----------------------------------------------------------------------------------


def subjects() -> list[dict]:
    """Every subject: water-restriction id (h2o), sex, date of birth, sessions, last session date."""
    out = []
    for i, s, d, label, n, last in _sql().run("subjects"):
        i = int(i)
        out.append(
            dict(
                h2o=label,
                subject_id=i,
                sex=plain(s),
                date_of_birth=plain(d),
                sessions=int(n or 0),
                last_session=plain(last),
                url=subject_url(label if label is not None else str(i)),
            )
        )
    out.sort(key=lambda r: (r["h2o"] is None, (r["h2o"] or "").lower(), r["subject_id"]))
    return out


def _subject_session(h2o: str, session: int) -> tuple[dict, tuple]:
    """The subject a URL names (by water-restriction id, or by subject id for a subject without
    one) and the columns of its session ``session`` (all None when it has none); one query."""
    sql = _sql()
    found = sql.run("subject_session", int(session), h2o)
    if not found and h2o.isdigit() and int(h2o) <= MAX_ID:  # a subject without a water restriction
        found = sql.run("subject_session_by_id", int(session), int(h2o))
    if not found:
        raise NotFound(f"no subject with water-restriction id {h2o!r}")
    sid, sex, dob, username, *session_cols = found[0]
    subject = dict(
        h2o=h2o,
        subject_id=int(sid),
        sex=plain(sex),
        date_of_birth=plain(dob),
        username=plain(username),
        url=subject_url(h2o),
    )
    return subject, tuple(session_cols)


def resolve_subject(h2o: str) -> dict:
    """The subject a URL names: by water-restriction id, or by subject id for a subject without one."""
    return _subject_session(h2o, 0)[0]


def subject_sessions(h2o: str) -> dict:
    """A subject and its sessions: date/time, rig, task, trials, performance, probes, units, badges."""
    subject = resolve_subject(h2o)
    sid = subject["subject_id"]
    out = []
    base = subject_url(h2o)
    for s, date, when, user, rig, trials, t0, t1, hits, misses, n_beh, probes, units, trk, hist, comp in _sql().run(
        "sessions", sid, sid
    ):
        s = int(s)
        tasks = ([plain(t0)] if t0 == t1 else [plain(t0), plain(t1)]) if n_beh else []
        hits, misses = int(hits or 0), int(misses or 0)
        out.append(
            dict(
                session=s,
                date=plain(date),
                datetime=plain(when),
                rig=plain(rig),
                experimenter=plain(user),
                task=", ".join(t for t in tasks if t) or None,
                trials=int(trials),
                hits=hits,
                misses=misses,
                performance=_fraction(hits, misses),
                probes=int(probes),
                units=int(units),
                loaded=dict(
                    behavior=bool(n_beh),
                    tracking=bool(trk),
                    ephys=bool(probes),
                    histology=bool(hist),
                    computed=bool(comp),
                ),
                url=f"{base}/session/{s}",
            )
        )
    return dict(subject=subject, sessions=out)


# --- a session ---------------------------------------------------------------------------------


def _session_row(h2o: str, session: int) -> tuple[dict, dict]:
    subject, cols = _subject_session(h2o, session)
    if cols[0] is None:
        raise NotFound(f"{h2o} has no session {session}")
    _, date, when, user, rig = cols
    key = dict(subject_id=subject["subject_id"], session=int(session))
    return subject, dict(session_date=date, session_datetime=when, username=user, rig=rig, **key)


def _stim_labels(key: dict) -> dict[int, str]:
    """photo_stim -> 'ALM left (1.2 s)': the stimulated area, side (ML sign) and duration."""
    stims: dict[int, tuple] = {}
    for ps, dur, area, ml in _sql().run("photostims", key["subject_id"], key["session"]):
        stims.setdefault(int(ps), (dur, []))[1].extend([] if area is None else [(area, float(ml))])
    out = {}
    for ps, (dur, mine) in stims.items():
        area = ", ".join(sorted({str(a) for a, _ in mine})) or "?"
        mls = [ml for _, ml in mine]
        side = (
            "both"
            if any(m < 0 for m in mls) and any(m > 0 for m in mls)
            else ("left" if mls and all(m < 0 for m in mls) else ("right" if mls and all(m > 0 for m in mls) else ""))
        )
        out[ps] = f"{area} {side} ({float(dur):g} s)".replace("  ", " ")
    return out


def _photostim_summary(key: dict, labels: dict[int, str], events: list[tuple]) -> dict:
    """The stimulated trials, and per stimulation condition (control first) the trials and
    proportion correct per instruction (``events``: the session's (trial, photo_stim, power))."""
    if not events:
        return dict(trials=0, summary=[])
    found = _sql().run("instructions", key["subject_id"], key["session"])
    first: dict[int, int] = {}
    power: dict[int, list[float]] = {}
    for t, ps, p in events:
        first.setdefault(int(t), int(ps))
        power.setdefault(int(ps), []).append(float(p))
    # one pass over the trials: counts per (condition, instruction, outcome)
    sizes: dict[str, int] = {"control": 0}  # control first, then in order of appearance
    counts: Counter = Counter()
    for t, instruction, outcome in found:
        ps = first.get(int(t))
        name = "control" if ps is None else labels.get(ps, f"photostim {ps}")
        sizes[name] = sizes.get(name, 0) + 1
        counts[name, instruction, outcome] += 1
    by_outcome: Counter = Counter()
    for (name, _, outcome), n in counts.items():
        by_outcome[name, outcome] += n
    out = []
    for name, n_trials in sizes.items():
        row = dict(condition=name, trials=n_trials)
        for side in ("left", "right"):
            hits, misses = counts[name, side, "hit"], counts[name, side, "miss"]
            row[f"{side}_trials"] = hits + misses
            row[f"{side}_correct"] = _fraction(hits, misses)
        row["correct"] = _fraction(by_outcome[name, "hit"], by_outcome[name, "miss"])
        ps = next((p for p, lab in labels.items() if lab == name), None)
        row["mean_power_mw"] = float(np.mean(power[ps])) if ps in power else None
        out.append(row)
    return dict(trials=len(first), summary=out)


_LOCATION = ("skull_reference", "ap_location", "ml_location", "depth", "theta", "phi", "beta")


def _probe_rows(key: dict, h2o: str, versions: dict | None = None) -> list[dict]:
    """The probes of a session (or one probe, when ``key`` has insertion_number); ``versions``, when
    given, gets insertion -> the CCF annotation version of its electrode positions (histology)."""
    if not have("ephys"):
        return []
    sql = _sql()
    if "insertion_number" in key:
        args = (key["subject_id"], key["session"], key["insertion_number"])
        ins, found = sql.run("probe", *args), sql.run("probe_regions", *args)
    else:
        args = (key["subject_id"], key["session"])
        ins, found = sql.run("probes", *args), sql.run("regions", *args)
    if not ins:
        return []
    regions: dict[int, list[str]] = {}
    hemispheres: dict[int, set] = {}
    for i, area, hemi in found:
        regions.setdefault(int(i), []).append(f"{area} ({hemi})")
        hemispheres.setdefault(int(i), set()).add(hemi)
    out = []
    base = session_url(h2o, key["session"])
    for r in ins:
        i = int(r[0])
        n, good, passing = r[9:12]
        loc = dict(zip(_LOCATION, map(plain, r[13:20]))) if r[12] is not None else None
        hemi = hemispheres.get(i, set())
        if versions is not None:
            versions[i] = r[20]
        if loc and loc["ml_location"] not in (None, 0):  # as psth.insertion_side
            side = "right" if loc["ml_location"] > 0 else "left"
        else:
            side = next(iter(hemi)) if len(hemi) == 1 and next(iter(hemi)) in ("left", "right") else None
        out.append(
            dict(
                insertion_number=i,
                probe=plain(r[1]),
                probe_type=plain(r[2]),
                electrode_config=plain(r[3]),
                clustering_method=plain(r[4]),
                clustering_time=plain(r[5]),
                manual_curation=flag(r[6]),
                quality_control=flag(r[7]),
                sampling_rate=plain(r[8]),
                units=int(n),
                good_units=int(good or 0),
                passing_units=int(passing) if passing is not None else None,
                location=loc,
                regions=regions.get(i, []),
                side=side,
                histology=r[20] is not None,
                url=f"{base}/probe/{i}",
            )
        )
    return out


def session_detail(h2o: str, session: int, page: int | None = None) -> dict:
    """A session: when, where, behaviour summary, photostimulation summary, probes, figures (and
    a page of its trials, when ``page`` is given)."""
    from ..psth import TASK

    subject, row = _session_row(h2o, session)
    key = dict(subject_id=row["subject_id"], session=row["session"])
    sql = _sql()
    args = (key["subject_id"], key["session"])
    trials, t0, t1, hits, misses, ignored, early, n_beh, foraging = sql.run("session_counts", *args, *args, *args)[0]
    tasks = ([plain(t0)] if t0 == t1 else [plain(t0), plain(t1)]) if n_beh else []
    hits, misses = int(hits or 0), int(misses or 0)
    protocols = sorted({int(p) for (p,) in sql.run("protocols", *args)})
    labels = _stim_labels(key)
    events = sql.run("photostim_events", *args)
    stim = _photostim_summary(key, labels, events)
    figures = (["performance", "photostim_effect"] if TASK in tasks else []) + (["foraging"] if foraging else [])
    url = session_url(h2o, key["session"])
    out = dict(
        subject=subject,
        session=dict(
            session=key["session"],
            date=plain(row["session_date"]),
            datetime=plain(row["session_datetime"]),
            rig=plain(row["rig"]),
            experimenter=plain(row["username"]),
            tasks=[t for t in tasks if t],
            task_protocols=protocols,
            trials=int(trials),
            hits=hits,
            misses=misses,
            ignored=int(ignored or 0),
            early_licks=int(early or 0),
            performance=_fraction(hits, misses),
            photostim_trials=stim["trials"],
            url=url,
        ),
        photostim=dict(settings=[dict(photo_stim=k, label=v) for k, v in labels.items()], summary=stim["summary"]),
        probes=_probe_rows(key, h2o),
        figures=[dict(name=n, title=SESSION_FIGURES[n], url=f"{url}/figure/{n}.png") for n in figures],
    )
    if page is not None:
        out["trials"] = _trials(key, h2o, int(trials), page, labels, events)
    return out


def available_session_figures(key: dict, tasks: list | None = None) -> list[str]:
    """The session figures that exist or can be drawn (the report's rules)."""
    from ..psth import TASK

    sql = _sql()
    args = (key["subject_id"], key["session"])
    _, t0, t1, *_, n_beh, foraging = sql.run("session_counts", *args, *args, *args)[0]
    if tasks is None:
        tasks = [t0, t1] if n_beh else []
    names = ["performance", "photostim_effect"] if TASK in tasks else []
    if foraging:
        names.append("foraging")
    return names


def session_trials(h2o: str, session: int, page: int = 1) -> dict:
    """One page of a session's trials (``TRIALS_PER_PAGE`` per page, in trial order)."""
    _, row = _session_row(h2o, session)
    key = dict(subject_id=row["subject_id"], session=row["session"])
    sql = _sql()
    args = (key["subject_id"], key["session"])
    total = int(sql.run("trial_count", *args)[0][0])
    return _trials(key, h2o, total, page, _stim_labels(key), sql.run("photostim_events", *args))


def _trials(key: dict, h2o: str, total: int, page: int, labels: dict[int, str], events: list[tuple]) -> dict:
    pages = max(1, math.ceil(total / TRIALS_PER_PAGE))
    if page > pages:
        raise NotFound(f"{h2o} session {key['session']} has {pages} page(s) of trials, not {page}")
    found = _sql().run("trials", key["subject_id"], key["session"], TRIALS_PER_PAGE, (page - 1) * TRIALS_PER_PAGE)
    out = []
    if found:
        first, last = int(found[0][0]), int(found[-1][0])
        stim: dict[int, list[str]] = {}
        for t, ps, p in events:
            if first <= t <= last:
                stim.setdefault(int(t), []).append(f"{labels.get(int(ps), ps)} {float(p):g} mW")
        args = (key["subject_id"], key["session"], first, last)
        beh = {int(r[0]): r[1:] for r in _sql().run("trial_behavior", *args)}
        go = {int(t): v for t, v in _sql().run("trial_go", *args)}
        none = (None,) * 7
        for t, a, b in found:
            t = int(t)
            task, protocol, instruction, early, outcome, auto, free = beh.get(t, none)
            out.append(
                dict(
                    trial=t,
                    start_time=plain(a),
                    duration=plain(float(b) - float(a)) if a is not None and b is not None else None,
                    task=plain(task),
                    task_protocol=plain(protocol),
                    instruction=plain(instruction),
                    outcome=plain(outcome),
                    early_lick=plain(early),
                    auto_water=flag(auto),
                    free_water=flag(free),
                    go_time=plain(go.get(t)),
                    photostim="; ".join(stim.get(t, [])) or None,
                )
            )
    return dict(page=page, pages=pages, per_page=TRIALS_PER_PAGE, total=total, trials=out)


# --- a probe -----------------------------------------------------------------------------------


def _probe_key(h2o: str, session: int, insertion: int) -> tuple[dict, dict, dict]:
    subject, row = _session_row(h2o, session)
    key = dict(subject_id=row["subject_id"], session=row["session"], insertion_number=int(insertion))
    versions: dict = {}
    probes = _probe_rows(key, h2o, versions)
    if not probes:
        raise NotFound(f"{h2o} session {session} has no probe {insertion}")
    return subject, row, dict(key=key, version=versions[key["insertion_number"]], **probes[0])


def probe_key(h2o: str, session: int, insertion: int) -> dict:
    """The primary key of a probe the URL names (NotFound if there is none); two cheap queries."""
    _, row = _session_row(h2o, session)
    key = dict(subject_id=row["subject_id"], session=row["session"], insertion_number=int(insertion))
    if not (have("ephys") and _sql().run("probe_exists", *key.values())):
        raise NotFound(f"{h2o} session {session} has no probe {insertion}")
    return key


#: probe type -> electrode -> (x, y), per binding: a lookup table, the same for the server's life
_xy_cache: dict = {}


def _electrode_xy(probe_type) -> dict[int, tuple[float, float]]:
    """electrode -> (x, y) on the probe (um) of a probe type."""
    if probe_type is None:
        return {}
    sql = _sql()
    ck = (id(sql), str(probe_type))
    got = _xy_cache.get(ck)
    if got is None:
        got = {int(e): (float(x), float(y)) for e, x, y in sql.run("probe_electrodes", str(probe_type))}
        if len(_xy_cache) > 64:
            _xy_cache.clear()
        _xy_cache[ck] = got
    return got


def _depths(found: list[tuple], xy: dict | None = None) -> dict:
    """unit -> (x, depth on the probe): unit_posx/unit_posy, else the peak electrode's x/y (as the
    report's figures place units). ``found``: rows of (unit, unit_posx, unit_posy, electrode,
    probe_type); ``xy``: the probe type's electrode positions if known."""
    if xy is None and any((px is None or py is None) and e is not None for _, px, py, e, _t in found):
        xy = _electrode_xy(next((t for *_, t in found if t is not None), None))
    out = {}
    for u, px, py, e, _t in found:
        if px is not None and py is not None:
            out[int(u)] = (plain(px), plain(py))
            continue
        fallback = (xy or {}).get(int(e), (None, None)) if e is not None else (None, None)
        out[int(u)] = (plain(px) if px is not None else fallback[0], plain(py) if py is not None else fallback[1])
    return out


def _placement(key: dict, version) -> dict | None:
    """The probe's electrodes in the CCF (histology): annotation version, electrode -> (region id,
    ccf x, y, z), and region id -> (acronym, name). None without histology (``version``: the
    annotation version of its ElectrodeCCFPosition, None when it has none)."""
    if version is None or not (have("histology") and have("ccf")):
        return None
    sql = _sql()
    positions = {
        int(e): (int(r), plain(x), plain(y), plain(z))
        for e, r, x, y, z in sql.run("placement", key["subject_id"], key["session"], key["insertion_number"])
    }
    ids = sorted({p[0] for p in positions.values() if p[0]})
    names = {}
    if ids:
        names = {int(r): (plain(a), plain(n)) for r, a, n in sql.region_names(version, ids)}
    return dict(version=plain(version), positions=positions, names=names)


def probe_units(h2o: str, session: int, insertion: int) -> dict:
    """Every unit of a probe with what the unit table shows (no spikes): ``{probe, units}``, the
    units as a :class:`UnitTable` (``.rows()``: the dicts; ``.json()``: their JSON text)."""
    _, _, probe = _probe_key(h2o, session, insertion)
    key = probe["key"]
    placement = _placement(key, probe["version"])
    return dict(probe=_public_probe(probe), units=_unit_rows(key, h2o, placement))


def _public_probe(probe: dict) -> dict:
    return {k: v for k, v in probe.items() if k not in ("key", "version")}


#: the unit table's columns (JSON keys of each unit, in order)
UNIT_KEYS = (
    "unit",
    "quality",
    "depth",
    "x",
    "region",
    "firing_rate",
    "amplitude",
    "snr",
    "isi_violation",
    "presence_ratio",
    "amplitude_cutoff",
    "drift",
    "cell_type",
    "selectivity",
    "passing",
    "n_spikes",
    "url",
)
_NONE_TYPE = type(None)
_AS_IS = frozenset({str, int, bool})
_BOOL = {None: None, True: True, False: False}


def json_column(col) -> list:
    """``[plain(v) for v in col]``: without a call per value when the column holds only text,
    integers, finite floats and None (what the drivers return for these tables)."""
    types = set(map(type, col))
    has_none = _NONE_TYPE in types
    types.discard(_NONE_TYPE)
    if types <= _AS_IS:
        return list(col)
    if len(types) == 1 and float in types:
        total = sum([v for v in col if v is not None] if has_none else col)
        if math.isfinite(total):  # no NaN or infinity (else the sum is not finite, or overflowed)
            return list(col)
    return [plain(v) for v in col]


#: JSON text of one value, exactly as the server's json.dumps writes it inside a document
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")).encode
_JSON_CONST = {None: "null", True: "true", False: "false"}


def json_texts(col: list) -> list[str]:
    """``[_JSON(v) for v in col]``, without a call per value for columns of one type."""
    types = set(map(type, col))
    has_none = _NONE_TYPE in types
    types.discard(_NONE_TYPE)
    if not types:
        return ["null"] * len(col)
    if len(types) == 1:
        t = types.pop()
        if t is str:
            memo = {v: _json_str(v) for v in set(col) if v is not None}
            memo[None] = "null"
            return list(map(memo.__getitem__, col))
        if t is bool:
            return list(map(_JSON_CONST.__getitem__, col))
        if t is int:
            return ["null" if v is None else int.__repr__(v) for v in col] if has_none else list(map(int.__repr__, col))
        if t is float and math.isfinite(sum([v for v in col if v is not None] if has_none else col)):
            values = set(col)
            if 2 * len(values) <= len(col):  # many repeated values: each distinct one written once
                memo = {v: "null" if v is None else float.__repr__(v) for v in values}
                if 0.0 not in memo:
                    return list(map(memo.__getitem__, col))
                # 0.0 and -0.0: one key, two texts
                return [memo[v] if v else "null" if v is None else float.__repr__(v) for v in col]
            if has_none:
                return ["null" if v is None else float.__repr__(v) for v in col]
            return list(map(float.__repr__, col))
    return list(map(_JSON, col))


def join_rows(items: list, empty):
    """The rows of a table joined: ``items`` are its pieces in row order, each either the same
    text in every row (a str or bytes) or a column (a list: one text per row; all of one length,
    at least one column); ``empty`` is "" or b"". A column with one text in every row counts as
    that text, and neighbouring texts are joined first: fewer pieces per row."""
    pieces = []
    for item in items:
        if isinstance(item, list):
            if not item or item.count(item[0]) != len(item):
                pieces.append(item)
                continue
            item = item[0]
        if pieces and not isinstance(pieces[-1], list):
            pieces[-1] += item
        else:
            pieces.append(item)
    columns = [p for p in pieces if isinstance(p, list)]
    if not columns:
        n = next(len(item) for item in items if isinstance(item, list))
        return pieces[0] * n if pieces else empty
    return empty.join(chain.from_iterable(zip(*(p if isinstance(p, list) else repeat(p) for p in pieces))))


class UnitTable:
    """A probe's units column by column: ``column(key)`` is the list of one key's JSON values
    (``UNIT_KEYS``), in unit order; :meth:`rows` gives the per-unit dicts, :meth:`json` their JSON
    text (as ``json.dumps(rows, ensure_ascii=False, separators=(",", ":"))``)."""

    __slots__ = ("columns", "base")

    def __init__(self, columns: dict[str, list], base: str):
        self.columns = columns  # every key of UNIT_KEYS but "url"
        self.base = base  # the probe's address; a unit's is f"{base}/unit/{unit}"

    def __len__(self) -> int:
        return len(self.columns["unit"])

    def column(self, key: str) -> list:
        if key == "url":
            return [f"{self.base}/unit/{u}" for u in self.columns["unit"]]
        return self.columns[key]

    def rows(self) -> list[dict]:
        return [dict(zip(UNIT_KEYS, r)) for r in zip(*(self.column(k) for k in UNIT_KEYS))]

    def json(self) -> str:
        ids = self.columns["unit"]
        if not ids:
            return "[]"
        units = json_texts(ids)
        if set(map(type, ids)) == {int}:  # the unit's JSON text is its text in the address
            urls = list(map((_json_str(self.base)[:-1].replace("%", "%%") + '/unit/%s"').__mod__, units))
        else:
            urls = json_texts(self.column("url"))
        texts = [units, *(json_texts(self.columns[k]) for k in UNIT_KEYS[1:-1]), urls]
        # each row: '{"unit":' text ',"quality":' text ... '},'
        items = []
        for k, key in enumerate(UNIT_KEYS):
            items += ("{" if k == 0 else ",") + _json_str(key) + ":", texts[k]
        items.append("},")
        return "[" + join_rows(items, "")[:-1] + "]"


def _aligned(rows: list[tuple], ids: tuple, width: int) -> list:
    """The ``width`` value columns of ``rows`` (unit, value, ...) in the order of the units ``ids``
    (None for a unit without a row)."""
    if not rows:
        return [(None,) * len(ids)] * width
    cols = list(zip(*rows))
    if cols[0] == ids:  # the usual case: a row per unit, in unit order
        return cols[1:]
    lookup = dict(zip(cols[0], zip(*cols[1:])))
    return list(zip(*map(lookup.get, ids, repeat((None,) * width))))


def _unit_rows(key: dict, h2o: str, placement: dict | None = None, xy: dict | None = None) -> UnitTable:
    """The probe's unit table (one statement per table), column by column."""
    sql = _sql()
    args = (key["subject_id"], key["session"], key["insertion_number"])
    units = sql.run("units", *args)
    base = probe_url(h2o, key["session"], key["insertion_number"])
    if not units:
        return UnitTable({k: [] for k in UNIT_KEYS[:-1]}, base)
    ids, quality, amp, snr, n_spikes, px, py, electrodes, _types = zip(*units)
    if None in px or None in py:
        pos = _depths([(r[0], *r[5:]) for r in units], xy)
        x, depth = [pos[u][0] for u in ids], [pos[u][1] for u in ids]
    else:  # as _depths: unit_posx, unit_posy
        x, depth = json_column(px), json_column(py)
    rate, isi = _aligned(sql.run("unit_stats", *args), ids, 2)
    presence, cutoff = _aligned(sql.run("unit_metrics", *args), ids, 2)
    (cell,) = _aligned(sql.run("unit_cell_types", *args), ids, 1)
    (drift,) = _aligned(sql.run("unit_drift", *args), ids, 1)
    (passing,) = _aligned(sql.run("unit_passing", *args), ids, 1)
    if "unit_selectivities" in sql.sql:
        (sel,) = _aligned(sql.run("unit_selectivities", *args), ids, 1)
    else:
        sel = (None,) * len(ids)
    if placement:  # as histology.unit_ccf(): the region at the peak electrode
        positions, names = placement["positions"], placement["names"]
        region = []
        for e in electrodes:
            where = positions.get(e) if e is not None else None
            region.append(names[where[0]][0] if where is not None and where[0] in names else None)
    else:
        region = [None] * len(ids)
    try:
        ok = list(map(_BOOL.__getitem__, passing))
    except (KeyError, TypeError):
        ok = [None if v is None else bool(v) for v in passing]
    columns = {
        "unit": list(ids),
        "quality": json_column(quality),
        "depth": depth,
        "x": x,
        "region": region,
        "firing_rate": json_column(rate),
        "amplitude": json_column(amp),
        "snr": json_column(snr),
        "isi_violation": json_column(isi),
        "presence_ratio": json_column(presence),
        "amplitude_cutoff": json_column(cutoff),
        "drift": json_column(drift),
        "cell_type": json_column(cell),
        "selectivity": json_column(sel),
        "passing": ok,
        "n_spikes": list(n_spikes) if set(map(type, n_spikes)) == {int} else [int(n) for n in n_spikes],
    }
    return UnitTable(columns, base)


def _track(placement: dict | None, xy: dict, track: tuple) -> dict:
    """The probe's track: regions along the electrodes from the tip up (histology), labelled track
    (``track``: its insertion number (None: no track), dye, date, points)."""
    regions = []
    if placement:
        found = sorted(
            (xy[e][1], e, where) for e, where in placement["positions"].items() if e in xy
        )  # by depth on the probe
        start = 0
        for k in range(1, len(found) + 1):
            if k == len(found) or found[k][2][0] != found[start][2][0]:
                r = found[start][2][0]
                acr, name = placement["names"].get(r, (None, "outside the brain" if r == 0 else f"region {r}"))
                regions.append(
                    dict(
                        region_id=r,
                        acronym=acr,
                        name=name,
                        electrodes=k - start,
                        depth_from=found[start][0],
                        depth_to=found[k - 1][0],
                        ccf_from=list(found[start][2][1:]),
                        ccf_to=list(found[k - 1][2][1:]),
                    )
                )
                start = k
    exists, dye, date, points = track
    return dict(
        regions=regions,
        points=int(points) if exists is not None else 0,
        dye=plain(dye) if exists is not None else None,
        labeling_date=plain(date) if exists is not None else None,
        annotation_version=placement["version"] if placement else None,
    )


def available_probe_figures(key: dict, probe: dict, units: UnitTable | None = None) -> list[str]:
    """The probe figures that exist or can be drawn (the report's rules), from the probe's row (see
    :func:`_probe_rows`) and, when given, its unit rows."""
    extras = _sql().run("probe_extras", key["subject_id"], key["session"], key["insertion_number"])[0]
    return _probe_figures(probe, extras[-2], extras[-1], units)


def _probe_figures(probe: dict, selective, alm_stim, units: UnitTable | None) -> list[str]:
    if not probe["units"]:
        return []
    names = ["clustering_quality", "unit_characteristics"]
    if have("psth"):
        if units is not None:
            selective = any(v is not None for v in units.column("selectivity"))
        if selective and probe["side"] is not None:
            names.append("group_psth")
        if alm_stim:
            names.append("photostim_effect")
    names.append("drift_map")
    if probe["histology"]:
        names.append("coronal_slice")
    return names


def probe_detail(h2o: str, session: int, insertion: int, units: bool = False) -> dict:
    """A probe: where it was, its sorting, quality, track, figures (and its units, when asked;
    :func:`probe_units` gives them alone)."""
    subject, row, probe = _probe_key(h2o, session, insertion)
    key = probe["key"]
    extras = _sql().run("probe_extras", key["subject_id"], key["session"], key["insertion_number"])[0]
    quality_row, quality, criteria, track = extras[0], extras[1:5], extras[5], extras[6:10]
    placement = _placement(key, probe["version"])
    xy = _electrode_xy(probe["probe_type"])
    base = probe_url(h2o, key["session"], key["insertion_number"])
    out = dict(
        subject=subject,
        session=dict(
            session=key["session"],
            date=plain(row["session_date"]),
            datetime=plain(row["session_datetime"]),
            rig=plain(row["rig"]),
            url=session_url(h2o, key["session"]),
        ),
        probe=_public_probe(probe),
        quality=None
        if quality_row is None
        else dict(
            drift_presence=flag(quality[0]),
            number_of_landmarks=plain(quality[1]),
            alignment_confidence=flag(quality[2]),
            insertion_comment=plain(quality[3]),
        ),
        criteria_region=plain(criteria),
        track=_track(placement, xy, track),
    )
    unit_rows = _unit_rows(key, h2o, placement, xy) if units else None
    out["figures"] = [
        dict(name=n, title=PROBE_FIGURES[n], url=f"{base}/figure/{n}.png")
        for n in _probe_figures(probe, extras[-2], extras[-1], unit_rows)
    ]
    if units:
        out["units"] = unit_rows
    return out


# --- a unit ------------------------------------------------------------------------------------


def _neighbours(pos: dict, unit: int) -> tuple[dict | None, dict | None]:
    """The units just below and above ``unit`` on the probe (by depth, then unit id)."""
    order = sorted(pos, key=lambda u: (pos[u][1] is None, pos[u][1] if pos[u][1] is not None else 0, u))
    k = order.index(unit)

    def item(u):
        return dict(unit=u, depth=pos[u][1])

    return (item(order[k - 1]) if k > 0 else None), (item(order[k + 1]) if k + 1 < len(order) else None)


def unit_detail(h2o: str, session: int, insertion: int, unit: int) -> dict:
    """A unit: sorting values, metrics, statistics, cell type, criteria, selectivity (overall and
    per period), CCF position and region, the conditions with PSTHs, its neighbours by depth."""
    subject, row = _session_row(h2o, session)
    key = dict(subject_id=row["subject_id"], session=row["session"], insertion_number=int(insertion))
    found = _sql().run("unit_positions", *key.values()) if have("ephys") else []
    if not found:
        raise NotFound(f"{h2o} session {session} has no probe {insertion}")
    pos = _depths([r for r in found if r[0] is not None])
    if int(unit) not in pos:
        raise NotFound(f"{h2o} session {session} probe {insertion} has no unit {unit}")
    sql = _sql()
    ukey = (*key.values(), int(unit))
    r = sql.run("unit", *ukey)[0]
    quality, electrode, n_spikes, amp, snr, rate, isi, cell, ttp, passing, criteria_region, drift = r[:12]
    has_metrics, has_wave, selectivity, has_psth = r[12:16]
    version, region_id, cx, cy, cz, known, acronym, region_name = r[16:24]
    nm = len(sql.metric_attrs)
    metrics = {a: plain(v) for a, v in zip(sql.metric_attrs, r[24 : 24 + nm])} if has_metrics is not None else {}
    wave_metrics = {a: plain(v) for a, v in zip(sql.waveform_attrs, r[24 + nm :])} if has_wave is not None else {}
    labels = [dict(source=plain(s), label=plain(v)) for s, v in sql.run("unit_labels", *ukey)]
    periods, conditions = [], []
    if have("psth"):
        order = {"sample": 0, "delay": 1, "response": 2}
        periods = sorted(
            (
                dict(
                    period=plain(p),
                    selectivity=plain(s),
                    ipsi_rate=plain(i),
                    contra_rate=plain(c),
                    p_value=plain(pv),
                )
                for p, s, i, c, pv in sql.run("unit_periods", *ukey)
            ),
            key=lambda p: order.get(p["period"], 9),
        )
        if has_psth:
            from ..analysis.conditions import CONDITIONS

            rank = {c: k for k, c in enumerate(CONDITIONS)}
            conditions = sorted(
                (dict(name=plain(n), trials=int(c)) for n, c in sql.run("conditions", *key.values())),
                key=lambda c: rank.get(c["name"], 99),
            )
    ccf_pos = None
    if known is not None and electrode is not None:  # as histology.unit_ccf()
        ccf_pos = dict(
            x=plain(cx),
            y=plain(cy),
            z=plain(cz),
            region_id=int(region_id),
            acronym=plain(acronym),
            region_name=plain(region_name),
            annotation_version=plain(version),
        )
    below, above = _neighbours(pos, int(unit))
    for n in (below, above):
        if n is not None:
            n["url"] = unit_url(h2o, key["session"], key["insertion_number"], n["unit"])
    base = unit_url(h2o, key["session"], key["insertion_number"], int(unit))
    return dict(
        subject=subject,
        session=dict(session=key["session"], date=plain(row["session_date"]), url=session_url(h2o, key["session"])),
        probe=dict(
            insertion_number=key["insertion_number"], url=probe_url(h2o, key["session"], key["insertion_number"])
        ),
        unit=dict(
            unit=int(unit),
            quality=plain(quality),
            electrode=plain(electrode),
            x=pos[int(unit)][0],
            depth=pos[int(unit)][1],
            n_spikes=plain(n_spikes),
            amplitude=plain(amp),
            snr=plain(snr),
            firing_rate=plain(rate),
            isi_violation=plain(isi),
            cell_type=plain(cell),
            trough_to_peak=plain(ttp),
            drift=plain(drift),
            passing=flag(passing),
            criteria_region=plain(criteria_region),
            selectivity=plain(selectivity),
            url=base,
        ),
        metrics=metrics,
        waveform_metrics=wave_metrics,
        labels=labels,
        periods=periods,
        conditions=conditions,
        ccf=ccf_pos,
        below=below,
        above=above,
        figures=[dict(name="unit", title=UNIT_FIGURES["unit"], url=f"{base}/figure/unit.png")],
    )
