"""Benchmark: ingest-ephys of one Neuropixels-scale Kilosort probe (default 20 M spikes, 400 units,
384 channels, 400 trials), against baselines measured in the same run.

Prints: time to only read the sorting (read_kilosort), time to group spikes per unit, time of a
plain bulk write of the same bytes to the same database (one bytea/longblob row per unit through
the DB-API, no DataJoint), SpikeInterface's read_kilosort + every unit's train when importable,
and the full ingest, each with its ratio to the read time; plus peak memory. Not a test.

    python benchmarks/bench_ephys.py [--spikes 20000000] [--units 400] [--trials 400]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spikes", type=int, default=20_000_000)
    ap.add_argument("--units", type=int, default=400)
    ap.add_argument("--trials", type=int, default=400)
    args = ap.parse_args()

    import numpy as np

    from pipeline import db
    from pipeline.io.kilosort import group_by_cluster, read_kilosort
    from pipeline.synthetic.bpod_delay_response import write_session_file
    from pipeline.synthetic.sorting import write_large_kilosort
    from pipeline.synthetic.spikeglx import write_bitcode_mat, write_meta

    db.auto_activate = False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        when = dt.datetime(2023, 6, 1, 10, 0, 0)
        truth = write_session_file(tmp / "rig", h2o="bx1", when=when, n_trials=args.trials, seed=1)
        codes = list(truth.notes[truth.notes.trial_note_type == "bitcode"].sort_values("trial").trial_note)
        pdir = tmp / "ephys" / "bx1" / when.strftime("%Y%m%d") / "1"
        t = time.perf_counter()
        write_meta(pdir / "bx1_g0_tcat.imec0.ap.meta", probe="np1")
        write_bitcode_mat(pdir / "bx1_g0_bitcode.mat", codes)
        write_large_kilosort(pdir / "kilosort2", n_units=args.units, n_spikes=args.spikes)
        print(
            f"generated {args.spikes:,} spikes / {args.units} units / {args.trials} trials in "
            f"{time.perf_counter() - t:.1f} s"
        )
        base_rss = rss_mb()

        t = time.perf_counter()
        sorting = read_kilosort(pdir / "kilosort2")
        spikes = np.asarray(sorting.spike_times)
        t_read = time.perf_counter() - t
        t = time.perf_counter()
        ids, offsets, (grouped,) = group_by_cluster(np.asarray(sorting.spike_clusters), spikes.astype(np.float64))
        t_group = time.perf_counter() - t
        largest = max(spikes.nbytes, grouped.nbytes)

        conn = db.connect()
        prefix = f"bench{uuid.uuid4().hex[:6]}_"
        names = db.activate_all(prefix, conn)
        try:
            # plain DB-API bulk write of the same bytes: one row per unit
            raw = conn._conn
            cur = raw.cursor()
            table = (
                f"{names['lab']}.bench_blob" if conn.adapter.backend == "postgresql" else f"`{names['lab']}`.bench_blob"
            )
            blob = "bytea" if conn.adapter.backend == "postgresql" else "longblob"
            cur.execute(f"CREATE TABLE {table} (unit int primary key, spikes {blob})")
            t = time.perf_counter()
            rows = [(int(u), grouped[offsets[k] : offsets[k + 1]].tobytes()) for k, u in enumerate(ids)]
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", rows)
            raw.commit()
            t_bulk = time.perf_counter() - t
            del rows

            from pipeline import lab
            from pipeline.ingest.behavior import ingest_behavior
            from pipeline.ingest.ephys import ingest_ephys

            lab.Subject.insert1(dict(subject_id=777, sex="M"))
            lab.WaterRestriction.insert1(
                dict(subject_id=777, water_restriction_number="bx1", wr_start_date="2023-01-01", wr_start_weight=25)
            )
            assert ingest_behavior([["BenchRig", str(tmp / "rig"), 0]], progress=False).ok
            t = time.perf_counter()
            summary = ingest_ephys([str(tmp / "ephys")], progress=False)
            t_ingest = time.perf_counter() - t
            assert summary.ok and summary.loaded, summary.report()
            peak = rss_mb()
        finally:
            db.drop_prefix(prefix, conn)

        t_si = None
        try:
            import spikeinterface.extractors as se

            t = time.perf_counter()
            rec = se.read_kilosort(str(pdir / "kilosort2"))
            for u in rec.get_unit_ids():
                rec.get_unit_spike_train(u)
            t_si = time.perf_counter() - t
        except ImportError:
            pass

    print(f"database: {db.target()}")
    print(f"read sorting (read_kilosort):    {t_read:7.2f} s   1.00x")
    print(f"group per unit:                  {t_group:7.2f} s   {t_group / t_read:5.2f}x")
    print(f"plain DB-API bulk write:         {t_bulk:7.2f} s   {t_bulk / t_read:5.2f}x")
    if t_si is not None:
        print(f"SpikeInterface all unit trains:  {t_si:7.2f} s   {t_si / t_read:5.2f}x")
    else:
        print("SpikeInterface: not installed (pip install spikeinterface to compare)")
    print(f"full ingest-ephys:               {t_ingest:7.2f} s   {t_ingest / t_read:5.2f}x")
    print(f"ingest / (read + bulk write):    {t_ingest / (t_read + t_bulk):7.2f}x")
    print(f"peak RSS {peak:.0f} MB (before reading {base_rss:.0f} MB); largest array {largest / 2**20:.0f} MB")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MAP_DATA_DIR", tempfile.mkdtemp(prefix="mapbench_"))
    sys.exit(main())
