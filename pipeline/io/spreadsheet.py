"""Read a lab spreadsheet (xlsx or csv) into a DataFrame with normalised column names.

Headers are lower-cased with spaces turned into underscores (the original's rule), fully empty
rows are dropped, and a ``row_number`` column gives the row as the user sees it in the sheet
(header = row 1), so error messages can point at it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import InputError


class SpreadsheetError(InputError):
    """The file cannot be read as a table; the message names the file."""


def normalise_header(name: object) -> str:
    return "_".join(str(name).strip().lower().split())


def read_table(path: str | Path, sheet: str | int | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SpreadsheetError(f"{path}: file not found")
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
    except ValueError as e:  # e.g. unknown sheet name
        raise SpreadsheetError(f"{path}: {e}") from None
    except Exception as e:
        raise SpreadsheetError(f"{path}: cannot read as a spreadsheet ({type(e).__name__}: {e})") from None
    df.columns = [normalise_header(c) for c in df.columns]
    dupes = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dupes:
        raise SpreadsheetError(f"{path}: duplicate column(s) {dupes}")
    df["row_number"] = range(2, len(df) + 2)
    data_cols = [c for c in df.columns if c != "row_number"]
    df = df[~df[data_cols].isna().all(axis=1)]
    return df.reset_index(drop=True)
