"""Benchmark: ingest-behavior of N generated delay-response sessions (500 trials each).

Prints, from one run on one machine: the time to only read the files with scipy's general reader
(``scipy.io.loadmat(simplify_cells=True)``, the baseline) and with the pipeline's own reader
(``pipeline.io.matfile.read_mat``), to read+parse them, the full ingest time on the configured
database into throw-away schemas, sessions per second, and the ratios. Not a test: nothing here
asserts a time.

    python benchmarks/bench_behavior.py [--sessions 40] [--trials 500]

The database is the configured one: embedded PostgreSQL by default; for a server set e.g.
``DJ_HOST=127.0.0.1 DJ_USER=root DJ_PASS= DJ_PORT=3306 DJ_BACKEND=mysql DJ_USE_TLS=false MAP_EMBEDDED=0``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--trials", type=int, default=500)
    args = ap.parse_args()

    from pipeline import db
    from pipeline.io.bpod_delay_response import read_delay_response
    from pipeline.io.matfile import read_mat
    from pipeline.synthetic.bpod_delay_response import write_session_file

    db.auto_activate = False
    with tempfile.TemporaryDirectory() as tmp:
        rig = Path(tmp) / "rig"
        t = time.perf_counter()
        files = [
            write_session_file(
                rig, h2o=f"bm{i % 8}", when=dt.datetime(2023, 1, 1 + i // 8, 10, 0, 0), n_trials=args.trials, seed=i
            ).path
            for i in range(args.sessions)
        ]
        gen = time.perf_counter() - t
        size = sum(f.stat().st_size for f in files) / 2**20
        print(f"generated {len(files)} files x {args.trials} trials ({size:.1f} MiB) in {gen:.1f} s")

        import scipy.io as sio

        t = time.perf_counter()
        for f in files:
            sio.loadmat(str(f), simplify_cells=True)
        t_scipy = time.perf_counter() - t
        t = time.perf_counter()
        for f in files:
            read_mat(f)
        t_mat = time.perf_counter() - t
        t = time.perf_counter()
        n_rows = 0
        for f in files:
            d = read_delay_response(f)
            n_rows += len(d.trials) * 2 + len(d.events) + len(d.actions) + len(d.notes) + len(d.photostim_events)
        t_read = time.perf_counter() - t

        conn = db.connect()
        prefix = f"bench{uuid.uuid4().hex[:6]}_"
        db.activate_all(prefix, conn)
        try:
            from pipeline import lab
            from pipeline.ingest.behavior import ingest_behavior

            lab.Subject.insert([dict(subject_id=900 + i, sex="M") for i in range(8)])
            lab.WaterRestriction.insert(
                [
                    dict(
                        subject_id=900 + i,
                        water_restriction_number=f"bm{i}",
                        wr_start_date="2022-12-01",
                        wr_start_weight=25,
                    )
                    for i in range(8)
                ]
            )
            t = time.perf_counter()
            summary = ingest_behavior([["BenchRig", str(rig), 0]], progress=False)
            t_ingest = time.perf_counter() - t
            assert summary.ok and len(summary.loaded) == len(files), summary.report()
            t = time.perf_counter()
            again = ingest_behavior([["BenchRig", str(rig), 0]], progress=False)
            t_rerun = time.perf_counter() - t
            assert not again.loaded
        finally:
            db.drop_prefix(prefix, conn)

    n = len(files)
    print(f"database: {db.target()}")
    print(f"rows written: {n_rows} ({n_rows / n:.0f} per session)")
    print(f"read .mat, scipy.io.loadmat:      {t_scipy:7.2f} s  {n / t_scipy:7.1f} sessions/s  (baseline)")
    print(f"read .mat, pipeline read_mat:     {t_mat:7.2f} s  {n / t_mat:7.1f} sessions/s")
    print(f"read + parse:                     {t_read:7.2f} s  {n / t_read:7.1f} sessions/s")
    print(f"full ingest-behavior:             {t_ingest:7.2f} s  {n / t_ingest:7.1f} sessions/s")
    print(f"re-run (all skipped):             {t_rerun:7.2f} s")
    print(f"ratio read_mat / scipy read:      {t_mat / t_scipy:7.2f}x")
    print(f"ratio ingest / scipy read:        {t_ingest / t_scipy:7.2f}x")
    print(f"ratio ingest / read_mat:          {t_ingest / t_mat:7.2f}x")
    print(f"ratio ingest / read+parse:        {t_ingest / t_read:7.2f}x")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MAP_DATA_DIR", tempfile.mkdtemp(prefix="mapbench_"))
    sys.exit(main())
