"""psth: trial conditions, go-aligned PSTHs and selectivity of delay-response units (spec 1, 5).

Computed per clustering (probe) with a Part per unit (see :mod:`pipeline.ephys` for why), from the
probe's spikes loaded once. Only sessions of the delay-response task ('audio delay') have these;
foraging probes are left out of the key sources (``populate-psth`` says so).

From Python::

    psth.unit_psth(unit_key, "good_noearlylick_left_hit")     # (rates Hz, bin centres s, n trials)
    psth.trial_aligned_spikes(unit_key, "good_noearlylick_left_hit")  # raster: (times, trial row)
"""

from __future__ import annotations

import hashlib
import logging

import datajoint as dj
import numpy as np
import pandas as pd

from . import db, ephys, experiment, lab  # noqa: F401  (referenced in the table definitions)
from .analysis import conditions as cond
from .analysis import psth as apsth
from .ingest.bulk import encode_rows

log = logging.getLogger(__name__)

schema = dj.Schema()

#: Sessions these tables are for (the original's psth schema: audio delay sessions only).
TASK = "audio delay"


@schema
class TrialCondition(dj.Lookup):
    """A named selection of trials (the original's 17; see :mod:`pipeline.analysis.conditions`)."""

    definition = """
    trial_condition_name : varchar(64)
    ---
    trial_condition_hash : char(32)        # md5 of the function and its arguments
    trial_condition_func : varchar(36)     # exclude_stim | include_stim
    trial_condition_arg : json
    """
    contents = [(name, cond.condition_hash(f, a), f, a) for name, (f, a) in cond.CONDITIONS.items()]


@schema
class Selectivity(dj.Lookup):
    """Which side a unit prefers."""

    definition = """
    selectivity : varchar(24)
    """
    contents = [("contra-selective",), ("ipsi-selective",), ("non-selective",)]


def delay_response_clusterings():
    """Clusterings of sessions with delay-response ('audio delay') trials."""
    return ephys.Clustering & (experiment.BehaviorTrial & {"task": TASK}).proj()


_session_cache: dict = {}


def clear_caches() -> None:
    """Forget what a populate run read from the database (sessions' trials, conditions, units)."""
    _session_cache.clear()
    ephys.clear_run_cache()


def session_trials(session_key: dict) -> pd.DataFrame:
    """(Cached per session for a populate run; see :func:`clear_caches`.) One row per behaviour trial: the BehaviorTrial columns and photostimulation (stim, stim_area,
    stim_side: left / right / both, from the stimulated locations' ML sign), indexed by trial."""
    ckey = ("trials", experiment.BehaviorTrial.database, session_key["subject_id"], session_key["session"])
    if ckey in _session_cache:
        return _session_cache[ckey]
    attrs = experiment.BehaviorTrial.heading.names
    bt = pd.DataFrame(ephys.fetch_columns(experiment.BehaviorTrial & session_key, *attrs)).set_index("trial")
    stim = (experiment.PhotostimEvent & session_key).to_pandas().reset_index()
    bt["stim"] = False
    bt["stim_area"] = None
    bt["stim_side"] = None
    if len(stim):
        locs = (experiment.Photostim.PhotostimLocation & session_key).to_pandas().reset_index()
        per = {}
        for ps, g in locs.groupby("photo_stim"):
            ml = g["ml_location"].astype(float)
            side = "both" if (ml < 0).any() and (ml > 0).any() else ("left" if (ml < 0).all() else "right")
            per[ps] = (str(g["brain_area"].iloc[0]), side)
        first = stim.sort_values("photostim_event_time").drop_duplicates("trial").set_index("trial")
        bt.loc[first.index, "stim"] = True
        bt.loc[first.index, "stim_area"] = [per.get(p, (None, None))[0] for p in first["photo_stim"]]
        bt.loc[first.index, "stim_side"] = [per.get(p, (None, None))[1] for p in first["photo_stim"]]
    for c in ("auto_water", "free_water", "task_protocol"):
        bt[c] = bt[c].astype(int)
    _session_cache[ckey] = bt
    return bt


def condition_trials(condition: str, key: dict) -> np.ndarray:
    """Trial numbers of a condition in a clustering's session: the condition's trials that the
    probe recorded (Clustering.Trial), and good trials only when the insertion's quality lists them."""
    ckey = ("condition", ephys.Clustering.database, *(key[k] for k in ("subject_id", "session", "insertion_number")))
    ckey += (condition,)
    if ckey not in _session_cache:  # (cached for a populate run)
        func, arg = cond.CONDITIONS[condition]
        trials = session_trials({k: key[k] for k in ("subject_id", "session")})
        chosen = trials.index[cond.select(trials, func, arg)].to_numpy()
        _session_cache[ckey] = np.intersect1d(chosen, _usable_trials(key))
    return _session_cache[ckey]


def _usable_trials(key: dict) -> np.ndarray:
    """The probe's recorded trials, only the good ones when its quality lists good trials (cached
    for a populate run)."""
    ckey = ("usable", ephys.Clustering.database, *(key[k] for k in ("subject_id", "session", "insertion_number")))
    if ckey not in _session_cache:
        ikey = {k: key[k] for k in ("subject_id", "session", "insertion_number")}
        usable = (ephys.Clustering.Trial & ikey).to_arrays("trial")
        good = (ephys.ProbeInsertionQuality.GoodTrial & ikey).to_arrays("trial")
        if len(good):
            usable = np.intersect1d(usable, good)
        _session_cache[ckey] = np.asarray(usable, dtype=np.int64)
    return _session_cache[ckey]


def _sorted_units(key: dict) -> np.ndarray:
    """Units the psth tables cover (quality other than 'all'), in unit order."""
    return np.sort((ephys.Clustering.Unit & key & "unit_quality != 'all'").to_arrays("unit"))


def _kept(key: dict, p) -> np.ndarray:
    """Mask over the loaded probe's units: those the psth tables cover (fetched once per run)."""
    ckey = ephys._ckey(key)
    token = ("units", ephys.Clustering.database, *ckey.values())
    if token not in _session_cache:
        _session_cache[token] = _sorted_units(ckey)
    return np.isin(p.units, _session_cache[token])


def _digest(*arrays) -> str:
    h = hashlib.md5()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _trials_digest(trials) -> str:
    """A condition's trials as a short string (make_fetch returns it: DataJoint hashes it twice)."""
    return hashlib.md5(np.asarray(trials, dtype=np.int64).tobytes()).hexdigest()


def _condition_psths(key: dict, p, trials: dict | None = None) -> dict:
    """Every condition's PSTHs of the loaded probe ``p``, in one pass over its spikes (kept with
    the probe): condition -> (digest of its trials, trial count, (U, 150) float32 Hz). ``trials``:
    each condition's trials, fetched already (:func:`prefetch`)."""
    if trials is None:
        trials = {name: condition_trials(name, key) for name in cond.CONDITIONS}
    digests = {name: _trials_digest(t) for name, t in trials.items()}

    def compute():
        rates, n = apsth.condition_psths(p, list(trials.values()))
        return {name: (digests[name], int(k), r) for name, k, r in zip(trials, n, rates)}

    # kept under the digest of its inputs: other trials (e.g. good trials listed since) compute anew
    return p.memo("condition_psths " + hashlib.md5(repr(sorted(digests.items())).encode()).hexdigest(), compute)


def prefetch(key: dict):
    """Start computing a delay-response probe's PSTHs and period rates in a background thread (what
    its UnitPsth and PeriodSelectivity makes will ask for), so that the numpy work overlaps the
    database work of the tables populated before them. Only what these need from the database is
    fetched here, in the calling thread; the thread only computes. Their makes wait for the result
    (or compute it themselves if the thread failed). Returns the thread."""
    import threading

    p = ephys.probe_spikes(key, ephys._fingerprint(key))
    trials = {name: condition_trials(name, key) for name in cond.CONDITIONS}
    windows = _period_windows(key, p) if insertion_side(key) is not None else None

    def work():
        try:
            _condition_psths(key, p, trials)
            if windows is not None:
                _period_rates(key, p, windows)
        except Exception:  # the make computes it again, and reports what went wrong
            log.debug("prefetch of %s failed", key, exc_info=True)

    thread = threading.Thread(target=work, name="psth-prefetch", daemon=True)
    thread.start()
    return thread


@schema
class UnitPsth(dj.Computed):
    """Go-aligned PSTH of every unit of a clustering for one trial condition: mean rate (Hz) in 40 ms
    bins from -3 to 3 s around the go cue, over the condition's recorded (and good) trials."""

    definition = """
    -> ephys.Clustering
    -> TrialCondition
    ---
    trial_count : int32            # trials of the condition on this probe
    """

    class Unit(dj.Part):
        """One unit's PSTH."""

        definition = """
        -> master
        -> ephys.Clustering.Unit
        ---
        unit_psth : <blob>             # (150,) Hz; bin centres: psth.bin_centers()
        """

    @property
    def key_source(self):
        return delay_response_clusterings().proj() * TrialCondition.proj()

    def make_fetch(self, key):
        return (ephys._fingerprint(key), _trials_digest(condition_trials(key["trial_condition_name"], key)))

    def make_compute(self, key, fingerprint, trials_digest):
        p = ephys.probe_spikes(key, fingerprint)
        digest, n, rates = _condition_psths(key, p)[key["trial_condition_name"]]
        if digest != trials_digest:  # the condition's trials are not those the probe's PSTHs used
            trials = condition_trials(key["trial_condition_name"], key)
            all_rates, all_n = apsth.condition_psths(p, [trials])
            n, rates = int(all_n[0]), all_rates[0]
        keep = _kept(key, p)
        return n, p.units[keep], encode_rows(self.Unit, "unit_psth", rates[keep].astype(np.float32))

    def make_insert(self, key, n, units, psths):
        ephys.insert_probe_rows(
            self, key, master=dict(trial_count=n), columns=dict(unit=units, unit_psth=psths), encoded=("unit_psth",)
        )


def insertion_side(key: dict) -> str | None:
    """'left' or 'right': the recorded hemisphere (InsertionLocation ML sign, right positive; else
    the RecordableBrainRegion's hemisphere); None when neither is known."""
    loc = (ephys.ProbeInsertion.InsertionLocation & key).to_dicts()
    if loc and loc[0]["ml_location"] not in (None, 0):
        return "right" if loc[0]["ml_location"] > 0 else "left"
    hemis = set((ephys.ProbeInsertion.RecordableBrainRegion & key).to_arrays("hemisphere"))
    return hemis.pop() if len(hemis) == 1 and next(iter(hemis)) in ("left", "right") else None


def selectivity_trials(session_key: dict) -> pd.DataFrame:
    """The trials period selectivity uses (spec 5): audio delay, hit, no early lick, no auto or
    free water, a 1.2 s delay, not stimulated; with each trial's event times (behaviour clock)."""
    ckey = ("selectivity", experiment.BehaviorTrial.database, session_key["subject_id"], session_key["session"])
    if ckey in _session_cache:
        return _session_cache[ckey]
    trials = session_trials(session_key)
    ok = (
        (trials["task"] == TASK)
        & (trials["outcome"] == "hit")
        & (trials["early_lick"] == "no early")
        & (trials["auto_water"] == 0)
        & (trials["free_water"] == 0)
        & ~trials["stim"].astype(bool)
    )
    ev = pd.DataFrame(
        ephys.fetch_columns(
            experiment.TrialEvent & session_key, "trial", "trial_event_type", "trial_event_time", "duration"
        )
    )
    last = ev.sort_values("trial_event_time").groupby(["trial", "trial_event_type"]).last().reset_index()
    times = last.pivot(index="trial", columns="trial_event_type", values="trial_event_time")
    durs = last.pivot(index="trial", columns="trial_event_type", values="duration")
    delay = durs["delay"].reindex(trials.index) if "delay" in durs else pd.Series(np.nan, index=trials.index)
    ok &= np.isclose(delay.to_numpy(dtype=np.float64), 1.2, atol=0.01)
    out = times.reindex(trials.index[ok.to_numpy()])
    out["trial_instruction"] = trials.loc[out.index, "trial_instruction"]
    _session_cache[ckey] = out
    return out


def _period_windows(key: dict, p) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Per period, the (start, end) of each of the loaded probe's trials relative to its go cue
    (NaN for trials selectivity does not use), and each trial's instruction."""
    t = selectivity_trials({k: key[k] for k in ("subject_id", "session")})
    pos = np.searchsorted(p.trial, t.index.to_numpy())
    found = (pos < len(p.trial)) & (p.trial[np.minimum(pos, len(p.trial) - 1)] == t.index.to_numpy())

    def ev(name):
        return t[name].to_numpy(dtype=np.float64) if name in t else np.full(len(t), np.nan)

    windows = {}
    for period in experiment.Period.to_dicts():
        start = np.full(len(p.trial), np.nan)
        end = np.full(len(p.trial), np.nan)
        start[pos[found]] = (ev(period["period_start"]) + period["period_start_shift"] - ev("go"))[found]
        end[pos[found]] = (ev(period["period_end"]) + period["period_end_shift"] - ev("go"))[found]
        windows[period["period"]] = (start, end)
    instr = np.full(len(p.trial), None, dtype=object)
    instr[pos[found]] = t["trial_instruction"].to_numpy()[found]
    return windows, instr


def _period_rates(key: dict, p, windows: tuple | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per period, the (trial x unit) rates of the loaded probe ``p`` on the trials selectivity uses
    (NaN rows for the others), and each trial's instruction; every period at once, kept with the
    probe. ``windows``: :func:`_period_windows`, fetched already (:func:`prefetch`)."""
    if windows is None:
        windows = _period_windows(key, p)
    bounds, instr = windows
    digest = _digest(*(a for w in bounds.values() for a in w), np.asarray(instr, dtype=str)) + repr(list(bounds))

    def compute():
        return apsth.period_rates(p, bounds), instr

    return p.memo("period_rates " + digest, compute)  # under its inputs, as the PSTHs


@schema
class PeriodSelectivity(dj.Computed):
    """Each unit's firing rate in one trial period (experiment.Period) on ipsi vs contra trials
    (instruction side vs the recorded hemisphere), Student's t-test; p > 0.05: non-selective,
    else the side with the higher rate. Probes without a known hemisphere are left out."""

    definition = """
    -> ephys.Clustering
    -> experiment.Period
    ---
    ipsi_trials : int32
    contra_trials : int32
    """

    class Unit(dj.Part):
        """One unit's selectivity in the period."""

        definition = """
        -> master
        -> ephys.Clustering.Unit
        ---
        -> Selectivity.proj(period_selectivity="selectivity")
        ipsi_firing_rate = null : float64     # Hz, mean over ipsi trials
        contra_firing_rate = null : float64
        p_value : float64
        """

    @property
    def key_source(self):
        located = delay_response_clusterings() & [
            ephys.ProbeInsertion.InsertionLocation.proj(),
            ephys.ProbeInsertion.RecordableBrainRegion.proj(),
        ]
        return located.proj() * experiment.Period.proj()

    def make_fetch(self, key):
        side = insertion_side(key)
        if side is None:
            raise ValueError("no insertion location or hemisphere: ipsi/contra unknown")
        return (ephys._fingerprint(key), side, key["period"])

    def make_compute(self, key, fingerprint, side, period):
        p = ephys.probe_spikes(key, fingerprint)
        rates, instr = _period_rates(key, p)
        usable = np.isfinite(rates[period]).any(axis=1)
        ipsi = usable & (instr == side)
        contra = usable & (instr == ("left" if side == "right" else "right"))
        sel = apsth.selectivity(rates[period], ipsi, contra)
        keep = _kept(key, p)
        columns = dict(
            unit=p.units[keep],
            period_selectivity=sel.label[keep],
            ipsi_firing_rate=sel.ipsi_rate[keep],  # NaN: NULL
            contra_firing_rate=sel.contra_rate[keep],
            p_value=sel.p_value[keep],
        )
        return int(ipsi.sum()), int(contra.sum()), columns

    def make_insert(self, key, n_ipsi, n_contra, columns):
        ephys.insert_probe_rows(self, key, master=dict(ipsi_trials=n_ipsi, contra_trials=n_contra), columns=columns)


@schema
class UnitSelectivity(dj.Computed):
    """A unit's overall selectivity: non-selective if non-selective in every period (sample, delay,
    response), else the side with the higher mean rate over the periods."""

    definition = """
    -> ephys.Clustering
    """

    class Unit(dj.Part):
        """One unit's overall selectivity."""

        definition = """
        -> master
        -> ephys.Clustering.Unit
        ---
        -> Selectivity.proj(unit_selectivity="selectivity")
        """

    @property
    def key_source(self):
        n_periods = len(experiment.Period())
        done = ephys.Clustering.proj().aggr(PeriodSelectivity, n="count(*)") & f"n = {n_periods}"
        return ephys.Clustering.proj() & done.proj()

    def make(self, key):
        got = ephys.fetch_columns(
            PeriodSelectivity.Unit & key,
            "unit",
            "period",
            "period_selectivity",
            "ipsi_firing_rate",
            "contra_firing_rate",
        )
        unit, period, label, ipsi, contra = got.values()
        units, u_idx = np.unique(np.asarray(unit, dtype=np.int64), return_inverse=True)
        periods, p_idx = np.unique(np.asarray(period, dtype=object).astype(str), return_inverse=True)
        shape = (len(periods), len(units))  # period x unit; a missing row counts as non-selective
        labels = np.full(shape, "non-selective", dtype=object)
        rate_i, rate_c = np.full(shape, np.nan), np.full(shape, np.nan)
        labels[p_idx, u_idx] = label
        rate_i[p_idx, u_idx] = _floats(ipsi)
        rate_c[p_idx, u_idx] = _floats(contra)
        overall = apsth.unit_selectivity(labels, rate_i, rate_c)
        ephys.insert_probe_rows(self, key, columns=dict(unit=units, unit_selectivity=overall))


def _floats(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


# --- for figures, exports and the navigator ----------------------------------------------------


def bin_centers() -> np.ndarray:
    return apsth.bin_centers()


def unit_psth(unit_key: dict, condition: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The stored PSTH of a unit for a condition: (rates Hz (150,), bin centres s, trial count)."""
    key = {**{k: unit_key[k] for k in ("subject_id", "session", "insertion_number", "unit")}}
    row = (UnitPsth.Unit * UnitPsth & key & {"trial_condition_name": condition}).fetch1()
    return np.asarray(row["unit_psth"], dtype=np.float64), bin_centers(), int(row["trial_count"])


def trial_aligned_spikes(unit_key: dict, condition: str | None = None, trials=None) -> tuple[np.ndarray, np.ndarray]:
    """A unit's raster: spike times relative to each trial's go cue (s, within -3..3) and the row
    (0, 1, ... in trial order) of each spike, for the condition's trials (or ``trials``)."""
    ckey = {k: unit_key[k] for k in ("subject_id", "session", "insertion_number")}
    u = (ephys.Clustering.Unit & ckey & {"unit": unit_key["unit"]}).fetch1()
    times, spike_trials = np.asarray(u["spike_times"]), np.asarray(u["spike_trials"])  # as stored
    if trials is None:
        trials = condition_trials(condition, ckey) if condition else (ephys.Clustering.Trial & ckey).to_arrays("trial")
    trials = np.sort(np.asarray(trials, dtype=np.int64))
    tr, go = (ephys.Clustering.Trial & ckey).to_arrays("trial", "go_time", order_by="trial")
    go_of = dict(zip(np.asarray(tr, dtype=np.int64).tolist(), [np.nan if g is None else float(g) for g in go]))
    go_arr = np.array([go_of.get(int(t), np.nan) for t in trials])
    row = np.searchsorted(trials, spike_trials)
    ok = (row < len(trials)) & (trials[np.minimum(row, len(trials) - 1)] == spike_trials)
    rel = times[ok] - go_arr[row[ok]]
    inside = (rel >= apsth.WINDOW_S[0]) & (rel < apsth.WINDOW_S[1])
    return rel[inside], row[ok][inside]


db.register("psth", schema)
