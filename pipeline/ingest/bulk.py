"""Fast inserts of plain-typed tables (numbers, strings, booleans, in-table ``<blob>``s; no store codecs).

``Table.insert`` checks and converts every value of every row in Python, which is most of the
time of a behavior ingest (tens of thousands of event rows per session). Here a DataFrame goes to
the database a column at a time, by numpy: on PostgreSQL as one ``COPY ... FROM STDIN`` in the
binary format (each value as its bytes: nothing to quote or escape, numbers exact), on MySQL as
multi-row INSERTs of literals written as PyMySQL writes parameters (each distinct string escaped
once). NaN and None are NULL. Columns that COPY's binary format would need converting (dates,
decimals, ...) go as bound parameters. Foreign keys, types and uniqueness are still enforced by
the database. Use it inside the caller's transaction, for tables whose columns the caller built
itself.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

#: Rows per INSERT statement: big enough to amortise the round trip, small enough for
#: MariaDB's packet limit and PostgreSQL's 65535-parameter limit.
MAX_PARAMS = 60_000

#: PostgreSQL types whose binary COPY form is a numpy dtype's bytes
_PG_NUMBERS = {
    "smallint": np.dtype(">i2"),
    "integer": np.dtype(">i4"),
    "bigint": np.dtype(">i8"),
    "double precision": np.dtype(">f8"),
    "boolean": np.dtype("?"),
}
#: binary COPY's header (signature, no flags, no extension) and trailer (field count -1)
_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_PG_COPY_TRAILER = b"\xff\xff"


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
    out = df.reset_index(drop=True)
    for i, (k, v) in enumerate(key.items()):
        out.insert(i, k, v, allow_duplicates=True)
    return out


def _by_distinct(s: pd.Series, convert, null):
    """``convert`` of each distinct value once (a column of strings or bytes): (per row: the
    distinct value's index, -1 for None/NaN; the converted distinct values, ``null`` last)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes, np.asarray([*map(convert, np.asarray(uniques, dtype=object).tolist()), null], dtype=object)


def _binary_column(s: pd.Series, sql_type: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A column as binary COPY fields: (each row's value length in bytes, -1 for NULL; the values'
    bytes one after the other), or None if the attribute's type or the values are not ones whose
    bytes are plainly the value (dates, decimals, floats for an integer, ...): those bind."""
    kind = s.dtype.kind
    if sql_type in _PG_NUMBERS and kind in "iufb":
        dtype = _PG_NUMBERS[sql_type]
        if (kind == "b") != (dtype.kind == "b") or (kind == "f") != (dtype.kind == "f"):
            return None
        a = s.to_numpy()
        null = np.isnan(a) if kind == "f" else np.zeros(len(a), dtype=bool)
        values = (a[~null] + 0.0 if kind == "f" else a).astype(dtype)  # -0.0 as 0.0, as the text forms store it
        if kind in "iu" and not np.array_equal(values, a):  # out of the type's range: let the database say so
            return None
        return np.where(null, -1, dtype.itemsize), values.view(np.uint8)
    inferred = pd.api.types.infer_dtype(s, skipna=True)
    if inferred == "string" and sql_type.startswith(("varchar", "char", "text")):
        codes, values = _by_distinct(s, str.encode, b"")
    elif inferred == "bytes" and sql_type == "<blob>":  # an in-table blob: bytea
        codes, values = _by_distinct(s, bytes, b"")
    elif inferred == "empty":
        return np.full(len(s), -1), np.empty(0, np.uint8)
    else:
        return None
    lengths = np.array([len(v) for v in values])[codes]
    lengths[codes < 0] = -1
    return lengths, np.frombuffer(b"".join(values[codes]), np.uint8)


def _binary_copy(fields: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """The data of a binary ``COPY ... FROM STDIN`` from :func:`_binary_column`'s fields: each row
    its field count (int16), then per field its length (int32) and bytes."""
    sizes = [4 + np.maximum(lengths, 0) for lengths, _ in fields]
    row_sizes = 2 + np.sum(sizes, axis=0)
    at = np.cumsum(row_sizes) - row_sizes  # where each row starts
    out = np.empty(int(row_sizes.sum()), np.uint8)
    out[at[:, None] + np.arange(2)] = np.frombuffer(np.array(len(fields), ">i2").tobytes(), np.uint8)
    at = at + 2
    for (lengths, data), size in zip(fields, sizes):
        out[at[:, None] + np.arange(4)] = lengths.astype(">i4").view(np.uint8).reshape(-1, 4)
        n = np.maximum(lengths, 0)
        # byte k of the column's data goes to its row's value start + its place in that value
        out[np.repeat(at + 4 - (np.cumsum(n) - n), n) + np.arange(len(data))] = data
        at = at + size
    return _PG_COPY_HEADER + out.tobytes() + _PG_COPY_TRAILER


def _mysql_column(s: pd.Series, escape) -> list[str]:
    """A column as MySQL literals, as PyMySQL writes parameters (``escape``: the connection's)."""
    kind = s.dtype.kind
    if kind in "iu":
        a = s.to_numpy()
        if len(a) and (a == a[0]).all():  # a key column: converted once
            return [str(a[0].item())] * len(a)
        return list(map(str, a.tolist()))
    if kind == "b":
        return np.where(s.to_numpy(), "1", "0").tolist()
    if kind == "f":  # repr, and e0 where repr has no exponent (a double literal, not a DECIMAL)
        a = s.to_numpy(dtype=np.float64)
        if np.isinf(a).any():
            raise ValueError(f"{s.name}: inf can not be used with MySQL")
        with np.errstate(invalid="ignore"):  # repr writes an exponent below 1e-4 and from 1e16 on (not for 0)
            exponent = (a != 0) & ((np.abs(a) < 1e-4) | (np.abs(a) >= 1e16))
        text = list(map(str.__add__, map(repr, a.tolist()), np.where(exponent, "", "e0").tolist()))
        nan = np.isnan(a)
        return np.where(nan, "NULL", np.array(text, dtype=object)).tolist() if nan.any() else text
    if pd.api.types.infer_dtype(s, skipna=True) in ("string", "bytes"):
        codes, literals = _by_distinct(s, escape, "NULL")
        return literals[codes].tolist()  # code -1 (missing): the last, NULL
    return ["NULL" if v is None else escape(v) for v in _column_values(s)]


def _execute(conn, sql: str, copy_data: bytes | None = None) -> None:
    """Run ``sql`` on DataJoint's connection (in its transaction) with no parameter substitution;
    ``copy_data``: the data of a ``COPY ... FROM STDIN``, sent in one piece. Errors as DataJoint's."""
    cursor = conn._conn.cursor()
    try:
        if copy_data is None:
            cursor.execute(sql)
        else:
            cursor.copy_expert(sql, io.BytesIO(copy_data), size=len(copy_data) + 1)
    except Exception as e:
        raise conn.adapter.translate_error(e, sql[:300]) from e
    finally:
        cursor.close()


def insert_frame(table, df: pd.DataFrame, encoded: tuple = ()) -> int:
    """Insert ``df`` (columns named as ``table``'s attributes) into ``table``; returns rows inserted.
    Columns named in ``encoded`` hold ``<blob>`` values already encoded (see :func:`encode_rows`)."""
    if df.empty:
        return 0
    heading = table.heading.attributes  # (DataJoint builds this dict on each access)
    unknown = [c for c in df.columns if c not in heading]
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
    per_stmt = max(1, MAX_PARAMS // len(cols))
    if conn.adapter.backend != "postgresql":
        escape = conn._conn.escape
        rows = list(map(",".join, zip(*(_mysql_column(df[c], escape) for c in cols))))
        for start in range(0, len(rows), per_stmt):
            values = "),(".join(rows[start : start + per_stmt])
            _execute(conn, f"INSERT INTO {table.full_table_name} ({quoted}) VALUES ({values})")
        return len(rows)
    fields = [_binary_column(df[c], heading[c].sql_type) for c in cols]
    if all(f is not None for f in fields):
        data = _binary_copy(fields)
        _execute(conn, f"COPY {table.full_table_name} ({quoted}) FROM STDIN WITH (FORMAT binary)", data)
        return len(df)
    # a column COPY's binary format cannot take as it is: bound parameters, a multi-row INSERT per chunk
    rows = list(zip(*(_column_values(df[c]) for c in cols)))
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
