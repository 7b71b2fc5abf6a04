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


db.register("ephys", schema)
