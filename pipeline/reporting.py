"""``generate-report`` and ``sync-report``.

:func:`generate` deletes report entries whose inputs changed, then populates every report table
that has its inputs (sessions, probes, units passing the criteria, the project), with progress and
a summary. :func:`sync` copies the stored figures to a folder laid out as
``<h2o>/<YYYYMMDD_HHMMSS>/[probe<N>/[units/]]<name>.png`` (and ``project/<name>.png``), writing
only files that are missing or differ (by SHA-1), each atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from .errors import MapError
from .ingest.progress import track
from .ingest.summary import Summary

log = logging.getLogger(__name__)


def _label(table, key: dict) -> tuple[str, str]:
    from . import experiment, lab

    if "subject_id" not in key:
        return f"project ({key.get('annotation_version')})", "project"
    row = (experiment.Session * lab.WaterRestriction & key).fetch1()
    base = f"{row['water_restriction_number']} session {key['session']}"
    group = f"{row['water_restriction_number']} {row['session_date']}"
    if "insertion_number" in key:
        base += f" probe {key['insertion_number']}"
    return f"{table.__name__}: {base}", group


def generate(restriction=None, processes: int = 1, progress: bool | None = None) -> Summary:
    """Bring every report up to date: stale entries deleted and drawn again, missing ones drawn."""
    from . import psth, report

    summary = Summary(what="reports")
    stale_total = 0
    report.UnitReport.processes = max(1, int(processes))
    try:
        for table in report.TABLES:
            todo = table.key_source & restriction if restriction is not None else table.key_source
            stale = [k for k in report.stale_keys(table) if todo & k]
            report.delete_entries(table, stale)
            stale_total += len(stale)
            keys = (todo.proj() - table.proj()).keys(order_by="KEY")
            summary.found += len(keys)
            for key in track(keys, f"generate-report {table.__name__}", total=len(keys), enabled=progress):
                label, group = _label(table, key)
                try:
                    table.populate(key)
                except MapError as e:
                    summary.fail(label, str(e))
                    continue
                except Exception as e:  # a bug or a database problem: the traceback goes to the log
                    log.error("%s: drawing failed", label, exc_info=True)
                    summary.fail(label, f"{type(e).__name__}: {e} (traceback in the log)")
                    continue
                n = len(table.Figure & key)
                summary.load(f"{label}: {n} figures", group=group, figures=n)
    finally:
        report.UnitReport.processes = 1
        psth.clear_caches()
    if stale_total:
        summary.note(f"{stale_total} reports were out of date (their inputs changed) and were drawn again")
    summary.log_report()
    return summary


def figure_paths() -> list[tuple[str, object, dict, str]]:
    """(relative path, table, key, png_sha1) of every stored figure."""
    from . import experiment, lab, report

    sessions = {
        (r["subject_id"], r["session"]): f"{r['water_restriction_number']}/{r['session_datetime']:%Y%m%d_%H%M%S}"
        for r in (experiment.Session * lab.WaterRestriction)
        .proj("water_restriction_number", "session_datetime")
        .to_dicts()
    }
    out = []
    for table in report.TABLES:
        for row in table.Figure.proj("png_sha1").to_dicts():
            key = {k: v for k, v in row.items() if k != "png_sha1"}
            name = row["figure_name"]
            if "subject_id" not in row:
                rel = f"project/{name}_{row['annotation_version']}.png"
            else:
                base = sessions.get(
                    (row["subject_id"], row["session"]), f"subject{row['subject_id']}/session{row['session']}"
                )
                if "unit" in row:
                    rel = f"{base}/probe{row['insertion_number']}/units/unit{row['unit']:04d}_{name}.png"
                elif "insertion_number" in row:
                    rel = f"{base}/probe{row['insertion_number']}/{name}.png"
                else:
                    rel = f"{base}/{name}.png"
            out.append((rel, table, key, row["png_sha1"]))
    return out


def _sha1(path: Path) -> str | None:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:
        return None


def sync(folder: str | Path | None = None, progress: bool | None = None) -> Summary:
    """Copy the stored figures to ``folder`` (default: the ``report_folder`` setting, else
    ``./report``); only missing or changed files are written."""
    from . import config

    root = Path(folder or config.get("report_folder") or "report").expanduser()
    summary = Summary(what="figures")
    summary.look(f"{root}: <h2o>/<YYYYMMDD_HHMMSS>/[probe<N>/[units/]]<name>.png, project/<name>.png")
    items = figure_paths()
    summary.found = len(items)
    for rel, table, key, sha in track(items, "sync-report", total=len(items), enabled=progress):
        target = root / rel
        if _sha1(target) == sha:
            summary.skip(rel, "unchanged")
            continue
        from . import report

        png = report.png_bytes((table.Figure & key).fetch1("png"))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(png)
        tmp.replace(target)
        summary.load(rel, group=rel.split("/")[0] + (" " + rel.split("/")[1][:8] if rel.count("/") > 1 else ""))
    summary.log_report()
    return summary
