"""Read a MATLAB .mat file (v5 or v7.3/HDF5) into plain Python: dicts, lists, numpy arrays, str.

pymatreader gives the same structure for both versions (checked in the tests by writing a real
v5 rig file out again as v7.3). Struct arrays come back as a dict of per-element lists, cell
arrays as lists.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


class MatFileError(ValueError):
    """The file is not a readable MATLAB file; the message names it."""


def mat_version(path: str | Path) -> str:
    """'7.3' for HDF5-based files, '5' for classic ones (from the 128-byte text header)."""
    with open(path, "rb") as f:
        head = f.read(128)
    if not head.startswith(b"MATLAB"):
        raise MatFileError(f"{path}: not a MATLAB .mat file (no MATLAB header)")
    return "7.3" if b"7.3" in head[:20] else "5"


def read_mat(path: str | Path, variable_names: list[str] | None = None) -> dict[str, Any]:
    from pymatreader import read_mat as _read

    path = Path(path)
    if not path.is_file():
        raise MatFileError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise MatFileError(f"{path}: empty file")
    mat_version(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _read(str(path), variable_names=variable_names)
    except Exception as e:  # scipy/h5py raise many kinds for truncated or corrupt files
        raise MatFileError(f"{path}: cannot read ({type(e).__name__}: {e}); the file may be truncated or corrupt") \
            from None
