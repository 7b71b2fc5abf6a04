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
SAMPLE_DATA = Path(__file__).parent / "sample_data"


def demo_folder() -> Path:
    return embedded.data_dir() / "demo"


def run(prefix: str = DEMO_PREFIX, fresh: bool = False, out=print) -> dict[str, int]:
    """Run the demo; returns row counts of the main tables. ``fresh`` drops the demo schemas first."""
    import shutil

    import pandas as pd

    from .ingest.animals import load_animals
    from .ingest.behavior import ingest_behavior
    from .synthetic.animals import make_animals, write_animals
    from .ingest.foraging import ingest_foraging
    from .synthetic.bpod_delay_response import write_session_file
    from .synthetic.pybpod import write_foraging_day, write_subject_meta

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
        [dict(rig=r, room="demo", rig_description=d) for r, d in
         (("RRig", "delay-response ephys rig"), ("Tower-2", "foraging training tower"))],
        skip_duplicates=True)
    animals = make_animals(n=4, seed=1)
    real = animals.iloc[[0]].assign(subject_id=1025, water_restriction_number="dl25")  # owner of the real file
    sheet = write_animals(folder / "animals.xlsx", pd.concat([animals, real], ignore_index=True))
    summaries = []
    out(f"step 1/3  load-animal {sheet}")
    summaries.append(load_animals(sheet))
    out("          " + summaries[-1].line())

    rig_dir = folder / "rigs" / "RRig"
    shutil.copy(SAMPLE_DATA / "dl25_tw2_20180225_102508.mat", rig_dir.mkdir(parents=True, exist_ok=True) or rig_dir)
    for k, h2o in enumerate(animals["water_restriction_number"][:3]):
        for day in range(2):
            for f in range(1 + (day + k) % 2):  # some days have two rig files (one session)
                when = dt.datetime(2024, 6, 3 + day, 9 + 3 * f, 15 * k, 0)
                if not (rig_dir / f"{h2o}_tw2_{when:%Y%m%d_%H%M%S}.mat").exists():
                    write_session_file(rig_dir, h2o=h2o, when=when, n_trials=60, seed=100 * k + 10 * day + f)
    out(f"step 2/3  ingest-behavior {rig_dir} (generated rig files + the real dl25 file)")
    summaries.append(ingest_behavior([["RRig", str(rig_dir), 0]]))
    out("          " + summaries[-1].line())

    bpod = folder / "bpod"
    forager = str(animals["water_restriction_number"].iloc[3])
    days = [dt.date(2024, 6, 10 + d) for d in range(3)]
    if not (bpod / "Metadata" / f"{forager}.csv").exists():
        for d, day in enumerate(days):
            write_foraging_day(bpod / "Tower-2" / "Foraging", h2o=forager, date=day, n_sessions=1 + d % 2,
                               trials_per_session=80, three_lickports=d == 2, seed=d)
        write_subject_meta(bpod / "Metadata", forager, days)
    out(f"step 3/3  ingest-foraging {bpod} (generated pybpod sessions)")
    summaries.append(ingest_foraging(dict(meta_dir=str(bpod / "Metadata"),
                                          project_paths=[str(bpod / "Tower-2" / "Foraging")])))
    out("          " + summaries[-1].line())
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
    }
    out("\nsummary (rows per table):")
    for k, v in counts.items():
        out(f"  {k:<28} {v:>7}")
    out(f"\ndemo finished in {time.perf_counter() - t0:.1f} s. Explore it with:\n"
        f"  MAP_SCHEMA_PREFIX={prefix} mapshell shell")
    if not all(s_.ok for s_ in summaries):
        raise RuntimeError("demo: a step failed (see above)")
    return counts


__all__ = ["run", "DEMO_PREFIX", "config"]
