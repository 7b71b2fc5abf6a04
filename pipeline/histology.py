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


@schema
class InterpolatedElectrodeCCF(dj.Computed):
    """Every electrode of the insertion's configuration in the CCF: where the histology placed it,
    else linearly interpolated (or extrapolated) along its shank from the placed electrodes of its
    (shank, column), or of its shank when the column has fewer than two, rounded to 20 um; with the
    region at that position. Electrodes of a shank with fewer than two placed stay unplaced (counted).
    """

    definition = """
    -> ElectrodeCCFPosition
    ---
    n_placed : int32                   # placed by the histology
    n_interpolated : int32
    n_unplaced : int32                 # on shanks with fewer than two placed electrodes
    """

    class Electrode(dj.Part):
        """One electrode's CCF position (um; x = ML, y = DV, z = AP) and region."""

        definition = """
        -> master
        -> lab.ElectrodeConfig.Electrode
        ---
        ccf_x : int32
        ccf_y : int32
        ccf_z : int32
        region_id : int32              # Allen region id (0: outside the brain)
        interpolated : bool
        """

    @property
    def key_source(self):
        return ElectrodeCCFPosition.proj() & (ElectrodeCCFPosition * ccf.CCFAnnotation.proj())

    def make_fetch(self, key):
        config = (ephys.ProbeInsertion & key).proj("probe_type", "electrode_config_name")
        electrodes = (lab.ElectrodeConfig.Electrode * lab.ProbeType.Electrode & config).proj(
            "shank", "shank_col", "y_coord"
        )
        placed = (ElectrodeCCFPosition.ElectrodePosition & key).proj("ccf_x", "ccf_y", "ccf_z", "region_id")
        version = (ElectrodeCCFPosition & key).fetch1("annotation_version")
        return (
            electrodes.to_pandas().reset_index(),
            placed.to_pandas().reset_index(),
            version,
        )

    def make_compute(self, key, electrodes, placed, version):
        import numpy as np

        from .analysis.probe_track import interpolate_positions

        cols = ["probe_type", "electrode_config_name", "electrode_group", "electrode"]
        e = electrodes.merge(placed, on=cols, how="left").sort_values("electrode")
        known = e.ccf_x.notna().to_numpy()
        xyz = e[["ccf_x", "ccf_y", "ccf_z"]].to_numpy(dtype=np.float64)
        shank = e.shank.to_numpy()
        group = shank * 10_000 + e.shank_col.to_numpy()
        out, ok = interpolate_positions(group, e.y_coord.to_numpy(), known, xyz, fallback=shank)
        new = ok & ~known
        region = e.region_id.to_numpy(dtype=np.float64, copy=True)
        if new.any():
            region[new] = ccf.region_at(out[new], version)
        e = e.assign(ccf_x=out[:, 0], ccf_y=out[:, 1], ccf_z=out[:, 2], region_id=region, interpolated=new)[ok]
        rows = [
            dict(
                probe_type=r.probe_type,
                electrode_config_name=r.electrode_config_name,
                electrode_group=int(r.electrode_group),
                electrode=int(r.electrode),
                ccf_x=int(r.ccf_x),
                ccf_y=int(r.ccf_y),
                ccf_z=int(r.ccf_z),
                region_id=int(r.region_id),
                interpolated=bool(r.interpolated),
            )
            for r in e.itertuples()
        ]
        return rows, int(known.sum()), int(new.sum()), int((~ok).sum())

    def make_insert(self, key, rows, n_placed, n_interpolated, n_unplaced):
        self.insert1(dict(key, n_placed=n_placed, n_interpolated=n_interpolated, n_unplaced=n_unplaced))
        self.Electrode.insert([dict(key, **r) for r in rows])


@schema
class InterpolatedShankTrack(dj.Computed):
    """Each shank's straight track through the brain: a least-squares line ML(DV), AP(DV) through
    the electrodes the histology placed and the shank's labelled track points, sampled every 20 um
    of DV from the top of the volume down to the deepest placed electrode, keeping the points
    inside the annotated brain; the first of them is where the shank entered the brain."""

    definition = """
    -> ElectrodeCCFPosition
    """

    class Shank(dj.Part):
        """One shank's fitted track (um: ML = ml_per_dv * DV + ml_at_dv0, AP likewise)."""

        definition = """
        -> master
        shank : int32
        ---
        n_fitted : int32               # electrodes and track points the line was fitted to
        ml_per_dv : float64
        ml_at_dv0 : float64
        ap_per_dv : float64
        ap_at_dv0 : float64
        surface_x = null : int32       # the brain surface point (null: the track never enters the brain)
        surface_y = null : int32
        surface_z = null : int32
        deepest_x : int32              # the track at the deepest electrode's depth
        deepest_y : int32
        deepest_z : int32
        """

    class Point(dj.Part):
        """One point of a shank's track inside the brain (order 0: the brain surface)."""

        definition = """
        -> master.Shank
        point_order : int32
        ---
        ccf_x : int32
        ccf_y : int32
        ccf_z : int32
        region_id : int32
        """

    @property
    def key_source(self):
        return ElectrodeCCFPosition.proj() & (ElectrodeCCFPosition * ccf.CCFAnnotation.proj())

    def make_fetch(self, key):
        electrodes = (ElectrodeCCFPosition.ElectrodePosition * lab.ProbeType.Electrode & key).proj(
            "shank", "ccf_x", "ccf_y", "ccf_z"
        )
        track = (LabeledProbeTrack.Point & key).proj("ccf_x", "ccf_y", "ccf_z")
        version = (ElectrodeCCFPosition & key).fetch1("annotation_version")
        return (
            electrodes.to_arrays("shank", "ccf_x", "ccf_y", "ccf_z"),
            track.to_arrays("shank", "ccf_x", "ccf_y", "ccf_z"),
            version,
        )

    def make_compute(self, key, electrodes, track, version):
        import numpy as np

        from .analysis.probe_track import fit_track, sample_track

        e = np.c_[tuple(np.asarray(a, dtype=np.float64) for a in electrodes)]
        t = np.c_[tuple(np.asarray(a, dtype=np.float64) for a in track)] if len(track[0]) else np.empty((0, 4))
        shanks, points = [], []
        for shank in np.unique(e[:, 0]).astype(int):
            mine = e[e[:, 0] == shank, 1:]
            fitted = np.vstack([mine, t[t[:, 0] == shank, 1:]])
            try:
                fit = fit_track(fitted)
            except ValueError:  # all at one depth: no direction
                continue
            deepest = float(mine[:, 1].max())
            line = sample_track(fit, deepest)
            regions = ccf.region_at(line, version)
            inside = np.flatnonzero(regions != 0)
            a_ml, b_ml, a_ap, b_ap = fit
            bottom = np.round(np.array([a_ml * deepest + b_ml, deepest, a_ap * deepest + b_ap]) / 20) * 20
            surface = line[inside[0]] if len(inside) else (None, None, None)
            shanks.append(
                dict(
                    shank=int(shank),
                    n_fitted=len(fitted),
                    ml_per_dv=a_ml,
                    ml_at_dv0=b_ml,
                    ap_per_dv=a_ap,
                    ap_at_dv0=b_ap,
                    surface_x=None if surface[0] is None else int(surface[0]),
                    surface_y=None if surface[1] is None else int(surface[1]),
                    surface_z=None if surface[2] is None else int(surface[2]),
                    deepest_x=int(bottom[0]),
                    deepest_y=int(bottom[1]),
                    deepest_z=int(bottom[2]),
                )
            )
            points += [
                dict(
                    shank=int(shank),
                    point_order=k,
                    ccf_x=int(line[i, 0]),
                    ccf_y=int(line[i, 1]),
                    ccf_z=int(line[i, 2]),
                    region_id=int(regions[i]),
                )
                for k, i in enumerate(inside)
            ]
        return shanks, points

    def make_insert(self, key, shanks, points):
        self.insert1(key)
        self.Shank.insert([dict(key, **s) for s in shanks])
        self.Point.insert([dict(key, **p) for p in points])


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
