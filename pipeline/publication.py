"""publication: the raw files of loaded sessions, copied to an archive store by ``mapshell publish``.

A :class:`DataSet` is one set of raw files of one session: ``ephys/probe<N>`` (the SpikeGLX
``.bin``/``.meta`` files of insertion N) or ``video`` (the tracking videos). Its
:class:`DataSet.PhysicalFile` rows name each file by its path relative to the archive's root, with
the size and SHA-1 it had when it was copied and checked. The rows are written only after every
file of the set was copied and read back from the archive with the same size and SHA-1, in one
transaction, so a set is either published whole or not at all (see :mod:`pipeline.publishing`).

The original recorded Globus transfers (``GlobusStorageLocation``, ``ArchivedRawEphys``,
``ArchivedTrackingVideo``); here the archive is any fsspec location (a folder, ``s3://``...).
"""

from __future__ import annotations

import datajoint as dj

from . import db, experiment  # noqa: F401  (referenced in the table definitions)

schema = dj.Schema()


@schema
class DataSet(dj.Manual):
    """One session's published raw files of one kind, complete and checked."""

    definition = """
    -> experiment.Session
    dataset : varchar(32)               # ephys/probe<N> or video
    ---
    archive_url : varchar(1024)         # the archive (fsspec URL or folder) the files were copied to
    dataset_path : varchar(255)         # the set's folder in the archive: <h2o>/<YYYY-MM-DD>_s<session>/<dataset>
    source_folder : varchar(1024)       # where the files were found
    n_files : int32
    total_bytes : int64
    published_at = CURRENT_TIMESTAMP : datetime
    """

    class PhysicalFile(dj.Part):
        """One file of the set, as it was copied and checked."""

        definition = """
        -> master
        file_path : varchar(255)        # relative to the archive's root
        ---
        source_file : varchar(255)      # relative to the set's source folder
        source_mtime : datetime(6)      # the source file's modification time when it was copied
        file_size : int64
        file_sha1 : char(40)
        """


db.register("publication", schema)
