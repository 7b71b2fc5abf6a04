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


@schema
class ArchivedClustering(dj.Manual):
    """A sorting of an insertion that was replaced by another (``ingest-ephys --replace``) or by a
    restored archive (``mapshell archive restore``): its rows (clustering, trials, units with their
    spike arrays, metrics, labels, and the files it was loaded from) are one file in the archive."""

    definition = """
    -> ephys.ProbeInsertion
    archive_number : int32          # 1, 2, ... per insertion
    ---
    archived_at = CURRENT_TIMESTAMP : datetime
    clustering_method : varchar(16)
    clustering_time : datetime      # of the archived sorting
    n_units : int32
    n_spikes : int64
    reason : varchar(255)
    archive_url : varchar(1024)     # the archive (folder or fsspec URL)
    archive_file : varchar(255)     # relative to it
    file_size : int64
    file_sha1 : char(40)
    """


db.register("ingest_ephys", schema)
