"""migrate: numbered migrations, dry run by default, applied once each in order, recorded; a failed
one is rolled back and stops the run; m0001 adds a missing ingest_ephys file_sha1 column."""

import sys
import textwrap
import uuid

import datajoint as dj
import pytest
from conftest import run_mapshell

import pipeline
from pipeline import lab
from pipeline.ingest.ephys.tables import EphysIngest
from pipeline.migration import Migration
from pipeline.migrations import MigrationError, available, code_version, migrate
from pipeline.migrations._helpers import has_column


def test_shipped_migrations_are_well_formed():
    found = available()
    assert [m.number for m in found] == sorted({m.number for m in found})
    assert found[0].number == 1 and found[0].name == "electrode_file_sha1"
    for m in found:
        mod = m.load()
        assert mod.__doc__.strip() and callable(mod.apply)
    assert code_version().startswith(pipeline.__version__)


def _package(tmp_path, files: dict[str, str]) -> str:
    name = f"migtest_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for fname, code in files.items():
        (folder / fname).write_text(textwrap.dedent(code))
    if str(tmp_path) not in sys.path:
        sys.path.insert(0, str(tmp_path))
    return name


def test_misnamed_or_duplicate_migrations_are_refused(tmp_path):
    doc = '"""x"""\ndef apply(dry_run):\n    return []\n'
    with pytest.raises(MigrationError, match="same number"):
        available(_package(tmp_path, {"m0001_a.py": doc, "m0001_b.py": doc}))
    with pytest.raises(MigrationError, match="four digits"):
        available(_package(tmp_path, {"m1_a.py": doc}))


def _drop_sha1(table) -> None:
    q = table.connection.adapter.quote_identifier
    table.connection.query(f"ALTER TABLE {table.full_table_name} DROP COLUMN {q('file_sha1')}")


def test_m0001_adds_the_column_once(database):
    table = EphysIngest.EphysFile()
    assert has_column(table, "file_sha1")
    _drop_sha1(table)  # a database created before the column existed
    try:
        dry = migrate()
        assert dry.ok and not dry.loaded, dry.report()
        reason = dict(dry.skipped)["m0001 electrode_file_sha1"]
        assert "pending" in reason and "would add column file_sha1 char(40) NULL" in reason
        assert not has_column(table, "file_sha1") and len(Migration()) == 0  # a dry run changes nothing

        done = migrate(apply=True)
        assert done.ok and done.loaded == [
            f"m0001 electrode_file_sha1: add column file_sha1 char(40) NULL to {table.full_table_name}"
        ]
    finally:
        if not has_column(table, "file_sha1"):  # never leave the shared test schema broken
            from pipeline.migrations._helpers import add_column_sql
            from pipeline.migrations.m0001_electrode_file_sha1 import ATTRIBUTE

            for sql in add_column_sql(table, ATTRIBUTE):
                table.connection.query(sql)
    attr = dj.FreeTable(table.connection, table.full_table_name).heading.attributes["file_sha1"]
    assert attr.nullable and "char(40)" in attr.type.lower() and attr.comment.startswith("content hash")
    row = (Migration & {"number": 1}).fetch1()
    assert row["name"] == "electrode_file_sha1" and row["code_version"].startswith(pipeline.__version__)
    assert "add column file_sha1" in row["summary"]

    again = migrate(apply=True)  # re-running is a no-op
    assert again.ok and not again.loaded and "applied" in dict(again.skipped)["m0001 electrode_file_sha1"]
    assert len(Migration()) == 1


def test_m0001_on_a_current_database_changes_nothing(database):
    dry = migrate()
    assert "nothing to change" in dict(dry.skipped)["m0001 electrode_file_sha1"]
    done = migrate(apply=True)
    assert done.ok and done.loaded == ["m0001 electrode_file_sha1: nothing to change"]
    assert (Migration & {"number": 1}).fetch1("summary") == "nothing to change"


def test_a_failed_migration_is_rolled_back_and_stops(database, tmp_path):
    insert = '''
        """{doc}"""
        def apply(dry_run):
            from pipeline import lab
            if not dry_run:
                lab.Person.insert1(dict(username="{user}", fullname="x"))
            {tail}
    '''
    pkg = _package(
        tmp_path,
        {
            "m0001_ok.py": insert.format(doc="adds ok", user="ok", tail="return ['person ok']"),
            "m0002_boom.py": insert.format(
                doc="adds boom, then fails", user="boom", tail="assert dry_run, 'bad data'\n            return []"
            ),
            "m0003_later.py": insert.format(doc="adds later", user="later", tail="return ['person later']"),
        },
    )
    dry = migrate(package=pkg)  # the dry run writes nothing and lists all three
    assert dry.ok and len(dry.skipped) == 3 and len(lab.Person()) == 0
    s = migrate(apply=True, package=pkg)
    assert s.loaded == ["m0001 ok: person ok"]
    reason = dict(s.failed)["m0002 boom"]
    assert "rolled back" in reason and "AssertionError: bad data" in reason and "1 later migration(s) not run" in reason
    assert set(lab.Person().to_arrays("username")) == {"ok"}  # boom's insert rolled back, later never ran
    assert set(Migration().to_arrays("number")) == {1}
    again = migrate(apply=True, package=pkg)  # still stops at m0002; m0001 is not applied twice
    assert not again.ok and not again.loaded and "m0001 ok" in dict(again.skipped)
    assert set(lab.Person().to_arrays("username")) == {"ok"}


def test_mapshell_migrate(database):
    r = run_mapshell(["migrate"], database.env())
    assert r.returncode == 0, r.stderr
    assert "m0001 electrode_file_sha1" in r.stdout and "dry run" in r.stdout
    assert len(Migration()) == 0
    r = run_mapshell(["migrate", "--apply"], database.env())
    assert r.returncode == 0, r.stderr
    assert set(Migration().to_arrays("number")) == {1}
    r = run_mapshell(["migrate", "--apply"], database.env())
    assert r.returncode == 0 and "0 loaded" in r.stdout
