"""``populate-psth``: the computed tables of every loaded probe, probe by probe.

For each clustering (probe) it populates, in order: ephys.UnitStat, ephys.UnitCellType,
ephys.MAPClusterMetric (drift), ephys.UnitPassingCriteria, and for delay-response sessions
psth.UnitPsth (17 conditions), psth.PeriodSelectivity (sample, delay, response; needs the
insertion's location or hemisphere) and psth.UnitSelectivity. The probe's spikes are loaded once
and shared by all of them; the PSTHs and period rates of a delay-response probe are computed in a
background thread while the unit statistics are written (:func:`pipeline.psth.prefetch`).
Re-running computes only what is missing.
"""

from __future__ import annotations

import logging

from .errors import MapError
from .ingest.progress import track
from .ingest.summary import Summary

log = logging.getLogger(__name__)


def computed_tables() -> list:
    from . import ephys, psth

    return [
        ephys.UnitStat,
        ephys.UnitCellType,
        ephys.MAPClusterMetric,
        ephys.UnitPassingCriteria,
        psth.UnitPsth,
        psth.PeriodSelectivity,
        psth.UnitSelectivity,
    ]


def _missing(table, key) -> bool:
    return bool((table.key_source & key).proj() - table.proj())


def _label(key: dict) -> tuple[str, str]:
    from . import experiment, lab

    row = (experiment.Session * lab.WaterRestriction & key).proj("water_restriction_number", "session_date").to_dicts()
    h2o = row[0]["water_restriction_number"] if row else f"subject {key['subject_id']}"
    day = str(row[0]["session_date"]) if row else "?"
    return f"{h2o} session {key['session']} probe {key['insertion_number']}", f"{h2o} {day}"


def populate_psth(restriction=None, progress: bool | None = None) -> Summary:
    """Populate the computed tables for every probe (matching ``restriction``: a dict, a list of
    dicts or an SQL string on the clustering's attributes); returns the summary."""
    from . import ephys, psth

    summary = Summary(what="probes")
    probes = ephys.Clustering & restriction if restriction is not None else ephys.Clustering
    keys = probes.keys(order_by="KEY")
    summary.found = len(keys)
    if not keys:
        summary.look("ephys.Clustering" + (f" restricted to {restriction!r}" if restriction is not None else ""))
    tables = computed_tables()
    delay = set(map(lambda k: tuple(k.values()), psth.delay_response_clusterings().keys()))
    try:
        for key in track(keys, "populate-psth", total=len(keys), enabled=progress):
            label, group = _label(key)
            background = None
            try:
                if tuple(key.values()) in delay and any(
                    _missing(t, key) for t in (psth.UnitPsth, psth.PeriodSelectivity)
                ):
                    background = psth.prefetch(key)  # their numbers computed beside the others' inserts
                # each a no-op where done (one query); later ones need earlier ones
                computed = sum(t.populate(key)["success_count"] for t in tables)
            except MapError as e:
                summary.fail(label, str(e))
                continue
            except Exception as e:  # a bug or a database problem: keep the traceback in the log
                log.error("%s: computing failed", label, exc_info=True)
                summary.fail(label, f"{type(e).__name__}: {e} (traceback in the log)")
                continue
            finally:
                if background is not None:  # (done unless a table failed before the PSTHs)
                    background.join()
            if not computed:
                summary.skip(label, "already computed")
                continue
            cell_types = (ephys.UnitCellType.Unit & key).to_arrays("cell_type")
            counts = dict(probes=1, units=len(cell_types))
            parts = [f"{len(cell_types)} units"]
            if tuple(key.values()) not in delay:
                summary.note(f"{label}: not a delay-response session: unit statistics only (no PSTH or selectivity)")
            else:
                counts["psth"] = len(psth.UnitPsth & key)
                parts.append(f"{counts['psth']} conditions")
                sel = (psth.UnitSelectivity.Unit & key).to_arrays("unit_selectivity")
                if len(sel) or psth.UnitSelectivity & key:
                    parts.append(
                        ", ".join(f"{int((sel == s).sum())} {s}" for s in ("contra-selective", "ipsi-selective"))
                    )
                else:
                    summary.note(f"{label}: no insertion location or hemisphere: no ipsi/contra selectivity")
            parts.append(f"{int((cell_types == 'FS').sum())} FS")
            summary.load(f"{label}: " + ", ".join(parts), group=group, **counts)
    finally:
        ephys.clear_spike_cache()
        psth.clear_caches()
    summary.log_report()
    return summary
