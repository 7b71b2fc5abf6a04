"""ephys: probe insertions and their spike sorting (units, spike trains, quality metrics).

Spike arrays are stored per unit as ``<npy@map>`` objects (one .npy file each in the ``map``
store; see README): they come back as lazy references that load or memory-map on use, instead
of zlib blobs in table rows, which would make ingest and queries of large probes slow.
"""

import datajoint as dj

from . import db, experiment, lab  # noqa: F401  (referenced in the table definitions)

schema = dj.Schema()


@schema
class ClusteringMethod(dj.Lookup):
    """A spike sorter (and version) whose output the pipeline reads."""

    definition = """
    clustering_method : varchar(16)
    """
    contents = [(m,) for m in ("jrclust_v3", "kilosort", "jrclust_v4", "kilosort2", "pykilosort2.5", "kilosort4")]


@schema
class UnitQualityType(dj.Lookup):
    """How good a sorted unit is, as the sorter or curator labelled it."""

    definition = """
    unit_quality : varchar(16)
    ---
    unit_quality_description : varchar(4000)
    """
    contents = [
        ("good", "single unit"),
        ("ok", "probably a single unit, but could be contaminated"),
        ("multi", "multi-unit activity"),
        ("all", "all units (unlabelled or noise)"),
    ]


@schema
class CellType(dj.Lookup):
    """A putative cell type from waveform shape."""

    definition = """
    cell_type : varchar(16)
    ---
    cell_type_description : varchar(4000)
    """
    contents = [
        ("Pyr", "putative pyramidal"),
        ("FS", "fast spiking"),
        ("not classified", "intermediate"),
        ("all", "all types"),
    ]


@schema
class ProbeInsertion(dj.Manual):
    """One probe inserted in one session, with the electrodes it recorded from."""

    definition = """
    -> experiment.Session
    insertion_number : int16      # 1, 2, ... (probe folder / imec index + 1)
    ---
    -> lab.Probe
    -> lab.ElectrodeConfig
    """

    class InsertionLocation(dj.Part):
        """Where the probe went in (stereotaxic, um; angles in degrees)."""

        definition = """
        -> master
        ---
        -> lab.SkullReference
        ap_location : float64        # um from the reference, anterior positive
        ml_location : float64        # um, right positive
        depth : float64              # um, from the brain surface
        theta = null : float64       # elevation from the horizontal plane
        phi = null : float64         # azimuth
        beta = null : float64        # rotation about the shank
        """

    class RecordableBrainRegion(dj.Part):
        """A brain area the probe recorded from."""

        definition = """
        -> master
        -> lab.BrainArea
        -> lab.Hemisphere
        """

    class InsertionNote(dj.Part):
        """Free-text notes about an insertion."""

        definition = """
        -> master
        ---
        insertion_note : varchar(1000)
        """

    class RecordingSystemSetup(dj.Part):
        """The acquisition's sampling rate."""

        definition = """
        -> master
        ---
        sampling_rate : float64      # Hz
        """


@schema
class ProbeInsertionQuality(dj.Manual):
    """The experimenter's judgement of an insertion (drift, histology alignment)."""

    definition = """
    -> ProbeInsertion
    ---
    drift_presence = 0 : bool
    number_of_landmarks = 0 : int32
    alignment_confidence = 0 : bool
    insertion_comment = '' : varchar(1000)
    """

    class GoodPeriod(dj.Part):
        """A period (s, from the first trial start) whose recording is usable."""

        definition = """
        -> master
        good_period_start : float64
        ---
        good_period_end : float64
        """

    class GoodTrial(dj.Part):
        """A trial inside a good period."""

        definition = """
        -> master
        -> experiment.SessionTrial
        """


@schema
class Clustering(dj.Manual):
    """The spike sorting of one insertion, as loaded by ingest-ephys (one per insertion)."""

    definition = """
    -> ProbeInsertion
    ---
    -> ClusteringMethod
    clustering_time : datetime          # when the sorter's output was written
    quality_control : bool              # quality metrics were computed (metrics.csv)
    manual_curation : bool              # curated in phy/JRClust
    sampling_rate : float64             # Hz of the spike times in the files
    clustering_note = '' : varchar(2000)
    """

    class Trial(dj.Part):
        """A behaviour trial on this probe's clock (s from the first trial's start)."""

        definition = """
        -> master
        -> experiment.SessionTrial
        ---
        trial_start : float64
        go_time = null : float64         # go cue; null if the trial had none (e.g. free water)
        """

    class Unit(dj.Part):
        """One sorted unit and its spikes."""

        definition = """
        -> master
        unit : int32                     # cluster id in the sorter's output
        ---
        -> UnitQualityType
        -> [nullable] lab.ElectrodeConfig.Electrode  # peak electrode (null: the sorting does not say)
        unit_posx = null : float64       # um, probe coordinates
        unit_posy = null : float64
        n_spikes : int32
        spike_times : <npy@map>          # s, probe clock, 0 = start of the first trial
        spike_trials : <npy@map>         # behaviour trial of each spike (0: before the first trial)
        spike_sites = null : <npy@map>   # electrode of each spike's peak
        spike_depths = null : <npy@map>  # um
        unit_amp = null : float64        # uV
        unit_snr = null : float64
        waveform = null : <npy@map>      # mean waveform at the peak electrode
        """

    class ClusterMetric(dj.Part):
        """Quality metrics of a unit (ecephys spike sorting, metrics.csv)."""

        definition = """
        -> master.Unit
        ---
        presence_ratio = null : float64
        amplitude_cutoff = null : float64
        isolation_distance = null : float64
        l_ratio = null : float64
        d_prime = null : float64
        nn_hit_rate = null : float64
        nn_miss_rate = null : float64
        silhouette_score = null : float64
        max_drift = null : float64
        cumulative_drift = null : float64
        isi_violation = null : float64
        avg_firing_rate = null : float64
        """

    class WaveformMetric(dj.Part):
        """Waveform shape metrics of a unit (waveform_metrics.csv)."""

        definition = """
        -> master.Unit
        ---
        duration = null : float64
        halfwidth = null : float64
        pt_ratio = null : float64
        repolarization_slope = null : float64
        recovery_slope = null : float64
        spread = null : float64
        velocity_above = null : float64
        velocity_below = null : float64
        """

    class UnitLabel(dj.Part):
        """A label file's value for a unit (cluster_group.tsv, cluster_KSLabel.tsv, JRClust notes...)."""

        definition = """
        -> master.Unit
        label_source : varchar(32)
        ---
        label : varchar(64)
        """


Unit = Clustering.Unit  # the name users know from the original pipeline: ephys.Unit


# --- computed from the spikes (populate-psth) --------------------------------------------------
#
# Each table is computed per clustering (probe), with a Part of one row per unit: DataJoint 2
# forbids computed tables to add key attributes of their own, and one make per probe loads the
# probe's spikes once. The makes are three-part: make_fetch returns only a small fingerprint
# (one query; DataJoint hashes it twice), make_compute loads and computes outside the
# transaction, make_insert writes the master row and all unit rows in one statement each. The
# numbers come from pipeline.analysis (pure functions, tested alone).

_spike_cache: dict = {}


def _ckey(key: dict) -> dict:
    return {k: key[k] for k in ("subject_id", "session", "insertion_number")}


def probe_spikes(key: dict, fingerprint: tuple | None = None):
    """The clustering's spike times and trials as one :class:`~pipeline.analysis.spikes.ProbeSpikes`
    (cached for the probe last asked for: the computed tables of one probe share one load, and
    what they derive from it). Each spike's trial follows from the trial starts by the ingest's own
    rule, so the per-spike trial arrays need not be loaded. ``fingerprint`` (:func:`_fingerprint`,
    which a make has fetched already) saves the query of the clustering's time."""
    import numpy as np

    from .analysis.spikes import ProbeSpikes

    ckey = _ckey(key)
    when = fingerprint[-1] if fingerprint is not None else str((Clustering & ckey).fetch1("clustering_time"))
    token = (Clustering.database, tuple(ckey.values()), when)
    if _spike_cache.get("token") == token:
        return _spike_cache["spikes"]
    _spike_cache.clear()
    units, counts = (Clustering.Unit & ckey).to_arrays("unit", "n_spikes", order_by="unit")
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    times = np.empty(int(offsets[-1]), dtype=np.float64)
    # lazy references (to_arrays would load every unit's array at once: twice the probe in memory)
    refs = [r["spike_times"] for r in (Clustering.Unit & ckey).proj("spike_times").to_dicts(order_by="unit")]
    for k in range(len(refs)):  # one unit at a time into one preallocated array
        ref, refs[k] = refs[k], None  # a loaded reference keeps its array: let it go with the reference
        times[offsets[k] : offsets[k + 1]] = np.asarray(ref)
        del ref
    trial, start, go = (Clustering.Trial & ckey).to_arrays("trial", "trial_start", "go_time", order_by="trial")
    spikes = ProbeSpikes(
        units=np.asarray(units, dtype=np.int64),
        offsets=offsets,
        times=times,
        trial=np.asarray(trial, dtype=np.int64),
        trial_start=np.asarray(start, dtype=np.float64),
        go_time=np.array([np.nan if g is None else g for g in go], dtype=np.float64),
    )
    _spike_cache.update(token=token, spikes=spikes)
    return spikes


def clear_spike_cache() -> None:
    _spike_cache.clear()
    _run_cache.clear()


def trial_durations(key: dict):
    """Durations (s) of the clustering's trials, in trial order (SessionTrial stop - start)."""
    import numpy as np

    rows = (experiment.SessionTrial * Clustering.Trial.proj() & key).to_arrays(
        "start_time", "stop_time", order_by="trial"
    )
    return np.asarray(rows[1], dtype=np.float64) - np.asarray(rows[0], dtype=np.float64)


_run_cache: dict = {}


def clear_run_cache() -> None:
    """Forget what was read from the database for a populate run (the spikes stay cached)."""
    _run_cache.clear()


def _probe_durations(key: dict, p):
    """:func:`trial_durations`, fetched once per populate run (UnitStat and drift share it)."""
    token = ("durations", Clustering.database, *_ckey(key).values())
    if token not in _run_cache:
        _run_cache[token] = trial_durations(_ckey(key))
    return _run_cache[token]


_fingerprint_sql: dict = {}


def _fingerprint(key: dict) -> tuple:
    """What a per-probe make depends on (units, spikes, trials, sorting time): one small query
    (its SQL built once per probe), small enough for DataJoint to hash twice."""
    ckey = _ckey(key)
    token = (Clustering.database, tuple(ckey.values()))
    sql = _fingerprint_sql.get(token)
    if sql is None:
        query = (Clustering & ckey).aggr(  # (max: MySQL's ONLY_FULL_GROUP_BY refuses a plain column)
            Clustering.Unit,
            n_units="count(*)",
            n_spikes="sum(n_spikes)",
            last_unit="max(unit)",
            sorted_at="max(clustering_time)",
        )
        sql = _fingerprint_sql[token] = query.make_sql()
    rows = Clustering.connection.query(sql, as_dict=True).fetchall()
    if len(rows) != 1:
        raise dj.DataJointError(f"no clustering {ckey}")
    row = rows[0]
    return (int(row["n_units"]), int(row["n_spikes"] or 0), int(row["last_unit"] or 0), str(row["sorted_at"]))


def fetch_columns(query, *attrs) -> dict:
    """``query``'s ``attrs`` (plain-typed: numbers, strings, dates; no codecs) as one list per
    attribute, read straight from the driver's rows: DataJoint's fetch decodes every value of
    every row in Python, which costs more than the query for a few thousand rows."""
    sql = query.proj(*attrs).make_sql()
    rows = query.connection.query(sql, as_dict=True).fetchall()
    return {a: [r[a] for r in rows] for a in attrs}


def insert_probe_rows(table, key: dict, master: dict | None = None, columns: dict | None = None, part=None, encoded=()):
    """A per-probe make's insert: the master row (``key`` and ``master``) and one part row per unit
    (``columns``: equal-length arrays or lists, NaN as NULL), each as one SQL statement (see
    :func:`pipeline.ingest.bulk.insert_frame`: no per-row checks in Python; the database checks keys
    and types)."""
    import pandas as pd

    from .ingest.bulk import insert_frame

    insert_frame(table, pd.DataFrame([{**key, **(master or {})}]))
    if columns is not None:
        n = len(next(iter(columns.values()))) if columns else 0
        frame = pd.DataFrame({**{k: [v] * n for k, v in key.items()}, **columns})
        insert_frame(part if part is not None else table.Unit, frame, encoded=encoded)


class _PerProbe:
    """What the per-probe computed tables share: a small fingerprint as make_fetch, and the master
    row plus one part row per unit as make_insert (the part named by ``unit_part``; make_compute
    returns the part's columns)."""

    unit_part = "Unit"

    @property
    def key_source(self):  # DataJoint's default, without rebuilding Clustering's heading per populate
        return Clustering.proj()

    def make_fetch(self, key):
        return (_fingerprint(key),)

    def make_insert(self, key, columns):
        insert_probe_rows(self, key, columns=columns, part=getattr(self, self.unit_part))


@schema
class UnitStat(_PerProbe, dj.Computed):
    """Firing rate and ISI violations of every unit of a clustering, from its spikes.

    These are the pipeline's own numbers for every sorter; a sorter's own ``firing_rate`` /
    ``isi_viol`` (metrics.csv) stay in Clustering.ClusterMetric. UnitPassingCriteria uses these,
    so units of every sorter are judged by one definition."""

    definition = """
    -> Clustering
    """

    class Unit(dj.Part):
        """One unit's statistics."""

        definition = """
        -> master
        -> Clustering.Unit
        ---
        avg_firing_rate : float64        # Hz: spikes in the clustering's trials / their total duration
        isi_violation = null : float64   # (#ISI < 2 ms / (2 N 2 ms)) / rate: fraction of contaminating spikes
        """

    def make_compute(self, key, fingerprint):
        from .analysis.spikes import unit_stats

        p = probe_spikes(key, fingerprint)
        rate, isi = unit_stats(p, _probe_durations(key, p))
        return (dict(unit=p.units, avg_firing_rate=rate, isi_violation=isi),)


@schema
class UnitCellType(_PerProbe, dj.Computed):
    """Putative cell type of every unit from its mean waveform's trough-to-peak time (x100 spline
    upsampling; < 0.4 ms: FS, else Pyr; units without a waveform: not classified)."""

    definition = """
    -> Clustering
    """

    class Unit(dj.Part):
        """One unit's cell type."""

        definition = """
        -> master
        -> Clustering.Unit
        ---
        -> CellType
        trough_to_peak = null : float64   # ms
        """

    def make_compute(self, key, fingerprint):
        import numpy as np

        from .analysis.spikes import cell_types, trough_to_peak_ms

        units, waves = (Clustering.Unit & key).to_arrays("unit", "waveform", order_by="unit")
        fs = float((Clustering & key).fetch1("sampling_rate"))
        waves = [None if w is None else np.asarray(w, dtype=np.float64).ravel() for w in waves]
        ttp = np.full(len(units), np.nan)
        for n in {len(w) for w in waves if w is not None}:  # one vectorised call per waveform length
            idx = [k for k, w in enumerate(waves) if w is not None and len(w) == n]
            ttp[idx] = trough_to_peak_ms(np.stack([waves[k] for k in idx]), fs)
        return (dict(unit=np.asarray(units, dtype=np.int64), cell_type=cell_types(ttp), trough_to_peak=ttp),)


@schema
class MAPClusterMetric(_PerProbe, dj.Computed):
    """Metrics the MAP project computed itself (spec 5)."""

    definition = """
    -> Clustering
    """

    class DriftMetric(dj.Part):
        """Fraction of 6-trial blocks whose spike count is in a 5 % Poisson tail of the unit's mean rate."""

        definition = """
        -> master
        -> Clustering.Unit
        ---
        drift_metric = null : float64
        """

    unit_part = "DriftMetric"

    def make_compute(self, key, fingerprint):
        from .analysis.spikes import drift_metric

        p = probe_spikes(key, fingerprint)
        return (dict(unit=p.units, drift_metric=drift_metric(p, _probe_durations(key, p))),)


@schema
class UnitPassingCriteria(_PerProbe, dj.Computed):
    """Whether each unit passes its region's quality criteria (spec 5: amplitude, firing rate,
    presence ratio, ISI violation, amplitude cutoff for Medulla, ALM, Midbrain, Thalamus and
    Striatum; units of other regions, or of insertions without a recorded region, pass). A unit
    lacking a value it is judged on (no metrics.csv row) does not pass."""

    definition = """
    -> Clustering
    ---
    region = null : varchar(32)    # the insertion's RecordableBrainRegion whose criteria applied
    """

    class Unit(dj.Part):
        """One unit's verdict."""

        definition = """
        -> master
        -> Clustering.Unit
        ---
        criteria_passed : bool
        """

    @property
    def key_source(self):
        return Clustering & UnitStat

    def make_compute(self, key, fingerprint):
        import numpy as np

        from .analysis.spikes import CRITERIA, passing_criteria

        regions = [r for r in (ProbeInsertion.RecordableBrainRegion & key).to_arrays("brain_area")]
        region = next((r for r in regions if r in CRITERIA), regions[0] if regions else None)
        units, amp = (Clustering.Unit & key).to_arrays("unit", "unit_amp", order_by="unit")

        def cols(table, *attrs):  # the attributes per unit, NaN where the unit has no row or NULL
            got = fetch_columns(table & _ckey(key), "unit", *attrs)
            pos = {u: k for k, u in enumerate(got["unit"])}
            rows = [pos.get(u) for u in units]
            return [
                np.array([np.nan if r is None or got[a][r] is None else got[a][r] for r in rows], dtype=np.float64)
                for a in attrs
            ]

        rate, isi = cols(UnitStat.Unit, "avg_firing_rate", "isi_violation")
        presence, cutoff = cols(Clustering.ClusterMetric, "presence_ratio", "amplitude_cutoff")
        amp = np.array([np.nan if a is None else a for a in amp], dtype=np.float64)
        ok = passing_criteria(region, amp, rate, presence, isi, cutoff)
        return region, dict(unit=np.asarray(units, dtype=np.int64), criteria_passed=np.asarray(ok, dtype=bool))

    def make_insert(self, key, region, columns):
        insert_probe_rows(self, key, master=dict(region=region), columns=columns)


def _none(x):
    """NaN -> None (NULL), numpy -> float."""
    import math

    x = float(x)
    return None if math.isnan(x) else x


@schema
class TrialEvent(dj.Manual):
    """An event of a behaviour trial as the ephys system timed it: the foraging rigs' bitcode file
    (``digMarkerPerTrial`` with its ``headings``: bitcodestart, go, choice, reward, trialend, ...;
    ``zaberPerTrial`` pulses as 'zaberstep'), in s on the recording's (NIDQ) clock as the file gives
    them, so that spikes can be aligned to any event, the inter-trial interval included (the
    behaviour files' own times are per trial). Loaded with the insertion whose file carries them."""

    definition = """
    -> ProbeInsertion
    -> experiment.SessionTrial
    trial_event_id : int32             # the digMarkerPerTrial column; zaber pulses numbered after them
    ---
    -> experiment.TrialEventType
    trial_event_time : float64         # s, the recording's clock
    """


@schema
class ActionEvent(dj.Manual):
    """A lick as the ephys system timed it (the foraging rigs' ``lick{L,R,M}PerTrial``), in s on the
    recording's clock; numbered per trial in time order."""

    definition = """
    -> ProbeInsertion
    -> experiment.SessionTrial
    action_event_id : int32
    ---
    -> experiment.ActionEventType
    action_event_time : float64        # s, the recording's clock
    """


db.register("ephys", schema)
