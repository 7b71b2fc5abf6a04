"""Small helpers about files that every ingest needs."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha1(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash, recorded with each loaded file so a later change is noticed."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def readable_roots(setting: str, paths: list | None, summary, what: str) -> list[Path]:
    """The folders of a path-list setting (or ``paths`` given instead), validated; each missing one
    is a failure in ``summary`` (so a typo in the settings is not a silent 'nothing found')."""
    from .. import config

    roots = [
        Path(p).expanduser() for p in config.validate(setting, paths if paths is not None else config.get(setting, []))
    ]
    for r in roots:
        if not r.is_dir():
            summary.fail(str(r), f"{what} folder does not exist or is not readable")
    return [r for r in roots if r.is_dir()]


def check_loaded(file_part, files: dict[str, Path]) -> tuple[str, str] | None:
    """Whether these files (name -> path) of one day are already in the database.

    ``file_part`` is an ingest table's file part (keyed by session and ``behavior_file``, with
    ``file_size`` and ``file_sha1``). Returns None if none of them is loaded, ('skip', reason) if
    exactly these files are loaded unchanged, and ('fail', reason) if the day was loaded from
    other or since-changed files, which the caller must not alter.
    """
    rows = (file_part & [{"behavior_file": n} for n in files]).to_dicts()
    if not rows:
        return None
    by_name = {r["behavior_file"]: r for r in rows}
    sessions = sorted({(r["subject_id"], r["session"]) for r in rows})
    changed = [
        n
        for n, p in files.items()
        if n in by_name and (p.stat().st_size != by_name[n]["file_size"] or sha1(p) != by_name[n]["file_sha1"])
    ]
    new = [n for n in files if n not in by_name]
    loaded_names = set((file_part & [dict(subject_id=s, session=k) for s, k in sessions]).to_arrays("behavior_file"))
    if not changed and not new and loaded_names == set(files):
        return "skip", "already loaded"
    what = "; ".join(
        filter(
            None,
            [
                f"changed since loading: {', '.join(changed)}" if changed else "",
                f"not in the loaded session: {', '.join(new)}" if new else "",
            ],
        )
    )
    return "fail", (
        f"session {sessions} was loaded from {', '.join(sorted(loaded_names))} and is not altered "
        f"({what or 'files differ'}); delete that session to load the day again"
    )
