"""The first check every reader makes: the file is there and not empty, in the reader's own error."""

from __future__ import annotations

from pathlib import Path


def existing_file(path, error: type[Exception]) -> Path:
    """``path`` as a Path; raises ``error`` naming the file when it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise error(f"{path}: empty file")
    return path
