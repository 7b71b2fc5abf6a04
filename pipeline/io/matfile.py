"""Read a MATLAB .mat file (v5 or v7.3/HDF5) into plain Python: dicts, lists, numpy arrays, str.

v5 files are read by a small reader here (:func:`read_mat5`, about four times as fast as scipy's
general reader on Bpod files: no per-element Python objects beyond the values; a number, vector
or text inside a struct or cell read with its header in one go; a struct of equal double vectors,
a trial's States, read at once; repeated cells such as a state machine's state names read once
and shared; structs simplified as they are read; the garbage collector paused meanwhile); it
gives exactly what ``scipy.io.loadmat(simplify_cells=True)`` gives (the tests compare every
field) and leaves what it does not know (objects, sparse or complex arrays, big-endian files,
...) to scipy. v7.3 files are read by pymatreader (h5py). Both give structs as dicts and
cell arrays as lists; a struct *array* is a list of dicts from the v5 readers but a dict of
per-element lists from pymatreader, so readers accept both (the tests write a real v5 rig file
out as v7.3 and check that the two read the same).
"""

from __future__ import annotations

import contextlib
import gc
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


@contextlib.contextmanager
def no_gc():
    """The garbage collector paused: for reading a file into tens of thousands of new dicts and
    arrays (none in a reference cycle), which otherwise set off its passes over everything the
    process holds (a third of the reading time)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


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
#: an element of a struct or a cell up to its data: its miMATRIX tag, _HEADER, the data's tag
_ELEMENT = _struct.Struct("<IIIIIIIIiiIIII")
#: _HEADER's tags when it is that plain form: flags (uint32, 8 bytes), dims (int32, 8), name (int8, 0)
_PLAIN = (6, 8, 5, 8, 1, 0)
_TAG = _struct.Struct("<II")
_DTYPES = {k: np.dtype(v) for k, v in _MI_DTYPES.items()}
#: one number of each stored type, as ``ndarray.item()`` gives it
_SCALARS = {k: _struct.Struct("<" + c) for k, c in zip(_MI_DTYPES, "bBhHiIfdqQ")}


def _element(buf, pos: int, memo: dict):
    """(value, next position) of the miMATRIX element at ``pos`` (tag included), in a struct or a
    cell. Numeric vectors and scalars and text rows, most of a Bpod file, are read here in one go."""
    if pos + 56 <= len(buf):
        mtype, nbytes, t1, n1, flags, _, t2, n2, d0, d1, t3, n3, dtag, dsize = _ELEMENT.unpack_from(buf, pos)
        end, nxt = pos + 8 + nbytes, pos + 8 + ((nbytes + 7) & ~7)
        if mtype == _MI_MATRIX and nbytes >= 40 and (t1, n1, t2, n2, t3, n3) == _PLAIN and not flags & 0x800:
            mclass = flags & 0xFF
            if mclass == _MX_STRUCT or mclass == _MX_CELL:  # its header read: on to its content
                return _content(buf, pos + 48, end, mclass, (d0, d1), d0 * d1, memo), nxt
            small = dtag >> 16  # data of 1-4 bytes packed into its tag
            dtype, size, p = (dtag & 0xFFFF, small, pos + 52) if small else (dtag, dsize, pos + 56)
            if (d0 == 1 or d1 == 1) and p + size <= end:
                if mclass in _MX_DTYPES and dtype in _DTYPES:  # scipy keeps the stored type (mat_dtype=False)
                    if d0 * d1 == 1 and size == _DTYPES[dtype].itemsize:
                        return _SCALARS[dtype].unpack_from(buf, p)[0], nxt
                    if d0 * d1 > 1:
                        return np.frombuffer(buf, _DTYPES[dtype], size // _DTYPES[dtype].itemsize, p), nxt
                elif mclass == _MX_CHAR and d0 == 1 and d1 and dtype in _CHAR_CODECS:
                    return bytes(buf[p : p + size]).decode(_CHAR_CODECS[dtype]), nxt
    _, nbytes, p, nxt = _tag(buf, pos)
    return _matrix(buf, p, p + nbytes, memo), nxt


def _matrix(buf, pos: int, end: int, memo: dict):
    """The miMATRIX whose content is buf[pos:end], as scipy's loadmat(simplify_cells=True)."""
    if pos == end:  # an empty miMATRIX is [] (double)
        return np.array([])
    if end - pos >= 40:
        t1, n1, flags, _, t2, n2, d0, d1, t3, n3 = _HEADER.unpack_from(buf, pos)
        fast = (t1, n1, t2, n2, t3, n3) == _PLAIN
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
    if flags & 0x800:
        raise _Unsupported("complex")
    count = 1
    for d in dims:
        count *= d
    return _content(buf, pos, end, flags & 0xFF, dims, count, memo)


def _content(buf, pos: int, end: int, mclass: int, dims: tuple, count: int, memo: dict):
    """A miMATRIX's value from its content after the header (buf[pos:end])."""
    if mclass in _MX_DTYPES:  # scipy keeps the type the data is stored as (mat_dtype=False)
        mtype, nbytes, p, _ = _tag(buf, pos)
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
            out[i], pos = _element(buf, pos, memo)
        out = memo[key] = _simplified(_squeezed(out.reshape(dims, order="F")))
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
        if count == 1:
            values = _double_vectors(buf, pos, end, len(names)) if names else None
            if values is not None:  # a Bpod trial's States: [start stop] of every state
                return dict(zip(names, values))
            s = {}
            for name in names:
                s[name], pos = _element(buf, pos, memo)
            return s
        out = np.empty(count, dtype=object)
        for i in range(count):
            s = {}
            for name in names:
                s[name], pos = _element(buf, pos, memo)
            out[i] = s
        return _simplified(_squeezed(out.reshape(dims, order="F")))
    raise _Unsupported(f"class {mclass}")


def _double_vectors(buf, pos: int, end: int, n: int) -> list | None:
    """The n elements in buf[pos:end] when they are all double vectors of one length stored as
    doubles (their headers byte for byte the same), read at once: views into ``buf`` (numbers if
    of length 1); else None."""
    size = (end - pos) // n
    if size < 64 or size * n != end - pos or size % 8 or buf[pos + 16] != 6 or buf[pos + 48] != 9:
        return None  # (the first is no double stored as doubles)
    mtype, nbytes, t1, n1, flags, _, t2, n2, d0, d1, t3, n3, dtag, dsize = _ELEMENT.unpack_from(buf, pos)
    if not (
        mtype == _MI_MATRIX
        and (t1, n1, t2, n2, t3, n3) == _PLAIN
        and flags & 0x8FF == 6  # double, real
        and (d0 == 1 or d1 == 1)
        and (nbytes, dtag, dsize) == (size - 8, 9, size - 56)  # stored as doubles, filling the element
        and dsize == 8 * d0 * d1
    ):
        return None
    rows = np.frombuffer(buf, np.uint64, n * size // 8, pos).reshape(n, size // 8)
    if not (rows[1:, :7] == rows[0, :7]).all():  # every element's tag and header as the first's
        return None
    values = rows[:, 7:].view(np.float64)
    return values[:, 0].tolist() if dsize == 8 else list(values)


# scipy's simplify_cells, applied as each struct array or cell is read: structs are dicts, and an
# array (struct array or cell) whose first element is a struct a list. Only those are dicts and
# lists here, so a dict or list anywhere else is a struct that scipy keeps as a ``mat_struct``.


def _simplified(v):
    """A struct array's or a cell's (squeezed) value as scipy's simplify_cells leaves it: a list if
    it is 1-D and its first element a struct (dict), else as it is (structs hidden in it: _Unsupported)."""
    if type(v) is np.ndarray and v.dtype.kind == "O":
        if v.ndim == 1 and v.size and type(v[0]) is dict:
            return list(v)  # its cells were simplified as they were read
        return _no_struct_left(v)
    return v


def _no_struct_left(v):
    """``v`` as it is, which scipy leaves alone: if a struct is in it, scipy would give a
    ``mat_struct`` there, so leave the file to scipy. (Cells in it were checked as they were read.)"""
    if type(v) is np.ndarray and v.dtype.kind == "O" and not {dict, list}.isdisjoint(map(type, v.flat)):
        raise _Unsupported("a struct inside a cell array where scipy keeps its mat_struct")
    return v


def read_mat5(path: str | Path, variable_names: list[str] | None = None) -> dict[str, Any]:
    """A little-endian v5 .mat file's variables as ``scipy.io.loadmat(path, simplify_cells=True)``
    gives them (raises ``_Unsupported`` for what it leaves to scipy). Equal cells are one shared
    object: do not change the values in place."""
    with open(path, "rb") as f:
        data = bytearray(f.read())  # writable arrays, as scipy gives
    if bytes(data[126:128]) != b"IM":
        raise _Unsupported("big-endian file")
    with no_gc():
        return _variables(data, variable_names)


def _variables(data: bytearray, variable_names: list[str] | None) -> dict[str, Any]:
    """The variables of a v5 file's content (``data``: the whole file)."""
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
        out[name] = _matrix(body, 0, len(body), {})
    return out
