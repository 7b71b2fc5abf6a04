"""Read a MATLAB .mat file (v5 or v7.3/HDF5) into plain Python: dicts, lists, numpy arrays, str.

v5 files are read by scipy (``simplify_cells``: about twice as fast as going through
pymatreader), v7.3 files by pymatreader (h5py). Both give structs as dicts and cell arrays as
lists; a struct *array* is a list of dicts from scipy but a dict of per-element lists from
pymatreader, so readers accept both (the tests write a real v5 rig file out as v7.3 and check
that the two read the same).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..errors import InputError
from .files import existing_file


class MatFileError(InputError):
    """The file is not a readable MATLAB file; the message names it."""


def mat_version(path: str | Path) -> str:
    """'7.3' for HDF5-based files, '5' for classic ones (from the 128-byte text header)."""
    with open(path, "rb") as f:
        head = f.read(128)
    if not head.startswith(b"MATLAB"):
        raise MatFileError(f"{path}: not a MATLAB .mat file (no MATLAB header)")
    return "7.3" if b"7.3" in head[:20] else "5"


def read_mat(path: str | Path, variable_names: list[str] | None = None) -> dict[str, Any]:
    path = existing_file(path, MatFileError)
    version = mat_version(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if version == "5":
                import scipy.io as sio

                data = sio.loadmat(str(path), simplify_cells=True, variable_names=variable_names)
                return {k: v for k, v in data.items() if not k.startswith("__")}
            from pymatreader import read_mat as _read

            return _read(str(path), variable_names=variable_names)
    except Exception as e:  # scipy/h5py raise many kinds for truncated or corrupt files
        raise MatFileError(
            f"{path}: cannot read ({type(e).__name__}: {e}); the file may be truncated or corrupt"
        ) from None
