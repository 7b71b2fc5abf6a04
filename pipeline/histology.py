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


db.register("histology", schema)
