"""One session to NWB (pynwb), from the database.

Times are seconds on the *session clock*: 0 is the start of the session's first trial
(``experiment.SessionTrial.start_time``), and ``session_start_time`` is the session's start as
the rig recorded it (UTC). Spike times come from the stored per-unit arrays (probe clock, 0 = the
probe's first trial) moved to the session clock trial by trial: a spike at probe time t in trial k
is at ``SessionTrial.start_time[k] + (t - Clustering.Trial.trial_start[k])``, so clock drift between
the probe and the rig never accumulates over a session.

Large arrays (spike times, waveforms, pose) are written chunked and gzip-compressed.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import pandas as pd

SPECIES = "Mus musculus"
INSTITUTION = "Janelia Research Campus"
LAB = "MAP (Mesoscale Activity Map project)"
SEX = {"M": "M", "F": "F", "Unknown": "U"}


def _utc(value) -> dt.datetime:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _io(data, **kw):
    from hdmf.backends.hdf5.h5_utils import H5DataIO

    return H5DataIO(np.asarray(data), compression="gzip", compression_opts=4, chunks=True, **kw)


def _f(value) -> float:
    """A database value as float (NULL -> NaN)."""
    return np.nan if value is None else float(value)


def _padded(waveform, n: int) -> np.ndarray:
    """A mean waveform as float32 of length n (NaN-padded; all NaN when the unit has none)."""
    out = np.full(n, np.nan, dtype=np.float32)
    if waveform is not None:
        w = np.asarray(waveform, dtype=np.float32).ravel()[:n]
        out[: len(w)] = w
    return out


def by_unit(query, attrs: list[str]) -> pd.DataFrame:
    """``attrs`` of a per-unit query as a frame indexed by unit (empty frame, same columns, if no rows)."""
    values = query.to_arrays("unit", *attrs) if attrs else (query.to_arrays("unit"),)
    if not attrs:
        return pd.DataFrame(index=pd.Index(np.asarray(values[0]), name="unit"))
    return pd.DataFrame({a: v for a, v in zip(attrs, values[1:])}, index=pd.Index(np.asarray(values[0]), name="unit"))


def session_clock(key: dict, trials: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(probe trial starts, session trial starts) of a clustering's trials, in trial order."""
    from .. import ephys

    probe = (ephys.Clustering.Trial & key).to_pandas().reset_index().set_index("trial").sort_index()
    session = trials.set_index("trial")["start_time"].reindex(probe.index).to_numpy(dtype=np.float64)
    return probe["trial_start"].to_numpy(dtype=np.float64), session


def to_session_time(t: np.ndarray, probe_start: np.ndarray, session_start: np.ndarray) -> np.ndarray:
    k = np.clip(np.searchsorted(probe_start, t, side="right") - 1, 0, len(probe_start) - 1)
    return session_start[k] + (t - probe_start[k])


def time_offset(skey: dict, trials: pd.DataFrame) -> float:
    """Seconds by which NWB time 0 precedes the first trial's start: enough (whole seconds) that no
    spike recorded before the first trial has a negative time; 0 without ephys."""
    from .. import ephys

    earliest = 0.0
    for ikey in (ephys.Clustering & skey).keys():
        probe_start, session_start = session_clock(ikey, trials)
        if not len(probe_start):
            continue
        first = (ephys.Clustering.Unit & ikey).to_arrays("spike_times")
        lows = [float(np.asarray(t)[0]) for t in first if len(np.asarray(t))]
        if lows:
            earliest = min(earliest, float(to_session_time(np.array([min(lows)]), probe_start, session_start)[0]))
    return float(np.ceil(-earliest)) if earliest < 0 else 0.0


def build(session_key: dict):
    """The NWBFile of one session (nothing written yet)."""
    from pynwb import NWBFile
    from pynwb.behavior import Position, SpatialSeries
    from pynwb.file import Subject
    from pynwb.ogen import OptogeneticSeries

    from .. import ephys, experiment, histology, lab, psth, tracking

    skey = {k: session_key[k] for k in ("subject_id", "session")}
    sess = (experiment.Session * lab.WaterRestriction & skey).fetch1()
    subj = (lab.Subject & skey).fetch1()
    person = (lab.Person & {"username": sess["username"]}).to_dicts()
    trials = (experiment.SessionTrial * experiment.BehaviorTrial & skey).to_pandas().reset_index().sort_values("trial")
    strains = list((lab.Subject.Strain & skey).to_arrays("animal_strain"))
    genes = list((lab.Subject.GeneModification & skey).to_arrays("gene_modification"))
    tasks = sorted(set(trials["task"]))
    offset = time_offset(skey, trials)
    trials = trials.assign(start_time=trials["start_time"] + offset, stop_time=trials["stop_time"] + offset)
    nwb = NWBFile(
        session_description=f"{', '.join(tasks) or 'behaviour'} session {sess['session']} of {sess['water_restriction_number']}"
        f" on rig {sess['rig']}",
        identifier=str(uuid.uuid5(uuid.NAMESPACE_URL, f"map-pipeline/{skey['subject_id']}/{skey['session']}")),
        session_start_time=_utc(sess["session_datetime"]) - dt.timedelta(seconds=offset),
        session_id=f"{sess['water_restriction_number']}_{sess['session_datetime']:%Y%m%d_%H%M%S}_s{sess['session']}",
        experimenter=[person[0]["fullname"] if person else sess["username"]],
        lab=LAB,
        institution=INSTITUTION,
        keywords=["MAP", "delay response" if "audio delay" in tasks else "foraging", "Neuropixels", "mouse"],
        timestamps_reference_time=_utc(sess["session_datetime"]) - dt.timedelta(seconds=offset),
        experiment_description="Mesoscale Activity Map project: Neuropixels recordings during "
        + ("a delayed-response task" if "audio delay" in tasks else "dynamic foraging"),
        notes=f"times are seconds from {offset:g} s before the session's first trial start",
    )
    nwb.subject = Subject(
        subject_id=str(skey["subject_id"]),
        description=f"water restriction id {sess['water_restriction_number']}",
        sex=SEX.get(subj["sex"], "U"),
        species=SPECIES,
        date_of_birth=_utc(subj["date_of_birth"]) if subj.get("date_of_birth") else None,
        age=None if subj.get("date_of_birth") else "P60D/",
        strain="; ".join(strains) or None,
        genotype="; ".join(genes) or "wild type",
    )

    # --- trials ------------------------------------------------------------------------------
    ev = (experiment.TrialEvent & skey).to_pandas().reset_index()
    first = ev.sort_values("trial_event_time").groupby(["trial", "trial_event_type"]).first()["trial_event_time"]
    stim_trials = set((experiment.PhotostimTrial & skey).to_arrays("trial"))
    columns = {
        "trial_instruction": "instructed side (left/right; none for foraging)",
        "outcome": "hit, miss or ignore",
        "early_lick": "early or no early",
        "auto_water": "water given automatically",
        "free_water": "water given outside the task",
        "photostim": "photostimulated trial",
        "task": "task",
        "task_protocol": "task protocol number",
    }
    event_cols = [e for e in ("presample", "sample", "delay", "go", "trialend") if e in set(ev["trial_event_type"])]
    for name, desc in columns.items():
        nwb.add_trial_column(name=name, description=desc)
    for e in event_cols:
        nwb.add_trial_column(name=f"{e}_time", description=f"{e} event onset (s, session clock; NaN: none)")
    for r in trials.itertuples(index=False):
        row = dict(
            start_time=float(r.start_time),
            stop_time=float(r.stop_time),
            trial_instruction=str(r.trial_instruction),
            outcome=str(r.outcome),
            early_lick=str(r.early_lick),
            auto_water=bool(r.auto_water),
            free_water=bool(r.free_water),
            photostim=int(r.trial) in stim_trials,
            task=str(r.task),
            task_protocol=int(r.task_protocol),
        )
        for e in event_cols:
            t = first.get((r.trial, e), np.nan)
            row[f"{e}_time"] = float(r.start_time + t) if np.isfinite(t) else np.nan
        nwb.add_trial(**row)
    start_of = dict(zip(trials["trial"], trials["start_time"]))

    # --- licks and other actions, photostimulation -------------------------------------------
    actions = (experiment.ActionEvent & skey).to_pandas().reset_index()
    if len(actions):
        t = actions["trial"].map(start_of).to_numpy(dtype=np.float64) + actions["action_event_time"].to_numpy()
        order = np.argsort(t, kind="stable")
        licks = nwb.create_events_table(
            name="licks",
            description="the animal's licks (and other actions), from the rig's lick-port events",
            source_description="Bpod port-in events",
        )
        licks.add_column(name="action", description="left lick, right lick or middle lick")
        kinds = actions["action_event_type"].astype(str).to_numpy()
        for k in order:
            licks.add_row(timestamp=float(t[k]), duration=np.nan, action=kinds[k])
    pe = (experiment.PhotostimEvent * experiment.Photostim & skey).to_pandas().reset_index()
    if len(pe):
        device = nwb.create_device(name="photostim laser", description=str(pe["photostim_device"].iloc[0]))
        for ps, g in pe.groupby("photo_stim"):
            locs = (experiment.Photostim.PhotostimLocation & skey & {"photo_stim": ps}).to_dicts()
            site = nwb.create_ogen_site(
                name=f"photostim_{ps}",
                device=device,
                description=json.dumps([{k: str(v) for k, v in loc.items() if k not in skey} for loc in locs]),
                excitation_lambda=473.0,
                location=", ".join(sorted({str(loc["brain_area"]) for loc in locs})) or "unknown",
            )
            on = g["trial"].map(start_of).to_numpy(dtype=np.float64) + g["photostim_event_time"].to_numpy(
                dtype=np.float64
            )
            off = on + g["duration"].astype(float).to_numpy()
            order = np.argsort(np.r_[on, off], kind="stable")
            nwb.add_stimulus(
                OptogeneticSeries(
                    name=f"photostim_{ps}_power",
                    data=np.r_[g["power"].to_numpy(dtype=np.float64), np.zeros(len(g))][order] / 1000.0,
                    site=site,
                    timestamps=np.r_[on, off][order],
                    description="laser power (W) at each onset and 0 at each offset",
                )
            )

    # --- tracking ----------------------------------------------------------------------------
    feats = (tracking.Tracking.Feature * tracking.Tracking & skey).to_pandas().reset_index()
    if len(feats):
        behavior = nwb.create_processing_module("behavior", "pose tracking (DeepLabCut)")
        pos = Position(name="pose")
        for (device, bodypart), g in feats.groupby(["tracking_device", "bodypart"]):
            g = g.sort_values("trial")
            t = np.concatenate(
                [start_of[tr] + np.asarray(ft, dtype=np.float64) for tr, ft in zip(g["trial"], g["frame_time"])]
            )
            xy = np.column_stack([np.concatenate([np.asarray(v, dtype=np.float64) for v in g[c]]) for c in ("x", "y")])
            pos.add_spatial_series(
                SpatialSeries(
                    name=f"{device.replace(' ', '_')}_{bodypart}",
                    data=_io(xy),
                    timestamps=_io(t),
                    reference_frame=f"pixels of {device}'s video (origin top left)",
                    unit="pixels",
                    description=f"DeepLabCut {bodypart} in {device}",
                )
            )
        behavior.add(pos)

    # --- probes: devices, electrodes, units --------------------------------------------------
    probes = (ephys.ProbeInsertion * ephys.Clustering & skey).to_dicts()
    if probes:
        from pynwb.misc import Units

        nwb.units = Units(
            name="units",
            description="sorted units of every probe (ephys.Clustering.Unit), spike times on the session clock",
            resolution=1.0 / float(probes[0]["sampling_rate"]),
            waveform_rate=float(probes[0]["sampling_rate"]),
            waveform_unit="microvolts",
        )
        for name, desc in (
            ("shank", "shank of the probe"),
            ("electrode", "electrode number on the probe (1-based)"),
            ("used", "recorded (not a reference site)"),
            ("ccf_x", "CCF ML (um); NaN without histology"),
            ("ccf_y", "CCF DV (um)"),
            ("ccf_z", "CCF AP (um)"),
        ):
            nwb.add_electrode_column(name=name, description=desc)
        for name, desc in (
            ("unit_id_in_sorting", "cluster id in the sorter's output"),
            ("quality", "good, ok, multi or all"),
            ("amplitude", "uV"),
            ("snr", "signal-to-noise ratio"),
            ("cell_type", "FS, Pyr or not classified (ephys.UnitCellType)"),
            ("avg_firing_rate", "Hz (ephys.UnitStat)"),
            ("isi_violation", "ephys.UnitStat"),
            ("selectivity", "psth.UnitSelectivity (empty: not computed)"),
            ("insertion_number", "probe of the unit"),
        ):
            nwb.add_unit_column(name=name, description=desc)
        metric_cols: list[str] = []
        for tbl in (ephys.Clustering.ClusterMetric, ephys.Clustering.WaveformMetric):
            for a in tbl.heading.secondary_attributes:
                if a not in metric_cols:
                    metric_cols.append(a)
                    nwb.add_unit_column(name=f"metric_{a}", description=f"{tbl.__name__}.{a}")
    electrode_row: dict[tuple[int, int], int] = {}
    # every unit's spike times in one preallocated array (no second copy when it is written)
    total = int(sum((ephys.Clustering.Unit & skey).to_arrays("n_spikes"))) if probes else 0
    all_times = np.empty(total, dtype=np.float64)
    ends: list[int] = []
    n_wave = max(
        [len(np.asarray(w).ravel()) for w in (ephys.Clustering.Unit & skey).to_arrays("waveform") if w is not None]
        or [1]
    )
    for p in probes:
        ikey = dict(skey, insertion_number=p["insertion_number"])
        loc = (ephys.ProbeInsertion.InsertionLocation & ikey).to_dicts()
        regions = (ephys.ProbeInsertion.RecordableBrainRegion & ikey).to_dicts()
        device = nwb.create_device(
            name=f"probe{p['insertion_number']}",
            description=f"{p['probe_type']}; serial {p['probe']}; electrode config {p['electrode_config_name']}",
            manufacturer="IMEC",
        )
        location = ", ".join(f"{r['hemisphere']} {r['brain_area']}" for r in regions) or "unknown"
        group = nwb.create_electrode_group(
            name=f"probe{p['insertion_number']}",
            description=json.dumps({k: v for k, v in loc[0].items() if k not in ikey}, default=str)
            if loc
            else "insertion location not recorded",
            location=location,
            device=device,
        )
        elec = (
            (
                lab.ElectrodeConfig.Electrode * lab.ProbeType.Electrode
                & {"probe_type": p["probe_type"], "electrode_config_name": p["electrode_config_name"]}
            )
            .to_pandas()
            .reset_index()
            .sort_values("electrode")
        )
        ccfpos = (histology.ElectrodeCCFPosition.ElectrodePosition & ikey).to_pandas().reset_index()
        ccfpos = ccfpos.set_index("electrode") if len(ccfpos) else None
        acr = {}
        if ccfpos is not None:
            from .. import ccf

            acr = dict(zip(*ccf.CCFBrainRegion.to_arrays("region_id", "acronym")))
        for r in elec.itertuples(index=False):
            c = ccfpos.loc[r.electrode] if ccfpos is not None and r.electrode in ccfpos.index else None
            electrode_row[(p["insertion_number"], int(r.electrode))] = len(nwb.electrodes) if nwb.electrodes else 0
            nwb.add_electrode(
                group=group,
                # an Allen CCF term: the region's acronym from histology, else the CCF's root ("root")
                location=(acr.get(int(c["region_id"])) or "root") if c is not None else "root",
                rel_x=float(r.x_coord),
                rel_y=float(r.y_coord),
                shank=int(r.shank),
                electrode=int(r.electrode),
                used=bool(r.is_used),
                ccf_x=float(c["ccf_x"]) if c is not None else np.nan,
                ccf_y=float(c["ccf_y"]) if c is not None else np.nan,
                ccf_z=float(c["ccf_z"]) if c is not None else np.nan,
            )
        probe_start, session_start = session_clock(ikey, trials)
        stats = by_unit(ephys.UnitStat.Unit & ikey, ["avg_firing_rate", "isi_violation"])
        ctype = by_unit(ephys.UnitCellType.Unit & ikey, ["cell_type"])
        sel = by_unit(psth.UnitSelectivity.Unit & ikey, ["unit_selectivity"])
        metrics = pd.concat(
            [
                by_unit(t & ikey, list(t.heading.secondary_attributes))
                for t in (ephys.Clustering.ClusterMetric, ephys.Clustering.WaveformMetric)
            ],
            axis=1,
        )
        metrics = metrics.loc[:, ~metrics.columns.duplicated()]
        units = (ephys.Clustering.Unit & ikey).to_dicts(order_by="unit")
        spans = [
            to_session_time(np.asarray(u["spike_times"], dtype=np.float64)[[0, -1]], probe_start, session_start)
            for u in units
            if len(np.asarray(u["spike_times"]))
        ]
        # observed: from the recording's first trial (or earlier spike) to its last trial's end (or later spike)
        lo = min([float(np.nanmin(session_start))] + [s_[0] for s_ in spans]) if len(session_start) else 0.0
        hi = max([float(trials["stop_time"].max())] + [s_[1] for s_ in spans])
        obs = [[max(0.0, lo), hi]]
        for u in units:
            t = to_session_time(np.asarray(u["spike_times"], dtype=np.float64), probe_start, session_start)
            wf = u["waveform"]
            start = ends[-1] if ends else 0
            all_times[start : start + len(t)] = t
            ends.append(start + len(t))
            del t
            nwb.add_unit(
                obs_intervals=obs,
                electrodes=[electrode_row[(p["insertion_number"], int(u["electrode"]))]]
                if u["electrode"] is not None
                else [],
                electrode_group=group,
                waveform_mean=_padded(wf, n_wave),
                unit_id_in_sorting=int(u["unit"]),
                quality=str(u["unit_quality"]),
                amplitude=float(u["unit_amp"]) if u["unit_amp"] is not None else np.nan,
                snr=float(u["unit_snr"]) if u["unit_snr"] is not None else np.nan,
                cell_type=str(ctype["cell_type"].get(u["unit"], "")),
                avg_firing_rate=_f(stats["avg_firing_rate"].get(u["unit"])),
                isi_violation=_f(stats["isi_violation"].get(u["unit"])),
                selectivity=str(sel["unit_selectivity"].get(u["unit"], "")),
                insertion_number=int(p["insertion_number"]),
                **{f"metric_{a}": _f(metrics[a].get(u["unit"])) if a in metrics else np.nan for a in metric_cols},
            )
    if ends:  # one column from one array (HDMF checks per-unit lists element by element)
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Column 'spike_times' is predefined")
            nwb.units.add_column(
                name="spike_times",
                description="spike times (s, session clock)",
                data=_io(all_times[: ends[-1]]),
                index=ends,
            )
    return nwb


def write(session_key: dict, path) -> None:
    """Write the session's NWB file at ``path`` (the caller renames it into place)."""
    from pynwb import NWBHDF5IO

    nwb = build(session_key)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
