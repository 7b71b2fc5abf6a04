"""tracking: video pose tracking (DeepLabCut) per trial and camera."""

import datajoint as dj

from . import db, experiment  # noqa: F401  (referenced in the table definitions)

schema = dj.Schema()


@schema
class TrackingDevice(dj.Lookup):
    """One camera of a rig."""

    definition = """
    tracking_device : varchar(20)
    ---
    tracking_position : varchar(20)        # side, bottom, body
    sampling_rate : float64                # Hz
    tracking_device_description = '' : varchar(100)
    """
    contents = [
        ("Camera 0", "side", 1 / 0.0034, "Chameleon3 CM3-U3-13Y3M-CS (FLIR)"),
        ("Camera 1", "bottom", 1 / 0.0034, "Chameleon3 CM3-U3-13Y3M-CS (FLIR)"),
        ("Camera 2", "body", 100.0, "Chameleon3 CM3-U3-13Y3M-CS (FLIR)"),
        ("Camera 3", "side", 1 / 0.0034, "multi-target-licking rig"),
        ("Camera 4", "bottom", 1 / 0.0034, "multi-target-licking rig"),
        ("Camera 5", "body", 100.0, "multi-target-licking rig"),
    ]


@schema
class Tracking(dj.Manual):
    """The tracking of one trial by one camera (frame times: frame / sampling rate, s from the video start)."""

    definition = """
    -> experiment.SessionTrial
    -> TrackingDevice
    ---
    tracking_samples : int32           # frames
    frame_time : <blob>                # s
    """

    class Feature(dj.Part):
        """One tracked body part: x, y (pixels) and likelihood per frame."""

        definition = """
        -> master
        feature : varchar(24)          # nose, tongue, jaw, left_paw, right_paw, lickport, or a whisker name
        ---
        bodypart : varchar(64)         # the DeepLabCut name it came from
        x : <blob>
        y : <blob>
        likelihood = null : <blob>
        """


db.register("tracking", schema)
