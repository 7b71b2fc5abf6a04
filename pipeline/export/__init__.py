"""``export-recording``: sessions to NWB (one file per session) or to the original MATLAB layout
(one file per probe).

Files are written under a temporary name and renamed into place, so a failed export leaves no
partial file; an existing file is an error unless ``overwrite``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import MapError, UsageError
from ..ingest.summary import Summary

log = logging.getLogger(__name__)


def nwb_name(row: dict, dandi: bool) -> str:
    stamp = f"{row['session_datetime']:%Y%m%d_%H%M%S}"
    if dandi:
        subject = str(row["subject_id"])
        return f"sub-{subject}/sub-{subject}_ses-{stamp}-s{row['session']}_ecephys+behavior.nwb"
    return f"{row['water_restriction_number']}_{stamp}_s{row['session']}.nwb"


def mat_name(row: dict) -> str:
    return (
        f"map-export_{row['water_restriction_number']}_{row['session_datetime']:%Y%m%d_%H%M%S}"
        f"_s{row['session']}_p{row['insertion_number']}.mat"
    )


def export_recording(
    restriction=None, fmt: str = "nwb", out: str | Path = ".", dandi: bool = False, overwrite: bool = False
) -> Summary:
    """Export the sessions (NWB) or probes (MAT) matching ``restriction``; returns the summary."""
    from .. import ephys, experiment, lab

    if fmt not in ("nwb", "mat"):
        raise UsageError(f"--format {fmt!r}: expected nwb or mat")
    if fmt == "nwb":
        try:
            import pynwb  # noqa: F401
        except ImportError:
            raise UsageError("export to NWB needs pynwb: pip install 'map-pipeline[nwb]'") from None
    base = experiment.Session * lab.WaterRestriction
    if fmt == "mat":
        base = base * ephys.ProbeInsertion.proj()
    try:
        rows = (base & restriction).to_dicts() if restriction is not None else base.to_dicts()
    except Exception as e:  # an unknown attribute in the restriction
        raise UsageError(f"restriction {restriction!r}: {str(e).splitlines()[0]}") from None
    if not rows:
        raise UsageError(
            f"nothing to export: no {'probe' if fmt == 'mat' else 'session'} matches {restriction!r}"
            + ("" if fmt == "nwb" else " (the MATLAB export is per probe: sessions without ephys have none)")
        )
    out = Path(out).expanduser()
    summary = Summary(what="NWB files" if fmt == "nwb" else "MATLAB files")
    summary.look(str(out))
    summary.found = len(rows)
    for row in rows:
        name = nwb_name(row, dandi) if fmt == "nwb" else mat_name(row)
        target = out / name
        label = str(target)
        if target.exists() and not overwrite:
            summary.fail(label, "exists; use --overwrite to replace it")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.part{target.suffix}")
        try:
            if fmt == "nwb":
                from . import nwb

                nwb.write(row, tmp)
            else:
                from . import matlab

                matlab.write(row, tmp)
            tmp.replace(target)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if not isinstance(e, Exception):
                raise
            if not isinstance(e, (MapError, OSError)):  # a bug: keep the traceback in the log
                log.error("%s: export failed", label, exc_info=True)
            summary.fail(label, f"{type(e).__name__}: {e}")
            continue
        summary.load(label, group=f"{row['water_restriction_number']} {row['session_date']}", files=1)
    summary.log_report()
    return summary
