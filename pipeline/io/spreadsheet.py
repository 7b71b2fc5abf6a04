"""Read a lab spreadsheet (xlsx or csv) into a DataFrame with normalised column names, and check
its columns and cells strictly.

Headers are lower-cased with spaces turned into underscores (the original's rule), fully empty
rows are dropped, and a ``row_number`` column gives the row as the user sees it in the sheet
(header = row 1), so error messages can point at it. Columns whose header starts with ``#`` are
the user's own notes and are dropped; so are columns with neither a header nor a value.

The cell readers (:func:`date_cell`, :func:`int_cell`, ...) accept only unambiguous values and
raise :class:`CellError` naming the row and column otherwise; limits (text length, integer
range, decimal digits) come from a :class:`ColumnType`, read from the DataJoint table heading at
run time (:func:`column_type`) so they follow the table definitions.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, UsageError


class SpreadsheetError(InputError):
    """The file cannot be read as a table; the message names the file."""


class CellError(SpreadsheetError):
    """One cell is bad; the message names the value, the row and the column."""


def normalise_header(name: object) -> str:
    return "_".join(str(name).strip().lower().split())


def read_table(path: str | Path, sheet: str | int | None = None) -> pd.DataFrame:
    """The sheet as text/number/date cells (``dtype=object``), one row per non-empty sheet row.

    ``df.attrs['headers']`` maps each normalised column name to the header as written."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise SpreadsheetError(f"{path}: empty file (zero bytes)")
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm", ".xls"):
            df = pd.read_excel(path, sheet_name=0 if sheet is None else sheet, dtype=object)
        elif suffix in (".csv", ".tsv", ".txt"):
            df = pd.read_csv(
                path, sep=None if suffix != ".tsv" else "\t", engine="python", dtype=object, keep_default_na=True
            )
        else:
            raise SpreadsheetError(f"{path}: unsupported file type {suffix!r} (use .xlsx or .csv)")
    except SpreadsheetError:
        raise
    except UnicodeDecodeError as e:  # a text sheet saved in another encoding
        raw = path.read_bytes()
        try:
            raw.decode("utf-8-sig")
            at = e.start
        except UnicodeDecodeError as whole:  # where in the file (pandas reports a position in its buffer)
            at = whole.start
        line = raw.count(b"\n", 0, at) + 1
        raise SpreadsheetError(
            f"{path}: line {line}: not UTF-8 text (byte {raw[at : at + 1]!r}); save the sheet as UTF-8 CSV"
        ) from None
    except ValueError as e:  # e.g. unknown sheet name
        raise SpreadsheetError(f"{path}: {e}") from None
    except Exception as e:
        raise SpreadsheetError(f"{path}: cannot read as a spreadsheet ({type(e).__name__}: {e})") from None
    original = [str(c) for c in df.columns]
    keep = [
        i
        for i, c in enumerate(original)
        if not c.strip().startswith("#") and not (c.startswith("Unnamed:") and df.iloc[:, i].isna().all())
    ]
    df = df.iloc[:, keep]
    original = [original[i] for i in keep]
    df.columns = [normalise_header(c) for c in original]
    dupes = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dupes:
        raise SpreadsheetError(f"{path}: duplicate column(s) {dupes}")
    headers = dict(zip(df.columns, original))
    df["row_number"] = range(2, len(df) + 2)
    data_cols = [c for c in df.columns if c != "row_number"]
    df = df[~df[data_cols].isna().all(axis=1)]
    df = df.reset_index(drop=True)
    df.attrs["headers"] = headers
    return df


def sheet_label(path: str | Path, sheet: str | int | None = None) -> str:
    """``/data/animals.xlsx`` or ``/data/animals.xlsx, sheet 'Mice'``: the item that messages
    about the whole sheet are reported under."""
    return str(path) + ("" if sheet is None else f", sheet {sheet!r}")


def unknown_columns(df: pd.DataFrame, known: Iterable[str]) -> str | None:
    """A one-line message about every column not in ``known`` (with the closest known name), or
    None when all columns are known. Report it under :func:`sheet_label` (the file)."""
    known = list(known)
    headers = df.attrs.get("headers", {})
    parts = []
    for col in df.columns:
        if col == "row_number" or col in known:
            continue
        header = headers.get(col, col)
        if header.startswith("Unnamed:"):
            num = int(header.split(":")[1].strip().split(".")[0]) + 1
            letter = chr(ord("A") + num - 1) if num <= 26 else str(num)
            parts.append(f"column {num} ({letter}) has values but no header")
            continue
        shown = repr(col) if normalise_header(header) == header else f"{header!r} (read as {col!r})"
        close = difflib.get_close_matches(col, known, n=1)
        parts.append(f"unknown column {shown}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if not parts:
        return None
    return (
        f"{'; '.join(parts)}; known columns: {', '.join(known)} "
        "(start a header with # to keep a column of your own notes)"
    )


# --- cells -------------------------------------------------------------------------------


def blank(v: Any) -> bool:
    """An empty cell (NaN, None, NaT or only spaces)."""
    if v is None or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


def show(v: Any, limit: int = 40) -> str:
    """A cell value for a one-line message: text quoted (shortened), dates in ISO, numbers plain."""
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return repr(v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str):
        v = v.strip()
        if re.fullmatch(r"[-+]?\d+(\.\d*)?", v):
            return v  # a number typed as text reads as the number
        return repr(str(v if len(v) <= limit else v[: limit - 3] + "..."))
    return repr(v) if isinstance(v, bool) else str(v)


def where(row: int, col: str) -> str:
    return f"in row {row}, column {col}"


def _fail(row: int, col: str, problem: str, fix: str | None = None) -> CellError:
    return CellError(f"{problem} {where(row, col)}" + (f"; {fix}" if fix else ""))


_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?")
_DMY = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?:\s.*)?")


def _valid_date(y: int, m: int, d: int) -> dt.date | None:
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def date_cell(v: Any, row: int, col: str) -> dt.date:
    """A date from a date-typed cell or ISO text (``YYYY-MM-DD``, optionally with a time).

    Text such as ``03/04/2024`` is refused: whether it means 3 April or 4 March depends on the
    locale of whoever typed it, and guessing would silently store wrong dates."""
    if isinstance(v, np.datetime64):
        v = pd.Timestamp(v)
    if isinstance(v, dt.datetime):  # also pandas.Timestamp
        return v.date()
    if isinstance(v, dt.date):
        return v
    text = str(v).strip()
    m = _ISO.fullmatch(text)
    if m:
        y, mo, d = (int(x) for x in m.groups()[:3])
        day = _valid_date(y, mo, d)
        h, mi, s = (int(x) if x else 0 for x in m.groups()[3:])
        if day is None or h > 23 or mi > 59 or s > 59:
            raise _fail(row, col, f"invalid date {show(v)}", "write a real date as YYYY-MM-DD")
        return day
    fix = "write the date as YYYY-MM-DD or use a date cell"
    m = _DMY.fullmatch(text)
    if m:
        a, b, y = (int(x) for x in m.groups())
        dmy, mdy = _valid_date(y, b, a), _valid_date(y, a, b)
        if dmy and mdy and dmy != mdy:
            fix = f"write {dmy.isoformat()} (day/month) or {mdy.isoformat()} (month/day), or use a date cell"
        elif dmy or mdy:
            fix = f"write {(dmy or mdy).isoformat()} or use a date cell"
    raise _fail(row, col, f"ambiguous or non-ISO date {show(v)}", fix)


def time_cell(v: Any, row: int, col: str) -> str:
    """A time of day as ``HHMMSS`` from ``HHMMSS``/``HH:MM:SS`` text, a number or a time cell."""
    if isinstance(v, (dt.time, dt.datetime)):
        return v.strftime("%H%M%S")
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    text = re.sub(r"\.0*$", "", str(v).strip().replace(":", ""))  # 93015.0 from a number cell
    if re.fullmatch(r"\d{5,6}", text):
        text = text.zfill(6)
        if int(text[:2]) < 24 and int(text[2:4]) < 60 and int(text[4:]) < 60:
            return text
    raise _fail(row, col, f"{col} {show(v)} is not a time of day", "write HHMMSS, e.g. 093015")


@dataclass(frozen=True)
class ColumnType:
    """What a table column can hold, from its SQL type: ``kind`` is int, decimal, float, text or
    other; ``lo``/``hi`` bound numbers, ``max_len`` text, ``places`` the decimals of a decimal."""

    table: str
    name: str
    sql: str
    kind: str
    lo: Decimal | None = None
    hi: Decimal | None = None
    max_len: int | None = None
    places: int | None = None

    @property
    def what(self) -> str:
        return f"{self.table}.{self.name} is {self.sql}"


_INT_BITS = {"tinyint": 8, "smallint": 16, "int2": 16, "mediumint": 24, "int": 32, "integer": 32, "int4": 32}
_INT_BITS.update(bigint=64, int8=64)


def parse_sql_type(sql: str, table: str = "", name: str = "") -> ColumnType:
    """:class:`ColumnType` of a MySQL or PostgreSQL column type as DataJoint reports it."""
    t = sql.lower().strip()
    base = re.match(r"[a-z][a-z0-9 ]*?(?=\(|\s+unsigned|$)", t)
    word = base.group(0).strip() if base else t
    unsigned = "unsigned" in t
    if word in _INT_BITS:
        bits = _INT_BITS[word]
        lo, hi = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return ColumnType(table, name, sql, "int", Decimal(lo), Decimal(hi))
    m = re.match(r"(?:decimal|numeric)\s*\(\s*(\d+)\s*(?:,\s*(\d+))?\s*\)", t)
    if m:
        digits, places = int(m.group(1)), int(m.group(2) or 0)
        hi = Decimal(10) ** (digits - places) - Decimal(10) ** -places
        return ColumnType(table, name, sql, "decimal", Decimal(0) if unsigned else -hi, hi, places=places)
    if word in ("double", "double precision", "float", "float4", "float8", "real"):
        return ColumnType(table, name, sql, "float")
    m = re.match(r"(?:varchar|character varying|char|character)\s*\(\s*(\d+)\s*\)", t)
    if m:
        return ColumnType(table, name, sql, "text", max_len=int(m.group(1)))
    return ColumnType(table, name, sql, "other")


def column_type(table: Any, attr: str) -> ColumnType:
    """The limits of ``table.attr`` from its DataJoint heading (needs an activated schema)."""
    name = f"{table.__module__.rsplit('.', 1)[-1]}.{table.__qualname__}"  # e.g. lab.Subject
    return parse_sql_type(table.heading.attributes[attr].type, name, attr)


def text_cell(v: Any, row: int, col: str, ctype: ColumnType | None = None) -> str:
    """Text, stripped; a whole number typed into a number cell counts as its digits."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, (dt.date, dt.time)) or isinstance(v, bool):
        raise _fail(row, col, f"{col} {show(v)} is not text", "format the cell as text")
    text = str(v).strip()
    if ctype is not None and ctype.max_len is not None and len(text) > ctype.max_len:
        raise _fail(
            row,
            col,
            f"{col} {show(text)} is {len(text)} characters long",
            f"at most {ctype.max_len} fit ({ctype.what})",
        )
    return text


def _decimal(v: Any, row: int, col: str, what: str) -> Decimal:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (bool, dt.date, dt.time)):
        raise _fail(row, col, f"{col} {show(v)} is not {what}")
    fix = "use a decimal point, not a comma" if isinstance(v, str) and "," in v else None
    try:
        d = Decimal(str(v).strip())
    except InvalidOperation:
        raise _fail(row, col, f"{col} {show(v)} is not {what}", fix) from None
    if not d.is_finite():
        raise _fail(row, col, f"{col} {show(v)} is not {what}")
    return d


def _range(d: Decimal, v: Any, row: int, col: str, ctype: ColumnType | None, lo, hi, gt) -> None:
    """Check lo <= d <= hi (lo < d when ``gt``), bounded further by the column type."""
    if ctype is not None and ctype.lo is not None:
        lo = ctype.lo if lo is None else max(Decimal(lo), ctype.lo)
        hi = ctype.hi if hi is None else min(Decimal(hi), ctype.hi)
    below = lo is not None and (d <= lo if gt else d < lo)
    above = hi is not None and d > hi
    if below or above:
        if lo is not None and hi is not None:
            span = f"between {lo} and {hi}" if not gt else f"above {lo} and at most {hi}"
        elif lo is not None:
            span = f"above {lo}" if gt else f"at least {lo}"
        else:
            span = f"at most {hi}"
        tail = f" ({ctype.what})" if ctype is not None and ctype.lo is not None else ""
        raise _fail(row, col, f"{col} {show(v)} is out of range", f"it must be {span}{tail}")


def int_cell(
    v: Any, row: int, col: str, ctype: ColumnType | None = None, lo: int | None = None, hi: int | None = None
) -> int:
    """A whole number within ``lo``..``hi`` and the column type's range."""
    what = "a whole number" if lo is None or lo < 1 else "a positive whole number"
    d = _decimal(v, row, col, what)
    if d != d.to_integral_value():
        raise _fail(row, col, f"{col} {show(v)} is not {what}")
    _range(d, v, row, col, ctype, lo, hi, False)
    return int(d)


def decimal_cell(
    v: Any, row: int, col: str, ctype: ColumnType | None = None, gt: float | None = None, hi: float | None = None
) -> Decimal:
    """A number above ``gt`` within the column type's range, rounded to its decimal places."""
    d = _decimal(v, row, col, "a number")
    low = None if gt is None else Decimal(str(gt))
    _range(d, v, row, col, ctype, low, hi, True)
    if ctype is not None and ctype.places is not None:
        d = d.quantize(Decimal(10) ** -ctype.places)  # e.g. 21.0004 g -> 21.000
        _range(d, v, row, col, ctype, low, hi, True)  # 0.0001 would round to 0
    return d


def float_cell(v: Any, row: int, col: str, lo: float | None = None) -> float:
    """A finite number (at least ``lo``)."""
    d = _decimal(v, row, col, "a number")
    _range(d, v, row, col, None, lo, None, False)
    if not math.isfinite(float(d)):  # e.g. 1e400
        raise _fail(row, col, f"{col} {show(v)} is out of range", "it must be a finite number")
    return float(d)
