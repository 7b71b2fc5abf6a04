"""Fast inserts of plain-typed tables (numbers, strings, booleans, in-table ``<blob>``s; no store codecs).

``Table.insert`` checks and converts every value of every row in Python, which is most of the
time of a behavior ingest (tens of thousands of event rows per session). Here a DataFrame's
columns go to the driver as one multi-row INSERT per chunk, with the driver escaping values.
Foreign keys, types and uniqueness are still enforced by the database. Use it inside the
caller's transaction, for tables whose columns the caller built itself.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Rows per INSERT statement: big enough to amortise the round trip, small enough for
#: MariaDB's packet limit and PostgreSQL's 65535-parameter limit.
MAX_PARAMS = 60_000


def _column_values(s: pd.Series) -> list:
    """A column as Python values the drivers understand (NaN -> NULL, numpy -> Python)."""
    if s.dtype.kind == "f":
        a = s.to_numpy(dtype=np.float64)
        out = a.tolist()
        if np.isnan(a).any():
            out = [None if math.isnan(v) else v for v in out]
        return out
    if s.dtype.kind in "iu":
        return s.to_numpy().tolist()
    if s.dtype.kind == "b":
        return [bool(v) for v in s.to_numpy()]
    return [
        None
        if v is None or (isinstance(v, float) and math.isnan(v))
        else (v.item() if isinstance(v, np.generic) else v)
        for v in s.tolist()
    ]


def with_key(df: pd.DataFrame, key: dict) -> pd.DataFrame:
    """``df`` with the key's attributes as its first columns (the same value on every row)."""
    keys = pd.DataFrame({k: [v] * len(df) for k, v in key.items()})
    return pd.concat([keys, df.reset_index(drop=True)], axis=1)


def insert_frame(table, df: pd.DataFrame, encoded: tuple = ()) -> int:
    """Insert ``df`` (columns named as ``table``'s attributes) into ``table``; returns rows inserted.
    Columns named in ``encoded`` hold ``<blob>`` values already encoded (see :func:`encode_rows`)."""
    if df.empty:
        return 0
    heading = table.heading
    unknown = [c for c in df.columns if c not in heading.names]
    if unknown:
        raise ValueError(f"{table.full_table_name}: no attribute(s) {unknown}")
    coded = [c for c in df.columns if heading[c].codec is not None or heading[c].is_blob]
    in_table_blobs = [
        c for c in coded if heading[c].codec is not None and heading[c].codec.name == "blob" and not heading[c].store
    ]
    if set(coded) - set(in_table_blobs):
        raise ValueError(
            f"{table.full_table_name}: {sorted(set(coded) - set(in_table_blobs))} need DataJoint's codecs; use Table.insert"
        )
    if in_table_blobs:  # encoded here exactly as DataJoint's insert would (its <blob> codec)
        df = df.copy()
        for c in in_table_blobs:
            if c in encoded:
                continue
            codec = heading[c].codec
            df[c] = [None if v is None else codec.encode(v) for v in df[c]]
    conn = table.connection
    cols = list(df.columns)
    quoted = ", ".join(conn.adapter.quote_identifier(c) for c in cols)
    values = [_column_values(df[c]) for c in cols]
    rows = list(zip(*values))
    per_stmt = max(1, MAX_PARAMS // len(cols))
    row_sql = "(" + ", ".join(["%s"] * len(cols)) + ")"
    for start in range(0, len(rows), per_stmt):
        chunk = rows[start : start + per_stmt]
        sql = f"INSERT INTO {table.full_table_name} ({quoted}) VALUES " + ", ".join([row_sql] * len(chunk))
        conn.query(sql, args=[v for r in chunk for v in r])
    return len(rows)


def encode_rows(table, attribute: str, rows: np.ndarray) -> list:
    """Each row of the 2-D array ``rows`` as ``table``'s in-table ``<blob>`` ``attribute`` stores it
    (for :func:`insert_frame`'s ``encoded``). DataJoint's codec encodes the first and the last row;
    rows of one dtype and shape share the header and, below the codec's 1000-byte compression
    threshold, differ only in their data bytes, so the others are that header plus their bytes.
    Anything else (compressed, or not laid out so) is encoded row by row by the codec."""
    codec = table.heading[attribute].codec
    rows = np.ascontiguousarray(rows)
    if rows.ndim != 2 or not len(rows):
        return [codec.encode(r) for r in rows]
    first, last = codec.encode(rows[0]), codec.encode(rows[-1])
    size = rows[0].nbytes
    header = first[: len(first) - size]
    if len(first) > 1000 or first != header + rows[0].tobytes() or last != header + rows[-1].tobytes():
        return [codec.encode(r) for r in rows]
    return [header + r.tobytes() for r in rows]
