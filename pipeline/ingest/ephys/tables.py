"""ingest_ephys: which files made which probe insertion (so re-runs skip them, and a changed
sorting is noticed instead of silently reloaded)."""

import datajoint as dj

from ... import db, ephys  # noqa: F401  (referenced in the table definitions)

schema = dj.Schema()


@schema
class EphysIngest(dj.Manual):
    """An insertion loaded by ingest-ephys."""

    definition = """
    -> ephys.ProbeInsertion
    ---
    ingest_time = CURRENT_TIMESTAMP : datetime
    probe_folder : varchar(1024)        # the probe's folder
    ephys_root : varchar(1024)          # the ephys_data_paths entry it was found under
    """

    class EphysFile(dj.Part):
        """One file the insertion was loaded from."""

        definition = """
        -> master
        ephys_file : varchar(255)       # path relative to the probe folder
        ---
        file_role : varchar(32)         # meta, sorting, labels, metrics, bitcode, ...
        file_size : int64
        file_mtime : datetime
        file_sha1 = null : char(40)     # content hash (null: a large feature file, checked by size and time)
        """


db.register("ingest_ephys", schema)
