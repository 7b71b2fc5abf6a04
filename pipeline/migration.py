"""migration: which numbered data/schema migrations (``pipeline/migrations/m0001_*.py``) have been
applied to this database, when, by which code, and what they changed (see docs/migrate.md)."""

import datajoint as dj

from . import db

schema = dj.Schema()


@schema
class Migration(dj.Manual):
    """One migration applied to this database by ``mapshell migrate --apply``."""

    definition = """
    number : int32                      # the NNNN of pipeline/migrations/mNNNN_<name>.py
    ---
    name : varchar(64)                  # the <name> part
    applied_at = CURRENT_TIMESTAMP : datetime
    code_version : varchar(64)          # pipeline.__version__ and the git commit, if known
    summary : varchar(2000)             # what it changed
    """


db.register("migration", schema)
