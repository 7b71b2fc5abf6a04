"""Benchmark: populate-psth for one Neuropixels-scale probe (default 20 M spikes, 400 units, 400
trials), against baselines measured in the same run. Not a test.

Prints (a) the time to merely load the probe's spike arrays (spike times and trials) from the
store, (b) populate-psth for the probe (unit statistics, cell types, drift, criteria, 17 condition
PSTHs, period and unit selectivity) and (c) the same PSTHs computed the way the original did: one
DataJoint make per unit x condition (measured on --original-units units and scaled to all units),
with the ratios (b)/(a) (goal <= 3) and (c)/(b) (goal >= 10), and (b)'s peak resident memory
above the interpreter's (goal <= 2 x the probe's largest spike array). (d) times the same numbers
computed from arrays already in memory, without the database: (a) + (d) is the least (b) can take,
since (b) loads the probe and computes every number. (a) and (b) are run
--repeat times and the fastest run of each counts (the machine may be shared); every run's time
is printed, and the memory is the largest of the runs.

    python benchmarks/bench_psth.py [--spikes 20000000] [--units 400] [--trials 400] [--repeat 3]

BENCH_PROFILE=cumulative (or tottime) profiles the last run of (b).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1)) / 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def compute_inputs(key: dict) -> dict:
    """What (d) computes from, fetched beforehand (not timed): the probe's arrays, trial durations,
    waveforms, each condition's trials and the period windows, as populate-psth's makes see them."""
    import numpy as np

    from pipeline import ephys, psth

    p = ephys.probe_spikes(key)
    units, waves = (ephys.Clustering.Unit & key).to_arrays("unit", "waveform", order_by="unit")
    return dict(
        p=p,
        durations=ephys.trial_durations(key),
        waves=np.stack([np.asarray(w, dtype=np.float64).ravel() for w in waves]),
        fs=float((ephys.Clustering & key).fetch1("sampling_rate")),
        trials=[psth.condition_trials(name, key) for name in psth.cond.CONDITIONS],
        windows=psth._period_windows(key, p),
        side=psth.insertion_side(key),
    )


def compute_only(inputs: dict) -> None:
    """(d): every number populate-psth stores, computed from arrays already in memory, no database:
    unit statistics, cell types, drift, the 17 conditions' PSTHs, period rates and selectivity."""
    import numpy as np

    from pipeline.analysis import psth as apsth
    from pipeline.analysis import spikes as asp

    q = inputs["p"]  # a fresh copy of the probe's record: nothing derived from it is reused
    p = asp.ProbeSpikes(q.units, q.offsets, q.times, q.trial, q.trial_start, q.go_time)
    asp.unit_stats(p, inputs["durations"])
    asp.cell_types(asp.trough_to_peak_ms(inputs["waves"], inputs["fs"]))
    asp.drift_metric(p, inputs["durations"])
    apsth.condition_psths(p, inputs["trials"])
    bounds, instr = inputs["windows"]
    rates = apsth.period_rates(p, bounds)
    other = "left" if inputs["side"] == "right" else "right"
    sel = []
    for period in rates:
        usable = np.isfinite(rates[period]).any(axis=1)
        sel.append(apsth.selectivity(rates[period], usable & (instr == inputs["side"]), usable & (instr == other)))
    apsth.unit_selectivity(
        np.stack([s.label for s in sel]), np.stack([s.ipsi_rate for s in sel]), np.stack([s.contra_rate for s in sel])
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spikes", type=int, default=20_000_000)
    ap.add_argument("--units", type=int, default=400)
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--original-units", type=int, default=20, help="units timed for (c), then scaled")
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a) and (b); the fastest counts")
    args = ap.parse_args()

    import probe_setup

    bench = probe_setup.start("bench_psth")
    import datajoint as dj
    import numpy as np

    from pipeline import db, ephys, psth
    from pipeline.compute import computed_tables, populate_psth

    conn, prefix = bench.conn, bench.prefix
    try:
        print(f"database: {db.target()}; {args.spikes:,} spikes, {args.units} units, {args.trials} trials")
        key = probe_setup.load_probe(bench, args.spikes, args.units, args.trials)
        largest_mb = bench.largest_mb
        import gc

        gc.collect()

        # (a) merely load the spike arrays; (b) populate-psth (scipy's statistics modules imported
        # first: a one-time cost of a process). The machine may be shared: each is run --repeat
        # times (the computed rows deleted in between) and the fastest run counts, as timeit does;
        # the first run of (b) also pays the process's one-time loading of the tables' headings.
        import scipy.interpolate  # noqa: F401
        import scipy.stats  # noqa: F401

        inputs = compute_inputs(key)
        loads, pops, peaks, computes = [], [], [], []
        for run in range(args.repeat):
            ephys.clear_spike_cache()
            gc.collect()
            t0 = time.perf_counter()
            ephys.probe_spikes(key)
            loads.append(time.perf_counter() - t0)
            ephys.clear_spike_cache()
            gc.collect()
            t0 = time.perf_counter()
            compute_only(inputs)
            computes.append(time.perf_counter() - t0)
            gc.collect()

            base = _status_mb("VmRSS")
            reset_peak()
            t0 = time.perf_counter()
            if os.environ.get("BENCH_PROFILE") and run == args.repeat - 1:
                import cProfile
                import pstats

                prof = cProfile.Profile()
                s = prof.runcall(populate_psth, key)
                pstats.Stats(prof).sort_stats(os.environ["BENCH_PROFILE"]).print_stats(40)
            else:
                s = populate_psth(key)
            pops.append(time.perf_counter() - t0)
            peaks.append(_status_mb("VmHWM") - base)
            assert s.ok and s.loaded, s.report()
            if run < args.repeat - 1:
                for table in reversed(computed_tables()):
                    (table & key).delete(prompt=False)
        t_load, t_pop, peak, t_comp = min(loads), min(pops), max(peaks), min(computes)
        del inputs

        # (c) the original's shape: one make per unit x condition, each fetching its unit's spikes
        schema = dj.Schema(f"{prefix}orig", connection=conn, context={"ephys": ephys, "psth": psth})

        @schema
        class OriginalUnitPsth(dj.Computed):
            definition = """
            -> ephys.Clustering.Unit
            -> psth.TrialCondition
            ---
            unit_psth : <blob>
            """

            def make(self, k):
                cond_trials = psth.condition_trials(k["trial_condition_name"], k)
                u = (ephys.Clustering.Unit & k).fetch1()
                t, tr = np.asarray(u["spike_times"]), np.asarray(u["spike_trials"])
                go = dict(zip(*(ephys.Clustering.Trial & k).to_arrays("trial", "go_time")))
                aligned = [t[tr == c] - go[c] for c in cond_trials]
                counts = np.histogram(np.concatenate(aligned) if aligned else [], bins=np.arange(-3, 3.04, 0.04))[0]
                self.insert1(dict(k, unit_psth=counts / max(1, len(cond_trials)) / 0.04))

        subset = [dict(key, unit=u) for u in range(1, args.original_units + 1)]
        t0 = time.perf_counter()
        OriginalUnitPsth.populate(subset)
        t_orig_subset = time.perf_counter() - t0
        t_orig = t_orig_subset * args.units / args.original_units
        schema.drop(prompt=False)

        runs = lambda ts: ", ".join(f"{t:.2f}" for t in ts)  # noqa: E731
        print(f"runs (s): (a) {runs(loads)}; (b) {runs(pops)}; (d) {runs(computes)}")
        print(f"(a) load the probe's spike arrays from the store   {t_load:8.2f} s")
        print(
            f"(b) populate-psth (all tables, 17 conditions)      {t_pop:8.2f} s   (b)/(a) = {t_pop / t_load:5.2f}  (goal <= 3)"
        )
        print(
            f"(c) one make per unit x condition (original)       {t_orig:8.2f} s   (c)/(b) = {t_orig / t_pop:5.1f}  "
            f"(goal >= 10; {args.original_units} units timed, {t_orig_subset:.1f} s, scaled to {args.units})"
        )
        print(
            f"(d) the same numbers from arrays in memory, no DB  {t_comp:8.2f} s   ((a)+(d))/(a) = "
            f"{(t_load + t_comp) / t_load:5.2f}  (the least (b)/(a) can be: (b) loads and computes)"
        )
        print(
            f"peak memory of (b) above the interpreter: {peak:7.0f} MiB = {peak / largest_mb:4.2f} x the largest spike "
            f"array ({largest_mb:.0f} MiB)  (goal <= 2)"
        )
    finally:
        probe_setup.stop(bench)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
