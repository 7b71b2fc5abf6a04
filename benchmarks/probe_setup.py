"""Shared by the benchmarks that start from a loaded Neuropixels-scale probe (bench_psth.py,
bench_report.py): a fresh schema prefix on the configured (default: embedded) database, a
generated delay-response session, and a probe of Poisson units written through the ingest's own
write step (faster than generating and reading a Kilosort folder of the same size)."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KEY = dict(subject_id=1, session=1, insertion_number=1)


@dataclass
class Bench:
    work: Path
    prefix: str
    conn: object
    largest_mb: float


def start(name: str) -> Bench:
    """Isolated settings and data folder, and every schema module bound to a fresh prefix."""
    work = Path(tempfile.mkdtemp(prefix=f"{name}_"))
    os.environ.setdefault("MAP_DATA_DIR", str(work / "data"))
    os.environ["MAP_CONFIG"] = str(work / "dj_local_conf.json")
    (work / "dj_local_conf.json").write_text("{}")
    import datajoint as dj

    from pipeline import db  # first: it quiets DataJoint's import-time warning

    db.auto_activate = False
    dj.config["safemode"] = False
    conn = db.connect()
    prefix = f"b{uuid.uuid4().hex[:6]}_"
    db.activate_all(prefix, conn)
    return Bench(work, prefix, conn, 0.0)


def load_probe(bench: Bench, n_spikes: int, n_units: int, n_trials: int, seed: int = 0) -> dict:
    """A behaviour session and a probe of ``n_units`` Poisson units with ``n_spikes`` spikes in all
    (each with a mean waveform), its insertion location in the left ALM; returns the probe's key."""
    import numpy as np
    import pandas as pd

    from pipeline import ephys, lab
    from pipeline.ingest.behavior import ingest_behavior
    from pipeline.ingest.ephys.step import ProbeFolder, ProbeRecord, write_probe
    from pipeline.io.spikeglx import electrode_config, read_meta
    from pipeline.synthetic.bpod_delay_response import write_session_file
    from pipeline.synthetic.spikeglx import write_meta

    work = bench.work
    lab.Subject.insert1(dict(subject_id=1, sex="M"))
    lab.WaterRestriction.insert1(
        dict(subject_id=1, water_restriction_number="bp1", wr_start_date="2024-01-01", wr_start_weight=20)
    )
    when = dt.datetime(2024, 6, 1, 10, 0, 0)
    beh = write_session_file(work / "rig", h2o="bp1", when=when, n_trials=n_trials, seed=1)
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
    rng = np.random.default_rng(seed)
    duration = float(bt.stop_time.max())
    per_unit = np.full(n_units, n_spikes // n_units)
    per_unit[: n_spikes - per_unit.sum()] += 1
    meta = read_meta(write_meta(work / "m.imec0.ap.meta", probe="np1", seed=1).path)
    cfg = electrode_config(meta.probe_type, meta.electrodes)
    starts = trials.trial_start.to_numpy()
    t_ms = np.arange(82) / 30.0
    units = []
    for u, n in enumerate(per_unit):
        t = np.sort(rng.uniform(0, duration, n))
        idx = np.searchsorted(starts, t, side="right") - 1
        width = 0.1 + 0.25 * (u % 2)
        wave = -80 * np.exp(-0.5 * ((t_ms - 1) / 0.08) ** 2) + 30 * np.exp(-0.5 * ((t_ms - 1 - 2 * width) / width) ** 2)
        units.append(
            dict(
                unit=u + 1,
                unit_quality="good",
                electrode=int(cfg["electrodes"][u % len(cfg["electrodes"])]),
                unit_posx=float(cfg["electrodes"][u % len(cfg["electrodes"])] % 4 * 16),
                unit_posy=float(u * 3840 / n_units),
                n_spikes=int(n),
                spike_times=t,
                spike_trials=np.where(idx >= 0, trials.trial.to_numpy()[np.clip(idx, 0, None)], 0).astype(np.int32),
                spike_sites=None,
                spike_depths=None,
                unit_amp=150.0,
                unit_snr=5.0,
                waveform=wave.astype(np.float32),
            )
        )
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
    write_probe(KEY, ProbeFolder(work, work, work, 1), rec)
    ephys.ProbeInsertion.InsertionLocation.insert1(
        dict(KEY, skull_reference="Bregma", ap_location=2500, ml_location=-1500, depth=1000)
    )
    bench.largest_mb = int(per_unit.sum()) * 8 / 2**20
    return dict(KEY)


def stop(bench: Bench) -> None:
    from pipeline import db

    db.drop_prefix(bench.prefix, bench.conn)
