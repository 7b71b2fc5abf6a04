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


db.register("ingest_histology", schema)
