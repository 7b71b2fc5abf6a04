"""tracking: video pose tracking (DeepLabCut) per trial and camera, and its quality."""

import datajoint as dj
import numpy as np

from . import db, ephys, experiment, lab  # noqa: F401  (referenced in the table definitions)

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


@schema
class EphysFrameTime(dj.Manual):
    """A camera's frames in a trial as the ephys system recorded its frame pulses (the foraging rigs'
    ``cameraPerTrial``, cameras named by ``chan.cameraNameInDJ``): s on the recording's clock, the
    frames' times to align video with spikes (``Tracking.frame_time`` counts from the video's start)."""

    definition = """
    -> ephys.ProbeInsertion
    -> experiment.SessionTrial
    -> TrackingDevice
    ---
    n_frames : int32
    frame_time : <blob>                # s, the recording's clock
    """


@schema
class TrackedWhisker(dj.Manual):
    """Which whisker a tracked whisker feature of a session is (DeepLabCut names such as
    ``whisker_1`` say nothing of the anatomy; entered by the experimenter)."""

    definition = """
    -> experiment.Session
    feature : varchar(24)              # the whisker feature's name in Tracking.Feature
    ---
    -> lab.Whisker
    """


@schema
class TrackingQCThreshold(dj.Lookup):
    """Largest plausible frame-to-frame movement of a tracked point, per feature (pixels)."""

    definition = """
    feature : varchar(24)
    ---
    threshold_px : float64
    """
    contents = [("jaw", 20.0), ("nose", 20.0)]


@schema
class TrackingQC(dj.Computed):
    """Frames of each trial where a checked feature (jaw, nose: :class:`TrackingQCThreshold`)
    jumps further than its threshold from the previous frame, per session and camera.

    One make per session and camera (its trials are computed together). Differences from the
    original: every rig and camera is checked with the same per-feature thresholds (the original
    only knew RRig2 side and RRig-MTL side/bottom cameras and failed on others), a jump counts in
    both directions (the original only counted positive differences), and a bad frame is the frame
    after the jump (the original stored the index of the difference, one less).
    """

    definition = """
    -> experiment.Session
    -> TrackingDevice
    ---
    n_trials : int32
    bad_percentage : float64           # percent: bad frames / frames of the checked features
    """

    class Trial(dj.Part):
        """One trial's bad frames of one checked feature."""

        definition = """
        -> master
        -> Tracking.Feature
        ---
        n_bad : int32
        bad_percentage : float64       # percent: n_bad / tracking_samples
        bad_frames : <blob>            # frame indices (0-based) that jumped
        """

    @staticmethod
    def _checked():
        """Tracking.Feature restricted to the features with a threshold (a restriction by value:
        the two ``feature`` columns have different lineages, so DataJoint 2 refuses to join them)."""
        return Tracking.Feature & [dict(feature=f) for f in TrackingQCThreshold.to_arrays("feature")]

    @property
    def key_source(self):
        return (experiment.Session * TrackingDevice).proj() & self._checked()

    def make_fetch(self, key):
        rows = (
            (self._checked() * Tracking & key)
            .proj("x", "y", "tracking_samples")
            .to_dicts(order_by=("trial", "feature"))
        )
        return rows, dict(zip(*TrackingQCThreshold.to_arrays("feature", "threshold_px")))

    def make_compute(self, key, rows, thresholds):
        from .analysis.tracking_qc import jump_frames

        out, bad_total, frames_total = [], 0, 0
        for r in rows:  # one trial's feature a row (a few hundred frames): vectorised within
            bad = jump_frames(r["x"], r["y"], thresholds[r["feature"]])
            n = int(r["tracking_samples"])
            bad_total, frames_total = bad_total + len(bad), frames_total + n
            out.append(
                dict(
                    trial=r["trial"],
                    feature=r["feature"],
                    n_bad=len(bad),
                    bad_percentage=100.0 * len(bad) / n if n else 0.0,
                    bad_frames=bad.astype(np.int32),
                )
            )
        percentage = 100.0 * bad_total / frames_total if frames_total else 0.0
        return out, len({r["trial"] for r in rows}), percentage

    def make_insert(self, key, parts, n_trials, percentage):
        self.insert1(dict(key, n_trials=n_trials, bad_percentage=percentage))
        self.Trial.insert([dict(key, **p) for p in parts])


db.register("tracking", schema)
