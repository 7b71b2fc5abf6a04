"""Allen Common Coordinate Framework (spec 3.6): ontology CSVs and the annotation volume.

**Ontology.** Two layouts, told apart by their content (never by the file name):

* MAP's pair of header-less files: ``mousebrainontology_2.csv`` rows ``id,"name"`` and ``hexcode.csv``
  rows ``id,RRGGBB``. The colours were saved through a spreadsheet, so leading zeros are lost
  (``19399`` for ``019399``); they are restored here. These files carry no acronyms and no hierarchy.
* Allen's ``structure_tree_safe_2017.csv`` (header ``id, atlas_id, name, acronym, ...,
  parent_structure_id, ..., structure_id_path, color_hex_triplet, ...``): acronyms and the hierarchy
  (``/997/8/567/.../``). Its ``name`` column is the "safe" spelling without commas.

**Annotation.** The Allen 10 um annotation ``annotation_10.nrrd``: 3-D, ``sizes: 1320 800 1140``,
uint32 region ids, gzip encoded. NRRD lists axes fastest first, and like pynrrd (``index_order='F'``)
the volume is returned with axes in that order: (AP, DV, ML). On disk this means ML is the *slowest*
axis, so the file is streamed one ML plane (DV x AP, 4.2 MB at 10 um) at a time and only every
``step``-th plane, row and column is kept: peak memory is the output plus about one plane.

**Annotation as a TIFF stack.** The original pipeline read Allen's CCF r3 20 um annotation TIFF stack
(setting ``ccf.r3_20um_path``) with ``imread`` and took its region voxels as ``np.where(stack == id)``
in (ccf_z, ccf_y, ccf_x) = (AP, DV, ML) order: the stack's pages are coronal sections along AP, each
page DV rows by ML columns (528 x 320 x 456 at 20 um). Read with ``tifffile``, the stack therefore
has the NRRD route's (AP, DV, ML) orientation as it is, and is kept at 20 um as it is (no stride, no
transposition). It must be one series of equally sized grey-level pages of an integer type (region
ids); a float, colour or single-page image, a cut-off file or negative ids are refused in one line
naming the file.
"""

from __future__ import annotations

import bz2
import csv
import difflib
import io
import logging
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = [
    "ONTOLOGY_COLUMNS",
    "CCFError",
    "descendants",
    "read_annotation",
    "read_annotation_header",
    "read_annotation_tiff",
    "read_ontology",
    "region_lookup",
]

ONTOLOGY_COLUMNS = ("region_id", "region_name", "acronym", "parent_id", "color_code", "structure_id_path")


class CCFError(InputError):
    """A CCF file is unusable or a coordinate is outside the atlas; the message says which and why."""


# ---------------------------------------------------------------------------------------- ontology


def _check_text(path: Path) -> None:
    """The file must be UTF-8 text (an optional BOM allowed); else CCFError naming the line."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise CCFError(
            f"{path}: line {line}: not UTF-8 text (byte {raw[e.start : e.start + 1]!r} at offset {e.start}); "
            "save the file as UTF-8"
        ) from None
    if b"\x00" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\x00")) + 1
        raise CCFError(f"{path}: line {line}: NUL byte, not a text CSV")
    if raw.strip() and not raw.endswith((b"\n", b"\r")):  # every writer ends a CSV's last row with a line end
        last, n_line = raw[raw.rfind(b"\n") + 1 :], raw.count(b"\n") + 1
        raise CCFError(
            f"{path}: line {n_line} (the last) has no line end ({last[:40]!r}): the file was cut "
            "off (truncated); copy it again"
        )


def _first_row(path: Path) -> list[str]:
    _check_text(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row in csv.reader(f):
            if row and any(c.strip() for c in row):
                return [c.strip() for c in row]
    raise CCFError(f"{path}: empty file")


def _int_ids(path: Path, values: pd.Series, what: str, lines, names: pd.Series | None = None) -> np.ndarray:
    """Integer ids, each once; ``lines`` is the file line of each value (or the line of the first)."""
    text = values.astype(str).str.strip()
    line = (np.arange(len(text)) + lines) if np.isscalar(lines) else np.asarray(lines)
    ok = text.str.fullmatch(r"[+-]?\d+")
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise CCFError(f"{path}: line {int(line[i])}: {what} {text.iloc[i]!r} is not an integer")
    ids = text.astype(np.int64).to_numpy()
    dup = pd.Series(ids).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        j = int(np.flatnonzero(ids == ids[i])[0])
        as_names = ""
        if names is not None:
            a, b = str(names.iloc[j]).strip(), str(names.iloc[i]).strip()
            as_names = f" under two names, {a!r} and {b!r}" if a != b else f" (both as {a!r})"
        raise CCFError(
            f"{path}: line {int(line[i])}: {what} {int(ids[i])} is listed twice{as_names} (first on line {int(line[j])}); "
            "every structure id must be listed once"
        )
    return ids


def _hex_codes(path: Path, values: pd.Series, lines) -> list[str | None]:
    text = values.astype(str).str.strip().str.lstrip("#").str.upper()
    line = (np.arange(len(text)) + lines) if np.isscalar(lines) else np.asarray(lines)
    blank = text.isin(["", "NAN", "NONE"])
    code = text.str.zfill(6)
    bad = ~blank & ~code.str.fullmatch(r"[0-9A-F]{6}")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise CCFError(f"{path}: line {int(line[i])}: colour {values.iloc[i]!r} is not a hex RRGGBB code")
    return [None if b else c for b, c in zip(blank.tolist(), code.tolist())]


def _read_headerless(path: Path, ncols: int, names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """(the rows, the file line of each); blank lines are left out."""
    try:
        df = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, encoding="utf-8-sig", skip_blank_lines=False
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise CCFError(f"{path}: cannot parse as CSV ({e})") from None
    if df.shape[1] != ncols:
        raise CCFError(f"{path}: expected {ncols} columns ({', '.join(names)}) without a header, found {df.shape[1]}")
    df.columns = names
    filled = (df.fillna("").astype(str).apply(lambda c: c.str.strip()) != "").any(axis=1).to_numpy()
    return df.loc[filled].reset_index(drop=True), np.flatnonzero(filled) + 1


def read_ontology(region_csv, hexcode_csv=None) -> pd.DataFrame:
    """The CCF structures as a DataFrame with columns ``ONTOLOGY_COLUMNS``:

    region_id (int64), region_name, acronym (None when the file has none), parent_id (nullable
    Int64), color_code ('RRGGBB' upper case, None if unknown), structure_id_path (None if unknown).

    ``region_csv`` is either MAP's header-less ``id,"name"`` file (then ``hexcode_csv``, header-less
    ``id,RRGGBB``, gives the colours; regions missing from it get None) or Allen's structure tree
    CSV with a header (then colours come from its ``color_hex_triplet``, unless ``hexcode_csv`` is
    given, which overrides them for the ids it lists).
    """
    region_csv = Path(region_csv)
    if not region_csv.is_file():
        raise CCFError(f"{region_csv}: file not found")
    first = _first_row(region_csv)
    lower = [c.lower() for c in first]
    if "id" in lower and ("name" in lower or "acronym" in lower):
        out = _read_allen_tree(region_csv)
    elif re.fullmatch(r"[+-]?\d+", first[0]) and len(first) == 2:
        df, lines = _read_headerless(region_csv, 2, ["region_id", "region_name"])
        names = df["region_name"].fillna("").astype(str).str.strip()
        ids = _int_ids(region_csv, df["region_id"], "structure id", lines, names)
        if (names == "").any():
            i = int(np.flatnonzero((names == "").to_numpy())[0])
            raise CCFError(f"{region_csv}: line {int(lines[i])}: structure {ids[i]} has no name")
        out = pd.DataFrame(
            {
                "region_id": ids,
                "region_name": names.to_numpy(dtype=object),
                "acronym": pd.Series([None] * len(ids), dtype=object),
                "parent_id": pd.array([pd.NA] * len(ids), dtype="Int64"),
                "color_code": pd.Series([None] * len(ids), dtype=object),
                "structure_id_path": pd.Series([None] * len(ids), dtype=object),
            }
        )
    else:
        raise CCFError(
            f"{region_csv}: unknown ontology layout; expected MAP's header-less 'id,\"name\"' rows "
            f"or Allen's structure tree CSV with an 'id,...,name,acronym,...' header "
            f"(first row: {first[:4]})"
        )
    if hexcode_csv is not None:
        out = _apply_hexcodes(out, Path(hexcode_csv))
    return out.reset_index(drop=True)


#: the columns of Allen's structure tree CSV (structure_tree_safe_2017.csv)
TREE_COLUMNS = (
    "id", "atlas_id", "name", "acronym", "st_level", "ontology_id", "hemisphere_id", "weight",
    "parent_structure_id", "depth", "graph_id", "graph_order", "structure_id_path", "color_hex_triplet",
    "neuro_name_structure_id", "neuro_name_structure_id_path", "failed", "sphinx_id", "structure_name_facet",
    "failed_facet", "safe_name",
)  # fmt: skip


def _read_allen_tree(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skip_blank_lines=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise CCFError(f"{path}: cannot parse as CSV ({e})") from None
    df.columns = [c.strip().lower() for c in df.columns]
    need = ["id", "name"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise CCFError(f"{path}: structure tree CSV lacks columns {missing}")
    for want in ("acronym", "parent_structure_id", "structure_id_path", "color_hex_triplet"):
        # optional, but a misspelt header would silently drop the hierarchy or the colours
        close = difflib.get_close_matches(want, [c for c in df.columns if c not in TREE_COLUMNS], n=1, cutoff=0.85)
        if want not in df.columns and close:
            raise CCFError(f"{path}: no {want!r} column, but a column {close[0]!r}: a misspelt header? Rename it")
    filled = (df.fillna("").astype(str).apply(lambda c: c.str.strip()) != "").any(axis=1).to_numpy()
    df = df.loc[filled].reset_index(drop=True)
    lines = np.flatnonzero(filled) + 2  # line 1 is the header
    n = len(df)

    def col(name):
        return df[name].fillna("").astype(str).str.strip() if name in df.columns else pd.Series([""] * n, dtype=object)

    ids = _int_ids(path, df["id"], "id", lines, col("name"))
    parent_text = col("parent_structure_id")
    # '997.0'-style floats appear when the CSV went through a float column
    parent_text = parent_text.str.replace(r"\.0+$", "", regex=True)
    bad = (parent_text != "") & ~parent_text.str.fullmatch(r"[+-]?\d+")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise CCFError(f"{path}: line {int(lines[i])}: parent_structure_id {parent_text.iloc[i]!r} is not an integer")
    parent = pd.array([int(t) if t else pd.NA for t in parent_text], dtype="Int64")
    orphan = ~pd.Series(parent).isna().to_numpy() & ~np.isin(parent.to_numpy(dtype=np.float64, na_value=np.nan), ids)
    if orphan.any():
        i = int(np.flatnonzero(orphan)[0])
        raise CCFError(
            f"{path}: line {int(lines[i])}: structure {int(ids[i])} has parent_structure_id {int(parent[i])}, "
            "which is not a structure of this file"
        )
    path_text = col("structure_id_path")
    has_path = (path_text != "").to_numpy()
    if has_path.any():
        last = path_text.str.strip("/").str.split("/").str[-1].to_numpy(dtype=object)
        wrong = has_path & (last != ids.astype(str).astype(object))
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise CCFError(
                f"{path}: line {int(lines[i])}: structure_id_path {path_text.iloc[i]!r} does not end with the "
                f"structure's id {int(ids[i])}"
            )
    acronym = [a if a else None for a in col("acronym")]
    paths = [p if p else None for p in path_text]
    colours = _hex_codes(path, col("color_hex_triplet"), lines) if "color_hex_triplet" in df.columns else [None] * n
    return pd.DataFrame(
        {
            "region_id": ids,
            "region_name": col("name").to_numpy(dtype=object),
            "acronym": pd.Series(acronym, dtype=object),
            "parent_id": parent,
            "color_code": pd.Series(colours, dtype=object),
            "structure_id_path": pd.Series(paths, dtype=object),
        }
    )


def _apply_hexcodes(ontology: pd.DataFrame, path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise CCFError(f"{path}: file not found")
    first = _first_row(path)
    if not re.fullmatch(r"[+-]?\d+", first[0]):
        raise CCFError(f"{path}: expected header-less 'id,RRGGBB' rows, first row is {first[:3]}")
    df, lines = _read_headerless(path, 2, ["region_id", "color_code"])
    ids = _int_ids(path, df["region_id"], "structure id", lines)
    codes = dict(zip(ids.tolist(), _hex_codes(path, df["color_code"], lines)))
    out = ontology.copy()
    old = out["color_code"].tolist()
    out["color_code"] = pd.Series([codes.get(int(r), o) for r, o in zip(out["region_id"], old)], dtype=object)
    return out


def descendants(ontology: pd.DataFrame, acronym_or_id) -> np.ndarray:
    """Sorted region ids of a region (by id, or by acronym, exact then case-insensitive) and of
    every region under it. Needs the hierarchy (Allen's structure tree CSV)."""
    ids = ontology["region_id"].to_numpy(dtype=np.int64)
    if isinstance(acronym_or_id, (int, np.integer)) or (
        isinstance(acronym_or_id, str) and acronym_or_id.strip().isdigit()
    ):
        rid = int(acronym_or_id)
        if rid not in set(ids.tolist()):
            raise CCFError(f"region id {rid} is not in the ontology")
    else:
        name = str(acronym_or_id).strip()
        acr = ontology["acronym"]
        if acr.isna().all():
            raise CCFError(
                f"cannot look up acronym {name!r}: this ontology has no acronyms "
                "(MAP's region csv); use Allen's structure tree CSV or a region id"
            )
        hit = np.flatnonzero((acr == name).fillna(False).to_numpy(dtype=bool))
        if hit.size == 0:
            hit = np.flatnonzero((acr.str.lower() == name.lower()).fillna(False).to_numpy(dtype=bool))
        if hit.size != 1:
            raise CCFError(f"acronym {name!r} matches {hit.size} regions in the ontology")
        rid = int(ids[hit[0]])
    paths = ontology["structure_id_path"] if "structure_id_path" in ontology else pd.Series([None] * len(ids))
    if all(isinstance(p, str) and p.strip("/") != "" for p in paths):
        mark = f"/{rid}/"
        inside = np.array([mark in p for p in paths], dtype=bool)
        return np.sort(ids[inside])
    # no (complete) structure id paths, e.g. read back from a table that stores '' for unknown
    parents = ontology["parent_id"] if "parent_id" in ontology else pd.Series([None] * len(ids))
    if parents.isna().all():
        raise CCFError(
            "this ontology has no hierarchy (MAP's region csv has neither parent ids nor "
            "structure id paths); use Allen's structure tree CSV"
        )
    children: dict[int, list[int]] = {}
    for r, p in zip(ids.tolist(), parents.tolist()):
        if not pd.isna(p):
            children.setdefault(int(p), []).append(int(r))
    out, todo = {rid}, [rid]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return np.array(sorted(out), dtype=np.int64)


# -------------------------------------------------------------------------------------- annotation
_NRRD_TYPES = {
    np.dtype("i1"): ("signed char", "int8", "int8_t"),
    np.dtype("u1"): ("uchar", "unsigned char", "uint8", "uint8_t"),
    np.dtype("i2"): ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    np.dtype("u2"): ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    np.dtype("i4"): ("int", "signed int", "int32", "int32_t"),
    np.dtype("u4"): ("uint", "unsigned int", "uint32", "uint32_t"),
    np.dtype("i8"): (
        "longlong",
        "long long",
        "long long int",
        "signed long long",
        "signed long long int",
        "int64",
        "int64_t",
    ),
    np.dtype("u8"): ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
}
_TYPE_OF = {name: dt for dt, names in _NRRD_TYPES.items() for name in names}


def read_annotation_header(nrrd_path) -> dict:
    """The NRRD header (pynrrd's parse) plus ``_data_start`` (byte offset of the data in the file)."""
    import nrrd

    path = Path(nrrd_path)
    if not path.is_file():
        raise CCFError(f"{path}: file not found")
    with open(path, "rb") as fh:
        magic = fh.read(4)
        if magic != b"NRRD":
            raise CCFError(f"{path}: not a NRRD file (no NRRD magic)")
        fh.seek(0)
        try:
            header = nrrd.read_header(fh)
        except Exception as e:  # pynrrd raises NRRDError and ValueError for broken headers
            raise CCFError(f"{path}: bad NRRD header ({type(e).__name__}: {e})") from None
        header["_data_start"] = fh.tell()
    return header


def _voxel_um(path: Path, header: dict) -> float | None:
    sizes = None
    if header.get("space directions") is not None:
        d = np.asarray(header["space directions"], dtype=np.float64)
        if d.ndim == 2 and np.isfinite(d).all():
            sizes = np.linalg.norm(d, axis=1)
    if sizes is None and header.get("spacings") is not None:
        s = np.asarray(header["spacings"], dtype=np.float64)
        if np.isfinite(s).all():
            sizes = np.abs(s)
    if sizes is None:
        return None
    units = header.get("space units") or header.get("units")
    scale = 1.0
    if units is not None:
        u = {str(x).strip().lower() for x in units}
        if u <= {"mm", "millimeter", "millimeters", "millimetre", "millimetres"}:
            scale = 1000.0
        elif not u <= {"um", "micron", "microns", "µm", "micrometer", "micrometers", "micrometre", "micrometres"}:
            raise CCFError(f"{path}: unsupported space units {sorted(u)}")
    sizes = sizes * scale
    if not np.allclose(sizes, sizes[0], rtol=1e-6):
        raise CCFError(f"{path}: voxels are not isotropic ({sizes.tolist()} um)")
    return float(sizes[0])


class _ZlibStream:
    """``read(n)`` of the decompressed gzip (or zlib) data section, straight from zlib: each call
    returns exactly ``n`` bytes (fewer only at the end of the data), concatenated gzip members are
    followed. About 1.5x faster than gzip.GzipFile, whose buffered reader copies every byte again."""

    CHUNK = 256 * 1024

    def __init__(self, fh):
        self.fh = fh
        self.d = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected

    def read(self, n: int) -> bytes:
        parts = []
        need = n
        while need > 0:
            if self.d.eof:  # checked first: at the end of a member zlib also leaves the rest in unconsumed_tail
                data = self.d.unused_data or self.fh.read(self.CHUNK)
                if not data:
                    break
                self.d = zlib.decompressobj(zlib.MAX_WBITS | 32)  # next gzip member
            elif self.d.unconsumed_tail:
                data = self.d.unconsumed_tail
            else:
                data = self.fh.read(self.CHUNK)
                if not data:  # end of file: pending output
                    tail = self.d.flush()
                    if tail:
                        parts.append(tail[:need])
                        need -= len(parts[-1])
                    break
            out = self.d.decompress(data, need)
            if out:
                parts.append(out)
                need -= len(out)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self):
        pass


class _PlaneSource:
    """Planes (slowest axis) of the data section, read one at a time."""

    def __init__(self, path: Path, header: dict, plane_bytes: int, n_planes: int, desc: str = ""):
        self.path, self.plane_bytes, self.n_planes = path, plane_bytes, n_planes
        self.total = plane_bytes * n_planes
        self.desc = desc or f"{n_planes} planes of {plane_bytes} bytes"
        self.delivered = 0  # decompressed bytes read so far (byte skip excluded)
        encoding = str(header.get("encoding", "")).strip().lower()
        data_file = header.get("data file") or header.get("datafile")
        if data_file is not None:
            if (
                isinstance(data_file, (list, tuple))
                or str(data_file).upper().startswith("LIST")
                or "%" in str(data_file)
            ):
                raise CCFError(f"{path}: multi-file NRRD data ({data_file!r}) is not supported")
            data_path = Path(data_file)
            if not data_path.is_absolute():
                data_path = path.parent / data_path
            if not data_path.is_file():
                raise CCFError(f"{path}: its data file {data_path} is missing")
            start = 0
        else:
            data_path, start = path, int(header["_data_start"])
        self.fh = open(data_path, "rb")
        try:
            self.fh.seek(start)
            for _ in range(int(header.get("line skip", header.get("lineskip", 0)) or 0)):
                self.fh.readline()
            byte_skip = int(header.get("byte skip", header.get("byteskip", 0)) or 0)
            total = plane_bytes * n_planes
            if encoding == "raw":
                if byte_skip == -1:
                    self.fh.seek(0, io.SEEK_END)
                    self.fh.seek(self.fh.tell() - total)
                else:
                    self.fh.seek(byte_skip, io.SEEK_CUR)
                self.start = self.fh.tell()
                self.fh.seek(0, io.SEEK_END)
                have = self.fh.tell() - self.start
                if have < total:
                    raise CCFError(f"{path}: truncated file: {self._sizes(have)}")
                if have - total >= plane_bytes and byte_skip != -1:
                    raise CCFError(
                        f"{path}: {self._sizes(have)}: more data than the header describes "
                        "by at least one plane: wrong sizes or type"
                    )
                self.fh.seek(self.start)
                self.stream = None
            elif encoding in ("gzip", "gz", "bzip2", "bz2"):
                if encoding in ("gzip", "gz"):
                    head = self.fh.read(2)
                    self.fh.seek(-len(head), io.SEEK_CUR)
                    if head == b"":
                        raise CCFError(f"{path}: header only, no data after it: {self._sizes(0)}")
                    if head != b"\x1f\x8b":
                        raise CCFError(f"{path}: encoding is gzip but the data does not start with a gzip header")
                    self.stream = _ZlibStream(self.fh)
                else:
                    self.stream = bz2.BZ2File(self.fh, mode="rb")
                if byte_skip == -1:
                    raise CCFError(f"{path}: 'byte skip: -1' is only defined for raw encoding")
                if byte_skip:
                    self._read(byte_skip)
                    self.delivered = 0
            else:
                raise CCFError(f"{path}: NRRD encoding {encoding!r} is not supported (raw, gzip, bzip2 are)")
        except BaseException:
            self.fh.close()
            raise
        self.next_plane = 0

    def _sizes(self, found: int) -> str:
        """'found F bytes of data, the header (sizes ...) needs T (P %)' for messages."""
        pct = f" ({100.0 * found / self.total:.0f} %)" if self.total else ""
        return f"found {found} bytes of voxel data{pct}, the header ({self.desc}) needs {self.total}"

    def _read(self, n: int) -> bytes:
        try:
            b = self.stream.read(n)
        except EOFError:  # bz2: the stream ended before its end-of-stream marker
            raise CCFError(f"{self.path}: truncated file: {self._sizes(self.delivered)}") from None
        except (OSError, ValueError, zlib.error) as e:  # zlib/bz2 errors surface as these
            raise CCFError(
                f"{self.path}: corrupt compressed data near plane {self.next_plane} ({type(e).__name__}: {e})"
            ) from None
        self.delivered += len(b)
        if len(b) != n:
            raise CCFError(f"{self.path}: truncated file: {self._sizes(self.delivered)}")
        return b

    def check_end(self) -> None:
        """After the last plane: not a whole plane more of decompressed data than the header describes
        (that means wrong sizes or type). Trailing bytes that are not compressed data (a newline,
        padding) are ignored."""
        if self.stream is None:
            return
        try:
            extra = self.stream.read(self.plane_bytes)
        except (OSError, EOFError, ValueError, zlib.error):
            return
        if len(extra) >= self.plane_bytes:
            raise CCFError(
                f"{self.path}: the compressed data holds more than the {self.total} bytes the header "
                f"({self.desc}) describes: wrong sizes or type"
            )

    def skip(self):
        if self.stream is None:
            self.fh.seek(self.plane_bytes, io.SEEK_CUR)
        else:
            self._read(self.plane_bytes)
        self.next_plane += 1

    def read(self, buf: bytearray | None = None) -> bytes | bytearray:
        if self.stream is None:
            assert buf is not None
            got = self.fh.readinto(buf)
            if got != self.plane_bytes:
                found = self.fh.tell() - self.start
                raise CCFError(f"{self.path}: truncated file: {self._sizes(found)}")
            out = buf
        else:
            out = self._read(self.plane_bytes)
        self.next_plane += 1
        return out

    def close(self):
        if self.stream is not None:
            self.stream.close()
        self.fh.close()


def read_annotation(nrrd_path, step=2, *, voxel_um: float | None = None) -> tuple[np.ndarray, float]:
    """Read a CCF annotation NRRD keeping every ``step``-th voxel on each axis.

    Returns ``(volume, voxel_um * step)``: volume uint32 with the NRRD axes in header order, which
    for Allen's files is (AP, DV, ML), ``ceil(size / step)`` voxels each; it is a Fortran-ordered
    array (a transposed view of the on-disk plane order, as pynrrd returns it), so no full copy is
    ever made. The voxel size comes from ``space directions`` (or ``spacings``); ``voxel_um`` is
    used only when the header has neither. Raw, gzip and bzip2 encodings; the file is read one
    slowest-axis plane at a time, so peak memory is about the output plus one plane.
    """
    path = Path(nrrd_path)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise CCFError(f"step must be a positive integer, got {step!r}")
    step = int(step)
    header = read_annotation_header(path)
    if int(header.get("dimension", 0)) != 3:
        raise CCFError(f"{path}: expected a 3-D volume, the header says dimension {header.get('dimension')}")
    sizes = [int(s) for s in header["sizes"]]
    if len(sizes) != 3 or min(sizes) < 1:
        raise CCFError(f"{path}: bad sizes {header['sizes']}")
    type_name = str(header.get("type", "")).strip().lower()
    dtype = _TYPE_OF.get(type_name)
    if dtype is None:
        raise CCFError(f"{path}: NRRD type {type_name!r} is not an integer type; region ids must be integers")
    endian = str(header.get("endian", "little")).strip().lower()
    if dtype.itemsize > 1:
        if endian not in ("little", "big"):
            raise CCFError(f"{path}: bad endian {endian!r}")
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    vox = _voxel_um(path, header)
    if vox is None:
        if voxel_um is None:
            raise CCFError(f"{path}: the header gives no voxel size (space directions / spacings); pass voxel_um")
        vox = float(voxel_um)
    s0, s1, s2 = sizes  # fastest ... slowest (Allen: AP, DV, ML)
    plane_bytes = s0 * s1 * dtype.itemsize
    out_c = np.empty((-(-s2 // step), -(-s1 // step), -(-s0 // step)), dtype=np.uint32)
    signed = dtype.kind == "i"
    unsigned_big = dtype.kind == "u" and dtype.itemsize > 4
    src = _PlaneSource(path, header, plane_bytes, s2, desc=f"sizes {s0} {s1} {s2} of {type_name}")
    buf = bytearray(plane_bytes) if src.stream is None else None
    try:
        for k in range(s2):
            if k % step:
                if src.stream is not None:  # compressed: every plane must be decompressed
                    src.skip()
                continue
            if src.stream is None:  # raw: go straight to the planes we keep
                src.fh.seek(src.start + k * plane_bytes)
                src.next_plane = k
            plane = np.frombuffer(src.read(buf), dtype=dtype).reshape(s1, s0)[::step, ::step]
            if signed and plane.size and plane.min() < 0:
                raise CCFError(f"{path}: negative region id {int(plane.min())} in plane {k}")
            if unsigned_big and plane.size and plane.max() > np.iinfo(np.uint32).max:
                raise CCFError(f"{path}: region id {int(plane.max())} in plane {k} does not fit uint32")
            out_c[k // step] = plane
        src.check_end()
    finally:
        src.close()
    return out_c.transpose(), vox * step


class _LogErrors(logging.Handler):
    """Collects tifffile's logged errors (it logs, rather than raises, e.g. a broken page chain)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append("tifffile: " + re.sub(r"^<[^>]*>\s*", "", record.getMessage()))


def read_annotation_tiff(tiff_path, voxel_um: float = 20.0) -> tuple[np.ndarray, float]:
    """Read a CCF annotation TIFF stack (Allen's CCF r3 20 um annotation, ``ccf.r3_20um_path``).

    Returns ``(volume, voxel_um)``: uint32 region ids with axes (AP, DV, ML) = (pages, rows, columns),
    the orientation of :func:`read_annotation`, at the given voxel size (the stack carries none;
    Allen's is 20 um). See the module doc for what is refused.
    """
    import tifffile

    path = Path(tiff_path)
    if not path.is_file():
        raise CCFError(f"{path}: file not found")
    what = "a TIFF stack of AP pages (DV rows x ML columns) of integer region ids"
    catcher = _LogErrors()
    tlog = logging.getLogger("tifffile")
    tlog.addHandler(catcher)
    propagate, tlog.propagate = tlog.propagate, False  # reported below as one CCFError line instead
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0] if tif.series else None
            if catcher.messages:
                raise CCFError(f"{path}: damaged TIFF ({catcher.messages[0]}); a cut-off file?")
            if series is None:
                raise CCFError(f"{path}: no image in the TIFF file; expected {what}")
            if len(tif.series) > 1 or len(series.pages) != len(tif.pages):
                raise CCFError(f"{path}: the pages are not all of one size and type; expected {what}")
            shape, dtype = tuple(series.shape), np.dtype(series.dtype)
            if dtype.kind not in "iu":
                raise CCFError(f"{path}: pixel type {dtype} is not an integer type; region ids must be integers")
            if len(shape) != 3 or min(shape) < 1:
                raise CCFError(f"{path}: image shape {shape} (axes {series.axes}) is not a 3-D stack; expected {what}")
            volume = series.asarray()
    except CCFError:
        raise
    except Exception as e:  # tifffile: TiffFileError (not a TIFF, broken IFDs), ValueError (data cut off), ...
        raise CCFError(f"{path}: unreadable TIFF ({type(e).__name__}: {e}); a cut-off or damaged file?") from None
    finally:
        tlog.removeHandler(catcher)
        tlog.propagate = propagate
    if catcher.messages:
        raise CCFError(f"{path}: damaged TIFF ({catcher.messages[0]}); a cut-off file?")
    if volume.shape != shape:
        raise CCFError(f"{path}: read {volume.shape} voxels, the TIFF declares {shape}: a damaged file?")
    if dtype.kind == "i" and volume.size and volume.min() < 0:
        raise CCFError(f"{path}: negative region id {int(volume.min())}")
    if dtype.itemsize > 4 and volume.size and volume.max() > np.iinfo(np.uint32).max:
        raise CCFError(f"{path}: region id {int(volume.max())} does not fit uint32")
    return volume.astype(np.uint32, copy=False), float(voxel_um)


# ------------------------------------------------------------------------------------------ lookup
def region_lookup(volume: np.ndarray, voxel_um: float, ccf_xyz_um: np.ndarray) -> np.ndarray:
    """Region id at each CCF coordinate.

    ``ccf_xyz_um``: (N, 3) micrometres as (x = ML, y = DV, z = AP), the pipeline's ccf_x/ccf_y/ccf_z;
    ``volume``: (AP, DV, ML) from :func:`read_annotation`, voxel ``i`` centred on ``i * voxel_um``
    (so a coordinate picks the nearest voxel). Returns (N,) region ids (0 = outside the brain).
    Coordinates outside the volume (or not finite) raise CCFError naming the first offending rows.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise CCFError(f"volume must be 3-D (AP, DV, ML), got shape {vol.shape}")
    if not (np.isfinite(voxel_um) and voxel_um > 0):
        raise CCFError(f"voxel size must be positive, got {voxel_um!r}")
    xyz = np.asarray(ccf_xyz_um, dtype=np.float64)
    if xyz.ndim == 1 and xyz.size == 3:
        xyz = xyz[None, :]
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise CCFError(f"coordinates must be (N, 3) as (ML, DV, AP) um, got shape {xyz.shape}")
    with np.errstate(invalid="ignore"):
        idx = np.rint(xyz / float(voxel_um))
    # columns: x=ML -> axis 2, y=DV -> axis 1, z=AP -> axis 0
    limits = np.array([vol.shape[2], vol.shape[1], vol.shape[0]])
    bad = ~np.isfinite(idx).all(axis=1) | (idx < 0).any(axis=1) | (idx >= limits).any(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        shown = "; ".join(f"row {int(r)}: ({xyz[r, 0]:g}, {xyz[r, 1]:g}, {xyz[r, 2]:g})" for r in rows[:5])
        ext = (limits - 1) * float(voxel_um)
        raise CCFError(
            f"{rows.size} of {len(xyz)} coordinates are outside the annotation volume "
            f"(x=ML 0..{ext[0]:g}, y=DV 0..{ext[1]:g}, z=AP 0..{ext[2]:g} um at "
            f"{float(voxel_um):g} um voxels); first: {shown}"
        )
    ii = idx.astype(np.intp)
    return vol[ii[:, 2], ii[:, 1], ii[:, 0]]
