"""``mapshell demo``: the main job end to end on sample data, in schemas of its own.

It runs against whatever database is configured (the embedded one by default) but under the
schema prefix ``map_demo_``, so it never touches a lab's real ``map_v2_`` schemas. Each ingest
step of the pipeline adds its part here as it is built.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

from . import config, db, embedded

log = logging.getLogger(__name__)

DEMO_PREFIX = "map_demo_"


def demo_folder() -> Path:
    return embedded.data_dir() / "demo"


def run(prefix: str = DEMO_PREFIX, fresh: bool = False, out=print) -> dict[str, int]:
    """Run the demo; returns row counts of the main tables. ``fresh`` drops the demo schemas first."""

    import numpy as np
    import pandas as pd

    from .ingest.animals import load_animals
    from .ingest.behavior import ingest_behavior, ingest_foraging
    from .ingest.ephys import ingest_ephys
    from .ingest.insertion_location import load_insertion_locations
    from .ingest.tracking import ingest_tracking
    from .synthetic.animals import make_animals, write_animals
    from .synthetic.bpod_delay_response import write_session_file
    from .synthetic.dlc import write_tracking_session
    from .synthetic.pybpod import write_foraging_day, write_subject_meta
    from .synthetic.sorting import write_kilosort
    from .synthetic.spikeglx import write_bitcode_mat, write_meta

    t0 = time.perf_counter()
    conn = db.connect()
    out(f"database: {db.target()}")
    if fresh:
        db.drop_prefix(prefix, conn)
    names = db.activate_all(prefix, conn)
    out(f"schemas: {', '.join(names.values())}")
    from . import experiment, lab

    folder = demo_folder()
    lab.Person.insert1(dict(username="demo", fullname="MAP demo user"), skip_duplicates=True)
    lab.Rig.insert(
        [
            dict(rig=r, room="demo", rig_description=d)
            for r, d in (("RRig", "delay-response ephys rig"), ("Tower-2", "foraging training tower"))
        ],
        skip_duplicates=True,
    )
    animals = make_animals(n=5, seed=1)
    sheet = write_animals(folder / "animals.xlsx", animals)
    summaries = []
    out(f"step 1/10  load-animal {sheet}")
    summaries.append(load_animals(sheet))
    out("          " + summaries[-1].line())

    rig_dir = folder / "rigs" / "RRig"
    short = str(animals["water_restriction_number"].iloc[4])  # one short session (11 trials), as a real rig test file
    if not any(rig_dir.glob(f"{short}_tw2_*.mat")):
        write_session_file(rig_dir, h2o=short, when=dt.datetime(2024, 6, 5, 10, 25, 8), n_trials=11, seed=25)
    truths = {}  # the generated rig files' ground truth (the probe's units respond to the first one)
    for k, h2o in enumerate(animals["water_restriction_number"][:3]):
        for day in range(2):
            for f in range(1 + (day + k) % 2):  # some days have two rig files (one session)
                when = dt.datetime(2024, 6, 3 + day, 9 + 3 * f, 15 * k, 0)
                n_trials = 160 if (k, day) == (0, 0) else 60  # the ephys session: enough trials for PSTHs
                if not (rig_dir / f"{h2o}_tw2_{when:%Y%m%d_%H%M%S}.mat").exists():
                    truths[(h2o, day)] = write_session_file(
                        rig_dir, h2o=h2o, when=when, n_trials=n_trials, seed=100 * k + 10 * day + f
                    )
    out(f"step 2/10  ingest-behavior {rig_dir} (generated rig files)")
    summaries.append(ingest_behavior([["RRig", str(rig_dir), 0]]))
    out("          " + summaries[-1].line())

    bpod = folder / "bpod"
    forager = str(animals["water_restriction_number"].iloc[3])
    days = [dt.date(2024, 6, 10 + d) for d in range(3)]
    if not (bpod / "Metadata" / f"{forager}.csv").exists():
        for d, day in enumerate(days):
            write_foraging_day(
                bpod / "Tower-2" / "Foraging",
                h2o=forager,
                date=day,
                n_sessions=1 + d % 2,
                trials_per_session=80,
                three_lickports=d == 2,
                seed=d,
            )
        write_subject_meta(bpod / "Metadata", forager, days)
    out(f"step 3/10  ingest-foraging {bpod} (generated pybpod sessions)")
    summaries.append(
        ingest_foraging(dict(meta_dir=str(bpod / "Metadata"), project_paths=[str(bpod / "Tower-2" / "Foraging")]))
    )
    out("          " + summaries[-1].line())

    # ephys: a Neuropixels 1.0 probe with a Kilosort sorting for the first generated session
    from . import ephys, tracking

    h2o0 = str(animals["water_restriction_number"][0])
    sess = (experiment.Session * lab.WaterRestriction & {"water_restriction_number": h2o0}).to_dicts(
        order_by="session"
    )[0]
    skey = dict(subject_id=sess["subject_id"], session=sess["session"])
    notes = (experiment.TrialNote & skey & {"trial_note_type": "bitcode"}).to_pandas().reset_index()
    notes = notes.sort_values("trial")
    ephys_root = folder / "ephys"
    pdir = ephys_root / h2o0 / sess["session_date"].strftime("%Y%m%d") / "1"
    if not (pdir / "kilosort2").exists():
        from .synthetic.responses import make_planted_probe

        meta = write_meta(pdir / f"{h2o0}_g0_tcat.imec0.ap.meta", probe="np1", seed=1)
        # 40 units that respond to the task (contra-, ipsi- or non-selective in a known period)
        planted = make_planted_probe(truths[(h2o0, 0)], hemisphere="left", n_contra=16, n_ipsi=12, n_non=12, seed=3)
        first = 3_000_000
        write_bitcode_mat(
            pdir / f"{h2o0}_g0_bitcode.mat",
            list(notes["trial_note"]),
            trial_start_s=planted.trials["trial_start"],
            go_s=planted.trials["go_time"],
            first_sample=first,
            seed=2,
        )
        trains = [u.spike_times + first / planted.sample_rate for u in planted.units]
        duration = float(max(t.max() for t in trains)) + 5.0
        from .io.spikeglx import read_meta

        read = read_meta(meta.path)
        write_kilosort(pdir / "kilosort2", trains=trains, duration_s=duration, seed=3, positions=np.c_[read.x, read.y])
    out(f"step 4/10  ingest-ephys {ephys_root} (generated SpikeGLX meta, Kilosort output, bitcode sync)")
    summaries.append(ingest_ephys([str(ephys_root)]))
    out("          " + summaries[-1].line())
    locations = folder / "recording_notes.csv"
    pd.DataFrame(
        [
            dict(
                water_restriction_number=h2o0,
                session_date=sess["session_date"],
                insertion_number=1,
                skull_reference="Bregma",
                ap_location=2500,
                ml_location=-1500,
                depth=2800,
                theta=15,
                phi=0,
                brain_area="ALM",
                hemisphere="left",
                alignment_confidence="yes",
                good_period="0-end",
            )
        ]
    ).to_csv(locations, index=False)
    out(f"step 5/10  load-insertion-location {locations}")
    summaries.append(load_insertion_locations(locations))
    out("          " + summaries[-1].line())
    video = folder / "video"
    trials = sorted(int(t) for t in (experiment.SessionTrial & skey).to_arrays("trial"))
    if not (video / h2o0).exists():
        write_tracking_session(
            video, h2o0, sess["session_date"], trials, seed=4, frames_per_trial=(100, 150), glitches=("jaw",)
        )
    out(f"step 6/10  ingest-tracking {video} (generated DeepLabCut output, 2 cameras, 3 jaw outliers a trial)")
    summaries.append(ingest_tracking([["RRig", str(video)]]))
    out("          " + summaries[-1].line())

    tracking.TrackingQC.populate(display_progress=False)
    qc = (tracking.TrackingQC.Trial & skey).to_arrays("feature", "n_bad")
    out(
        "          tracking QC: "
        + ", ".join(f"{f} {int(qc[1][qc[0] == f].sum())} bad frames" for f in sorted(set(qc[0])))
        + " (jumps > 20 px; tracking.TrackingQC)"
    )

    # CCF: a generated Allen-shaped annotation (full extent at 100 um) and its ontology
    from . import ccf, histology
    from .ingest.histology import ingest_histology
    from .synthetic.ccf import write_annotation_nrrd, write_ontology_csv
    from .synthetic.histology import write_ibl_alignment

    ccf_paths = dict(
        version_name="CCF_2017",
        region_csv=str(folder / "ccf" / "structure_tree.csv"),
        annotation_nrrd=str(folder / "ccf" / "annotation_100um.nrrd"),
    )
    if not Path(ccf_paths["annotation_nrrd"]).exists():
        write_ontology_csv(ccf_paths["region_csv"])
        write_annotation_nrrd(ccf_paths["annotation_nrrd"], shape=(132, 80, 114), voxel_um=100, seed=0)
    out(f"step 7/10  ccfload {folder / 'ccf'} (generated ontology and annotation volume)")
    n_regions = ccf.CCFBrainRegion.load_regions(ccf_paths)
    fresh_volume = ccf.CCFAnnotation.load_ccf_annotation(ccf_paths)
    out(f"          regions: {n_regions} added; annotation: {'loaded' if fresh_volume else 'already loaded'}")
    if not any(pdir.glob("*channel_locations*.json")):
        write_ibl_alignment(pdir, n_channels=384, seed=7)
    histology_root = folder / "histology"
    histology_root.mkdir(exist_ok=True)
    out(f"step 8/10  ingest-histology {histology_root} (generated IBL alignment in the probe folder)")
    summaries.append(ingest_histology([str(histology_root)]))
    out("          " + summaries[-1].line())
    from . import psth
    from .compute import populate_psth

    out("step 9/10  populate-psth (unit statistics, cell types, drift, criteria, PSTHs, selectivity)")
    summaries.append(populate_psth())
    out("          " + summaries[-1].line())
    rates = ephys.UnitStat.Unit.to_arrays("avg_firing_rate")
    types = ephys.UnitCellType.Unit.to_arrays("cell_type")
    sel = psth.UnitSelectivity.Unit.to_arrays("unit_selectivity")
    if len(rates):
        out(
            f"          {len(rates)} units: median rate {float(np.median(rates)):.1f} Hz; "
            f"{int((types == 'FS').sum())} FS, {int((types == 'Pyr').sum())} Pyr; "
            f"{int((sel != 'non-selective').sum())} of {len(sel)} selective; "
            f"{len(psth.UnitPsth())} condition PSTHs"
        )
    from . import report
    from .reporting import generate, sync

    out("step 10/10 generate-report and sync-report (the figures of every session, probe and unit)")
    summaries.append(generate())
    out("          " + summaries[-1].line())
    figures_folder = folder / "report"
    synced = sync(figures_folder)
    out(
        f"          {len(report.SessionReport.Figure()) + len(report.ProbeReport.Figure())} session and probe figures, "
        f"{len(report.UnitReport.Figure())} unit figures; PNGs in {figures_folder}"
    )
    for s_ in summaries:
        if not s_.ok:
            out(s_.report())

    counts = {
        "lab.Person": len(lab.Person()),
        "lab.Rig": len(lab.Rig()),
        "lab.Subject": len(lab.Subject()),
        "lab.WaterRestriction": len(lab.WaterRestriction()),
        "lab.ProbeType": len(lab.ProbeType()),
        "lab.ProbeType.Electrode": len(lab.ProbeType.Electrode()),
        "experiment.Task": len(experiment.Task()),
        "experiment.TaskProtocol": len(experiment.TaskProtocol()),
        "experiment.Session": len(experiment.Session()),
        "experiment.SessionTrial": len(experiment.SessionTrial()),
        "experiment.TrialEvent": len(experiment.TrialEvent()),
        "experiment.ActionEvent": len(experiment.ActionEvent()),
        "experiment.PhotostimEvent": len(experiment.PhotostimEvent()),
        "experiment.SessionBlock": len(experiment.SessionBlock()),
        "ephys.ProbeInsertion": len(ephys.ProbeInsertion()),
        "ephys.Unit": len(ephys.Unit()),
        "ephys.Clustering.Trial": len(ephys.Clustering.Trial()),
        "tracking.Tracking": len(tracking.Tracking()),
        "tracking.TrackingQC.Trial": len(tracking.TrackingQC.Trial()),
        "ccf.CCFBrainRegion": len(ccf.CCFBrainRegion()),
        "histology.ElectrodePosition": len(histology.ElectrodeCCFPosition.ElectrodePosition()),
        "histology.LabeledProbeTrack.Point": len(histology.LabeledProbeTrack.Point()),
        "histology.unit_ccf()": len(histology.unit_ccf()),
        "ephys.UnitStat.Unit": len(ephys.UnitStat.Unit()),
        "psth.UnitPsth.Unit": len(psth.UnitPsth.Unit()),
        "psth.UnitSelectivity.Unit": len(psth.UnitSelectivity.Unit()),
        "report.figures": sum(len(t.Figure()) for t in report.TABLES),
    }
    out("\nsummary (rows per table):")
    for k, v in counts.items():
        out(f"  {k:<34} {v:>7}")
    out(
        f"\ndemo finished in {time.perf_counter() - t0:.1f} s. Explore it with:\n"
        f"  MAP_SCHEMA_PREFIX={prefix} mapshell shell\n"
        f"  MAP_SCHEMA_PREFIX={prefix} mapshell navigator      (then open http://127.0.0.1:8765/)"
    )
    if not synced.ok:
        summaries.append(synced)
    if not all(s_.ok for s_ in summaries):
        raise RuntimeError("demo: a step failed (see above)")
    return counts


__all__ = ["run", "DEMO_PREFIX", "config"]
