"""Add the nullable file_sha1 char(40) column to ingest_ephys.ephys_ingest__ephys_file.

Databases whose ``ingest_ephys`` schema was created before ingest-ephys hashed the files it loaded
lack this column (DataJoint creates a table once and never changes it), and ingest-ephys then fails
on them. This adds the column exactly as ``pipeline/ingest/ephys/tables.py`` declares it (rows
already there keep NULL: "not hashed", so they are checked by size and time as before). A database
that has the column (every one created since) is left alone.
"""

from __future__ import annotations

from ._helpers import add_column_sql, has_column

#: the attribute as declared when this migration was written (a migration never follows later edits)
ATTRIBUTE = "file_sha1 = null : char(40)     # content hash (null: a large feature file, checked by size and time)"


def apply(dry_run: bool) -> list[str]:
    from ..ingest.ephys.tables import EphysIngest

    table = EphysIngest.EphysFile()
    if has_column(table, "file_sha1"):
        return []
    if not dry_run:
        for sql in add_column_sql(table, ATTRIBUTE):
            table.connection.query(sql)
    return [f"add column file_sha1 char(40) NULL to {table.full_table_name}"]
