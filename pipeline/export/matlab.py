"""One probe of a session to the original pipeline's MATLAB export layout (scipy.io).

Per trial (rows in trial order, the probe's recorded trials): ``behavior_report`` (hit 1, miss 0,
ignore -1), ``behavior_early_report`` (1 early lick), ``behavior_is_free_water``,
``behavior_is_auto_water``, ``behavior_auto_learn`` (TrialNote autolearn, NaN if none),
``behavior_lick_times`` / ``behavior_lick_directions`` (cells: s from the go cue; 'l'/'r'),
``task_trial_type`` ('l'/'r'), ``task_stimulation`` ([stimulated, site (photostim protocol), power
(mW), onset (s from the go cue)]), ``task_sample_time``, ``task_delay_time``, ``task_cue_time``,
``trial_end_time`` ([onset; duration] in s from the trial start, NaN if absent). Per unit:
``neuron_single_units`` (cell units x trials of go-aligned spike times), ``neuron_unit_waveforms``,
``neuron_unit_info`` ([unit, quality, depth (um), x (um), cell type, region]),
``neuron_unit_quality_control`` (struct of metric arrays by name). ``probe_insertion_info``,
``tracking`` (per camera: fs, per-trial frame times and body-part x/y/likelihood) and
``histology`` ([unit, ccf_x, ccf_y, ccf_z, annotation]).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _cell(items) -> np.ndarray:
    out = np.empty((len(items), 1), dtype=object)
    for i, x in enumerate(items):
        out[i, 0] = x
    return out


def build(probe_key: dict) -> dict:
    """The MATLAB export's variables for one probe (a dict for scipy.io.savemat)."""
    from .. import ephys, experiment, histology, tracking

    ikey = {k: probe_key[k] for k in ("subject_id", "session", "insertion_number")}
    skey = {k: ikey[k] for k in ("subject_id", "session")}
    probe_trials = (ephys.Clustering.Trial & ikey).to_pandas().reset_index().set_index("trial").sort_index()
    trials = probe_trials.index.to_numpy()
    bt = (experiment.BehaviorTrial & skey).to_pandas().reset_index().set_index("trial").reindex(trials)
    ev = (experiment.TrialEvent & skey).to_pandas().reset_index()
    go_rel = ev[ev.trial_event_type == "go"].groupby("trial")["trial_event_time"].first().reindex(trials)
    notes = (experiment.TrialNote & skey & {"trial_note_type": "autolearn"}).to_pandas().reset_index()
    autolearn = (
        pd.to_numeric(notes.set_index("trial")["trial_note"], errors="coerce").reindex(trials)
        if len(notes)
        else (pd.Series(np.nan, index=trials))
    )
    out: dict = {}
    out["behavior_report"] = bt["outcome"].map({"hit": 1, "miss": 0, "ignore": -1}).to_numpy(dtype=np.float64)[:, None]
    out["behavior_early_report"] = (bt["early_lick"] == "early").to_numpy(dtype=np.float64)[:, None]
    out["behavior_is_free_water"] = bt["free_water"].astype(float).to_numpy()[:, None]
    out["behavior_is_auto_water"] = bt["auto_water"].astype(float).to_numpy()[:, None]
    out["behavior_auto_learn"] = autolearn.to_numpy(dtype=np.float64)[:, None]
    out["task_trial_type"] = np.array([str(x)[:1] for x in bt["trial_instruction"].fillna("n")], dtype="U1")[:, None]
    licks = (experiment.ActionEvent & skey).to_pandas().reset_index()
    lick_t, lick_d = [], []
    for t in trials:
        g = licks[licks.trial == t].sort_values("action_event_time")
        lick_t.append((g["action_event_time"].to_numpy(dtype=np.float64) - go_rel.get(t, np.nan))[None, :])
        lick_d.append(np.array([str(a)[:1] for a in g["action_event_type"]], dtype="U1")[None, :])
    out["behavior_lick_times"] = _cell(lick_t)
    out["behavior_lick_directions"] = _cell(lick_d)
    stim = (experiment.PhotostimEvent & skey).to_pandas().reset_index()
    stim = stim.sort_values("photostim_event_time").drop_duplicates("trial").set_index("trial")
    out["task_stimulation"] = np.column_stack(
        [
            np.isin(trials, stim.index).astype(float),
            stim["photo_stim"].reindex(trials).to_numpy(dtype=np.float64)
            if len(stim)
            else np.full(len(trials), np.nan),
            stim["power"].reindex(trials).to_numpy(dtype=np.float64) if len(stim) else np.full(len(trials), np.nan),
            (stim["photostim_event_time"].reindex(trials) - go_rel).to_numpy(dtype=np.float64)
            if len(stim)
            else np.full(len(trials), np.nan),
        ]
    )
    first = ev.sort_values("trial_event_time").groupby(["trial", "trial_event_type"]).first()
    for name, kind in (
        ("task_sample_time", "sample"),
        ("task_delay_time", "delay"),
        ("task_cue_time", "go"),
        ("trial_end_time", "trialend"),
    ):
        rows = [first.loc[(t, kind)] if (t, kind) in first.index else None for t in trials]
        out[name] = np.array(
            [
                [r["trial_event_time"] if r is not None else np.nan for r in rows],
                [r["duration"] if r is not None else np.nan for r in rows],
            ],
            dtype=np.float64,
        )
    # units
    units = (ephys.Clustering.Unit & ikey).to_dicts(order_by="unit")
    go_probe = probe_trials["go_time"].astype(float)
    cells = np.empty((len(units), len(trials)), dtype=object)
    for i, u in enumerate(units):
        t = np.asarray(u["spike_times"], dtype=np.float64)
        tr = np.asarray(u["spike_trials"])
        order = np.argsort(tr, kind="stable")
        bounds = np.searchsorted(tr[order], trials, side="left"), np.searchsorted(tr[order], trials, side="right")
        for j, trial in enumerate(trials):
            sl = order[bounds[0][j] : bounds[1][j]]
            cells[i, j] = (t[sl] - go_probe.get(trial, np.nan))[None, :]
    out["neuron_single_units"] = cells
    out["neuron_unit_waveforms"] = _cell(
        [
            np.asarray(u["waveform"], dtype=np.float64).ravel()[None, :]
            if u["waveform"] is not None
            else np.zeros((1, 0))
            for u in units
        ]
    )
    ctype = dict(zip(*(ephys.UnitCellType.Unit & ikey).to_arrays("unit", "cell_type")))
    region = (
        dict(zip(*(histology.unit_ccf() & ikey).to_arrays("unit", "acronym")))
        if len(histology.ElectrodeCCFPosition & ikey)
        else {}
    )
    info = np.empty((len(units), 6), dtype=object)
    for i, u in enumerate(units):
        info[i] = [
            float(u["unit"]),
            str(u["unit_quality"]),
            np.nan if u["unit_posy"] is None else float(u["unit_posy"]),
            np.nan if u["unit_posx"] is None else float(u["unit_posx"]),
            str(ctype.get(u["unit"], "")),
            str(region.get(u["unit"], "") or ""),
        ]
    out["neuron_unit_info"] = info
    qc = {}
    from .nwb import by_unit

    for tbl in (ephys.Clustering.ClusterMetric, ephys.Clustering.WaveformMetric):
        df = by_unit(tbl & ikey, list(tbl.heading.secondary_attributes)).reindex([u["unit"] for u in units])
        for a in tbl.heading.secondary_attributes:
            qc.setdefault(a, df[a].to_numpy(dtype=np.float64)[:, None] if a in df else np.full((len(units), 1), np.nan))
    out["neuron_unit_quality_control"] = qc
    p = (ephys.ProbeInsertion & ikey).fetch1()
    loc = (ephys.ProbeInsertion.InsertionLocation & ikey).to_dicts()
    out["probe_insertion_info"] = {
        "probe": str(p["probe"]),
        "probe_type": str(p["probe_type"]),
        "electrode_config": str(p["electrode_config_name"]),
        **(
            {
                k: (float(v) if isinstance(v, (int, float)) and v is not None else str(v))
                for k, v in loc[0].items()
                if k not in ikey
            }
            if loc
            else {}
        ),
    }
    # tracking
    trk = (tracking.Tracking.Feature * tracking.Tracking * tracking.TrackingDevice & skey).to_pandas().reset_index()
    tracks = {}
    for device, g in trk.groupby("tracking_device") if len(trk) else []:
        entry = {"fs": float(g["sampling_rate"].iloc[0])}
        by_trial = {t: gg for t, gg in g.groupby("trial")}
        entry["frame_time"] = _cell(
            [
                np.asarray(by_trial[t]["frame_time"].iloc[0], dtype=np.float64)[None, :]
                if t in by_trial
                else np.zeros((1, 0))
                for t in trials
            ]
        )
        for bp in sorted(set(g["bodypart"])):
            for c in ("x", "y", "likelihood"):
                entry[f"{bp}_{c}"] = _cell(
                    [
                        np.asarray(gg[gg.bodypart == bp][c].iloc[0], dtype=np.float64)[None, :]
                        if t in by_trial
                        and (gg := by_trial[t]) is not None
                        and (gg.bodypart == bp).any()
                        and gg[gg.bodypart == bp][c].iloc[0] is not None
                        else np.zeros((1, 0))
                        for t in trials
                    ]
                )
        tracks[device.replace(" ", "_")] = entry
    out["tracking"] = tracks
    hist = (histology.unit_ccf() & ikey).to_pandas().reset_index() if region else pd.DataFrame()
    out["histology"] = (
        np.column_stack(
            [
                hist["unit"].to_numpy(dtype=float),
                hist["ccf_x"],
                hist["ccf_y"],
                hist["ccf_z"],
                hist["acronym"].fillna("").astype(str),
            ]
        ).astype(object)
        if len(hist)
        else np.zeros((0, 5))
    )
    return out


def write(probe_key: dict, path) -> None:
    import scipy.io as sio

    sio.savemat(str(path), build(probe_key), do_compression=True, long_field_names=True)
