"""Workers that keep the pipeline current: ``auto-ingest``, ``automate-computation``,
``automate-sync-and-cleanup`` and ``jobs``.

Computation is shared between any number of worker processes and hosts through DataJoint's own job
reservation: ``populate(reserve_jobs=True)`` claims each key atomically in the table's jobs table
(``~~<table>``) on the shared database server before computing it, so no two workers compute the
same key; a worker killed mid-key leaves a reservation that :func:`cleanup` hands back to the queue
after ``orphan_timeout`` seconds. Each round of a loop is also available once (``--once``).
SIGTERM or Ctrl-C ends a worker after the key it is computing (whose transaction either commits or
rolls back), with exit status 0.
"""

from __future__ import annotations

import logging
import platform
import signal
import time

from .ingest.summary import Summary

log = logging.getLogger(__name__)
report_log = logging.getLogger("pipeline.report")

#: Reservations older than this (s) belong to a worker that died (DataJoint's orphan timeout).
ORPHAN_TIMEOUT = 3600


class Stop:
    """Set by SIGTERM/SIGINT: the loops end after the current item."""

    requested = False

    @classmethod
    def install(cls) -> None:
        def handler(signum, frame):
            cls.requested = True
            log.warning("stop requested (signal %d): finishing the current item, then exiting", signum)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def computed_tables() -> list:
    """Every auto-populated table of the pipeline, in dependency order."""
    from . import compute, histology, report, tracking

    return [
        *compute.computed_tables(),
        tracking.TrackingQC,
        histology.InterpolatedElectrodeCCF,
        histology.InterpolatedShankTrack,
        *report.TABLES,
    ]


def declare_jobs_tables() -> None:
    """Create each computed table's jobs table if missing. Two workers starting at once may race to
    create one (PostgreSQL then refuses the second CREATE): whoever loses finds it declared."""
    for table in computed_tables():
        for attempt in range(5):
            try:
                _ = table().jobs
                break
            except Exception:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))


def _populate_reserved(table, summary: Summary) -> None:
    """Populate ``table`` with job reservation, one key at a time so a stop request is honoured."""
    while not Stop.requested:
        try:
            result = table.populate(reserve_jobs=True, suppress_errors=True, max_calls=1)
        except SystemExit:  # DataJoint's own SIGTERM handler: the key was rolled back
            Stop.requested = True
            return
        done = result.get("success_count", 0)
        errors = result.get("error_list", [])
        for key, message in errors:
            if "make_fetch` data has changed" in str(message):
                # its inputs changed while it was computed (another worker still computing them): not
                # the key's fault; back in the queue for the next round
                (table.jobs & dict(key)).delete_quick()
                summary.skip(f"{table.__name__} {dict(key)}", "inputs changed while computing: next round")
                return
            summary.fail(f"{table.__name__} {dict(key)}", str(message))
        if done:
            summary.load(f"{table.__name__}: 1 key computed", group=table.__name__)
        if not done and not errors:
            return


def automate_computation(once: bool = False, interval: float = 300.0) -> Summary:
    """Populate every computed table with job reservation; repeat every ``interval`` s unless ``once``."""
    from . import psth, report

    Stop.install()
    declare_jobs_tables()
    total = Summary(what="computed keys")
    while True:
        for table in computed_tables():
            if Stop.requested:
                break
            if table in report.TABLES:  # stale figures go first, so they are drawn again
                report.delete_entries(table, report.stale_keys(table))
            _populate_reserved(table, total)
        psth.clear_caches()
        report_log.info("%s", total.line())
        if once or Stop.requested:
            break
        _sleep(interval)
    total.log_report()
    return total


def _sleep(seconds: float) -> None:
    end = time.monotonic() + seconds
    while not Stop.requested and time.monotonic() < end:
        time.sleep(min(1.0, end - time.monotonic()))


def ingest_steps() -> list[tuple[str, object]]:
    """The ingest steps whose settings are present, in the order they depend on each other."""
    from . import config

    steps = []
    if config.get("behavior_data_paths"):
        from .ingest.behavior import ingest_behavior

        steps.append(("ingest-behavior", ingest_behavior))
    if config.get("behavior_bpod"):
        from .ingest.behavior import ingest_foraging

        steps.append(("ingest-foraging", ingest_foraging))
    if config.get("tracking_data_paths"):
        from .ingest.tracking import ingest_tracking

        steps.append(("ingest-tracking", ingest_tracking))
    if config.get("ephys_data_paths"):
        from .ingest.ephys import ingest_ephys

        steps.append(("ingest-ephys", ingest_ephys))
    if config.get("recording_notes_spreadsheet"):
        from .ingest.insertion_location import load_insertion_locations

        steps.append(
            (
                "load-insertion-location",
                lambda: load_insertion_locations(
                    config.get("recording_notes_spreadsheet"), config.get("recording_notes_sheet_name")
                ),
            )
        )
    if config.get("histology_data_paths"):
        from .ingest.histology import ingest_histology

        steps.append(("ingest-histology", ingest_histology))
    return steps


def auto_ingest(once: bool = False, interval: float = 300.0) -> list[Summary]:
    """Run every configured ingest step; repeat every ``interval`` s unless ``once``. Returns the last
    round's summaries (one per step)."""
    Stop.install()
    while True:
        summaries = []
        for name, step in ingest_steps():
            if Stop.requested:
                break
            s = step()
            report_log.info("%s: %s", name, s.line())
            summaries.append(s)
        if once or Stop.requested:
            return summaries
        _sleep(interval)


def cleanup(orphan_timeout: float = ORPHAN_TIMEOUT, folder=None) -> Summary:
    """Hand dead workers' reservations back to the queue, remove orphaned store objects (arrays and
    figures whose rows are gone: deleted, or left by killed runs) and sync the figures."""
    import datajoint as dj

    from . import db
    from .reporting import sync

    summary = Summary(what="cleanup steps")
    for table in computed_tables():
        # a worker stopped (SIGTERM) or interrupted mid-key left an error that is not the key's fault
        transient = table.jobs.errors & "error_message LIKE 'SystemExit%%' OR error_message LIKE 'KeyboardInterrupt%%'"
        n_transient = transient.delete_quick(get_count=True)
        if n_transient:
            summary.load(f"{table.__name__}: {n_transient} keys interrupted by a stopped worker back in the queue")
        counts = table.jobs.refresh(orphan_timeout=orphan_timeout)
        if counts.get("orphaned"):
            summary.load(f"{table.__name__}: {counts['orphaned']} reservations of dead workers back in the queue")
    for store in (db.STORE, db.REPORT_STORE):
        schemas = _store_schemas(store)
        if not schemas:
            continue
        stats = dj.gc.GarbageCollector(*schemas, store=store).collect(dry_run=False)
        removed = _removed(stats)
        summary.load(f"store {store}: {removed} orphaned objects removed", group=f"store {store}", objects=removed)
    synced = sync(folder)
    summary.load(f"figures synced: {synced.line()}", group="figures")
    summary.found = len(summary.loaded)
    summary.log_report()
    return summary


def _store_schemas(store: str) -> list:
    """The activated schemas with a table (or part table) that keeps objects in ``store``, from the
    pipeline's table classes. Only these are given to DataJoint's garbage collector: it reloads the
    dependency graph for every table of every schema it is given (about 12 s a store for all the
    pipeline's schemas, even empty), and a store's objects are filed under their schema's name, so
    the other schemas have none there to collect."""
    from . import db

    out = []
    for module, schema in db.schemas().items():
        tables = db.table_classes(module) if schema.database is not None else []
        if any(a.store == store for t in tables for a in t.heading.attributes.values()):
            out.append(schema)
    return out


def _removed(stats) -> int:
    """The number of objects a DataJoint GC run deleted, whatever shape its statistics take."""
    if isinstance(stats, dict):
        for k in ("deleted", "removed", "orphaned_deleted", "n_deleted"):
            if k in stats and isinstance(stats[k], int):
                return stats[k]
        return sum(v for k, v in stats.items() if "delet" in k and isinstance(v, int))
    return int(getattr(stats, "deleted", 0) or 0)


def automate_sync_and_cleanup(once: bool = False, interval: float = 600.0) -> Summary:
    Stop.install()
    while True:
        s = cleanup()
        if once or Stop.requested:
            return s
        _sleep(interval)


def jobs_status() -> list[dict]:
    """Per computed table: keys to do, reserved (by which host and process, since when), errors
    (with the message) and done."""
    rows = []
    for table in computed_tables():
        jobs = table.jobs
        todo = len(table.key_source.proj() - table.proj())
        reserved = jobs.reserved.to_dicts() if jobs.is_declared else []
        errors = jobs.errors.to_dicts() if jobs.is_declared else []
        rows.append(
            dict(
                table=f"{table.__module__.split('.')[-1]}.{table.__name__}",
                pending=todo,
                reserved=[(r["host"], r["pid"], str(r["reserved_time"])) for r in reserved],
                errors=[r["error_message"] for r in errors],
                done=len(table()),
            )
        )
    return rows


def retry_errors(table_name: str | None = None) -> int:
    """Delete error records (of one table, or all) so the next round computes those keys again."""
    n = 0
    for table in computed_tables():
        if table_name and table_name not in (table.__name__, f"{table.__module__.split('.')[-1]}.{table.__name__}"):
            continue
        if table.jobs.is_declared:
            n += table.jobs.errors.delete_quick(get_count=True)
    return n


def host() -> str:
    return platform.node()
