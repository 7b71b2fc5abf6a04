"""The one loop every ingest step runs in.

A step is three parts with one direction of flow:

* **find** (``Step.find``): paths -> :class:`Item` work items. It may read the database (which
  sessions exist) but never writes. It records where it looked and what it ignored.
* **build** (``Step.build``): one item -> a plain record of rows and arrays. Pure: readers,
  alignment, unit conversion; no database. What build needs from the database (the behaviour
  session's bitcodes, the probe's electrodes...) is read before it by ``Step.inputs`` and passed in.
* **write** (``Step.write``): one record -> one transaction. Nothing partial is ever left.

:func:`run` does the rest for every step: the progress bar, the already-loaded / changed-files
check (``Step.check``), the claim on each item (DataJoint's job reservation, see
:mod:`pipeline.ingest.work`: many workers share a step and never load an item twice), error capture
and the summary. Input the user can fix
(:class:`~pipeline.errors.MapError`) fails the item with its one-line message; any other
exception is a bug: the item is counted as failed and the traceback is logged.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import MapError, SkipItem
from .progress import track
from .summary import Summary

log = logging.getLogger(__name__)


@dataclass
class Item:
    """One unit of work: a day of rig files, a pybpod session, a probe folder, an insertion."""

    label: str  #: how the summary names it
    group: str  #: "<h2o> <YYYY-MM-DD>": the summary groups loaded items per animal and day
    key: dict = field(default_factory=dict)  #: database key of what it creates (or identifies it)
    data: Any = None  #: what find knows about it (paths ...), for the step's own use


@dataclass
class Done:
    """What write reports: a line for the summary and counts (trials, units, ...) per item."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Step:
    """Base class of an ingest step; subclasses implement find, build and write."""

    name = "ingest"  #: the mapshell action
    what = "items"  #: what an item is, plural ("behavior sessions")
    claims = True  #: claim each item before loading it (see pipeline.ingest.work), so workers can share

    def find(self, summary: Summary) -> list[Item]:
        raise NotImplementedError

    def check(self, item: Item) -> tuple[str, str] | None:
        """('skip' | 'fail', reason) if the item must not be loaded (already loaded, changed since,
        unknown animal...), None to load it. Reads the database only."""
        return None

    def inputs(self, item: Item) -> Any:
        """What build needs from the database for this item (read only)."""
        return None

    def build(self, item: Item, inputs: Any) -> Any:
        raise NotImplementedError

    def write(self, item: Item, record: Any, inputs: Any) -> Done:
        raise NotImplementedError

    def cleanup(self, item: Item) -> None:
        """Remove what a failed (rolled-back) or killed write of ``item`` left outside the database
        (store objects). Called before each write and after a failed one; the item has no rows."""


def run(step: Step, progress: bool | None = None) -> Summary:
    """Find the step's items and load each that is not loaded yet; returns the summary."""
    summary = Summary(what=step.what)
    items = step.find(summary)
    summary.found = len(items)
    for item in track(items, step.name, total=len(items), enabled=progress):
        run_item(step, item, summary)
    summary.log_report()
    return summary


def _cleanup_quietly(step: Step, item: Item) -> None:
    try:
        step.cleanup(item)
    except Exception:  # never hide the write's own error behind a cleanup error
        log.warning("%s: could not remove its store objects after the failure", item.label, exc_info=True)


def run_item(step: Step, item: Item, summary: Summary) -> bool:
    """Check, claim, build and write one item, recording the outcome in ``summary``; True if loaded."""
    state = _check(step, item, summary)
    if state is None:
        return False
    if not step.claims:
        return _load(step, item, summary)
    from . import work

    ok, why, ckey = work.claim(step.name, item.key, item.label)
    if not ok:
        summary.skip(item.label, why)
        return False
    loaded = False
    try:
        # checked again under the claim: another worker may have loaded it since the first check
        if _check(step, item, summary) is not None:
            loaded = _load(step, item, summary)
    finally:
        failed = bool(summary.failed) and summary.failed[-1][0] == item.label
        work.release(ckey, ok=not failed, message=summary.failed[-1][1] if failed else "")
    return loaded


def _check(step: Step, item: Item, summary: Summary):
    """True-ish if the item is to be loaded; None (recorded in the summary) if not."""
    try:
        state = step.check(item)
    except MapError as e:
        summary.fail(item.label, str(e))
        return None
    if state is not None:
        kind, reason = state
        (summary.skip if kind == "skip" else summary.fail)(item.label, reason)
        return None
    return True


def _load(step: Step, item: Item, summary: Summary) -> bool:
    try:
        inputs = step.inputs(item)
        record = step.build(item, inputs)
        step.cleanup(item)  # what a killed earlier run left behind (the claim makes this item ours)
        pause = float(os.environ.get("MAP_PAUSE_BEFORE_WRITE") or 0)  # for crash-recovery tests only
        if pause:
            time.sleep(pause)
        try:
            done = step.write(item, record, inputs)
        except BaseException:
            _cleanup_quietly(step, item)
            raise
    except SkipItem as e:
        summary.skip(item.label, str(e))
        return False
    except MapError as e:
        summary.fail(item.label, str(e))
        return False
    except Exception as e:  # a bug, not bad input: keep the traceback (nothing was written)
        log.error(
            "%s: unexpected error, rolled back (please report this with the traceback)", item.label, exc_info=True
        )
        summary.fail(item.label, f"unexpected {type(e).__name__}: {e} (rolled back; traceback in the log)")
        return False
    for n in done.notes:
        summary.note(f"{item.group}: {n}")
    summary.load(done.text, group=item.group, **done.counts)
    return True
