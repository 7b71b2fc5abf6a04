"""Benchmark: throughput of 1, 2 and 4 ingest workers on one probe-heavy backlog, and the cost of a
claim. Not a test.

The backlog is ``--probes`` generated Kilosort probe folders (each with its SpikeGLX meta and
bitcode file, ``--spikes`` spikes in ``--units`` units), one per behaviour session of one animal.
For each worker count, on a fresh schema prefix of the same database (MariaDB at 127.0.0.1:3306 by
default, the issue's setting; ``--embedded`` for the embedded PostgreSQL), the behaviour sessions
are loaded first (not timed), then N ``mapshell ingest-ephys`` processes start at once and share
the backlog through their claims; the time is from their start to the last one's exit, checked:
every probe loaded exactly once between them, every worker exits 0.

Coordination overhead per claimed item: the claim and its release (two statements on the jobs
table, as the runner does them) timed back to back ``--claims`` times, against one item's work,
which is (one worker's time - the time of the same worker on the loaded backlog, when it only
starts, finds and skips) / probes. Goals (issue "An always-on pipeline"): 2 workers >= 1.7 x one
worker on this 2-core machine; overhead <= 5 % of an item's work.

    python benchmarks/bench_workers.py [--probes 16] [--spikes 2000000] [--units 150] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

H2O = "bw1"
FIRST_DAY = dt.datetime(2024, 3, 4, 10, 0, 0)


def _database_env(embedded: bool) -> dict[str, str]:
    if embedded:
        return dict(MAP_EMBEDDED="1")
    return dict(
        MAP_EMBEDDED="0",
        DJ_HOST="127.0.0.1",
        DJ_PORT="3306",
        DJ_USER="root",
        DJ_PASS="",
        DJ_BACKEND="mysql",
        DJ_USE_TLS="false",
    )


def generate(work: Path, n_probes: int, n_spikes: int, n_units: int) -> tuple[Path, Path]:
    """Behaviour files (one session a day) and a probe folder per session; (rig folder, ephys root)."""
    from pipeline.synthetic.bpod_delay_response import write_session_file
    from pipeline.synthetic.sorting import write_kilosort
    from pipeline.synthetic.spikeglx import write_bitcode_mat, write_meta

    rig, root = work / "rig", work / "ephys"
    for i in range(n_probes):
        when = FIRST_DAY + dt.timedelta(days=i)
        truth = write_session_file(rig, h2o=H2O, when=when, n_trials=40, seed=100 + i)
        codes = truth.notes[truth.notes.trial_note_type == "bitcode"].sort_values("trial")
        pdir = root / H2O / when.strftime("%Y%m%d") / "1"
        write_meta(pdir / f"{H2O}_g0_tcat.imec0.ap.meta", probe="np1", seed=i)
        write_bitcode_mat(pdir / f"{H2O}_g0_bitcode.mat", list(codes.trial_note), recorded=range(2, 38), seed=i)
        write_kilosort(pdir / "kilosort2", n_units=n_units, n_spikes=n_spikes, seed=i, duration_s=1800.0)
        print(f"  generated probe {i + 1}/{n_probes}", end="\r", flush=True)
    print()
    return rig, root


def fresh_backlog(rig: Path) -> str:
    """A fresh schema prefix with the animal and its behaviour sessions loaded; returns the prefix."""
    from pipeline import db, lab
    from pipeline.ingest.behavior import ingest_behavior

    prefix = f"bw{uuid.uuid4().hex[:6]}_"
    db.activate_all(prefix, db.connect())
    lab.Subject.insert1(dict(subject_id=1, sex="F"))
    lab.WaterRestriction.insert1(
        dict(subject_id=1, water_restriction_number=H2O, wr_start_date="2024-01-01", wr_start_weight=21)
    )
    assert ingest_behavior([["RRig", str(rig), 0]], progress=False).ok
    return prefix


def run_workers(n: int, env: dict, cwd: Path) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "ingest-ephys"],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(n)
    ]
    outs = [p.communicate()[0] for p in procs]
    elapsed = time.perf_counter() - t0
    for p, out in zip(procs, outs):
        if p.returncode != 0:
            raise SystemExit(f"a worker exited {p.returncode}:\n{out}")
    return elapsed, outs


def loaded_count(out: str) -> int:
    """'probes: 8 found, 3 loaded, ...' -> 3."""
    line = next(x for x in out.splitlines() if " found, " in x)
    return int(line.split(" loaded")[0].rsplit(" ", 1)[1])


def claim_cost(n: int) -> float:
    """Mean seconds of one claim plus its release on the jobs table (as the runner does them)."""
    from pipeline.ingest import work

    t0 = time.perf_counter()
    for i in range(n):
        ok, why, ckey = work.claim("bench-claims", dict(item=i), f"item {i}")
        assert ok, why
        work.release(ckey, ok=True)
    return (time.perf_counter() - t0) / n


def drop_store_folders(store: Path, prefix: str) -> None:
    for folder in store.glob(f"_schema/{prefix}*"):
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=16)
    ap.add_argument("--spikes", type=int, default=2_000_000, help="spikes per probe")
    ap.add_argument("--units", type=int, default=150)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--claims", type=int, default=200, help="claims timed for the overhead")
    ap.add_argument("--embedded", action="store_true", help="the embedded PostgreSQL instead of MariaDB")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_workers_"))
    os.environ["MAP_DATA_DIR"] = str(work / "data")
    os.environ["MAP_CONFIG"] = str(work / "dj_local_conf.json")
    (work / "dj_local_conf.json").write_text(json.dumps({"custom": {"ephys_data_paths": [str(work / "ephys")]}}))
    for k in [k for k in os.environ if k.startswith("DJ_")]:
        del os.environ[k]
    os.environ.update(_database_env(args.embedded))
    import datajoint as dj

    from pipeline import db, ephys

    db.auto_activate = False
    dj.config["safemode"] = False
    backend = "embedded PostgreSQL" if args.embedded else "MariaDB 127.0.0.1:3306"
    print(f"{args.probes} probes x {args.spikes:,} spikes, {args.units} units; {backend}; {os.cpu_count()} cores")
    rig, _ = generate(work, args.probes, args.spikes, args.units)

    results: dict[int, float] = {}
    noop = per_claim = None
    prefixes = []
    try:
        for n in args.workers:
            prefix = fresh_backlog(rig)
            prefixes.append(prefix)
            env = {**os.environ, "MAP_SCHEMA_PREFIX": prefix}
            elapsed, outs = run_workers(n, env, work)
            loaded = sum(loaded_count(o) for o in outs)
            in_db = len(ephys.ProbeInsertion())
            if loaded != args.probes or in_db != args.probes:
                raise SystemExit(f"{n} workers: {loaded} loads, {in_db} probes in the database, {args.probes} expected")
            results[n] = elapsed
            print(f"  {n} worker(s): {elapsed:.1f} s, each probe loaded once ({[loaded_count(o) for o in outs]})")
            if n == 1:
                noop, _ = run_workers(1, env, work)  # start, find, skip everything
                per_claim = claim_cost(args.claims)
    finally:
        for prefix in prefixes:
            db.drop_prefix(prefix, db.connect())
            drop_store_folders(work / "data" / "store", prefix)

    print()
    print(f"{'workers':>8} {'wall':>8} {'probes/s':>9} {'speed-up':>9}   goal")
    base = results.get(1)
    for n, t in results.items():
        speedup = base / t if base else float("nan")
        goal = ">= 1.7x" if n == 2 else ""
        print(f"{n:>8} {t:>7.1f}s {args.probes / t:>9.2f} {speedup:>8.2f}x   {goal}")
    if base and noop is not None and per_claim is not None:
        item = (base - noop) / args.probes
        print()
        print(
            f"one item's work (1 worker: ({base:.1f} s - {noop:.1f} s start/find/skip) / {args.probes}): {item:.2f} s"
        )
        print(
            f"one claim + release ({args.claims} timed): {per_claim * 1e3:.1f} ms = {per_claim / item:.2%} of an item  (goal <= 5 %)"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
