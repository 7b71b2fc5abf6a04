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
# (DataJoint hashes it twice), make_compute loads and computes outside the transaction,
# make_insert writes. The numbers come from pipeline.analysis (pure functions, tested alone).

_spike_cache: dict = {}


def probe_spikes(key: dict):
    """The clustering's spike times and trials as one :class:`~pipeline.analysis.spikes.ProbeSpikes`
    (cached for the probe last asked for: the computed tables of one probe share one load). Each
    spike's trial follows from the trial starts by the ingest's own rule, so the per-spike trial
    arrays need not be loaded."""
    import numpy as np

    from .analysis.spikes import ProbeSpikes

    ckey = {k: key[k] for k in ("subject_id", "session", "insertion_number")}
    token = (Clustering.database, tuple(ckey.values()), str((Clustering & ckey).fetch1("clustering_time")))
    if _spike_cache.get("token") == token:
        return _spike_cache["spikes"]
    _spike_cache.clear()
    units, counts = (Clustering.Unit & ckey).to_arrays("unit", "n_spikes", order_by="unit")
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    times = np.empty(int(offsets[-1]), dtype=np.float64)
    refs = (Clustering.Unit & ckey).to_arrays("spike_times", order_by="unit")
    for k, t in enumerate(refs):  # one unit at a time into one preallocated array
        times[offsets[k] : offsets[k + 1]] = np.asarray(t)
    del refs
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


def trial_durations(key: dict):
    """Durations (s) of the clustering's trials, in trial order (SessionTrial stop - start)."""
    import numpy as np

    rows = (experiment.SessionTrial * Clustering.Trial.proj() & key).to_arrays(
        "start_time", "stop_time", order_by="trial"
    )
    return np.asarray(rows[1], dtype=np.float64) - np.asarray(rows[0], dtype=np.float64)


def _fingerprint(key: dict) -> tuple:
    """What a per-probe make depends on (units, spikes, trials, sorting time): two small queries, small
    enough for DataJoint to hash twice."""
    ckey = {k: key[k] for k in ("subject_id", "session", "insertion_number")}
    row = (
        (Clustering & ckey)
        .proj()
        .aggr(Clustering.Unit, n_units="count(*)", n_spikes="sum(n_spikes)", last_unit="max(unit)")
        .fetch1()
    )
    when = (Clustering & ckey).fetch1("clustering_time")
    return (int(row["n_units"]), int(row["n_spikes"] or 0), int(row["last_unit"] or 0), str(when))


class _PerProbe:
    """What the per-probe computed tables share: a small fingerprint as make_fetch, and the master
    row plus one part row per unit as make_insert (the part named by ``unit_part``)."""

    unit_part = "Unit"

    def make_fetch(self, key):
        return (_fingerprint(key),)

    def make_insert(self, key, rows):
        self.insert1(key)
        getattr(self, self.unit_part).insert([dict(key, **r) for r in rows])


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

        p = probe_spikes(key)
        rate, isi = unit_stats(p, trial_durations(key))
        return (
            [
                dict(unit=int(u), avg_firing_rate=float(r), isi_violation=_none(v))
                for u, r, v in zip(p.units, rate, isi)
            ],
        )


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
        ttp = np.full(len(units), np.nan)
        have = [k for k, w in enumerate(waves) if w is not None]
        lengths = {len(np.asarray(waves[k]).ravel()) for k in have}
        for n in lengths:  # one vectorised call per waveform length (one per sorter in practice)
            idx = [k for k in have if len(np.asarray(waves[k]).ravel()) == n]
            ttp[idx] = trough_to_peak_ms(np.stack([np.asarray(waves[k], dtype=np.float64).ravel() for k in idx]), fs)
        types = cell_types(ttp)
        return ([dict(unit=int(u), cell_type=str(c), trough_to_peak=_none(t)) for u, c, t in zip(units, types, ttp)],)


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

        p = probe_spikes(key)
        drift = drift_metric(p, trial_durations(key))
        return ([dict(unit=int(u), drift_metric=_none(d)) for u, d in zip(p.units, drift)],)


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

        def col(table, attr):  # the attribute per unit, NaN where the unit has no row
            values = dict(zip(*(table & key).to_arrays("unit", attr)))
            return np.array([np.nan if values.get(u) is None else values[u] for u in units], dtype=np.float64)

        ok = passing_criteria(
            region,
            np.array([np.nan if a is None else a for a in amp], dtype=np.float64),
            col(UnitStat.Unit, "avg_firing_rate"),
            col(Clustering.ClusterMetric, "presence_ratio"),
            col(UnitStat.Unit, "isi_violation"),
            col(Clustering.ClusterMetric, "amplitude_cutoff"),
        )
        return region, [dict(unit=int(u), criteria_passed=bool(v)) for u, v in zip(units, ok)]

    def make_insert(self, key, region, rows):
        self.insert1(dict(key, region=region))
        self.Unit.insert([dict(key, **r) for r in rows])


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
