"""Benchmark: populate-psth for one Neuropixels-scale probe (default 20 M spikes, 400 units, 400
trials), against baselines measured in the same run. Not a test.

Prints (a) the time to merely load the probe's spike arrays (spike times and trials) from the
store, (b) populate-psth for the probe (unit statistics, cell types, drift, criteria, 17 condition
PSTHs, period and unit selectivity) and (c) the same PSTHs computed the way the original did: one
DataJoint make per unit x condition (measured on --original-units units and scaled to all units),
with the ratios (b)/(a) (goal <= 3) and (c)/(b) (goal >= 10), and (b)'s peak resident memory
above the interpreter's (goal <= 2 x the probe's largest spike array).

    python benchmarks/bench_psth.py [--spikes 20000000] [--units 400] [--trials 400]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1)) / 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spikes", type=int, default=20_000_000)
    ap.add_argument("--units", type=int, default=400)
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--original-units", type=int, default=20, help="units timed for (c), then scaled")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_psth_"))
    os.environ.setdefault("MAP_DATA_DIR", str(work / "data"))
    os.environ["MAP_CONFIG"] = str(work / "dj_local_conf.json")
    (work / "dj_local_conf.json").write_text("{}")

    import datajoint as dj
    import numpy as np
    import pandas as pd

    from pipeline import db  # first: it quiets DataJoint's import-time warning

    db.auto_activate = False
    dj.config["safemode"] = False
    conn = db.connect()
    prefix = f"bp{uuid.uuid4().hex[:6]}_"
    db.activate_all(prefix, conn)
    from pipeline import ephys, lab, psth
    from pipeline.compute import populate_psth
    from pipeline.ingest.behavior import ingest_behavior
    from pipeline.ingest.ephys.step import ProbeFolder, ProbeRecord, write_probe
    from pipeline.io.spikeglx import electrode_config, read_meta
    from pipeline.synthetic.bpod_delay_response import write_session_file
    from pipeline.synthetic.spikeglx import write_meta

    try:
        print(f"database: {db.target()}; {args.spikes:,} spikes, {args.units} units, {args.trials} trials")
        lab.Subject.insert1(dict(subject_id=1, sex="M"))
        lab.WaterRestriction.insert1(
            dict(subject_id=1, water_restriction_number="bp1", wr_start_date="2024-01-01", wr_start_weight=20)
        )
        when = dt.datetime(2024, 6, 1, 10, 0, 0)
        beh = write_session_file(work / "rig", h2o="bp1", when=when, n_trials=args.trials, seed=1)
        assert ingest_behavior([["RRig", str(work / "rig"), 0]]).ok
        bt = beh.trials.sort_values("trial")
        go_rel = beh.events[beh.events.trial_event_type == "go"].groupby("trial").trial_event_time.last()
        trials = pd.DataFrame(
            dict(
                trial=bt.trial.to_numpy(),
                trial_start=bt.start_time.to_numpy(),
                go_time=bt.start_time.to_numpy() + go_rel.reindex(bt.trial).to_numpy(),
            )
        )
        rng = np.random.default_rng(0)
        duration = float(bt.stop_time.max())
        per_unit = np.full(args.units, args.spikes // args.units)
        per_unit[: args.spikes - per_unit.sum()] += 1
        meta = read_meta(write_meta(work / "m.imec0.ap.meta", probe="np1", seed=1).path)
        cfg = electrode_config(meta.probe_type, meta.electrodes)
        units = []
        starts = trials.trial_start.to_numpy()
        wave = np.sin(np.linspace(0, 2 * np.pi, 82)).astype(np.float32) * 50
        for u, n in enumerate(per_unit):
            t = np.sort(rng.uniform(0, duration, n))
            idx = np.searchsorted(starts, t, side="right") - 1
            units.append(
                dict(
                    unit=u + 1,
                    unit_quality="good",
                    electrode=int(cfg["electrodes"][u % len(cfg["electrodes"])]),
                    unit_posx=None,
                    unit_posy=None,
                    n_spikes=int(n),
                    spike_times=t,
                    spike_trials=np.where(idx >= 0, trials.trial.to_numpy()[np.clip(idx, 0, None)], 0).astype(np.int32),
                    spike_sites=None,
                    spike_depths=None,
                    unit_amp=100.0,
                    unit_snr=None,
                    waveform=wave,
                )
            )
        key = dict(subject_id=1, session=1, insertion_number=1)
        rec = ProbeRecord(
            probe_serial="bench",
            probe_type=meta.probe_type,
            config=dict(cfg, is_used=np.ones(len(cfg["electrodes"]), dtype=bool)),
            sampling_rate=30000.0,
            clustering=dict(
                clustering_method="kilosort2",
                clustering_time=when,
                quality_control=False,
                manual_curation=False,
                sampling_rate=30000.0,
            ),
            trials=trials,
            units=units,
            metrics=[],
            labels=None,
            files=[],
            n_spikes=int(per_unit.sum()),
            method="kilosort2",
            notes=[],
        )
        write_probe(key, ProbeFolder(work, work, work, 1), rec)
        ephys.ProbeInsertion.InsertionLocation.insert1(
            dict(key, skull_reference="Bregma", ap_location=2500, ml_location=-1500, depth=1000)
        )
        largest_mb = int(per_unit.sum()) * 8 / 2**20
        del units, rec
        import gc

        gc.collect()

        # (a) merely load the spike arrays
        ephys.clear_spike_cache()
        t0 = time.perf_counter()
        ephys.probe_spikes(key)
        t_load = time.perf_counter() - t0
        ephys.clear_spike_cache()
        gc.collect()

        # (b) populate-psth (scipy's statistics modules imported first: a one-time cost of a process)
        import scipy.interpolate  # noqa: F401
        import scipy.stats  # noqa: F401

        base = _status_mb("VmRSS")
        reset_peak()
        t0 = time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            import pstats

            prof = cProfile.Profile()
            s = prof.runcall(populate_psth, key)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
        else:
            s = populate_psth(key)
        t_pop = time.perf_counter() - t0
        peak = _status_mb("VmHWM") - base
        assert s.ok, s.report()

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

        print(f"(a) load the probe's spike arrays from the store   {t_load:8.2f} s")
        print(
            f"(b) populate-psth (all tables, 17 conditions)      {t_pop:8.2f} s   (b)/(a) = {t_pop / t_load:5.2f}  (goal <= 3)"
        )
        print(
            f"(c) one make per unit x condition (original)       {t_orig:8.2f} s   (c)/(b) = {t_orig / t_pop:5.1f}  "
            f"(goal >= 10; {args.original_units} units timed, {t_orig_subset:.1f} s, scaled to {args.units})"
        )
        print(
            f"peak memory of (b) above the interpreter: {peak:7.0f} MiB = {peak / largest_mb:4.2f} x the largest spike "
            f"array ({largest_mb:.0f} MiB)  (goal <= 2)"
        )
    finally:
        db.drop_prefix(prefix, conn)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
