"""Benchmark: per-unit spike trains from a Kilosort folder (group_by_cluster vs alternatives).

Prints, from one run on one machine, each as seconds and as a ratio to the time of np.load-ing
spike_times.npy + spike_clusters.npy (the baseline: the least any reader must do):

* group_by_cluster (pipeline.io.kilosort) of the spike times;
* a naive stable argsort + np.split (keeps time order within a unit), and the same with numpy's
  default (unstable) argsort;
* read_kilosort of the whole folder (everything the ingest gets, incl. labels and templates), and
  read_kilosort(by_cluster=True) of the spike times (grouped while streaming the files);
* spikeinterface.extractors.read_kilosort + get_unit_spike_train for every unit, if spikeinterface
  is importable (it is not a project dependency: ``pip install spikeinterface`` to include it).

Files are read warm (just written, or read once before timing); each step is the best of --repeat runs
(1 for the per-unit masks, 2 for spikeinterface), with its peak resident memory above the memory in use
before it (Linux), as a ratio to the int64 spike times. Not a test: nothing here asserts a time.

    python benchmarks/bench_grouping.py [--spikes 20000000] [--units 400] [--path FOLDER] [--keep DIR]
"""

from __future__ import annotations

import argparse
import gc
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _status_mb(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1)) / 1024
    except (OSError, AttributeError):
        return float("nan")


def _reset_peak() -> None:
    """Drop freed heap memory and reset the kernel's peak-RSS mark to the current RSS (Linux)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except (OSError, AttributeError):
        pass


PEAKS: dict[str, float] = {}  # step -> peak RSS above the RSS before it, MB (the last run's)


def _best(f, repeat: int, name: str = ""):
    best, out = float("inf"), None
    for _ in range(repeat):
        out = None
        _reset_peak()
        before = _status_mb("VmRSS")
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
        PEAKS[name] = _status_mb("VmHWM") - before
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spikes", type=int, default=20_000_000)
    ap.add_argument("--units", type=int, default=400)
    ap.add_argument("--path", type=Path, help="an existing Kilosort folder instead of a generated one")
    ap.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the fast steps")
    args = ap.parse_args()

    from pipeline.io.kilosort import group_by_cluster, read_kilosort
    from pipeline.synthetic.sorting import write_large_kilosort

    tmp = None
    if args.path:
        folder = args.path
    else:
        folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_grouping_")) / "ks"
        tmp = None if args.keep else folder.parent
        t0 = time.perf_counter()
        write_large_kilosort(folder, n_units=args.units, n_spikes=args.spikes)
        print(f"generated {args.spikes:,} spikes x {args.units} units in {time.perf_counter() - t0:.1f} s: {folder}")
    try:

        def load():
            return (
                np.load(folder / "spike_times.npy").ravel().astype(np.int64),
                np.load(folder / "spike_clusters.npy").ravel(),
            )

        load()  # warm the page cache
        t_load, (times, clusters) = _best(load, args.repeat, "load")
        n = times.size
        print(f"{n:,} spikes, {np.unique(clusters).size} clusters")
        rows = [("np.load spike_times + spike_clusters (baseline)", t_load, "load")]

        t, (ids, offsets, _) = _best(lambda: group_by_cluster(clusters, times), args.repeat, "group")
        rows.append(("group_by_cluster", t, "group"))

        def naive(kind):
            def run():
                order = np.argsort(clusters, kind=kind)
                return np.split(times[order], np.flatnonzero(np.diff(clusters[order])) + 1)

            return run

        t, trains = _best(naive("stable"), args.repeat, "stable")
        rows.append(("naive argsort(stable) + split", t, "stable"))
        assert len(trains) == ids.size and all(trains[i].size == offsets[i + 1] - offsets[i] for i in range(ids.size))
        del trains
        t, _ = _best(naive("quicksort"), args.repeat, "quick")
        rows.append(("naive argsort(quicksort, not time-ordered) + split", t, "quick"))
        t, _ = _best(lambda: [times[clusters == c] for c in ids], 1, "masks")
        rows.append((f"boolean mask per unit ({ids.size} passes)", t, "masks"))
        t, res = _best(lambda: read_kilosort(folder), args.repeat, "read")
        rows.append(("read_kilosort (whole folder)", t, "read"))
        del res
        t, res = _best(lambda: read_kilosort(folder, by_cluster=True, spike_fields=("spike_times",)), args.repeat, "by")
        rows.append(("read_kilosort(by_cluster=True) spike trains", t, "by"))
        assert np.array_equal(res.cluster_offsets, offsets)
        del res

        try:
            import spikeinterface
            import spikeinterface.extractors as se
        except ImportError:
            rows.append(("spikeinterface: not importable, skipped", float("nan"), ""))
        else:

            def si():
                sorting = se.read_kilosort(folder)
                return {u: sorting.get_unit_spike_train(u) for u in sorting.unit_ids}

            t, trains = _best(si, min(2, args.repeat), "si")
            rows.append((f"spikeinterface {spikeinterface.__version__} read_kilosort + every unit's train", t, "si"))
            assert sum(v.size for v in trains.values()) == n
            del trains

        width = max(len(r[0]) for r in rows)
        big = times.nbytes / 2**20
        print(f"{'step':<{width}}  {'seconds':>8}  {'x np.load':>9}  {'peak MB':>8}  {'x times':>7}")
        for name, t, key in rows:
            peak = PEAKS.get(key, float("nan"))
            print(f"{name:<{width}}  {t:8.3f}  {t / t_load:9.2f}  {peak:8.0f}  {peak / big:7.2f}")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
