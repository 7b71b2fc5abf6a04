"""Read a MATLAB .mat file (v5 or v7.3/HDF5) into plain Python: dicts, lists, numpy arrays, str.

v5 files are read by a small reader here (:func:`read_mat5`, about twice as fast as scipy's
general reader on Bpod files: no per-element Python objects beyond the values, the header of
each array read in one go, repeated cells such as a state machine's state names read once and
shared); it gives exactly what ``scipy.io.loadmat(simplify_cells=True)`` gives (the tests compare
every field) and leaves what it does not know (objects, sparse or complex arrays, big-endian
files, ...) to scipy. v7.3 files are read by pymatreader (h5py). Both give structs as dicts and
cell arrays as lists; a struct *array* is a list of dicts from the v5 readers but a dict of
per-element lists from pymatreader, so readers accept both (the tests write a real v5 rig file
out as v7.3 and check that the two read the same).
"""

from __future__ import annotations

import struct as _struct
import warnings
import zlib as _zlib
from pathlib import Path
from typing import Any

import numpy as np

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
                try:
                    return read_mat5(path, variable_names)
                except Exception:  # what it leaves to scipy, or a damaged file: scipy says what is wrong
                    pass
                import scipy.io as sio

                data = sio.loadmat(str(path), simplify_cells=True, variable_names=variable_names)
                return {k: v for k, v in data.items() if not k.startswith("__")}
            from pymatreader import read_mat as _read

            return _read(str(path), variable_names=variable_names)
    except Exception as e:  # scipy/h5py raise many kinds for truncated or corrupt files
        raise MatFileError(
            f"{path}: cannot read ({type(e).__name__}: {e}); the file may be truncated or corrupt"
        ) from None


# --- the small v5 reader --------------------------------------------------------------------------

_MI_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MX_DTYPES = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}
_MX_CELL, _MX_STRUCT, _MX_CHAR = 1, 2, 4
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_CHAR_CODECS = {16: "utf-8", 4: "utf-16-le", 17: "utf-16-le", 2: "latin-1", 1: "latin-1"}


class _Unsupported(Exception):
    """Something the small reader leaves to scipy (objects, sparse, complex, big-endian, ...)."""


def _tag(buf, pos: int) -> tuple[int, int, int, int]:
    """(type, nbytes, data start, next element) of the data element at ``pos``."""
    mtype, nbytes = _TAG.unpack_from(buf, pos)
    if mtype >> 16:  # small data element: 1-4 bytes packed into the tag
        return mtype & 0xFFFF, mtype >> 16, pos + 4, pos + 8
    return mtype, nbytes, pos + 8, pos + 8 + ((nbytes + 7) & ~7)


def _squeezed(a: np.ndarray):
    """scipy's squeeze_me: no singleton dimensions; 0-d -> the scalar; empty -> 1-d empty."""
    if not a.size:
        return a.reshape(0)
    a = a.squeeze()
    return a.item() if not a.shape else a


#: the header of a 2-D array without a name (every element of a struct or a cell): array-flags
#: tag and flags, dimensions tag and the two dimensions, the empty name as a small element
_HEADER = _struct.Struct("<IIIIIIiiII")
_TAG = _struct.Struct("<II")
_DTYPES = {k: np.dtype(v) for k, v in _MI_DTYPES.items()}


def _matrix(buf, pos: int, end: int, memo: dict):
    """The miMATRIX whose content is buf[pos:end], as scipy's loadmat(squeeze_me=True, struct_as_record=False)."""
    if pos == end:  # an empty miMATRIX is [] (double)
        return np.array([])
    if end - pos >= 40:
        t1, n1, flags, _, t2, n2, d0, d1, t3, n3 = _HEADER.unpack_from(buf, pos)
        fast = t1 == 6 and n1 == 8 and t2 == 5 and n2 == 8 and t3 == 1 and n3 == 0
    else:
        fast = False
    if fast:
        dims = (d0, d1)
        pos += 40
    else:
        _, _, p, pos = _tag(buf, pos)
        flags = _struct.unpack_from("<I", buf, p)[0]
        _, nbytes, p, pos = _tag(buf, pos)
        dims = _struct.unpack_from(f"<{nbytes // 4}i", buf, p)
        _, _, _, pos = _tag(buf, pos)  # the name (empty inside structs and cells)
    mclass = flags & 0xFF
    if flags & 0x800:
        raise _Unsupported("complex")
    count = 1
    for d in dims:
        count *= d
    if mclass in _MX_DTYPES:  # scipy keeps the type the data is stored as (mat_dtype=False)
        mtype, nbytes = _TAG.unpack_from(buf, pos)
        if mtype >> 16:  # small data element
            mtype, nbytes, p = mtype & 0xFFFF, mtype >> 16, pos + 4
        else:
            p = pos + 8
        dtype = _DTYPES[mtype]
        a = np.frombuffer(buf, dtype, nbytes // dtype.itemsize, p)
        if len(dims) == 2 and (dims[0] == 1 or dims[1] == 1):
            return a.item() if count == 1 else a  # already the squeezed shape
        return _squeezed(a.reshape(dims, order="F"))
    if mclass == _MX_CHAR:
        if len(dims) != 2:
            raise _Unsupported("char array of more than 2 dimensions")
        mtype, nbytes, p, pos = _tag(buf, pos)
        if not count:
            return np.array([], dtype="U1")
        text = bytes(buf[p : p + nbytes]).decode(_CHAR_CODECS[mtype])
        if dims[0] == 1:
            return text
        rows = dims[0]  # column-major: row i is every rows-th character from i
        return _squeezed(np.array([text[i::rows] for i in range(rows)], dtype=f"U{dims[1]}"))
    if mclass == _MX_CELL:
        # cells repeat (a state machine's state names on every trial): read each distinct one once
        key = bytes(buf[pos:end])
        if key in memo:
            return memo[key]
        out = np.empty(count, dtype=object)
        for i in range(count):
            _, nbytes, p, pos = _tag(buf, pos)
            out[i] = _matrix(buf, p, p + nbytes, memo)
        out = memo[key] = _squeezed(out.reshape(dims, order="F"))
        return out
    if mclass == _MX_STRUCT:
        _, _, p, pos = _tag(buf, pos)
        name_len = _struct.unpack_from("<i", buf, p)[0]
        _, nbytes, p, pos = _tag(buf, pos)
        raw = bytes(buf[p : p + nbytes])
        names = memo.get(("names", raw))
        if names is None:
            names = memo[("names", raw)] = [
                raw[i : i + name_len].split(b"\0", 1)[0].decode("latin-1") for i in range(0, nbytes, name_len)
            ]
        out = np.empty(count, dtype=object)
        for i in range(count):
            s = _Struct()
            for name in names:
                _, nbytes, p, pos = _tag(buf, pos)
                s[name] = _matrix(buf, p, p + nbytes, memo)
            out[i] = s
        return _squeezed(out.reshape(dims, order="F"))
    raise _Unsupported(f"class {mclass}")


class _Struct(dict):
    """A MATLAB struct as read (until :func:`_simplify` makes it a plain dict)."""


def _has_struct(v) -> bool:
    """scipy's test: a non-empty array whose first element is a struct (only cells hold structs)."""
    return type(v) is np.ndarray and v.dtype.kind == "O" and v.ndim > 0 and v.size > 0 and type(v[0]) is _Struct


def _no_struct_left(v):
    """``v`` as it is, which scipy leaves alone: if a struct hides in it, scipy would give a
    ``mat_struct`` there, so leave the file to scipy."""
    if type(v) is _Struct or (
        type(v) is np.ndarray and v.dtype.kind == "O" and any(_no_struct_left(x) is None for x in v.flat)
    ):
        raise _Unsupported("a struct inside a cell array where scipy keeps its mat_struct")
    return v


def _cells(a: np.ndarray) -> list:
    return [_simplify(x) if type(x) is _Struct else _cells(x) if _has_struct(x) else _no_struct_left(x) for x in a]


def _simplify(v):
    """scipy's ``simplify_cells`` (same rules): structs -> dicts, arrays whose first element is a
    struct -> lists (of dicts, and of such lists)."""
    if type(v) is _Struct:
        return {k: x if type(x) is not _Struct and type(x) is not np.ndarray else _simplify(x) for k, x in v.items()}
    if type(v) is np.ndarray and v.dtype.kind == "O":
        return _cells(v) if _has_struct(v) else _no_struct_left(v)
    return v


def read_mat5(path: str | Path, variable_names: list[str] | None = None) -> dict[str, Any]:
    """A little-endian v5 .mat file's variables as ``scipy.io.loadmat(path, simplify_cells=True)``
    gives them (raises ``_Unsupported`` for what it leaves to scipy). Equal cells are one shared
    object: do not change the values in place."""
    with open(path, "rb") as f:
        data = bytearray(f.read())  # writable arrays, as scipy gives
    if bytes(data[126:128]) != b"IM":
        raise _Unsupported("big-endian file")
    out, pos = {}, 128
    while pos + 8 <= len(data):
        mtype, nbytes = _struct.unpack_from("<II", data, pos)
        body = data[pos + 8 : pos + 8 + nbytes]
        pos += 8 + (nbytes if mtype == _MI_COMPRESSED else (nbytes + 7) & ~7)
        if mtype == _MI_COMPRESSED:
            body = bytearray(_zlib.decompressobj().decompress(body))
            mtype, nbytes, p, _ = _tag(body, 0)
            body = body[p : p + nbytes]
        if len(body) < nbytes:
            raise _Unsupported("the file ends inside a variable")
        if mtype != _MI_MATRIX:
            continue
        # the variable's name, the third sub-element
        _, _, _, q = _tag(body, 0)
        _, _, _, q = _tag(body, q)
        _, nbytes, q, _ = _tag(body, q)
        name = bytes(body[q : q + nbytes]).decode("latin-1")
        if variable_names is not None and name not in variable_names:
            continue
        out[name] = _simplify(_matrix(body, 0, len(body), {}))
    return out
