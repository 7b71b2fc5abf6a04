"""ingest_work: claims on ingest items, so that many workers can share the ingest.

Each item an ingest step finds (a day of rig files, a pybpod session, a probe folder, an
insertion's histology) is claimed with **DataJoint's job reservation** before it is built and
written: the item is a row of :class:`WorkItem`, and the jobs table of :class:`Ingested`
(``~~ingested``) holds its reservation. :meth:`Job.reserve` is one atomic UPDATE on the shared
database server, so of several workers that find the same new item exactly one loads it; the
others skip it ("being loaded by <host> pid <pid>"). A claim older than ``MAP_CLAIM_TIMEOUT``
seconds (default 3600) belongs to a worker that died and is taken over; a failed item is retried on
the next run (its files may have been fixed).
"""

from __future__ import annotations

import hashlib
import json
import os

import datajoint as dj

from .. import db

schema = dj.Schema()

#: Seconds after which another worker's claim is considered dead and taken over.
DEFAULT_TIMEOUT = 3600.0


@schema
class WorkItem(dj.Manual):
    """An item an ingest step has found."""

    definition = """
    step : varchar(24)           # the mapshell action, e.g. ingest-ephys
    item : char(32)              # md5 of the item's key
    ---
    label : varchar(1000)        # how the summary names it
    """


@schema
class Ingested(dj.Imported):
    """Items whose claim was released after loading (the claims themselves live in its jobs table)."""

    definition = """
    -> WorkItem
    """

    def make(self, key):  # claimed and loaded by the ingest runner, never populated
        raise NotImplementedError("ingest items are loaded by their step, not populated")


_jobs_tables: dict[tuple[int, str], dj.Table] = {}


def jobs_table():
    """The jobs table of :class:`Ingested` (``~~ingested``), built once per connection and schema:
    DataJoint's ``.jobs`` reloads the whole dependency graph on each access, which made a claim
    cost ~90 ms on MariaDB instead of a few."""
    table = Ingested()
    where = (id(table.connection), table.full_table_name)
    if where not in _jobs_tables:
        _jobs_tables[where] = table.jobs
    return _jobs_tables[where]


def claim_timeout() -> float:
    return float(os.environ.get("MAP_CLAIM_TIMEOUT") or DEFAULT_TIMEOUT)


def item_key(step_name: str, key: dict) -> dict:
    text = json.dumps(key, sort_keys=True, default=str)
    return dict(step=step_name, item=hashlib.md5(text.encode()).hexdigest())


def claim(step_name: str, key: dict, label: str) -> tuple[bool, str, dict]:
    """Try to claim an item: (claimed, why not, claim key)."""
    ckey = item_key(step_name, key)
    WorkItem.insert1(dict(ckey, label=label[:1000]), skip_duplicates=True)
    jobs = jobs_table()
    interval = jobs.adapter.interval_expr(claim_timeout(), "second")
    (jobs & ckey & "status in ('error', 'success')").delete_quick()
    (jobs & ckey & "status = 'reserved'" & f"reserved_time < CURRENT_TIMESTAMP(3) - {interval}").delete_quick()
    try:
        jobs.insert1(dict(ckey, status="pending", priority=5), skip_duplicates=True)
    except dj.errors.DuplicateError:
        pass
    # a freshly inserted claim's scheduled time may lie a few ms ahead of the server's clock reading
    if not jobs.reserve(ckey):
        conn = jobs.connection
        conn.query(
            f"UPDATE {jobs.full_table_name} SET {jobs.adapter.quote_identifier('scheduled_time')}="
            f"CURRENT_TIMESTAMP(3) - {jobs.adapter.interval_expr(1, 'second')} WHERE "
            + " AND ".join(f"{jobs.adapter.quote_identifier(k)}=%s" for k in ckey)
            + f" AND {jobs.adapter.quote_identifier('status')}='pending'",
            args=list(ckey.values()),
        )
        if not jobs.reserve(ckey):
            rows = (jobs & ckey).to_dicts()
            who = (
                f"{rows[0]['host']} pid {rows[0]['pid']} since {rows[0]['reserved_time']}" if rows else "another worker"
            )
            return False, f"being loaded by {who}", ckey
    return True, "", ckey


def release(ckey: dict, ok: bool, message: str = "") -> None:
    """Release a claim: done (loaded or skipped: the next run decides afresh) or failed."""
    jobs = jobs_table()
    if ok:
        (jobs & ckey).delete_quick()
    else:
        jobs.error(ckey, error_message=message[:2000])


db.register("ingest_work", schema)
