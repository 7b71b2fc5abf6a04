"""ingest_behavior: which rig files made which session (so re-runs skip them, and a changed
file is noticed instead of silently reloaded)."""

import datajoint as dj

from ... import db, experiment  # noqa: F401  (referenced in the table definitions)

schema = dj.Schema()


@schema
class BehaviorIngest(dj.Manual):
    """A session loaded by ingest-behavior from delay-response rig files."""

    definition = """
    -> experiment.Session
    ---
    ingest_time = CURRENT_TIMESTAMP : datetime
    """

    class BehaviorFile(dj.Part):
        """One rig file of the session."""

        definition = """
        -> master
        behavior_file : varchar(255)      # file name
        ---
        rig : varchar(24)                 # behavior_data_paths entry it was found under
        relative_path : varchar(1024)     # path under that rig's root folder
        file_size : int64
        file_sha1 : char(40)
        n_trials_in_file : int32
        first_trial : int32               # session trial number of the file's first trial
        """


@schema
class BehaviorBpodIngest(dj.Manual):
    """A session loaded by ingest-foraging from pybpod session folders."""

    definition = """
    -> experiment.Session
    ---
    ingest_time = CURRENT_TIMESTAMP : datetime
    """

    class BehaviorFile(dj.Part):
        """One pybpod session log of the session."""

        definition = """
        -> master
        behavior_file : varchar(255)      # session folder name
        ---
        project_path : varchar(1024)
        relative_path : varchar(1024)     # under project_path
        file_size : int64
        file_sha1 : char(40)
        """


db.register("ingest_behavior", schema)
