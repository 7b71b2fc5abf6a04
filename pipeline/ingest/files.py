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
