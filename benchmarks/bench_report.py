"""Benchmark: generate-report for one probe of 400 units (after populate-psth), against drawing
and saving the same figures with matplotlib alone from arrays already in memory, in one run. Not a
test.

Prints (a) the pure rendering time of the probe's figures and every unit's figure (inputs fetched
beforehand, PNGs written to a folder), (b) generate-report for the probe on one process (goal:
<= 1.5 x (a)) and (c) the same with --processes 2.

    python benchmarks/bench_report.py [--spikes 4000000] [--units 400] [--trials 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spikes", type=int, default=4_000_000)
    ap.add_argument("--units", type=int, default=400)
    ap.add_argument("--trials", type=int, default=400)
    args = ap.parse_args()

    import probe_setup

    bench = probe_setup.start("bench_report")
    from pipeline import db, ephys, figures, report
    from pipeline.compute import populate_psth
    from pipeline.reporting import generate

    try:
        print(f"database: {db.target()}; {args.spikes:,} spikes, {args.units} units, {args.trials} trials")
        key = probe_setup.load_probe(bench, args.spikes, args.units, args.trials)
        assert populate_psth(key).ok
        n_pass = len(ephys.UnitPassingCriteria.Unit & key & "criteria_passed")

        # (a) matplotlib alone: the figures' inputs fetched first (not timed), then drawn and saved
        out = bench.work / "pure"
        out.mkdir()
        jobs = report.unit_figure_inputs(key)
        t0 = time.perf_counter()
        for unit, kw in jobs:
            (out / f"unit{unit}.png").write_bytes(figures.to_png(figures.unit_summary(**kw)))
        t_pure_units = time.perf_counter() - t0
        probe_figs = report.ProbeReport().make_compute(key, "x")[1]  # inputs fetched and drawn
        t0 = time.perf_counter()
        report.ProbeReport().make_compute(key, "x")
        t_probe_total = time.perf_counter() - t0
        t_pure = t_pure_units + t_probe_total  # probe figures: fetch+draw (their fetch is small)

        # (b) generate-report, one process
        t0 = time.perf_counter()
        s = generate(key)
        t_gen = time.perf_counter() - t0
        assert s.ok, s.report()
        n_figs = len(report.UnitReport.Figure & key) + len(report.ProbeReport.Figure & key)
        for t in (report.UnitReport, report.ProbeReport):
            report.delete_entries(t, [key])

        # (c) generate-report, two processes
        t0 = time.perf_counter()
        s = generate(key, processes=2)
        t_gen2 = time.perf_counter() - t0
        assert s.ok, s.report()

        print(f"{n_pass} units pass the criteria; {n_figs} probe and unit figures ({len(probe_figs)} probe figures)")
        print(f"(a) matplotlib alone, inputs in memory   {t_pure:8.2f} s")
        print(
            f"(b) generate-report, 1 process           {t_gen:8.2f} s   (b)/(a) = {t_gen / t_pure:4.2f}  (goal <= 1.5)"
        )
        print(f"(c) generate-report, --processes 2       {t_gen2:8.2f} s   (b)/(c) = {t_gen / t_gen2:4.2f}x faster")
    finally:
        probe_setup.stop(bench)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
