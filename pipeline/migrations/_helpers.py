"""Small helpers for migrations, working alike on MySQL/MariaDB and PostgreSQL."""

from __future__ import annotations


def has_column(table, column: str) -> bool:
    """Whether the (activated) DataJoint table has ``column`` in the database right now (read from
    information_schema, not from DataJoint's cached heading)."""
    conn = table.connection
    ph = conn.adapter.parameter_placeholder
    row = conn.query(
        "SELECT COUNT(*) FROM information_schema.columns "
        f"WHERE table_schema = {ph} AND table_name = {ph} AND column_name = {ph}",
        args=(table.database, table.table_name, column),
    ).fetchone()
    return int(row[0]) > 0


def add_column_sql(table, attribute: str) -> list[str]:
    """The statements that add one attribute, written as in a DataJoint definition
    (``name = null : char(40)  # comment``), to ``table``, as DataJoint itself declares it
    (PostgreSQL keeps the comment in a separate statement)."""
    from datajoint.declare import compile_attribute

    adapter = table.connection.adapter
    name, sql, _store, comment = compile_attribute(attribute, False, [], {}, adapter)
    statements = [f"ALTER TABLE {table.full_table_name} ADD {sql}"]
    comment_ddl = adapter.column_comment_ddl(table.full_table_name, name, comment) if comment else None
    if comment_ddl:
        statements.append(comment_ddl)
    return statements
