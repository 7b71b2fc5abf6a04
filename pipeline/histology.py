"""histology: where the electrodes and the probe track ended up in the Allen CCF."""

import datajoint as dj

from . import ccf, db, ephys, lab  # noqa: F401  (referenced in the table definitions)

schema = dj.Schema()


@schema
class ElectrodeCCFPosition(dj.Manual):
    """The CCF positions of an insertion's electrodes (from the histology alignment)."""

    definition = """
    -> ephys.ProbeInsertion
    ---
    -> ccf.AnnotationVersion
    """

    class ElectrodePosition(dj.Part):
        """One electrode's CCF position (um; x = ML, y = DV, z = AP) and the region there."""

        definition = """
        -> master
        -> lab.ElectrodeConfig.Electrode
        ---
        ccf_x : int32
        ccf_y : int32
        ccf_z : int32
        region_id : int32              # Allen region id (0: outside the brain)
        """


@schema
class LabeledProbeTrack(dj.Manual):
    """The dye-labelled track of an insertion, as hand-picked points."""

    definition = """
    -> ephys.ProbeInsertion
    ---
    labeling_date = null : date
    dye_color = '' : varchar(32)
    """

    class Point(dj.Part):
        """One point of a shank's track (um, CCF)."""

        definition = """
        -> master
        shank : int32
        point_order : int32
        ---
        ccf_x : float64
        ccf_y : float64
        ccf_z : float64
        """


@schema
class SubjectToCCFTransformation(dj.Manual):
    """The landmarks that warp a subject's brain (histology / MRI space) onto the CCF."""

    definition = """
    -> lab.Subject
    """

    class Landmark(dj.Part):
        """One landmark pair (um)."""

        definition = """
        -> master
        landmark_name : varchar(64)
        ---
        subj_x : float64
        subj_y : float64
        subj_z : float64
        ccf_x : float64
        ccf_y : float64
        ccf_z : float64
        """


def unit_ccf():
    """Every unit with the CCF position and region of its peak electrode (a query; restrict it
    like a table, e.g. ``histology.unit_ccf() & {'acronym': 'MOs'}``). Units without a peak
    electrode or without histology are not in it."""
    from . import ccf as ccf_module

    units = ephys.Unit.proj(
        "unit_quality",
        "unit_posx",
        "unit_posy",
        "n_spikes",
        "probe_type",
        "electrode_config_name",
        "electrode_group",
        "electrode",
    )
    regions = ccf_module.CCFBrainRegion.proj("acronym", "region_name")
    placed = units * ElectrodeCCFPosition.ElectrodePosition * ElectrodeCCFPosition.proj("annotation_version")
    # region_id is a plain attribute here (0 = outside the brain is no region), so match it by name
    return placed.join(regions, semantic_check=False)


db.register("histology", schema)
