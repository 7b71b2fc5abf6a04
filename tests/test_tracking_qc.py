"""TrackingQC: jaw and nose outliers planted by the generator are found exactly, in both
directions, on every camera; whisker body parts are kept under their own names."""

import numpy as np
import pytest
from test_ingest_tracking import DAY, _session

from pipeline import tracking
from pipeline.analysis.tracking_qc import jump_frames
from pipeline.ingest.tracking import ingest_tracking
from pipeline.synthetic.dlc import write_tracking_session


@pytest.mark.parametrize(
    "x, y, expected",
    [
        ([0, 1, 50, 2, 3], [0, 0, 0, 0, 0], [2, 3]),  # out and back: both frames
        ([0, 0, 0, 0], [10, -15, -14, -13], [1]),  # a jump down counts as much as one up
        ([0, 20, 40, 60], [0, 0, 0, 0], []),  # exactly the threshold is not a jump
        ([0, np.nan, 100, 100], [0, 0, 0, 0], []),  # NaN positions never are
        ([5.0], [5.0], []),
    ],
)
def test_jump_frames(x, y, expected):
    assert jump_frames(np.array(x, float), np.array(y, float), 20.0).tolist() == expected


def test_tracking_qc_finds_the_planted_outliers(database, tmp_path):
    key = _session(61, "qc1", 5)
    gen = write_tracking_session(
        tmp_path / "video",
        "qc1",
        DAY,
        trials=list(range(1, 6)),
        bodyparts=("nose", "jaw", "tongue", "whisker_a", "whisker_b"),
        glitches=("jaw", "nose"),
        n_glitches=4,
        seed=9,
    )
    s = ingest_tracking([["RRig", str(tmp_path / "video")]])
    assert s.ok and len(s.loaded) == 1, s.report()
    assert "whiskers: whisker_a, whisker_b" in s.loaded[0] and "kept under their own names" not in s.loaded[0]
    whisker = (tracking.Tracking.Feature & dict(key, trial=3, tracking_device="Camera 1", feature="whisker_b")).fetch1()
    truth = gen.frames[("bottom", 3)]
    np.testing.assert_allclose(
        whisker["x"],
        truth.xs("whisker_b", axis=1, level="bodyparts").xs("x", axis=1, level="coords").iloc[:, 0],
        rtol=1e-6,
    )

    tracking.TrackingQC.populate()
    assert len(tracking.TrackingQC & key) == 2  # side and bottom cameras of the session
    rows = (tracking.TrackingQC.Trial & key).to_dicts()
    assert len(rows) == 5 * 2 * 2  # trials x cameras x (jaw, nose); tongue and whiskers are not checked
    bad_total = frames_total = 0
    for r in rows:
        position = "side" if r["tracking_device"] == "Camera 0" else "bottom"
        planted = gen.glitches[(position, r["trial"], r["feature"])]
        expected = np.sort(np.concatenate([planted, planted + 1]))  # the jump out and the jump back
        assert np.asarray(r["bad_frames"]).tolist() == expected.tolist(), r
        n = len(gen.frames[(position, r["trial"])])
        assert r["n_bad"] == len(expected) and r["bad_percentage"] == pytest.approx(100 * len(expected) / n)
        bad_total, frames_total = bad_total + len(expected), frames_total + n
    both = (tracking.TrackingQC & key).to_dicts()
    assert sum(b["n_trials"] for b in both) == 10
    assert sum(b["bad_percentage"] for b in both) == pytest.approx(
        sum(
            100
            * sum(len(gen.glitches[(pos, t, f)]) * 2 for t in range(1, 6) for f in ("jaw", "nose"))
            / sum(2 * len(gen.frames[(pos, t)]) for t in range(1, 6))
            for pos in ("side", "bottom")
        )
    )
    assert bad_total > 0 and frames_total > 0
    tracking.TrackingQC.populate()  # nothing left to do
    assert len(tracking.TrackingQC.Trial & key) == 20

    # which whisker each tracked whisker is, entered by hand
    tracking.TrackedWhisker.insert1(dict(key, feature="whisker_a", whisker="C2"))
    assert (tracking.TrackedWhisker & key).fetch1("whisker") == "C2"
