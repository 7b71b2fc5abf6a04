"""Benchmark: ingest-ephys of one Neuropixels-scale Kilosort probe (default 20 M spikes, 400 units,
384 channels, 400 trials), against baselines measured in the same run.

Prints: time to only read the sorting (read_kilosort), time to group spikes per unit, time of a
plain bulk write of the same bytes to the same database (one bytea/longblob row per unit through
the DB-API, no DataJoint), SpikeInterface's read_kilosort + every unit's train when importable,
and the full ingest, each with its ratio to the read time. Memory: the ingest's peak resident set
(VmHWM, reset just before it) above the resident set just before it (the interpreter with its
imports and database connection, the baselines' arrays freed and the C heap trimmed), overall and
for its build (read + align + group) and write (DataJoint inserts, the built record held) parts,
each also as a ratio to the largest per-spike array (the int64 spike times); and the per-spike
arrays the built record holds (grouped by unit: the write makes each unit's spike times in s and
trials from them while it inserts that unit), a floor for the peak. Not a test.

    python benchmarks/bench_ephys.py [--spikes 20000000] [--units 400] [--trials 400]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import re
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path


def rss_mb() -> float:
    """Peak resident set of this process so far (since the last reset_peak), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1)) / 1024


def current_mb() -> float:
    """Resident set now, MiB."""
    return _status_mb("VmRSS")


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def trim() -> None:
    """Hand the C heap's free memory back to the system (glibc), so that the baseline is what is in use."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_mb() -> float:
    """Peak resident set since the last reset_peak(), MiB."""
    try:
        return _status_mb("VmHWM")
    except (OSError, AttributeError):
        return rss_mb()


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
        write_large_kilosort(pdir / "kilosort2", n_units=args.units, n_spikes=args.spikes)
        last = int(np.load(pdir / "kilosort2" / "spike_times.npy", mmap_mode="r")[-1]) if args.spikes else 0
        # the recording must hold every spike (check_geometry): 1 s past the last one
        write_meta(pdir / "bx1_g0_tcat.imec0.ap.meta", probe="np1", duration_s=last / 30000.0 + 1.0)
        write_bitcode_mat(pdir / "bx1_g0_bitcode.mat", codes)
        print(
            f"generated {args.spikes:,} spikes / {args.units} units / {args.trials} trials in "
            f"{time.perf_counter() - t:.1f} s"
        )
        before_read = rss_mb()

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
            cur.close()
            del rows, sorting, spikes, grouped, cur

            from pipeline import lab
            from pipeline.ingest.behavior import ingest_behavior
            from pipeline.ingest.ephys import ingest_ephys

            lab.Subject.insert1(dict(subject_id=777, sex="M"))
            lab.WaterRestriction.insert1(
                dict(subject_id=777, water_restriction_number="bx1", wr_start_date="2023-01-01", wr_start_weight=25)
            )
            from pipeline.ingest.ephys import step as ephys_step

            assert ingest_behavior([["BenchRig", str(tmp / "rig"), 0]], progress=False).ok
            # memory of the ingest alone: peak above the resident set just before it, per part
            phase: dict[str, float] = {}
            step_cls = ephys_step.EphysStep
            build0, write0 = step_cls.build, step_cls.write

            def build(self, item, inputs):
                reset_peak()
                t = time.perf_counter()
                out = build0(self, item, inputs)
                phase["t_build"] = time.perf_counter() - t
                phase["build"], phase["record"] = peak_mb(), current_mb()
                held = getattr(out.units, "nbytes", None)  # UnitRows: makes a unit's arrays when asked for
                if held is None:
                    held = sum(v.nbytes for u in out.units for v in u.values() if isinstance(v, np.ndarray))
                phase["arrays"] = held / 2**20
                reset_peak()
                return out

            def write(self, item, record, inputs):
                t = time.perf_counter()
                out = write0(self, item, record, inputs)
                phase["t_write"] = time.perf_counter() - t
                phase["write"] = peak_mb()
                return out

            step_cls.build, step_cls.write = build, write
            gc.collect()
            trim()
            base, process_peak = current_mb(), rss_mb()
            exact = reset_peak()
            try:
                t = time.perf_counter()
                summary = ingest_ephys([str(tmp / "ephys")], progress=False)
                t_ingest = time.perf_counter() - t
            finally:
                step_cls.build, step_cls.write = build0, write0
            peak = max(peak_mb(), phase.get("build", 0.0))
            process_peak = max(process_peak, rss_mb(), peak)
            assert summary.ok and summary.loaded, summary.report()
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
    big = largest / 2**20

    def mem(label: str, mb: float, above: float | None = base) -> str:
        mb = mb - (above or 0.0)
        return f"{label:<33}{mb:7.0f} MB  {mb / big:5.2f}x largest array"

    print(f"largest array (spike times):     {big:7.0f} MB; resident before the ingest {base:.0f} MB")
    print(mem("ingest peak RSS above that:", peak))
    if "build" in phase:
        print(mem(f"  build ({phase['t_build']:.2f} s), peak:", phase["build"]))
        print(mem("  the built record, resident:", phase["record"]))
        print(mem("    its per-spike arrays:", phase["arrays"], None))
        print(mem(f"  write ({phase['t_write']:.2f} s), peak:", phase["write"]))
        print(mem("    above the record (inserts):", phase["write"] - phase["record"], None))
    if not exact:
        print("  (peak-RSS reset unsupported here: peaks include the baselines above)")
    print(f"process peak RSS {process_peak:.0f} MB (before reading {before_read:.0f} MB)")
    return 0


if __name__ == "__main__":
    if "MAP_DATA_DIR" not in os.environ:  # a throw-away data dir (embedded database, store), removed at exit
        import atexit
        import shutil

        os.environ["MAP_DATA_DIR"] = tempfile.mkdtemp(prefix="mapbench_")
        # registered before the embedded server's own exit hook, so it runs after it (atexit is LIFO)
        atexit.register(shutil.rmtree, os.environ["MAP_DATA_DIR"], ignore_errors=True)
    sys.exit(main())
