"""``mapshell demo``: the main job end to end on sample data, in schemas of its own.

It runs against whatever database is configured (the embedded one by default) but under the
schema prefix ``map_demo_``, so it never touches a lab's real ``map_v2_`` schemas. Each ingest
step of the pipeline adds its part here as it is built.
"""

from __future__ import annotations

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
    from .ingest.animals import load_animals
    from .synthetic.animals import make_animals, write_animals

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
    sheet = write_animals(folder / "animals.xlsx", make_animals(n=4, seed=1))
    out(f"step 1/1  load-animal {sheet}")
    summary = load_animals(sheet)
    out("          " + summary.line())
    if not summary.ok:
        out(summary.report())

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
    }
    out("\nsummary (rows per table):")
    for k, v in counts.items():
        out(f"  {k:<28} {v:>7}")
    out(f"\ndemo finished in {time.perf_counter() - t0:.1f} s. Explore it with:\n"
        f"  MAP_SCHEMA_PREFIX={prefix} mapshell shell")
    if not summary.ok:
        raise RuntimeError("demo: loading the sample animals failed (see above)")
    return counts


__all__ = ["run", "DEMO_PREFIX", "config"]
