"""What the navigator shows: one function per page (and JSON endpoint), returning plain dicts and
lists of JSON types (str, int, float, bool, None), so the HTML pages and the JSON API show the
same numbers.

Only reads: every query is a SELECT (the server refuses anything else while it answers a request,
see :mod:`pipeline.navigator.guard`). No spike array is loaded here; the figures do that
(:mod:`pipeline.navigator.plots`). Schema modules whose schema does not exist on the database
(e.g. no ``report`` or ``histology`` yet) are treated as empty.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math

import numpy as np

from .. import db

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


def have(module: str) -> bool:
    """Whether a schema module is bound to an existing schema (else its tables count as empty)."""
    s = db.schemas().get(module)
    return s is not None and s.database is not None


def _mod(name: str):
    return db.import_module(name)


def rows(query, *attrs: str, order_by=None, limit: int | None = None, offset: int = 0) -> list[tuple]:
    """Rows of plain attributes (no blobs or codecs) as the driver returns them. DataJoint builds
    the statement (so it suits either backend); its per-value decoding, which costs several times
    the query itself on a page of a few hundred units, is skipped (plain values need none)."""
    if isinstance(query, type):  # a table class
        query = query()
    if order_by is not None or limit is not None or offset:
        import datajoint as dj

        query = query & dj.Top(limit, order_by, offset)
    return list(query.connection.query(query.make_sql(list(attrs))).fetchall())


def cols(query, *attrs: str, **kw) -> tuple[list, ...]:
    """Like ``to_arrays(*attrs)``: one list per attribute (see :func:`rows`)."""
    got = rows(query, *attrs, **kw)
    return tuple(list(c) for c in zip(*got)) if got else tuple([] for _ in attrs)


def dicts(query, *attrs: str, **kw) -> list[dict]:
    """Like ``to_dicts()`` for the named attributes (see :func:`rows`)."""
    return [dict(zip(attrs, r)) for r in rows(query, *attrs, **kw)]


def flag(v) -> bool | None:
    """A boolean column (MySQL returns 0/1)."""
    return None if v is None else bool(v)


def _pairs(query, a: str, b: str) -> dict:
    return {plain(k): plain(v) for k, v in rows(query, a, b)}


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
    lab, experiment = _mod("lab"), _mod("experiment")
    ids, sex, dob = cols(lab.Subject, "subject_id", "sex", "date_of_birth")
    h2o = _pairs(lab.WaterRestriction, "subject_id", "water_restriction_number")
    ids_, n, last = cols(
        lab.Subject.proj().aggr(
            experiment.Session, n="count(session)", last="max(session_date)", exclude_nonmatching=True
        ),
        "subject_id",
        "n",
        "last",
    )
    counts = {int(i): (int(c), plain(d)) for i, c, d in zip(ids_, n, last)}
    rows = []
    for i, s, d in zip(ids, sex, dob):
        i = int(i)
        label = h2o.get(i)
        rows.append(
            dict(
                h2o=label,
                subject_id=i,
                sex=plain(s),
                date_of_birth=plain(d),
                sessions=counts.get(i, (0, None))[0],
                last_session=counts.get(i, (0, None))[1],
                url=subject_url(label if label is not None else str(i)),
            )
        )
    rows.sort(key=lambda r: (r["h2o"] is None, (r["h2o"] or "").lower(), r["subject_id"]))
    return rows


def resolve_subject(h2o: str) -> dict:
    """The subject a URL names: by water-restriction id, or by subject id for a subject without one."""
    lab = _mod("lab")
    attrs = ("subject_id", "sex", "date_of_birth", "username")
    row = dicts(
        lab.Subject * lab.WaterRestriction.proj("water_restriction_number") & {"water_restriction_number": h2o}, *attrs
    )
    if not row and h2o.isdigit() and int(h2o) <= MAX_ID and not (lab.WaterRestriction & {"subject_id": int(h2o)}):
        row = dicts(lab.Subject & {"subject_id": int(h2o)}, *attrs)  # a subject without a water restriction
    if not row:
        raise NotFound(f"no subject with water-restriction id {h2o!r}")
    row = row[0]
    sid = int(row["subject_id"])
    return dict(
        h2o=h2o,
        subject_id=sid,
        sex=plain(row.get("sex")),
        date_of_birth=plain(row.get("date_of_birth")),
        username=plain(row.get("username")),
        url=subject_url(h2o),
    )


def _session_badges(restriction) -> dict[str, set[int]]:
    """Per badge, the sessions (numbers) under ``restriction`` that have it."""
    experiment = _mod("experiment")
    sessions = experiment.Session & restriction
    out: dict[str, set[int]] = {}

    def with_(*tables) -> set[int]:
        got: set[int] = set()
        for t in tables:
            got |= {int(s) for (s,) in rows(sessions & t.proj(), "session")}
        return got

    out["behavior"] = with_(experiment.BehaviorTrial)
    out["tracking"] = with_(_mod("tracking").Tracking) if have("tracking") else set()
    out["ephys"] = with_(_mod("ephys").ProbeInsertion) if have("ephys") else set()
    if have("histology"):
        h = _mod("histology")
        out["histology"] = with_(h.ElectrodeCCFPosition, h.LabeledProbeTrack)
    else:
        out["histology"] = set()
    out["computed"] = with_(_mod("psth").UnitPsth) if have("psth") else set()
    return out


def _behaviour_counts(sessions) -> dict[int, dict]:
    """Per session: trials, hits, misses, ignored, early licks, tasks (one grouped query each)."""
    experiment = _mod("experiment")
    keyed = sessions.proj()
    n_trials = _pairs(keyed.aggr(experiment.SessionTrial, n="count(trial)", exclude_nonmatching=True), "session", "n")
    counts = keyed.aggr(
        experiment.BehaviorTrial,
        task_min="min(task)",
        task_max="max(task)",
        hits="sum(case when outcome = 'hit' then 1 else 0 end)",
        misses="sum(case when outcome = 'miss' then 1 else 0 end)",
        ignored="sum(case when outcome = 'ignore' then 1 else 0 end)",
        early="sum(case when early_lick = 'early' then 1 else 0 end)",
        exclude_nonmatching=True,
    )
    out = {}
    for s, t0, t1, h, m, ig, e in rows(counts, "session", "task_min", "task_max", "hits", "misses", "ignored", "early"):
        tasks = [plain(t0)] if t0 == t1 else [plain(t0), plain(t1)]
        out[int(s)] = dict(tasks=tasks, hits=int(h or 0), misses=int(m or 0), ignored=int(ig or 0), early=int(e or 0))
    for s, n in n_trials.items():
        out.setdefault(int(s), dict(tasks=[], hits=0, misses=0, ignored=0, early=0))["trials"] = int(n)
    return out


def subject_sessions(h2o: str) -> dict:
    """A subject and its sessions: date/time, rig, task, trials, performance, probes, units, badges."""
    experiment = _mod("experiment")
    subject = resolve_subject(h2o)
    restriction = {"subject_id": subject["subject_id"]}
    sessions = experiment.Session & restriction
    found = dicts(sessions, "session", "session_date", "session_datetime", "username", "rig", order_by="session")
    beh = _behaviour_counts(sessions)
    probes: dict = {}
    units: dict = {}
    if have("ephys"):
        ephys = _mod("ephys")
        probes = _pairs(
            sessions.proj().aggr(ephys.ProbeInsertion, n="count(insertion_number)", exclude_nonmatching=True),
            "session",
            "n",
        )
        units = _pairs(
            sessions.proj().aggr(ephys.Clustering.Unit, n="count(unit)", exclude_nonmatching=True), "session", "n"
        )
    badges = _session_badges(restriction)
    out = []
    for r in found:
        s = int(r["session"])
        b = beh.get(s, {})
        out.append(
            dict(
                session=s,
                date=plain(r["session_date"]),
                datetime=plain(r["session_datetime"]),
                rig=plain(r["rig"]),
                experimenter=plain(r["username"]),
                task=", ".join(t for t in b.get("tasks", []) if t) or None,
                trials=b.get("trials", 0),
                hits=b.get("hits", 0),
                misses=b.get("misses", 0),
                performance=_fraction(b.get("hits"), b.get("misses")),
                probes=int(probes.get(s, 0)),
                units=int(units.get(s, 0)),
                loaded={name: s in have_ for name, have_ in badges.items()},
                url=session_url(h2o, s),
            )
        )
    return dict(subject=subject, sessions=out)


# --- a session ---------------------------------------------------------------------------------


def _session_row(h2o: str, session: int) -> tuple[dict, dict]:
    experiment = _mod("experiment")
    subject = resolve_subject(h2o)
    key = dict(subject_id=subject["subject_id"], session=int(session))
    found = dicts(experiment.Session & key, "session_date", "session_datetime", "username", "rig")
    if not found:
        raise NotFound(f"{h2o} has no session {session}")
    return subject, dict(found[0], **key)


def _stim_labels(key: dict) -> dict[int, str]:
    """photo_stim -> 'ALM left (1.2 s)': the stimulated area, side (ML sign) and duration."""
    experiment = _mod("experiment")
    stims, durations = cols(experiment.Photostim & key, "photo_stim", "duration")
    locs = cols(experiment.Photostim.PhotostimLocation & key, "photo_stim", "brain_area", "ml_location")
    out = {}
    for ps, dur in zip(stims, durations):
        mine = [(a, float(ml)) for p, a, ml in zip(*locs) if p == ps]
        area = ", ".join(sorted({str(a) for a, _ in mine})) or "?"
        mls = [ml for _, ml in mine]
        side = (
            "both"
            if any(m < 0 for m in mls) and any(m > 0 for m in mls)
            else ("left" if mls and all(m < 0 for m in mls) else ("right" if mls and all(m > 0 for m in mls) else ""))
        )
        out[int(ps)] = f"{area} {side} ({float(dur):g} s)".replace("  ", " ")
    return out


def _photostim_summary(key: dict, labels: dict[int, str]) -> dict:
    """The stimulated trials, and per stimulation condition (control first) the trials and
    proportion correct per instruction."""
    experiment = _mod("experiment")
    ev_trial, ev_stim, ev_power = cols(experiment.PhotostimEvent & key, "trial", "photo_stim", "power")
    if not ev_trial:
        return dict(trials=0, summary=[])
    trials, instruction, outcome = cols(experiment.BehaviorTrial & key, "trial", "trial_instruction", "outcome")
    first: dict[int, int] = {}
    power: dict[int, list[float]] = {}
    for t, ps, p in zip(ev_trial, ev_stim, ev_power):
        first.setdefault(int(t), int(ps))
        power.setdefault(int(ps), []).append(float(p))
    groups: dict[str, list[int]] = {"control": []}
    for k, t in enumerate(trials):
        ps = first.get(int(t))
        groups.setdefault("control" if ps is None else labels.get(ps, f"photostim {ps}"), []).append(k)
    out = []
    for name, idx in groups.items():
        row = dict(condition=name, trials=len(idx))
        for side in ("left", "right"):
            hits = sum(1 for k in idx if instruction[k] == side and outcome[k] == "hit")
            misses = sum(1 for k in idx if instruction[k] == side and outcome[k] == "miss")
            row[f"{side}_trials"] = hits + misses
            row[f"{side}_correct"] = _fraction(hits, misses)
        hits = sum(1 for k in idx if outcome[k] == "hit")
        misses = sum(1 for k in idx if outcome[k] == "miss")
        row["correct"] = _fraction(hits, misses)
        ps = next((p for p, lab in labels.items() if lab == name), None)
        row["mean_power_mw"] = float(np.mean(power[ps])) if ps in power else None
        out.append(row)
    return dict(trials=len(first), summary=out)


def _probe_rows(key: dict, h2o: str) -> list[dict]:
    """The probes of a session (or one probe, when ``key`` has insertion_number)."""
    if not have("ephys"):
        return []
    ephys = _mod("ephys")
    base = ephys.ProbeInsertion & key
    ins = dicts(base, "insertion_number", "probe", "probe_type", "electrode_config_name", order_by="insertion_number")
    if not ins:
        return []
    clus = {
        int(r["insertion_number"]): r
        for r in dicts(
            ephys.Clustering & key,
            "insertion_number",
            "clustering_method",
            "clustering_time",
            "manual_curation",
            "quality_control",
            "sampling_rate",
        )
    }
    counts = base.proj().aggr(
        ephys.Clustering.Unit,
        n="count(unit)",
        good="sum(case when unit_quality = 'good' then 1 else 0 end)",
        exclude_nonmatching=True,
    )
    counts = {int(i): (int(n), int(g or 0)) for i, n, g in rows(counts, "insertion_number", "n", "good")}
    passing = _pairs(
        base.proj().aggr(
            ephys.UnitPassingCriteria.Unit,
            n="sum(case when criteria_passed then 1 else 0 end)",
            exclude_nonmatching=True,
        ),
        "insertion_number",
        "n",
    )
    location_attrs = ("skull_reference", "ap_location", "ml_location", "depth", "theta", "phi", "beta")
    locs = {
        int(r[0]): dict(zip(location_attrs, map(plain, r[1:])))
        for r in rows(ephys.ProbeInsertion.InsertionLocation & key, "insertion_number", *location_attrs)
    }
    regions: dict[int, list[str]] = {}
    hemispheres: dict[int, set] = {}
    for i, area, hemi in rows(
        ephys.ProbeInsertion.RecordableBrainRegion & key, "insertion_number", "brain_area", "hemisphere"
    ):
        regions.setdefault(int(i), []).append(f"{area} ({hemi})")
        hemispheres.setdefault(int(i), set()).add(hemi)
    histo: set[int] = set()
    if have("histology"):
        histo = {int(i) for (i,) in rows(base & _mod("histology").ElectrodeCCFPosition.proj(), "insertion_number")}
    out = []
    for r in ins:
        i = int(r["insertion_number"])
        c = clus.get(i, {})
        n, good = counts.get(i, (0, 0))
        loc = locs.get(i)
        hemi = hemispheres.get(i, set())
        if loc and loc["ml_location"] not in (None, 0):  # as psth.insertion_side
            side = "right" if loc["ml_location"] > 0 else "left"
        else:
            side = next(iter(hemi)) if len(hemi) == 1 and next(iter(hemi)) in ("left", "right") else None
        out.append(
            dict(
                insertion_number=i,
                probe=plain(r["probe"]),
                probe_type=plain(r["probe_type"]),
                electrode_config=plain(r["electrode_config_name"]),
                clustering_method=plain(c.get("clustering_method")),
                clustering_time=plain(c.get("clustering_time")),
                manual_curation=flag(c.get("manual_curation")),
                quality_control=flag(c.get("quality_control")),
                sampling_rate=plain(c.get("sampling_rate")),
                units=n,
                good_units=good,
                passing_units=int(passing[i]) if passing.get(i) is not None else None,
                location=loc,
                regions=regions.get(i, []),
                side=side,
                histology=i in histo,
                url=probe_url(h2o, key["session"], i),
            )
        )
    return out


def session_detail(h2o: str, session: int, page: int | None = None) -> dict:
    """A session: when, where, behaviour summary, photostimulation summary, probes, figures (and
    a page of its trials, when ``page`` is given)."""
    experiment = _mod("experiment")
    subject, row = _session_row(h2o, session)
    key = dict(subject_id=row["subject_id"], session=row["session"])
    b = _behaviour_counts(experiment.Session & key).get(key["session"], {})
    protocols = sorted(
        {int(p) for (p,) in rows((experiment.BehaviorTrial & key).proj("task_protocol"), "task_protocol")}
    )
    labels = _stim_labels(key)
    stim = _photostim_summary(key, labels)
    figures = available_session_figures(key, b.get("tasks", []))
    out = dict(
        subject=subject,
        session=dict(
            session=key["session"],
            date=plain(row["session_date"]),
            datetime=plain(row["session_datetime"]),
            rig=plain(row["rig"]),
            experimenter=plain(row["username"]),
            tasks=[t for t in b.get("tasks", []) if t],
            task_protocols=protocols,
            trials=b.get("trials", 0),
            hits=b.get("hits", 0),
            misses=b.get("misses", 0),
            ignored=b.get("ignored", 0),
            early_licks=b.get("early", 0),
            performance=_fraction(b.get("hits"), b.get("misses")),
            photostim_trials=stim["trials"],
            url=session_url(h2o, key["session"]),
        ),
        photostim=dict(settings=[dict(photo_stim=k, label=v) for k, v in labels.items()], summary=stim["summary"]),
        probes=_probe_rows(key, h2o),
        figures=[
            dict(name=n, title=SESSION_FIGURES[n], url=f"{session_url(h2o, key['session'])}/figure/{n}.png")
            for n in figures
        ],
    )
    if page is not None:
        out["trials"] = _trials(key, h2o, b.get("trials", 0), page, labels)
    return out


def available_session_figures(key: dict, tasks: list | None = None) -> list[str]:
    """The session figures that exist or can be drawn (the report's rules)."""
    from ..psth import TASK

    experiment = _mod("experiment")
    if tasks is None:
        tasks = [t for (t,) in rows((experiment.BehaviorTrial & key).proj("task"), "task")]
    names = ["performance", "photostim_effect"] if TASK in tasks else []
    if experiment.WaterPortChoice & key:
        names.append("foraging")
    return names


def session_trials(h2o: str, session: int, page: int = 1) -> dict:
    """One page of a session's trials (``TRIALS_PER_PAGE`` per page, in trial order)."""
    experiment = _mod("experiment")
    _, row = _session_row(h2o, session)
    key = dict(subject_id=row["subject_id"], session=row["session"])
    return _trials(key, h2o, len(experiment.SessionTrial & key), page, _stim_labels(key))


def _trials(key: dict, h2o: str, total: int, page: int, labels: dict[int, str]) -> dict:
    experiment = _mod("experiment")
    pages = max(1, math.ceil(total / TRIALS_PER_PAGE))
    if page > pages:
        raise NotFound(f"{h2o} session {key['session']} has {pages} page(s) of trials, not {page}")
    trial, start, stop = cols(
        experiment.SessionTrial & key,
        "trial",
        "start_time",
        "stop_time",
        order_by="trial",
        limit=TRIALS_PER_PAGE,
        offset=(page - 1) * TRIALS_PER_PAGE,
    )
    out = []
    if trial:
        span = f"trial >= {int(trial[0])} and trial <= {int(trial[-1])}"
        attrs = (
            "trial",
            "task",
            "task_protocol",
            "trial_instruction",
            "early_lick",
            "outcome",
            "auto_water",
            "free_water",
        )
        beh = {int(r["trial"]): r for r in dicts(experiment.BehaviorTrial & key & span, *attrs)}
        go = _pairs(experiment.TrialEvent & key & span & {"trial_event_type": "go"}, "trial", "trial_event_time")
        stim: dict[int, list[str]] = {}
        for t, ps, p in rows(experiment.PhotostimEvent & key & span, "trial", "photo_stim", "power"):
            stim.setdefault(int(t), []).append(f"{labels.get(int(ps), ps)} {float(p):g} mW")
        for t, a, b in zip(trial, start, stop):
            t = int(t)
            r = beh.get(t, {})
            out.append(
                dict(
                    trial=t,
                    start_time=plain(a),
                    duration=plain(float(b) - float(a)) if a is not None and b is not None else None,
                    task=plain(r.get("task")),
                    task_protocol=plain(r.get("task_protocol")),
                    instruction=plain(r.get("trial_instruction")),
                    outcome=plain(r.get("outcome")),
                    early_lick=plain(r.get("early_lick")),
                    auto_water=flag(r.get("auto_water")),
                    free_water=flag(r.get("free_water")),
                    go_time=plain(go.get(t)),
                    photostim="; ".join(stim.get(t, [])) or None,
                )
            )
    return dict(page=page, pages=pages, per_page=TRIALS_PER_PAGE, total=total, trials=out)


# --- a probe -----------------------------------------------------------------------------------


def _probe_key(h2o: str, session: int, insertion: int) -> tuple[dict, dict, dict]:
    subject, row = _session_row(h2o, session)
    key = dict(subject_id=row["subject_id"], session=row["session"], insertion_number=int(insertion))
    probes = _probe_rows(key, h2o)
    if not probes:
        raise NotFound(f"{h2o} session {session} has no probe {insertion}")
    return subject, row, dict(key=key, **probes[0])


def probe_key(h2o: str, session: int, insertion: int) -> dict:
    """The primary key of a probe the URL names (NotFound if there is none); one cheap query."""
    subject, row = _session_row(h2o, session)
    key = dict(subject_id=row["subject_id"], session=row["session"], insertion_number=int(insertion))
    if not (have("ephys") and _mod("ephys").ProbeInsertion & key):
        raise NotFound(f"{h2o} session {session} has no probe {insertion}")
    return key


def _electrode_xy(probe_type) -> dict[int, tuple[float, float]]:
    """electrode -> (x, y) on the probe (um) of a probe type."""
    if probe_type is None:
        return {}
    lab = _mod("lab")
    return {
        int(e): (float(x), float(y))
        for e, x, y in rows(
            lab.ProbeType.Electrode & {"probe_type": str(probe_type)}, "electrode", "x_coord", "y_coord"
        )
    }


def _depths(key: dict, found: list[tuple] | None = None, xy: dict | None = None) -> dict:
    """unit -> (x, depth on the probe): unit_posx/unit_posy, else the peak electrode's x/y (as the
    report's figures place units). ``found``: rows of (unit, unit_posx, unit_posy, electrode,
    probe_type) when already fetched; ``xy``: the probe type's electrode positions if known."""
    if found is None:
        found = rows(_mod("ephys").Clustering.Unit & key, "unit", "unit_posx", "unit_posy", "electrode", "probe_type")
    if xy is None and any((px is None or py is None) and e is not None for _, px, py, e, _t in found):
        xy = _electrode_xy(next((t for *_, t in found if t is not None), None))
    out = {}
    for u, px, py, e, _t in found:
        fallback = (xy or {}).get(int(e), (None, None)) if e is not None else (None, None)
        out[int(u)] = (plain(px) if px is not None else fallback[0], plain(py) if py is not None else fallback[1])
    return out


def _placement(key: dict) -> dict | None:
    """The probe's electrodes in the CCF (histology): annotation version, electrode -> (region id,
    ccf x, y, z), and region id -> (acronym, name). None without histology."""
    if not (have("histology") and have("ccf")):
        return None
    histology, ccf = _mod("histology"), _mod("ccf")
    version = cols(histology.ElectrodeCCFPosition & key, "annotation_version")[0]
    if not version:
        return None
    positions = {
        int(e): (int(r), plain(x), plain(y), plain(z))
        for e, r, x, y, z in rows(
            histology.ElectrodeCCFPosition.ElectrodePosition & key, "electrode", "region_id", "ccf_x", "ccf_y", "ccf_z"
        )
    }
    ids = sorted({p[0] for p in positions.values() if p[0]})
    names = {}
    if ids:
        regions = ccf.CCFBrainRegion & {"annotation_version": version[0]} & [{"region_id": i} for i in ids]
        names = {int(r): (plain(a), plain(n)) for r, a, n in rows(regions, "region_id", "acronym", "region_name")}
    return dict(version=plain(version[0]), positions=positions, names=names)


def probe_units(h2o: str, session: int, insertion: int) -> dict:
    """Every unit of a probe with what the unit table shows (one query per table, no spikes)."""
    _, _, probe = _probe_key(h2o, session, insertion)
    return dict(probe=_public_probe(probe), units=_unit_rows(probe["key"], h2o, _placement(probe["key"])))


def _public_probe(probe: dict) -> dict:
    return {k: v for k, v in probe.items() if k != "key"}


def _unit_rows(key: dict, h2o: str, placement: dict | None = None, xy: dict | None = None) -> list[dict]:
    ephys = _mod("ephys")
    units = rows(
        ephys.Clustering.Unit & key,
        "unit",
        "unit_quality",
        "unit_amp",
        "unit_snr",
        "n_spikes",
        "unit_posx",
        "unit_posy",
        "electrode",
        "probe_type",
        order_by="unit",
    )
    pos = _depths(key, [(r[0], *r[5:]) for r in units], xy)
    stats = {
        int(u): (plain(r), plain(v))
        for u, r, v in rows(ephys.UnitStat.Unit & key, "unit", "avg_firing_rate", "isi_violation")
    }
    metrics = {
        int(u): (plain(p), plain(c))
        for u, p, c in rows(ephys.Clustering.ClusterMetric & key, "unit", "presence_ratio", "amplitude_cutoff")
    }
    cell = _pairs(ephys.UnitCellType.Unit & key, "unit", "cell_type")
    drift = _pairs(ephys.MAPClusterMetric.DriftMetric & key, "unit", "drift_metric")
    passing = _pairs(ephys.UnitPassingCriteria.Unit & key, "unit", "criteria_passed")
    sel = _pairs(_mod("psth").UnitSelectivity.Unit & key, "unit", "unit_selectivity") if have("psth") else {}
    region = {}  # as histology.unit_ccf(): the region at the unit's peak electrode
    if placement:
        for r in units:
            where = placement["positions"].get(int(r[7])) if r[7] is not None else None
            if where is not None and where[0] in placement["names"]:
                region[int(r[0])] = placement["names"][where[0]][0]
    out = []
    base = probe_url(h2o, key["session"], key["insertion_number"])
    for u, q, amp, snr, n, *_ in units:
        u = int(u)
        x, depth = pos.get(u, (None, None))
        rate, isi = stats.get(u, (None, None))
        presence, cutoff = metrics.get(u, (None, None))
        out.append(
            dict(
                unit=u,
                quality=plain(q),
                depth=depth,
                x=x,
                region=region.get(u),
                firing_rate=rate,
                amplitude=plain(amp),
                snr=plain(snr),
                isi_violation=isi,
                presence_ratio=presence,
                amplitude_cutoff=cutoff,
                drift=drift.get(u),
                cell_type=cell.get(u),
                selectivity=sel.get(u),
                passing=flag(passing.get(u)),
                n_spikes=int(n),
                url=f"{base}/unit/{u}",
            )
        )
    return out


def _track(key: dict, placement: dict | None, xy: dict) -> dict:
    """The probe's track: regions along the electrodes from the tip up (histology), labelled track."""
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
    track = dicts(_mod("histology").LabeledProbeTrack & key, "dye_color", "labeling_date") if have("histology") else []
    return dict(
        regions=regions,
        points=len(_mod("histology").LabeledProbeTrack.Point & key) if track else 0,
        dye=plain(track[0]["dye_color"]) if track else None,
        labeling_date=plain(track[0]["labeling_date"]) if track else None,
        annotation_version=placement["version"] if placement else None,
    )


def available_probe_figures(key: dict, probe: dict, units: list[dict] | None = None) -> list[str]:
    """The probe figures that exist or can be drawn (the report's rules), from the probe's row (see
    :func:`_probe_rows`) and, when given, its unit rows."""
    if not probe["units"]:
        return []
    names = ["clustering_quality", "unit_characteristics"]
    if have("psth"):
        psth = _mod("psth")
        if units is not None:
            selective = any(u["selectivity"] is not None for u in units)
        else:
            selective = bool(psth.UnitSelectivity & key)
        if selective and probe["side"] is not None:
            names.append("group_psth")
        counted = [c for (c,) in rows(psth.UnitPsth & key & "trial_count > 0", "trial_condition_name")]
        if any(str(c).endswith("_alm_stim") for c in counted):
            names.append("photostim_effect")
    names.append("drift_map")
    if probe["histology"]:
        names.append("coronal_slice")
    return names


def probe_detail(h2o: str, session: int, insertion: int, units: bool = False) -> dict:
    """A probe: where it was, its sorting, quality, track, figures (and its units, when asked;
    :func:`probe_units` gives them alone)."""
    ephys = _mod("ephys")
    subject, row, probe = _probe_key(h2o, session, insertion)
    key = probe["key"]
    placement = _placement(key) if probe["histology"] else None
    xy = _electrode_xy(probe["probe_type"])
    quality_attrs = ("drift_presence", "number_of_landmarks", "alignment_confidence", "insertion_comment")
    quality = dicts(ephys.ProbeInsertionQuality & key, *quality_attrs)
    criteria = cols(ephys.UnitPassingCriteria & key, "region")[0]
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
        if not quality
        else dict(
            drift_presence=flag(quality[0]["drift_presence"]),
            number_of_landmarks=plain(quality[0]["number_of_landmarks"]),
            alignment_confidence=flag(quality[0]["alignment_confidence"]),
            insertion_comment=plain(quality[0]["insertion_comment"]),
        ),
        criteria_region=plain(criteria[0]) if criteria else None,
        track=_track(key, placement, xy),
    )
    unit_rows = _unit_rows(key, h2o, placement, xy) if units else None
    out["figures"] = [
        dict(name=n, title=PROBE_FIGURES[n], url=f"{base}/figure/{n}.png")
        for n in available_probe_figures(key, probe, unit_rows)
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


def _one(table, key: dict, *attrs: str) -> dict:
    got = dicts(table & key, *attrs)
    return {k: plain(v) for k, v in got[0].items()} if got else {}


def unit_detail(h2o: str, session: int, insertion: int, unit: int) -> dict:
    """A unit: sorting values, metrics, statistics, cell type, criteria, selectivity (overall and
    per period), CCF position and region, the conditions with PSTHs, its neighbours by depth."""
    ephys = _mod("ephys")
    subject, row = _session_row(h2o, session)
    key = dict(subject_id=row["subject_id"], session=row["session"], insertion_number=int(insertion))
    if not (have("ephys") and ephys.ProbeInsertion & key):
        raise NotFound(f"{h2o} session {session} has no probe {insertion}")
    ukey = dict(key, unit=int(unit))
    pos = _depths(key)
    if int(unit) not in pos:
        raise NotFound(f"{h2o} session {session} probe {insertion} has no unit {unit}")
    u = _one(ephys.Clustering.Unit, ukey, "unit_quality", "electrode", "n_spikes", "unit_amp", "unit_snr")
    stat = _one(ephys.UnitStat.Unit, ukey, "avg_firing_rate", "isi_violation")
    cell = _one(ephys.UnitCellType.Unit, ukey, "cell_type", "trough_to_peak")
    passing = _one(ephys.UnitPassingCriteria.Unit, ukey, "criteria_passed")
    criteria_region = cols(ephys.UnitPassingCriteria & key, "region")[0]
    drift = _one(ephys.MAPClusterMetric.DriftMetric, ukey, "drift_metric")
    metric_attrs = [a for a in ephys.Clustering.ClusterMetric.heading.secondary_attributes]
    wave_attrs = [a for a in ephys.Clustering.WaveformMetric.heading.secondary_attributes]
    metrics = _one(ephys.Clustering.ClusterMetric, ukey, *metric_attrs)
    wave_metrics = _one(ephys.Clustering.WaveformMetric, ukey, *wave_attrs)
    labels = [
        dict(source=plain(s), label=plain(v))
        for s, v in rows(ephys.Clustering.UnitLabel & ukey, "label_source", "label")
    ]
    selectivity, periods, conditions = None, [], []
    if have("psth"):
        psth = _mod("psth")
        selectivity = _one(psth.UnitSelectivity.Unit, ukey, "unit_selectivity").get("unit_selectivity")
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
                for p, s, i, c, pv in rows(
                    psth.PeriodSelectivity.Unit & ukey,
                    "period",
                    "period_selectivity",
                    "ipsi_firing_rate",
                    "contra_firing_rate",
                    "p_value",
                )
            ),
            key=lambda p: order.get(p["period"], 9),
        )
        if psth.UnitPsth.Unit & ukey:
            from ..analysis.conditions import CONDITIONS

            rank = {c: k for k, c in enumerate(CONDITIONS)}
            conditions = sorted(
                (
                    dict(name=plain(n), trials=int(c))
                    for n, c in rows(psth.UnitPsth & key, "trial_condition_name", "trial_count")
                ),
                key=lambda c: rank.get(c["name"], 99),
            )
    ccf_pos = None
    placement = _placement(key)
    where = placement["positions"].get(int(u["electrode"])) if placement and u.get("electrode") is not None else None
    if where is not None and where[0] in placement["names"]:  # as histology.unit_ccf()
        ccf_pos = dict(
            x=where[1],
            y=where[2],
            z=where[3],
            region_id=where[0],
            acronym=placement["names"][where[0]][0],
            region_name=placement["names"][where[0]][1],
            annotation_version=placement["version"],
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
            quality=u.get("unit_quality"),
            electrode=u.get("electrode"),
            x=pos[int(unit)][0],
            depth=pos[int(unit)][1],
            n_spikes=u.get("n_spikes"),
            amplitude=u.get("unit_amp"),
            snr=u.get("unit_snr"),
            firing_rate=stat.get("avg_firing_rate"),
            isi_violation=stat.get("isi_violation"),
            cell_type=cell.get("cell_type"),
            trough_to_peak=cell.get("trough_to_peak"),
            drift=drift.get("drift_metric"),
            passing=flag(passing.get("criteria_passed")),
            criteria_region=plain(criteria_region[0]) if criteria_region else None,
            selectivity=selectivity,
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
