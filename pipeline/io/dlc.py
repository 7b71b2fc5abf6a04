"""Read DeepLabCut output (spec 3.3): pose CSVs, labelled-data CSVs and the pandas .h5 twins.

File layout (DeepLabCut 2.x; the MAP rigs' files are the video-analysis kind)::

    scorer,DLC_resnet50_...,DLC_resnet50_...,DLC_resnet50_...,...      <- network (or labeller) name
    bodyparts,nose,nose,nose,tongue,...                                 <- one bodypart per 2 or 3 columns
    coords,x,y,likelihood,x,...                                         <- x, y[, likelihood]
    0,418.48,257.23,1.0,...                                             <- frame number, values

* Video analysis (``*DLC_resnet50_*.csv``, ``*DeepCut_resnet50_*.csv``): coords x, y, likelihood; the
  first column is the frame number (0, 1, ...).
* Labelled data (``CollectedData_<labeller>.csv``): coords x, y only and the rows are indexed by the
  image path (``labeled-data/<video>/img005.png``); unlabelled points are empty cells (NaN). DeepLabCut
  >= 2.2 splits that path over three index columns (``labeled-data,<video>,img005.png``, with blank
  header cells above them); both forms are read, the parts joined with ``/``.
* ``.h5``: the same DataFrame written by pandas (``to_hdf``, key ``df_with_missing``), columns a
  3-level MultiIndex (scorer, bodyparts, coords). Needs PyTables.
* Multi-animal projects add a 4th header row ``individuals`` (and a level of that name in .h5 files):
  not supported, reported as such.

Checks (each failure is one ``DLCError`` line naming the file, the line or column and the problem):
every data row has as many fields as the 3-row header and the file ends with a line end (a file cut
off while being written is refused, never read with NaN-filled cells); frame numbers increase;
x, y and likelihood of a bodypart are missing (NaN) together or not at all; likelihoods are in
[0, 1]. ``read_dlc`` loads video-analysis output only: a labelled-data file (x, y without
likelihood, rows indexed by image path) is refused unless ``allow_labelled=True``.
"""

from __future__ import annotations

import csv
import fnmatch
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .files import existing_file

__all__ = ["FEATURES", "DLCError", "DLCTracking", "map_bodyparts", "read_dlc"]


class DLCError(InputError):
    """A DeepLabCut file cannot be read; the message starts with the file path."""


@dataclass
class DLCTracking:
    path: Path
    scorer: str
    bodyparts: list[str]  #: as in the file, in file order
    x: np.ndarray  #: (n_frames, n_bodyparts) float64
    y: np.ndarray  #: (n_frames, n_bodyparts) float64
    likelihood: np.ndarray | None  #: (n_frames, n_bodyparts); None for labelled data (x, y only)
    frame_index: np.ndarray  #: (n_frames,) int64 frame numbers, or row order for image-indexed files
    image_paths: list[str] | None  #: labelled-data files: the image of each row

    @property
    def n_frames(self) -> int:
        return self.x.shape[0]

    def bodypart(self, name: str) -> dict[str, np.ndarray]:
        """``{'x': ..., 'y': ..., 'likelihood': ...}`` of one bodypart (likelihood only if present)."""
        try:
            i = self.bodyparts.index(name)
        except ValueError:
            raise KeyError(f"{self.path}: no bodypart {name!r}; the file has {self.bodyparts}") from None
        out = {"x": self.x[:, i], "y": self.y[:, i]}
        if self.likelihood is not None:
            out["likelihood"] = self.likelihood[:, i]
        return out


#: DeepLabCut bodypart name -> tracking feature (spec 3.3: tracking.Tracking.<Feature>Tracking parts).
#: Keys with ``*`` are shell-style patterns; names are compared case-insensitively. The feature
#: names themselves (``left_paw``, ``right_paw``) are accepted as bodypart names too.
FEATURES: dict[str, str] = {
    "nose": "nose",
    "tongue": "tongue",
    "jaw": "jaw",
    "paw_left": "left_paw",
    "paw_right": "right_paw",
    "left_paw": "left_paw",
    "right_paw": "right_paw",
    "lickport": "lickport",
    "*whisker*": "whisker",
}


def map_bodyparts(bodyparts) -> tuple[dict[str, str], list[str]]:
    """(bodypart -> feature for the known ones, the unknown bodyparts), both in input order.

    Several whisker bodyparts all map to ``whisker`` (tracking.WhiskerTracking keeps the bodypart
    name as ``whisker_name``). Two bodyparts mapping to the same non-whisker feature is ambiguous
    and raises ValueError.
    """
    exact = {k.lower(): v for k, v in FEATURES.items() if "*" not in k}
    patterns = [(k.lower(), v) for k, v in FEATURES.items() if "*" in k]
    mapped: dict[str, str] = {}
    unknown: list[str] = []
    for bp in bodyparts:
        key = str(bp).strip().lower()
        feature = exact.get(key)
        if feature is None:
            feature = next((v for p, v in patterns if fnmatch.fnmatchcase(key, p)), None)
        if feature is None:
            unknown.append(bp)
        else:
            mapped[bp] = feature
    seen: dict[str, str] = {}
    for bp, feature in mapped.items():
        if feature != "whisker" and feature in seen:
            raise ValueError(f"bodyparts {seen[feature]!r} and {bp!r} both map to feature {feature!r}")
        seen[feature] = bp
    return mapped, unknown


# ----------------------------------------------------------------------------------------------
def read_dlc(path, *, allow_labelled: bool = False) -> DLCTracking:
    """Read a DeepLabCut .csv or .h5 file (see the module docstring for the accepted layouts).

    Only video-analysis output (x, y, likelihood per frame) is accepted unless ``allow_labelled``:
    a labelled-data file (``CollectedData_*``: x, y only, rows indexed by image path) is training
    data, not tracking of a video, and raises DLCError saying so.
    """
    path = existing_file(path, DLCError)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".hdf"):
        out = _read_h5(path)
    else:
        with open(path, "rb") as f:
            magic = f.read(8)
        out = _read_h5(path) if magic.startswith(b"\x89HDF") else _read_csv(path)
    if not allow_labelled and (out.likelihood is None or out.image_paths is not None):
        why = []
        if out.likelihood is None:
            why.append("coords x, y without likelihood")
        if out.image_paths is not None:
            shown = out.image_paths[0] if out.image_paths else ""
            why.append(f"rows indexed by image path ({shown!r}, ...)")
        raise DLCError(
            f"{path}: labelled training data, not video-analysis output ({'; '.join(why)}); "
            "tracking needs the <video>DLC_<network>.csv/.h5 that analyze_videos writes"
        )
    return out


def _read_csv(path: Path) -> DLCTracking:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = []
            for row in csv.reader(f):
                rows.append(row)
                if len(rows) == 4:
                    break
    except (UnicodeDecodeError, csv.Error) as e:
        raise DLCError(f"{path}: not a DeepLabCut CSV ({e})") from None
    labels = [r[0].strip().lower() if r else "" for r in rows]
    if len(rows) < 3 and labels[:1] == ["scorer"]:
        raise DLCError(f"{path}: expected header rows scorer, bodyparts, coords; the file has only {len(rows)} rows")
    if not rows or labels[0] != "scorer":
        raise DLCError(
            f"{path}: not a DeepLabCut CSV: the first header row must start with 'scorer' "
            f"(got {rows[0][:1] if rows else 'nothing'})"
        )
    if labels[1] == "individuals":
        raise DLCError(f"{path}: multi-animal DeepLabCut file (header row 'individuals'): multi-animal not supported")
    if labels[1:3] != ["bodyparts", "coords"]:
        raise DLCError(f"{path}: expected header rows scorer, bodyparts, coords; got {labels[:3]}")
    width = len(rows[0])
    if any(len(r) != width for r in rows[:3]):
        raise DLCError(
            f"{path}: the three header rows have different numbers of columns ({[len(r) for r in rows[:3]]})"
        )
    # index columns: 'scorer' plus the blank cells after it (DeepLabCut >= 2.2 labelled data)
    n_index = 1
    while n_index < width and rows[0][n_index].strip() == "" and rows[2][n_index].strip() == "":
        n_index += 1
    scorers = [c.strip() for c in rows[0][n_index:]]
    bodyparts = [c.strip() for c in rows[1][n_index:]]
    coords = [c.strip().lower() for c in rows[2][n_index:]]
    columns = [f"{b}/{c}" for b, c in zip(bodyparts, coords)]
    lines = _data_lines(path, width)
    # fast path: pandas parses the values as floats (blank = NaN); on any failure the text path
    # below finds the offending cell and says where it is
    try:
        data = pd.read_csv(
            path,
            header=None,
            skiprows=3,
            encoding="utf-8-sig",
            skip_blank_lines=True,
            dtype={**{i: str for i in range(n_index)}, **{i: np.float64 for i in range(n_index, width)}},
        )
        if data.shape[1] != width:
            raise ValueError("column count")
        index = data.iloc[:, :n_index].fillna("").to_numpy(dtype=object)
        values = data.iloc[:, n_index:].to_numpy(dtype=np.float64)
    except pd.errors.EmptyDataError:
        index, values = np.empty((0, n_index), dtype=object), np.empty((0, width - n_index))
    except (ValueError, TypeError, UnicodeDecodeError):
        index, values = _read_values_as_text(path, width, n_index, columns)
    if values.shape[0] != lines.size:  # cannot happen after _data_lines, unless quoting differs
        raise DLCError(f"{path}: {values.shape[0]} data rows parsed but the file has {lines.size} data lines")
    return _assemble(path, scorers, bodyparts, coords, values, _index_from_cells(index), lines=lines)


def _data_lines(path: Path, width: int) -> np.ndarray:
    """1-based line numbers of the data rows (after the 3 header rows, blank lines left out), having
    checked that each has ``width`` fields and that the file ends with a line end. Vectorised over
    the bytes: one pass, no Python loop over rows (quoted fields fall back to the csv module)."""
    raw = path.read_bytes()
    if not raw.endswith(b"\n"):
        n_line = raw.count(b"\n") + 1
        last = raw[raw.rfind(b"\n") + 1 :][:40]
        raise DLCError(
            f"{path}: line {n_line} (the last) has no line end ({last!r}...): the file was cut off while being written"
        )
    if b'"' in raw:  # quoted fields (an image path with a comma?): let the csv module count
        text = raw.decode("utf-8-sig", errors="replace")
        counts, blank = [], []
        for row in csv.reader(io.StringIO(text, newline="")):
            counts.append(len(row))
            blank.append(not any(c.strip() for c in row))
        counts_a, blank_a = np.asarray(counts, dtype=np.int64), np.asarray(blank, dtype=bool)
    else:
        buf = np.frombuffer(raw, dtype=np.uint8)
        ends = np.flatnonzero(buf == 10)
        starts = np.r_[0, ends[:-1] + 1]
        counts_a = np.add.reduceat((buf == 44).view(np.uint8), starts, dtype=np.int64) + 1
        content = ends - starts - (buf[np.maximum(ends - 1, 0)] == 13)
        # a line of commas only is not blank (pandas reads it as a row of NaN)
        blank_a = content <= 0
    numbers = np.arange(1, counts_a.size + 1)
    data = (numbers > 3) & ~blank_a
    bad = data & (counts_a != width)
    if bad.any():
        k = np.flatnonzero(bad)
        first = int(k[0])
        short = " (cut off mid-row)" if counts_a[first] < width else ""
        more = f"; {k.size - 1} more such line(s)" if k.size > 1 else ""
        raise DLCError(
            f"{path}: line {first + 1} has {int(counts_a[first])} fields but the 3-row header has {width}{short}{more}"
        )
    return numbers[data]


def _read_values_as_text(path: Path, width: int, n_index: int, columns: list[str]):
    try:
        data = pd.read_csv(
            path, header=None, skiprows=3, dtype=str, keep_default_na=False, encoding="utf-8-sig", skip_blank_lines=True
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DLCError(f"{path}: cannot parse the data rows ({e})") from None
    if data.shape[1] != width:
        raise DLCError(f"{path}: data rows have {data.shape[1]} columns, the header has {width}")
    index = data.iloc[:, :n_index].to_numpy(dtype=object)
    values = _to_float(path, data.iloc[:, n_index:].to_numpy(dtype=object), first_line=4, columns=columns)
    return index, values


def _to_float(path: Path, raw: np.ndarray, first_line: int, columns: list[str]) -> np.ndarray:
    """Object array of strings -> float64, blank = NaN; a bad cell is reported with line and column."""
    flat = raw.ravel()
    stripped = np.array([s.strip() for s in flat], dtype=object) if flat.size else flat
    blank = stripped == ""
    out = np.full(flat.shape, np.nan)
    try:
        out[~blank] = stripped[~blank].astype(np.float64)
    except ValueError:
        for k in np.flatnonzero(~blank):
            try:
                float(stripped[k])
            except ValueError:
                r, c = divmod(int(k), raw.shape[1])
                raise DLCError(
                    f"{path}: line {first_line + r}, column {columns[c]!r}: not a number: {stripped[k]!r}"
                ) from None
        raise
    return out.reshape(raw.shape)


def _index_from_cells(index: np.ndarray) -> list[str]:
    if index.shape[1] == 1:
        return [str(v).strip() for v in index[:, 0]]
    return ["/".join(str(p).strip() for p in row if str(p).strip() != "") for row in index]


def _one_line(e: Exception) -> str:
    """An exception's message on one line. HDF5's are a whole back trace ("HDF5 error back trace",
    "  File ..., in H5Fopen", ..., "End of HDF5 error back trace", "Unable to open/create file ..."):
    keep the innermost error (the line before its end) and the final line."""
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else type(e).__name__
    end = next((i for i, x in enumerate(lines) if x.startswith("End of HDF5 error back trace")), None)
    if end is not None and end > 0:
        inner = lines[end - 1]
        return f"{inner}; {lines[-1]}" if end + 1 < len(lines) else inner
    return "; ".join(lines)


def _read_h5(path: Path) -> DLCTracking:
    try:
        import tables  # noqa: F401  (pandas needs it for HDF5; say so plainly)
    except ImportError:
        raise DLCError(
            f"{path}: reading DeepLabCut .h5 files needs PyTables: pip install 'map-pipeline[dlc-h5]' "
            f"(or use DeepLabCut's .csv output)"
        ) from None
    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            if "/df_with_missing" in keys:
                key = "/df_with_missing"
            elif len(keys) == 1:
                key = keys[0]
            else:
                raise DLCError(
                    f"{path}: no 'df_with_missing' table and {len(keys)} tables {keys}; "
                    "expected DeepLabCut's single DataFrame"
                )
            df = store.get(key)
    except DLCError:
        raise
    except Exception as e:  # tables/pandas raise many kinds for non-pandas or corrupt HDF5
        raise DLCError(f"{path}: cannot read as a pandas HDF5 file ({type(e).__name__}: {_one_line(e)})") from None
    if not isinstance(df, pd.DataFrame):
        raise DLCError(f"{path}: the HDF5 table is a {type(df).__name__}, not a DataFrame")
    cols = df.columns
    names = [str(n).lower() if n is not None else None for n in getattr(cols, "names", [None])]
    if "individuals" in names:
        raise DLCError(f"{path}: multi-animal DeepLabCut file (column level 'individuals'): multi-animal not supported")
    if not isinstance(cols, pd.MultiIndex) or cols.nlevels != 3:
        raise DLCError(
            f"{path}: expected 3 column levels (scorer, bodyparts, coords), got {getattr(cols, 'nlevels', 1)} ({names})"
        )
    scorers = [str(v) for v in cols.get_level_values(0)]
    bodyparts = [str(v) for v in cols.get_level_values(1)]
    coords = [str(v).lower() for v in cols.get_level_values(2)]
    try:
        values = df.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DLCError(f"{path}: non-numeric values ({e})") from None
    idx = df.index
    if isinstance(idx, pd.MultiIndex):
        labels = ["/".join(str(p) for p in t if str(p) != "") for t in idx]
    else:
        labels = [str(v) for v in idx]
    return _assemble(
        path,
        scorers,
        bodyparts,
        coords,
        values,
        labels,
        int_index=np.asarray(idx) if pd.api.types.is_integer_dtype(idx.dtype) else None,
    )


def _assemble(
    path: Path,
    scorers,
    bodyparts,
    coords,
    values: np.ndarray,
    index_labels: list[str],
    int_index: np.ndarray | None = None,
    lines: np.ndarray | None = None,
) -> DLCTracking:
    if not bodyparts:
        raise DLCError(f"{path}: no bodypart columns")
    distinct = list(dict.fromkeys(scorers))
    if len(distinct) != 1 or distinct[0] == "":
        raise DLCError(f"{path}: expected one scorer, found {distinct}")
    parts = list(dict.fromkeys(bodyparts))
    with_likelihood = "likelihood" in coords
    want = ("x", "y", "likelihood") if with_likelihood else ("x", "y")
    col = {}
    for j, (bp, c) in enumerate(zip(bodyparts, coords)):
        if c not in want:
            raise DLCError(f"{path}: bodypart {bp!r} has coordinate {c!r}; expected {'/'.join(want)}")
        if (bp, c) in col:
            raise DLCError(f"{path}: column {bp}/{c} appears twice")
        col[(bp, c)] = j
    missing = [f"{bp}/{c}" for bp in parts for c in want if (bp, c) not in col]
    if missing:
        raise DLCError(f"{path}: missing columns {missing[:6]}; every bodypart needs {', '.join(want)}")
    take = {c: [col[(bp, c)] for bp in parts] for c in want}
    n = values.shape[0]
    if int_index is not None:
        frame_index, image_paths = int_index.astype(np.int64), None
    else:
        frame_index, image_paths = _frame_numbers(index_labels)
        if image_paths is None and frame_index is None:
            raise DLCError(f"{path}: the first column holds neither frame numbers nor image paths")
    if image_paths is not None:
        frame_index = np.arange(n, dtype=np.int64)

    def where(row: int) -> str:
        return f"line {int(lines[row])}" if lines is not None else f"row {row} (frame {frame_index[row]})"

    if image_paths is None and n > 1:
        back = np.flatnonzero(np.diff(frame_index) <= 0)
        if back.size:
            r = int(back[0]) + 1
            raise DLCError(
                f"{path}: {where(r)}: frame number {int(frame_index[r])} does not follow {int(frame_index[r - 1])} "
                "(frame numbers must increase)"
            )
    x = np.ascontiguousarray(values[:, take["x"]], dtype=np.float64)
    y = np.ascontiguousarray(values[:, take["y"]], dtype=np.float64)
    lik = np.ascontiguousarray(values[:, take["likelihood"]], dtype=np.float64) if with_likelihood else None
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    partial = nan_x != nan_y
    if lik is not None:
        partial |= nan_x != np.isnan(lik)
    if partial.any():
        r, b = (int(v[0]) for v in np.nonzero(partial))
        got = {"x": x[r, b], "y": y[r, b], **({"likelihood": lik[r, b]} if lik is not None else {})}
        raise DLCError(
            f"{path}: {where(r)}: bodypart {parts[b]!r} has "
            + ", ".join(f"{k}={v:g}" for k, v in got.items())
            + f": some coordinates missing (NaN) but not all ({int(partial.sum())} such value(s) in the file)"
        )
    if not (np.isfinite(x) | nan_x).all() or not (np.isfinite(y) | nan_y).all():
        r, b = (int(v[0]) for v in np.nonzero(np.isinf(x) | np.isinf(y)))
        raise DLCError(f"{path}: {where(r)}: bodypart {parts[b]!r} has an infinite coordinate")
    if lik is not None:
        with np.errstate(invalid="ignore"):
            out_of_range = (lik < 0) | (lik > 1)
        if out_of_range.any():
            r, b = (int(v[0]) for v in np.nonzero(out_of_range))
            raise DLCError(f"{path}: {where(r)}: bodypart {parts[b]!r} has likelihood {lik[r, b]:g}, outside [0, 1]")
    return DLCTracking(
        path=path,
        scorer=distinct[0],
        bodyparts=parts,
        x=x,
        y=y,
        likelihood=lik,
        frame_index=frame_index,
        image_paths=image_paths,
    )


def _frame_numbers(labels: list[str]) -> tuple[np.ndarray | None, list[str] | None]:
    """(frame numbers, None) if every label is an integer, else (None, labels as image paths)."""
    if not labels:
        return np.empty(0, dtype=np.int64), None
    try:
        as_float = np.array(labels, dtype=np.float64)
    except ValueError:
        as_float = None
    if as_float is not None and np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
        return as_float.astype(np.int64), None
    if any(lab == "" for lab in labels):
        return None, None
    return None, list(labels)
