"""report: the figures of every session, probe, unit and of the project, drawn and stored by the
pipeline (``generate-report``) and copied to a folder (``sync-report``).

Each table is a master keyed like what it shows, holding a hash of the inputs its figures were
drawn from, and a ``Figure`` part with one PNG per figure (in the ``report`` store, not in table
rows). :func:`generate` first deletes the entries whose inputs changed since (re-ingest, a new
insertion location, more units computed), then populates what is missing, so no figure is left
stale. The figures themselves are the pure functions of :mod:`pipeline.figures`.
"""

from __future__ import annotations

import hashlib
import json
import logging

import datajoint as dj
import numpy as np
import pandas as pd

from . import ccf, db, ephys, experiment, figures, histology, lab, psth  # noqa: F401  (definitions)

log = logging.getLogger(__name__)
schema = dj.Schema()

STORE = "report"


def _hash(*parts) -> str:
    return hashlib.md5(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


def _png_row(name: str, fig) -> dict:
    png = figures.to_png(fig)
    return dict(figure_name=name, png=as_array(png), png_sha1=hashlib.sha1(png).hexdigest())


def as_array(png: bytes) -> np.ndarray:
    """PNG bytes as the uint8 array the ``png`` attribute stores (one .npy object per figure in the
    ``report`` store; DataJoint 2.3's hash-addressed ``<blob@store>`` fails on MySQL)."""
    return np.frombuffer(png, dtype=np.uint8)


def png_bytes(value) -> bytes:
    """The PNG file's bytes from a fetched ``png`` attribute."""
    return np.asarray(value, dtype=np.uint8).tobytes()


def _session_label(key: dict) -> tuple[str, object]:
    row = (experiment.Session * lab.WaterRestriction & key).fetch1()
    return row["water_restriction_number"], row["session_datetime"]


# --- inputs of each kind of report (cheap queries: what the figures depend on) -----------------


def session_inputs(key: dict) -> str:
    k = {x: key[x] for x in ("subject_id", "session")}
    return _hash(
        len(experiment.SessionTrial & k),
        len(experiment.BehaviorTrial & k & {"outcome": "hit"}),
        len(experiment.PhotostimEvent & k),
        len(experiment.WaterPortChoice & k),
    )


def probe_inputs(key: dict) -> str:
    k = {x: key[x] for x in ("subject_id", "session", "insertion_number")}
    loc = (ephys.ProbeInsertion.InsertionLocation & k).to_dicts()
    return _hash(
        ephys._fingerprint(k),
        len(ephys.UnitStat.Unit & k),
        len(psth.UnitPsth & k),
        len(psth.UnitSelectivity.Unit & k & "unit_selectivity != 'non-selective'"),
        [(r["ap_location"], r["ml_location"], r["depth"]) for r in loc],
        len(histology.ElectrodeCCFPosition.ElectrodePosition & k),
        len(histology.LabeledProbeTrack.Point & k),
    )


def unit_inputs(key: dict) -> str:
    k = {x: key[x] for x in ("subject_id", "session", "insertion_number")}
    return _hash(
        probe_inputs(k),
        len(ephys.UnitPassingCriteria.Unit & k & "criteria_passed"),
    )


def project_inputs(key: dict) -> str:
    return _hash(
        len(histology.ElectrodeCCFPosition.ElectrodePosition & key),
        len(histology.LabeledProbeTrack.Point()),
        len(ccf.CCFAnnotation & key),
    )


# --- tables ------------------------------------------------------------------------------------


class _Report:
    """What every report table shares: the inputs hash, the figures part, the three-part make."""

    inputs = staticmethod(session_inputs)

    def make_fetch(self, key):
        return (self.inputs(key),)

    def make_insert(self, key, inputs_hash, rows):
        self.insert1(dict(key, inputs_hash=inputs_hash))
        if rows:
            self.Figure.insert([dict(key, **r) for r in rows])


@schema
class SessionReport(_Report, dj.Computed):
    """A session's behaviour: performance over trials and photostimulation effect (delay-response),
    or choices, rewards and block probabilities (foraging)."""

    definition = """
    -> experiment.Session
    ---
    inputs_hash : char(32)       # of what the figures were drawn from; a change makes them stale
    """

    class Figure(dj.Part):
        """One figure of the session."""

        definition = """
        -> master
        figure_name : varchar(48)
        ---
        png : <npy@report>             # the PNG file's bytes (uint8); report.png_bytes() gives them back
        png_sha1 : char(40)
        """

    @property
    def key_source(self):
        return experiment.Session & experiment.BehaviorTrial.proj()

    inputs = staticmethod(session_inputs)

    def make_compute(self, key, inputs_hash):
        h2o, when = _session_label(key)
        title = f"{h2o} {when:%Y-%m-%d %H:%M} session {key['session']}"
        trials = psth.session_trials(key).reset_index()
        rows = []
        if (trials["task"] == psth.TASK).any():
            rows.append(_png_row("performance", figures.session_performance(trials, title=f"{title}: performance")))
            t = trials.copy()
            t["stim_site"] = [
                f"{a} {s}" if stim else "" for a, s, stim in zip(t["stim_area"], t["stim_side"], t["stim"])
            ]
            rows.append(_png_row("photostim_effect", figures.photostim_effect(t, title=f"{title}: photostimulation")))
        choice = (experiment.WaterPortChoice & key).to_pandas().reset_index()
        if len(choice):
            outcome = dict(zip(trials["trial"], trials["outcome"]))
            probs = (
                (experiment.SessionBlock.BlockTrial * experiment.SessionBlock.WaterPortRewardProbability & key)
                .to_pandas()
                .reset_index()
            )
            p = probs.pivot_table(index="trial", columns="water_port", values="reward_probability")
            frame = pd.DataFrame(
                dict(
                    trial=choice["trial"],
                    choice=choice["water_port"].fillna("none").replace({"": "none"}),
                    rewarded=[outcome.get(t) == "hit" for t in choice["trial"]],
                    p_left=p.get("left", pd.Series(dtype=float)).reindex(choice["trial"]).to_numpy(),
                    p_right=p.get("right", pd.Series(dtype=float)).reindex(choice["trial"]).to_numpy(),
                )
            )
            rows.append(_png_row("foraging", figures.foraging_session(frame, title=f"{title}: foraging")))
        return inputs_hash, rows


def _probe_units(key: dict) -> pd.DataFrame:
    """Units of a probe with the values the probe figures show."""
    units = (ephys.Clustering.Unit & key).proj("unit_posx", "unit_posy", "unit_amp", "unit_snr", "electrode")
    u = units.to_pandas().reset_index().set_index("unit")
    stats = (ephys.UnitStat.Unit & key).to_pandas().reset_index().set_index("unit")
    metrics = (ephys.Clustering.ClusterMetric & key).to_pandas().reset_index()
    ct = (ephys.UnitCellType.Unit & key).to_pandas().reset_index().set_index("unit")
    elec = (
        (lab.ProbeType.Electrode * (ephys.ProbeInsertion & key).proj("probe_type"))
        .to_pandas()
        .reset_index()
        .set_index("electrode")
    )
    y_of = elec["y_coord"] if "y_coord" in elec else pd.Series(dtype=float)
    x_of = elec["x_coord"] if "x_coord" in elec else pd.Series(dtype=float)
    depth = u["unit_posy"].astype(float)
    depth = depth.fillna(u["electrode"].map(y_of).astype(float))
    x = u["unit_posx"].astype(float).fillna(u["electrode"].map(x_of).astype(float))
    return pd.DataFrame(
        dict(
            depth=depth,
            x=x,
            amplitude=u["unit_amp"].astype(float),
            snr=u["unit_snr"].astype(float),
            isi_violation=stats["isi_violation"].reindex(u.index).astype(float) if len(stats) else np.nan,
            firing_rate=stats["avg_firing_rate"].reindex(u.index).astype(float) if len(stats) else np.nan,
            presence_ratio=(
                metrics.set_index("unit")["presence_ratio"].reindex(u.index).astype(float) if len(metrics) else np.nan
            ),
            cell_type=ct["cell_type"].reindex(u.index).fillna("not classified") if len(ct) else "not classified",
        ),
        index=u.index,
    )


def _probe_title(key: dict) -> str:
    h2o, when = _session_label(key)
    return f"{h2o} {when:%Y-%m-%d} session {key['session']} probe {key['insertion_number']}"


@schema
class ProbeReport(_Report, dj.Computed):
    """A probe: clustering quality, unit characteristics, group PSTH, photostimulation effect on
    units, drift map and (with histology) the track in a coronal slice of the CCF."""

    definition = """
    -> ephys.Clustering
    ---
    inputs_hash : char(32)
    """

    class Figure(dj.Part):
        """One figure of the probe."""

        definition = """
        -> master
        figure_name : varchar(48)
        ---
        png : <npy@report>             # the PNG file's bytes (uint8); report.png_bytes() gives them back
        png_sha1 : char(40)
        """

    @property
    def key_source(self):
        return ephys.Clustering & ephys.UnitStat.proj() & ephys.UnitCellType.proj()

    inputs = staticmethod(probe_inputs)

    def make_compute(self, key, inputs_hash):
        title = _probe_title(key)
        units = _probe_units(key)
        elec = (
            lab.ElectrodeConfig.Electrode * lab.ProbeType.Electrode
            & (ephys.ProbeInsertion & key).proj("probe_type", "electrode_config_name")
        ).to_arrays("x_coord", "y_coord")
        rows = [
            _png_row("clustering_quality", figures.clustering_quality(units, title=f"{title}: clustering quality")),
            _png_row(
                "unit_characteristics",
                figures.unit_characteristics(units, elec[0], elec[1], title=f"{title}: unit characteristics"),
            ),
        ]
        fig = _group_psth_figure(key, units, title)
        if fig is not None:
            rows.append(_png_row("group_psth", fig))
        fig = _photostim_units_figure(key, units, title)
        if fig is not None:
            rows.append(_png_row("photostim_effect", fig))
        rows.append(_png_row("drift_map", _drift_map_figure(key, units, title)))
        fig = _coronal_figure(key, title)
        if fig is not None:
            rows.append(_png_row("coronal_slice", fig))
        return inputs_hash, rows


def _contra_ipsi_conditions(key: dict) -> tuple[str, str] | None:
    side = psth.insertion_side(key)
    if side is None:
        return None
    contra = "right" if side == "left" else "left"
    return f"good_noearlylick_{contra}_hit", f"good_noearlylick_{side}_hit"


def _group_psth_figure(key, units, title):
    conds = _contra_ipsi_conditions(key)
    if conds is None or not (psth.UnitSelectivity & key):
        return None
    sel = dict(zip(*(psth.UnitSelectivity.Unit & key).to_arrays("unit", "unit_selectivity")))
    rows = (psth.UnitPsth.Unit & key & [{"trial_condition_name": c} for c in conds]).to_arrays(
        "unit", "trial_condition_name", "unit_psth"
    )
    by = {(int(u), c): np.asarray(p, dtype=np.float64) for u, c, p in zip(*rows)}
    groups = {}
    for group in ("contra-selective", "ipsi-selective"):
        members = sorted((u for u, s in sel.items() if s == group), key=lambda u: -units.loc[u, "depth"])
        groups[group] = {
            name: np.array([by[(u, c)] for u in members if (u, c) in by]).reshape(-1, len(psth.bin_centers()))
            for name, c in (("contra trials", conds[0]), ("ipsi trials", conds[1]))
        }
    return figures.group_psth(
        psth.bin_centers(), groups["contra-selective"], groups["ipsi-selective"], title=f"{title}: group PSTH"
    )


def _photostim_units_figure(key, units, title):
    stim_conds = [c for c in psth.TrialCondition.to_arrays("trial_condition_name") if c.endswith("_alm_stim")]
    counts = dict(
        zip(
            *(psth.UnitPsth & key & [{"trial_condition_name": c} for c in stim_conds]).to_arrays(
                "trial_condition_name", "trial_count"
            )
        )
    )
    if not counts or max(counts.values()) == 0:
        return None
    best = max(counts, key=counts.get)
    window = (psth.bin_centers() > -1.2) & (psth.bin_centers() < 0)  # the delay period before go

    def mean_rate(condition):
        u, p = (psth.UnitPsth.Unit & key & {"trial_condition_name": condition}).to_arrays("unit", "unit_psth")
        return {int(a): float(np.asarray(b)[window].mean()) for a, b in zip(u, p)}

    control, stim = mean_rate("all_noearlylick_nostim"), mean_rate(best)
    ids = sorted(set(control) & set(stim))
    return figures.photostim_unit_effect(
        np.array([control[u] for u in ids]),
        np.array([stim[u] for u in ids]),
        units["depth"].reindex(ids).to_numpy(dtype=np.float64),
        title=f"{title}: {best.replace('all_noearlylick_', '').replace('_', ' ')} vs control (delay period)",
    )


def _drift_map_figure(key, units, title):
    rows = (ephys.Clustering.Unit & key).to_arrays("unit", "n_spikes", "spike_times", "spike_depths", order_by="unit")
    fraction = min(1.0, 200_000 / max(1, int(np.sum(rows[1]))))  # draw at most ~200,000 spikes
    times, depths, amps = [], [], []
    rng = np.random.default_rng(0)
    for unit, _n, t, d in zip(*rows):
        t = np.asarray(t)
        take = rng.random(len(t)) < fraction
        times.append(t[take])
        depths.append(np.asarray(d)[take] if d is not None else np.full(int(take.sum()), units.loc[unit, "depth"]))
        amps.append(np.full(int(take.sum()), units.loc[unit, "amplitude"]))
    cat = lambda a: np.concatenate(a) if a else np.zeros(0)  # noqa: E731
    return figures.drift_map(cat(times), cat(depths), cat(amps), title=f"{title}: drift map (colour: unit amplitude)")


def _coronal_figure(key, title):
    pos = (histology.ElectrodeCCFPosition.ElectrodePosition & key).to_pandas().reset_index()
    if not len(pos):
        return None
    version = (histology.ElectrodeCCFPosition & key).fetch1("annotation_version")
    volume, voxel = ccf.annotation_volume(version)
    ap = int(np.clip(np.rint(np.median(pos["ccf_z"]) / voxel), 0, volume.shape[0] - 1))
    regions = (ccf.CCFBrainRegion & {"annotation_version": version}).to_pandas().reset_index()
    colors = dict(zip(regions["region_id"], regions["color_code"]))
    names = dict(zip(regions["region_id"], regions["acronym"].fillna(regions["region_name"])))
    pts = (histology.LabeledProbeTrack.Point & key).to_arrays("ccf_x", "ccf_y", order_by="shank, point_order")
    track = np.column_stack(pts).astype(float) if len(pts[0]) else None
    electrodes = pos[["ccf_x", "ccf_y", "region_id"]].to_numpy(dtype=np.float64)
    return figures.coronal_slice(
        np.asarray(volume[ap]),
        colors,
        names,
        voxel,
        electrodes,
        track,
        title=f"{title}: coronal slice at AP {ap * voxel:.0f} µm",
    )


@schema
class UnitReport(_Report, dj.Computed):
    """Every unit of a probe that passes the criteria: raster and PSTH of left and right hit trials,
    mean waveform, ISI histogram, location and selectivity (one PNG per unit)."""

    definition = """
    -> ephys.Clustering
    ---
    inputs_hash : char(32)
    """

    class Figure(dj.Part):
        """One unit's figure."""

        definition = """
        -> master
        -> ephys.Clustering.Unit
        figure_name : varchar(48)
        ---
        png : <npy@report>             # the PNG file's bytes (uint8); report.png_bytes() gives them back
        png_sha1 : char(40)
        """

    @property
    def key_source(self):
        return psth.delay_response_clusterings() & ephys.UnitPassingCriteria.proj() & psth.UnitPsth.proj()

    inputs = staticmethod(unit_inputs)
    processes = 1  #: rendering processes (generate(processes=N) sets it)

    def make_compute(self, key, inputs_hash):
        jobs = unit_figure_inputs(key)
        pngs = render_many(jobs, self.processes)
        rows = [
            dict(unit=u, figure_name="unit", png=as_array(png), png_sha1=hashlib.sha1(png).hexdigest())
            for (u, _), png in zip(jobs, pngs)
        ]
        return inputs_hash, rows


def unit_figure_inputs(key: dict, units=None) -> list[tuple[int, dict]]:
    """(unit, keyword arguments of figures.unit_summary) for ``units`` of the probe (default: the
    units passing the criteria, the ones the report draws)."""
    key = {k: key[k] for k in ("subject_id", "session", "insertion_number")}
    title = _probe_title(key)
    if units is None:
        passing = (ephys.UnitPassingCriteria.Unit & key & "criteria_passed").to_arrays("unit")
    else:
        passing = np.asarray(list(units), dtype=np.int64)
    if not len(passing):
        return []
    units = _probe_units(key)
    fs = float((ephys.Clustering & key).fetch1("sampling_rate"))
    sel = dict(zip(*(psth.UnitSelectivity.Unit & key).to_arrays("unit", "unit_selectivity")))
    regions = (
        dict(zip(*(histology.unit_ccf() & key).to_arrays("unit", "acronym")))
        if len(histology.ElectrodeCCFPosition & key)
        else {}
    )
    trials = {side: psth.condition_trials(f"good_noearlylick_{side}_hit", key) for side in ("left", "right")}
    psths = (
        psth.UnitPsth.Unit & key & [{"trial_condition_name": f"good_noearlylick_{s}_hit"} for s in ("left", "right")]
    )
    by = {
        (int(u), c): np.asarray(p, dtype=np.float64)
        for u, c, p in zip(*psths.to_arrays("unit", "trial_condition_name", "unit_psth"))
    }
    tr, go = (ephys.Clustering.Trial & key).to_arrays("trial", "go_time", order_by="trial")
    go_of = dict(zip(np.asarray(tr).tolist(), [np.nan if g is None else float(g) for g in go]))
    rows = (ephys.Clustering.Unit & key & [{"unit": int(u)} for u in passing]).to_arrays(
        "unit", "spike_times", "spike_trials", "waveform", order_by="unit"
    )
    jobs = []
    for unit, times, strials, wave in zip(*rows):
        times, strials = np.asarray(times), np.asarray(strials)
        rasters = {}
        for side, chosen in trials.items():
            chosen = np.sort(np.asarray(chosen, dtype=np.int64))
            row = np.searchsorted(chosen, strials)
            ok = (
                (row < len(chosen)) & (chosen[np.minimum(row, max(len(chosen) - 1, 0))] == strials)
                if len(chosen)
                else np.zeros(len(strials), bool)
            )
            go_arr = np.array([go_of.get(int(t), np.nan) for t in chosen])
            rel = times[ok] - go_arr[row[ok]] if ok.any() else np.zeros(0)
            inside = (rel >= -3) & (rel < 3)
            rasters[side] = (rel[inside], row[ok][inside], len(chosen))
        u = units.loc[int(unit)]
        info = [
            f"unit {int(unit)}  {u['cell_type']}",
            f"rate {u['firing_rate']:.1f} Hz  amp {u['amplitude']:.0f} µV",
            f"depth {u['depth']:.0f} µm  region {regions.get(int(unit), '?')}",
            f"selectivity: {sel.get(int(unit), 'not computed')}",
        ]
        jobs.append(
            (
                int(unit),
                dict(
                    rasters=rasters,
                    centers=psth.bin_centers(),
                    psths={
                        s: by[(int(unit), f"good_noearlylick_{s}_hit")]
                        for s in ("left", "right")
                        if (int(unit), f"good_noearlylick_{s}_hit") in by
                    },
                    waveform=None if wave is None else np.asarray(wave, dtype=np.float64).ravel(),
                    sample_rate=fs,
                    isi=np.diff(times),
                    info=info,
                    title=f"{title} unit {int(unit)}",
                ),
            )
        )
    return jobs


def _render_unit(kwargs: dict) -> bytes:
    return figures.to_png(figures.unit_summary(**kwargs))


def render_many(jobs: list[tuple[int, dict]], processes: int = 1) -> list[bytes]:
    """Render unit figures, in ``processes`` worker processes when more than one."""
    if processes <= 1 or len(jobs) < 2:
        return [_render_unit(kw) for _, kw in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=processes, mp_context=mp.get_context("fork")) as pool:
        return list(pool.map(_render_unit, [kw for _, kw in jobs], chunksize=max(1, len(jobs) // (4 * processes))))


@schema
class ProjectReport(_Report, dj.Computed):
    """Every probe track of every subject in the CCF (three views), per annotation version."""

    definition = """
    -> ccf.AnnotationVersion
    ---
    inputs_hash : char(32)
    """

    class Figure(dj.Part):
        """One figure of the project."""

        definition = """
        -> master
        figure_name : varchar(48)
        ---
        png : <npy@report>             # the PNG file's bytes (uint8); report.png_bytes() gives them back
        png_sha1 : char(40)
        """

    @property
    def key_source(self):
        return ccf.AnnotationVersion & ccf.CCFAnnotation.proj() & histology.ElectrodeCCFPosition.proj()

    inputs = staticmethod(project_inputs)

    def make_compute(self, key, inputs_hash):
        volume, voxel = ccf.annotation_volume(key["annotation_version"])
        mask = np.asarray(volume) > 0
        pos = (histology.ElectrodeCCFPosition.ElectrodePosition * lab.WaterRestriction & key).to_pandas().reset_index()
        tracks: dict[str, list[np.ndarray]] = {}
        for (h2o, _s, _i), g in pos.groupby(["water_restriction_number", "session", "insertion_number"]):
            pts = g.sort_values("ccf_y")[["ccf_x", "ccf_y", "ccf_z"]].to_numpy(dtype=np.float64)
            tracks.setdefault(h2o, []).append(pts)
        fig = figures.project_tracks(mask, voxel, tracks, title=f"probe tracks ({key['annotation_version']})")
        return inputs_hash, [_png_row("probe_tracks", fig)]


TABLES = (SessionReport, ProbeReport, UnitReport, ProjectReport)


def stale_keys(table) -> list[dict]:
    """Entries whose inputs changed since their figures were drawn."""
    out = []
    for row in table.proj("inputs_hash").to_dicts():
        key = {k: v for k, v in row.items() if k != "inputs_hash"}
        if table.inputs(key) != row["inputs_hash"]:
            out.append(key)
    return out


def delete_entries(table, keys: list[dict]) -> None:
    """Delete report entries (figures first); their store objects go with the next cleanup."""
    if keys:
        (table.Figure & keys).delete_quick()
        (table & keys).delete_quick()


db.register("report", schema)
