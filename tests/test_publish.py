"""publish: raw files of loaded sessions copied to an archive (a folder, or S3 on a local
S3-compatible server), checked, recorded, resumable; --verify; the ``map`` store on S3."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import run_mapshell
from test_ingest_ephys import WHEN, _probe, session  # noqa: F401  (the fixture)

from pipeline import publication, tracking
from pipeline.ingest.ephys import ingest_ephys
from pipeline.ingest.tracking import ingest_tracking
from pipeline.publishing import publish, verify
from pipeline.synthetic.dlc import write_tracking_session


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture
def loaded(session, tmp_path):  # noqa: F811
    """dm5 session 1 with probe 1 (Kilosort) loaded and its SpikeGLX .bin beside the .meta, and
    tracking of trials 1-4 loaded with two videos in the tracking folder. Returns the sources."""
    root = tmp_path / "ephys"
    pdir, meta, _, _ = _probe(root, "1", session)
    rng = np.random.default_rng(11)
    (pdir / "dm5_g0_tcat.imec0.ap.bin").write_bytes(rng.integers(-500, 500, 385 * 3000, dtype=np.int16).tobytes())
    assert ingest_ephys([str(root)]).ok
    gen = write_tracking_session(
        tmp_path / "video", "dm5", WHEN.date(), trials=[1, 2, 3, 4], seed=2, trial_map={i: i for i in range(1, 5)}
    )
    tracking_paths = [["RRig", str(tmp_path / "video")]]
    assert ingest_tracking(tracking_paths).ok and tracking.Tracking & session["key"]
    for name in ("dm5_side.avi", "cam/dm5_bottom.mp4"):
        (gen.folder / name).parent.mkdir(exist_ok=True)
        (gen.folder / name).write_bytes(rng.bytes(50_000))
    sources = {
        "ephys/probe1": {p.name: p.read_bytes() for p in pdir.iterdir() if p.suffix in (".bin", ".meta")},
        "video": {"dm5_side.avi": (gen.folder / "dm5_side.avi").read_bytes(), "cam/dm5_bottom.mp4": None},
    }
    sources["video"]["cam/dm5_bottom.mp4"] = (gen.folder / "cam/dm5_bottom.mp4").read_bytes()
    return dict(key=session["key"], pdir=pdir, video=gen.folder, tracking=tracking_paths, sources=sources)


def _check_published(loaded, read):
    """Every set's rows name every source file with its size and SHA-1, and ``read(path)`` (relative
    to the archive root) gives the same bytes."""
    sets = {r["dataset"]: r for r in (publication.DataSet & loaded["key"]).to_dicts()}
    assert set(sets) == {"ephys/probe1", "video"}
    for name, files in loaded["sources"].items():
        rows = {r["source_file"]: r for r in (publication.DataSet.PhysicalFile & dict(loaded["key"], dataset=name))}
        assert set(rows) == set(files), name
        assert sets[name]["n_files"] == len(files)
        assert sets[name]["total_bytes"] == sum(len(b) for b in files.values())
        assert sets[name]["dataset_path"] == f"dm5/{WHEN:%Y-%m-%d}_s1/{name}"
        for rel, data in files.items():
            row = rows[rel]
            assert row["file_path"] == f"{sets[name]['dataset_path']}/{rel}"
            assert (row["file_size"], row["file_sha1"]) == (len(data), _sha1(data))
            assert read(row["file_path"]) == data


def test_publish_to_a_folder_reruns_changes_and_verify(loaded, tmp_path):
    archive = tmp_path / "archive"
    s = publish(url=str(archive), tracking_paths=loaded["tracking"])
    assert s.ok and len(s.loaded) == 2, s.report()
    assert sorted(s.loaded) == [
        "dm5 session 1 ephys/probe1: 2 files, 2.3 MB (2 copied)",  # .ap.bin and .ap.meta
        "dm5 session 1 video: 2 files, 0.1 MB (2 copied)",
    ]
    _check_published(loaded, lambda rel: (archive / rel).read_bytes())
    assert not list(archive.rglob("*.partial"))
    # a re-run is a no-op
    again = publish(url=str(archive), tracking_paths=loaded["tracking"])
    assert again.ok and not again.loaded and [r for _, r in again.skipped] == ["already published"] * 2
    # the archive checks out
    v = verify()
    assert v.ok and len(v.loaded) == 2, v.report()
    # a source changed after publishing is reported, not published over
    video = loaded["video"] / "dm5_side.avi"
    video.write_bytes(video.read_bytes()[:-1] + b"\x00")
    changed = publish(url=str(archive), tracking_paths=loaded["tracking"])
    assert not changed.ok and len(changed.failed) == 1
    assert "dm5_side.avi (content)" in changed.failed[0][1] and "changed since" in changed.failed[0][1]
    assert (archive / f"dm5/{WHEN:%Y-%m-%d}_s1/video/dm5_side.avi").read_bytes() == loaded["sources"]["video"][
        "dm5_side.avi"
    ]
    # damage in the archive is found by --verify, naming the file
    (archive / f"dm5/{WHEN:%Y-%m-%d}_s1/video/cam/dm5_bottom.mp4").write_bytes(b"truncated")
    (archive / f"dm5/{WHEN:%Y-%m-%d}_s1/ephys/probe1/dm5_g0_tcat.imec0.ap.meta").unlink()
    bad = verify()
    assert not bad.ok and len(bad.failed) == 2 and len(bad.loaded) == 0
    reasons = " ".join(r for _, r in bad.failed)
    assert "cam/dm5_bottom.mp4 (size or SHA-1 differs)" in reasons and "ap.meta (missing)" in reasons


@pytest.mark.embedded_only(
    "killing a publish mid-copy and resuming it tests the file copy; the rows it writes are the folder test's"
)
def test_interrupted_publish_resumes_copying_only_what_is_missing(loaded, database, tmp_path):
    archive = tmp_path / "archive"
    env = database.env(MAP_PAUSE_BEFORE_WRITE="60")
    env["MAP_CONFIG"] = str(tmp_path / "conf.json")
    (tmp_path / "conf.json").write_text(
        '{"custom": {"archive_url": "%s", "tracking_data_paths": [["RRig", "%s"]]}}'
        % (archive, loaded["video"].parents[1])
    )
    # killed after copying the first set, before writing its rows
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "publish"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    target = archive / f"dm5/{WHEN:%Y-%m-%d}_s1/ephys/probe1/dm5_g0_tcat.imec0.ap.bin"
    deadline = time.time() + 60
    while not target.exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate(timeout=30)[0].decode()
    assert target.exists() and not publication.DataSet & loaded["key"], out
    # ... and a copy cut short: the re-run copies that file again, and only it
    target.write_bytes(target.read_bytes()[:1000])
    r = run_mapshell(["publish"], env={**env, "MAP_PAUSE_BEFORE_WRITE": "0", "MAP_CLAIM_TIMEOUT": "0"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ephys/probe1: 2 files, 2.3 MB (1 copied, 1 already in the archive)" in r.stdout in r.stdout
    _check_published(loaded, lambda rel: (archive / rel).read_bytes())
    r = run_mapshell(["publish", "--verify"], env=env)
    assert r.returncode == 0 and "2 loaded" in r.stdout, r.stdout + r.stderr
    (archive / f"dm5/{WHEN:%Y-%m-%d}_s1/video/dm5_side.avi").unlink()
    r = run_mapshell(["publish", "--verify"], env=env)
    assert r.returncode == 1 and "video/dm5_side.avi (missing)" in r.stdout, r.stdout + r.stderr


# --- S3: a local S3-compatible server (moto's server mode) on 127.0.0.1 -----------------------------
@pytest.fixture(scope="module")
def s3_server():
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(
        AWS_ACCESS_KEY_ID="map-test", AWS_SECRET_ACCESS_KEY="map-test-secret", AWS_DEFAULT_REGION="us-east-1"
    )
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _s3(endpoint):
    import s3fs

    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, use_listings_cache=False)


@pytest.mark.embedded_only(
    "the S3 archive (a local S3 server); publishing's rows are tested on every backend by the folder test"
)
def test_publish_to_s3(loaded, s3_server):
    from pipeline import config

    fs = _s3(s3_server)
    bucket = f"map-archive-{os.getpid()}-{time.monotonic_ns()}"
    fs.mkdir(bucket)
    config.custom["archive_options"] = {"endpoint_url": s3_server}
    try:
        s = publish(url=f"s3://{bucket}/lab", tracking_paths=loaded["tracking"])
        assert s.ok and len(s.loaded) == 2, s.report()
        fs.invalidate_cache()
        _check_published(loaded, lambda rel: fs.cat_file(f"{bucket}/lab/{rel}"))
        assert set((publication.DataSet & loaded["key"]).to_arrays("archive_url")) == {f"s3://{bucket}/lab"}
        assert verify().ok
        fs.rm(f"{bucket}/lab/dm5/{WHEN:%Y-%m-%d}_s1/video/dm5_side.avi")
        bad = verify()
        assert not bad.ok and "video/dm5_side.avi (missing)" in bad.failed[0][1]
        again = publish(url=f"s3://{bucket}/lab", tracking_paths=loaded["tracking"])
        assert again.ok and not again.loaded
    finally:
        del config.custom["archive_options"]


@pytest.mark.embedded_only("an unreachable S3 endpoint: nothing of the database is involved beyond the folder test's")
def test_unreachable_or_unauthorised_archive_is_one_clear_failure(loaded):
    from pipeline import config

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pytest.importorskip("s3fs")
    config.custom["archive_options"] = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
    }
    try:
        s = publish(url="s3://nowhere/lab", tracking_paths=loaded["tracking"])
    finally:
        del config.custom["archive_options"]
    assert not s.ok and len(s.failed) == 2 and not publication.DataSet & loaded["key"]
    assert all(r.startswith("archive s3://nowhere/lab: ") for _, r in s.failed), s.failed


@pytest.mark.embedded_only(
    "the map store on S3 (object storage); ingest-ephys with the file store runs on every backend"
)
def test_map_store_on_s3(session, s3_server, tmp_path):  # noqa: F811
    """The ``map`` store (spike arrays) on an S3-compatible server: a probe loads and reads back."""
    import datajoint as dj

    from pipeline import ephys

    fs = _s3(s3_server)
    bucket = f"map-store-{os.getpid()}-{time.monotonic_ns()}"
    fs.mkdir(bucket)
    saved = dict(dj.config.stores)
    host = s3_server.removeprefix("http://")
    dj.config.stores = {
        **saved,
        "map": dict(
            protocol="s3",
            endpoint=host,
            bucket=bucket,
            location="map",
            access_key="map-test",
            secret_key="map-test-secret",
            secure=False,
        ),
    }
    try:
        root = tmp_path / "ephys"
        _, _, bit, sort = _probe(root, "1", session)
        assert ingest_ephys([str(root)]).ok
        fs.invalidate_cache()
        assert fs.find(f"{bucket}/map"), "no spike arrays in the bucket"
        t = sort.truth
        fs_rate = t.sample_rate
        for u in (ephys.Unit & dict(session["key"], insertion_number=1)).to_dicts():
            mask = t.spike_clusters == u["unit"]
            np.testing.assert_allclose(
                np.asarray(u["spike_times"]), (t.spike_times[mask] - bit.trial_start[0]) / fs_rate
            )
    finally:
        dj.config.stores = saved
