"""Benchmark: export-recording (NWB) of a session with one Neuropixels-scale probe (default 20 M
spikes, 400 units), against writing the same spike arrays with h5py directly, in one run; and
neuroconv's Kilosort-to-NWB conversion of a Kilosort folder of the same size when neuroconv is
installed (it is not a dependency: `pip install neuroconv` to include it). Not a test.

Goals: export <= 2 x the h5py write; faster than neuroconv; peak memory <= 2 x the largest
spike array.

    python benchmarks/bench_export.py [--spikes 20000000] [--units 400] [--trials 400]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1)) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spikes", type=int, default=20_000_000)
    ap.add_argument("--units", type=int, default=400)
    ap.add_argument("--trials", type=int, default=400)
    args = ap.parse_args()

    import probe_setup

    bench = probe_setup.start("bench_export")
    import h5py
    import numpy as np

    from pipeline import db, ephys
    from pipeline.export import export_recording

    try:
        print(f"database: {db.target()}; {args.spikes:,} spikes, {args.units} units, {args.trials} trials")
        key = probe_setup.load_probe(bench, args.spikes, args.units, args.trials)
        skey = {k: key[k] for k in ("subject_id", "session")}

        # (a) the same spike arrays, fetched and written with h5py (gzip, chunked), nothing else
        t0 = time.perf_counter()
        with h5py.File(bench.work / "plain.h5", "w") as f:
            for u in (ephys.Unit & key).to_dicts(order_by="unit"):
                f.create_dataset(
                    f"unit{u['unit']}",
                    data=np.asarray(u["spike_times"]),
                    compression="gzip",
                    compression_opts=4,
                    chunks=True,
                )
        t_h5 = time.perf_counter() - t0

        # (b) export-recording
        import gc

        gc.collect()
        base = _status_mb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        t0 = time.perf_counter()
        s = export_recording(skey, "nwb", bench.work / "nwb")
        t_exp = time.perf_counter() - t0
        peak = _status_mb("VmHWM") - base
        assert s.ok, s.report()

        print(f"(a) h5py write of the spike arrays        {t_h5:8.2f} s")
        print(f"(b) export-recording (NWB, whole session) {t_exp:8.2f} s   (b)/(a) = {t_exp / t_h5:4.2f}  (goal <= 2)")
        try:
            from neuroconv.datainterfaces import KiloSortSortingInterface
        except ImportError:
            print("(c) neuroconv: not installed (pip install neuroconv to compare)")
        else:
            import datetime as dt

            from pipeline.synthetic.sorting import write_kilosort

            ks = bench.work / "kilosort"  # a Kilosort folder with as many spikes and units
            write_kilosort(
                ks,
                n_units=min(args.units, 380),  # the generator places one unit per site at most
                n_spikes=args.spikes,
                duration_s=max(3600.0, args.spikes / 2000.0),
                with_pcs=False,
                with_metrics=False,
                labels="KSLabel",
                seed=5,
            )
            iface = KiloSortSortingInterface(folder_path=str(ks))
            metadata = iface.get_metadata()
            metadata["NWBFile"]["session_start_time"] = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
            t0 = time.perf_counter()
            iface.run_conversion(nwbfile_path=str(bench.work / "neuroconv.nwb"), metadata=metadata, overwrite=True)
            t_nc = time.perf_counter() - t0
            print(f"(c) neuroconv Kilosort -> NWB            {t_nc:8.2f} s   (c)/(b) = {t_nc / t_exp:4.2f}  (goal > 1)")
        print(
            f"peak memory of (b) above the interpreter: {peak:7.0f} MiB = {peak / bench.largest_mb:4.2f} x the "
            f"largest spike array ({bench.largest_mb:.0f} MiB)  (goal <= 2)"
        )
    finally:
        probe_setup.stop(bench)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
