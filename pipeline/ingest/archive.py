"""Loading an insertion's data again: the loaded rows archived, the new ones loaded in their place
(``ingest-ephys --replace``, ``ingest-histology --replace``), and archives listed and restored
(``mapshell archive list|restore``).

The original pipeline could not re-sort a probe or re-align its histology in place; it needed
``ArchivedClustering`` / ``ArchivedElectrodeHistology`` tables and one-off fix scripts. Here each
kind of re-loadable data is a set of tables of one insertion:

* ``clustering``: ``ephys.Clustering`` and its parts (trials, units with their spike arrays,
  metrics, labels) and the ``ingest_ephys.EphysIngest`` record of its files;
* ``histology``: ``histology.ElectrodeCCFPosition`` (+ electrode positions),
  ``histology.LabeledProbeTrack`` (+ points) and the ``ingest_histology.HistologyIngest`` record.

Replacing them:

1. reads those rows (arrays included) and writes them as one file to the archive (the
   ``archive_url`` setting, as for ``publish``: ``<archive>/archived_<kind>/<h2o>/
   <YYYY-MM-DD>_s<session>/probe<N>/<number>.pkl``), read back and checked (size, SHA-1);
2. in **one transaction**: records it (``ingest_ephys.ArchivedClustering`` /
   ``ingest_histology.ArchivedHistology``), deletes the rows and everything computed from them
   (unit statistics, PSTHs, selectivity, interpolated positions, report entries: computed again by
   ``populate-psth`` / ``generate-report`` or the workers), and inserts the new rows. If anything
   fails, nothing changed (the archive file stays, unreferenced).

The insertion itself (location, quality, the other kind's data) is kept. Restoring an archive is
the same with the archived rows as the new ones (the current rows are archived first, so a restore
can be undone). Store objects of replaced rows are left for DataJoint's garbage collection
(``mapshell automate-sync-and-cleanup``).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass
from typing import Any

import datajoint as dj
import numpy as np

from ..errors import InputError, UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    name: str  #: clustering | histology

    def tables(self) -> list:
        """The tables that hold one insertion's data of this kind, parents first."""
        if self.name == "clustering":
            from .. import ephys, tracking
            from .ephys.tables import EphysIngest

            c = ephys.Clustering
            return [
                c,
                c.Trial,
                c.Unit,
                c.ClusterMetric,
                c.WaveformMetric,
                c.UnitLabel,
                ephys.TrialEvent,  # the foraging rigs' bitcode extras come with the probe's load
                ephys.ActionEvent,
                tracking.EphysFrameTime,
                EphysIngest,
                EphysIngest.EphysFile,
            ]
        from .. import histology
        from .histology.tables import HistologyIngest

        h = histology
        return [
            h.ElectrodeCCFPosition,
            h.ElectrodeCCFPosition.ElectrodePosition,
            h.LabeledProbeTrack,
            h.LabeledProbeTrack.Point,
            HistologyIngest,
            HistologyIngest.HistologyFile,
        ]

    def record_table(self):
        if self.name == "clustering":
            from .ephys.tables import ArchivedClustering

            return ArchivedClustering
        from .histology.tables import ArchivedHistology

        return ArchivedHistology

    def describe(self, rows: dict[str, list[dict]]) -> dict[str, Any]:
        """The record's summary fields of an archived snapshot."""
        tables = self.tables()
        if self.name == "clustering":
            master = rows[tables[0].full_table_name][0]  # tables: Clustering, its Trial and Unit, ...
            units = rows[tables[2].full_table_name]
            return dict(
                clustering_method=master["clustering_method"],
                clustering_time=master["clustering_time"],
                n_units=len(units),
                n_spikes=int(sum(int(u["n_spikes"]) for u in units)),
            )
        ingest = rows[tables[4].full_table_name]  # HistologyIngest
        return dict(
            histology_format=ingest[0]["histology_format"] if ingest else "",
            n_electrodes=len(rows[tables[1].full_table_name]),
            n_track_points=len(rows[tables[3].full_table_name]),
        )


CLUSTERING, HISTOLOGY = Kind("clustering"), Kind("histology")
KINDS = {k.name: k for k in (CLUSTERING, HISTOLOGY)}


def _plain(value):
    """A fetched value as plain data (a stored array as a numpy array)."""
    if value is None or isinstance(value, str | int | float | bool | np.ndarray | np.generic):
        return value
    if hasattr(value, "__array__"):
        return np.array(value)
    return value


def snapshot(kind: Kind, key: dict) -> dict[str, list[dict]]:
    """Every row of the insertion's data of ``kind``, arrays read, by table name."""
    return {
        t.full_table_name: [{k: _plain(v) for k, v in r.items()} for r in (t & key).to_dicts()] for t in kind.tables()
    }


def _archive_path(kind: Kind, key: dict, number: int) -> str:
    from .. import experiment, lab

    h2o = (lab.WaterRestriction & key).fetch1("water_restriction_number")
    day = (experiment.Session & key).fetch1("session_date")
    return f"archived_{kind.name}/{h2o}/{day:%Y-%m-%d}_s{key['session']}/probe{key['insertion_number']}/{number}.pkl"


def _write(kind: Kind, key: dict, rows: dict, number: int) -> dict:
    """Write the snapshot to the archive and read it back; the record's file fields."""
    from ..publishing import archive_url, open_archive

    url = archive_url()
    fs, root = open_archive(url)
    rel = _archive_path(kind, key, number)
    data = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
    sha1 = hashlib.sha1(data).hexdigest()
    path = f"{root}/{rel}"
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, data)
    with fs.open(path, "rb") as f:
        back = f.read()
    if len(back) != len(data) or hashlib.sha1(back).hexdigest() != sha1:
        raise InputError(f"archive {url}: {rel} reads back differently; nothing was replaced")
    return dict(archive_url=url, archive_file=rel, file_size=len(data), file_sha1=sha1)


def _read(row: dict) -> dict[str, list[dict]]:
    from ..publishing import open_archive

    fs, root = open_archive(row["archive_url"])
    try:
        with fs.open(f"{root}/{row['archive_file']}", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(f"archive {row['archive_url']}: {row['archive_file']} is missing") from None
    if hashlib.sha1(data).hexdigest() != row["file_sha1"]:
        raise InputError(f"archive {row['archive_url']}: {row['archive_file']} is not what was archived (SHA-1)")
    return pickle.loads(data)  # noqa: S301  (our own archive file, checked by its SHA-1 above)


def _archive_current(kind: Kind, key: dict, reason: str) -> dict:
    """Snapshot the loaded rows into the archive; the record to insert."""
    rows = snapshot(kind, key)
    numbers = (kind.record_table() & key).to_arrays("archive_number")
    number = int(max(numbers, default=0)) + 1
    return dict(
        key, archive_number=number, reason=reason[:255], **kind.describe(rows), **_write(kind, key, rows, number)
    )


def _delete(kind: Kind, key: dict) -> None:
    """Delete the insertion's rows of ``kind`` and everything computed from them (inside the
    caller's transaction); masters first, so DataJoint cascades to their parts and dependents."""
    for table in kind.tables():
        if not issubclass(table, dj.Part):
            (table & key).delete(transaction=False, prompt=False, part_integrity="cascade")


def replace(kind: Kind, key: dict, reason: str, insert) -> int:
    """Archive the insertion's loaded rows of ``kind`` and call ``insert()`` (which inserts the new
    rows) in their place, in one transaction. Returns the archive number."""
    from .. import db

    archived = _archive_current(kind, key, reason)
    with db.connect().transaction:
        kind.record_table().insert1(archived)
        _delete(kind, key)
        insert()
    log.info("%s of %s archived as %s/%s", kind.name, key, archived["archive_url"], archived["archive_file"])
    return archived["archive_number"]


def list_archives(restriction=None) -> list[dict]:
    """The archived rows of every kind (restricted), by insertion then kind and number."""
    from .. import lab

    out = []
    for kind in KINDS.values():
        q = kind.record_table() * lab.WaterRestriction.proj("water_restriction_number")
        if restriction is not None:
            q = q & restriction
        out += [dict(r, kind=kind.name) for r in q.to_dicts()]
    return sorted(
        out, key=lambda r: (r["subject_id"], r["session"], r["insertion_number"], r["kind"], r["archive_number"])
    )


def restore(kind: Kind, restriction, number: int) -> int:
    """Put archive ``number`` of ``kind`` of the one insertion matching ``restriction`` back in place
    of the loaded rows (which are archived first). Returns the replaced rows' archive number (0:
    there were none)."""
    from .. import db, ephys

    insertions = (ephys.ProbeInsertion & restriction).proj().to_dicts() if restriction is not None else []
    if len(insertions) != 1:
        raise UsageError(
            f"restore needs a restriction naming exactly one insertion; {restriction!r} names {len(insertions)}"
        )
    key = insertions[0]
    found = (kind.record_table() & key & {"archive_number": number}).to_dicts()
    if not found:
        raise UsageError(f"insertion {key} has no archived {kind.name} number {number} (see `mapshell archive list`)")
    rows = _read(found[0])
    tables = kind.tables()
    current = None
    if tables[0] & key:
        current = _archive_current(kind, key, f"replaced by restoring archive {number}")
    with db.connect().transaction:
        if current is not None:
            kind.record_table().insert1(current)
            _delete(kind, key)
        for table in tables:
            table.insert(rows.get(table.full_table_name, []))
    return current["archive_number"] if current else 0
