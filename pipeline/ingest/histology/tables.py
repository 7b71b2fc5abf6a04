"""ingest_histology: which files gave an insertion its electrode positions and track, so re-runs
skip it and a changed file is noticed instead of silently reloaded."""

import datajoint as dj

from ... import db, ephys  # noqa: F401  (referenced in the table definitions)

schema = dj.Schema()


@schema
class HistologyIngest(dj.Manual):
    """An insertion loaded by ingest-histology."""

    definition = """
    -> ephys.ProbeInsertion
    ---
    ingest_time = CURRENT_TIMESTAMP : datetime
    histology_format : varchar(16)       # 'siteInfo' (MAP track finder) or 'ibl' (IBL alignment GUI)
    """

    class HistologyFile(dj.Part):
        """One file the insertion's histology came from."""

        definition = """
        -> master
        histology_file : varchar(255)    # file name
        ---
        file_path : varchar(1024)
        file_role : varchar(32)          # site_info, landmarks, channel_locations, xyz_picks, track_points
        file_size : int64
        file_sha1 : char(40)
        """


@schema
class ArchivedHistology(dj.Manual):
    """An insertion's histology that was replaced by a re-alignment (``ingest-histology --replace``)
    or by a restored archive (``mapshell archive restore --histology``): its electrode positions,
    track points and file record are one file in the archive (see ``pipeline.ingest.archive``)."""

    definition = """
    -> ephys.ProbeInsertion
    archive_number : int32          # 1, 2, ... per insertion
    ---
    archived_at = CURRENT_TIMESTAMP : datetime
    histology_format : varchar(16)
    n_electrodes : int32
    n_track_points : int32
    reason : varchar(255)
    archive_url : varchar(1024)     # the archive (folder or fsspec URL)
    archive_file : varchar(255)     # relative to it
    file_size : int64
    file_sha1 : char(40)
    """


db.register("ingest_histology", schema)
