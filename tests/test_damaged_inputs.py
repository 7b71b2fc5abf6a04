"""The corpus of damaged inputs (:mod:`pipeline.synthetic.damage`) through the real ``mapshell``.

For every case: the exit status; exactly one failure (or skip) line names the damaged file, with a
reason; no traceback; nothing of the damaged item in the step's tables; the good items of the same
run loaded. The ``fail`` cases of the ingest steps whose items are independent (behaviour days,
foraging days, tracking sessions, probes, insertions) share one run per step, next to good items;
every other case (skips, ccfload, the sheets, the settings file) is a run of its own.

The sheets (load-animal, load-insertion-location) are checked as a whole before anything is written
(docs/sheets.md): a damaged row fails the file and no row of it is loaded, so those cases check that
nothing of the sheet is in the database instead of good rows of it being loaded.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REAL_DATA, _clear_tables, run_mapshell

from pipeline.synthetic import damage

HAVE_REAL = REAL_DATA.is_dir() and not os.environ.get("MAP_CORPUS_NO_REAL")  # the variable: try the corpus without
REAL_CASES = [c for c in damage.CATALOGUE if c.real]
CASES = [c for c in damage.CATALOGUE if HAVE_REAL or not c.real]
GOOD_PER_RUN = 2  # good items next to the damaged ones in a run of an ingest step


# ----------------------------------------------------------------------------------- no database
def test_catalogue_covers_every_step():
    names = [c.name for c in damage.CATALOGUE]
    assert len(names) == len(set(names)) and len(names) >= 90
    per_step = {s: sum(c.step == s for c in damage.CATALOGUE) for s in damage.STEPS}
    assert all(n >= 8 for n in per_step.values()), per_step
    assert {c.outcome for c in damage.CATALOGUE} == {"fail", "skip", "settings"}
    assert all(c.outcome == "settings" for c in damage.CATALOGUE if c.step == "settings")


def test_real_sample_cases_present():
    """One line for every case built on a real sample when the samples are absent."""
    if not HAVE_REAL:
        why = "is absent" if not REAL_DATA.is_dir() else "is not used (MAP_CORPUS_NO_REAL)"
        pytest.skip(f"{len(REAL_CASES)} damaged-input cases built on real samples not run: {REAL_DATA} {why}")
    for c in REAL_CASES:
        assert (REAL_DATA / c.real).exists(), c.real


# ------------------------------------------------------------------------------- output parsing
def sections(stdout: str) -> dict[str, list[str]]:
    """The summary's item lines by section ('failed', 'skipped', 'loaded', ...)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("  ") and not line.startswith("    ") and line.rstrip().endswith(":"):
            current = line.strip()[:-1].split(" ")[0]
            out.setdefault(current, [])
        elif line.startswith("    ") and current:
            out[current].append(line.strip())
        else:
            current = None
    return out


# -------------------------------------------------------------------------------------- the runs
@dataclass
class Outcome:
    case: damage.Case
    damage: damage.Damage
    slot: damage.Slot
    run: Path
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    rows: dict[str, int]  #: rows of the damaged item per table
    good: dict[str, int] | None  #: main-table rows of each good item of the run (None: not applicable)
    seconds: float
    others: list[Path] = field(default_factory=list)  #: files damaged by the other cases of the run
    other_h2o: list[str] = field(default_factory=list)  #: animals of the run's other items

    def show(self) -> str:
        return (
            f"case {self.case.name}: {self.damage.what}\n  file {self.damage.path}\n  mapshell {' '.join(self.args)}"
            f" -> exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


def _subject(h2o: str) -> int:
    from pipeline import lab

    rows = (lab.WaterRestriction & {"water_restriction_number": h2o}).to_arrays("subject_id")
    return int(rows[0]) if len(rows) else -1


def item_rows(step: str, slot: damage.Slot, dmg: damage.Damage | None = None) -> dict[str, int]:
    """Rows of one slot's item in the step's main tables."""
    from pipeline import ccf, ephys, experiment, histology, lab, tracking
    from pipeline.ingest.behavior.tables import BehaviorBpodIngest, BehaviorIngest
    from pipeline.ingest.ephys.tables import EphysIngest
    from pipeline.ingest.histology.tables import HistologyIngest

    subject = {"subject_id": _subject(slot.h2o)} if slot.h2o else {}
    tables: dict[str, object] = {}
    if step in ("ingest-behavior", "ingest-foraging", "settings"):
        tables = {
            "experiment.Session": experiment.Session & subject,
            "experiment.SessionTrial": experiment.SessionTrial & subject,
            "experiment.BehaviorTrial": experiment.BehaviorTrial & subject,
            "experiment.TrialEvent": experiment.TrialEvent & subject,
            "experiment.ActionEvent": experiment.ActionEvent & subject,
            "experiment.TrialNote": experiment.TrialNote & subject,
            "experiment.SessionBlock": experiment.SessionBlock & subject,
            "experiment.SessionDetails": experiment.SessionDetails & subject,
            "BehaviorIngest": BehaviorIngest & subject,
            "BehaviorBpodIngest": BehaviorBpodIngest & subject,
        }
        if dmg is not None:
            tables["BehaviorIngest.BehaviorFile (file)"] = BehaviorIngest.BehaviorFile & {
                "behavior_file": dmg.path.name
            }
            tables["BehaviorBpodIngest.BehaviorFile (file)"] = BehaviorBpodIngest.BehaviorFile & {
                "behavior_file": dmg.path.stem
            }
    elif step == "ingest-tracking":
        tables = {
            "tracking.Tracking": tracking.Tracking & subject,
            "tracking.Tracking.Feature": tracking.Tracking.Feature & subject,
        }
    elif step == "ingest-ephys":
        tables = {
            "ephys.ProbeInsertion": ephys.ProbeInsertion & subject,
            "ephys.Clustering": ephys.Clustering & subject,
            "ephys.Clustering.Trial": ephys.Clustering.Trial & subject,
            "ephys.Unit": ephys.Unit & subject,
            "ephys.Clustering.ClusterMetric": ephys.Clustering.ClusterMetric & subject,
            "EphysIngest": EphysIngest & subject,
            "EphysIngest.EphysFile": EphysIngest.EphysFile & subject,
        }
    elif step == "ingest-histology":
        tables = {
            "histology.ElectrodeCCFPosition": histology.ElectrodeCCFPosition & subject,
            "histology.ElectrodeCCFPosition.ElectrodePosition": histology.ElectrodeCCFPosition.ElectrodePosition
            & subject,
            "histology.LabeledProbeTrack": histology.LabeledProbeTrack & subject,
            "histology.LabeledProbeTrack.Point": histology.LabeledProbeTrack.Point & subject,
            "histology.SubjectToCCFTransformation.Landmark": histology.SubjectToCCFTransformation.Landmark & subject,
            "HistologyIngest": HistologyIngest & subject,
            "HistologyIngest.HistologyFile": HistologyIngest.HistologyFile & subject,
        }
    elif step == "ccfload":
        version = {"annotation_version": slot.info["version_name"]}
        tables = {"ccf.CCFBrainRegion": ccf.CCFBrainRegion & version, "ccf.CCFAnnotation": ccf.CCFAnnotation & version}
    elif step == "load-animal":
        df = slot.info["animals"]
        ids = [{"subject_id": int(i)} for i in df.subject_id]
        h2os = [{"water_restriction_number": str(h)} for h in df.water_restriction_number]
        tables = {"lab.Subject": lab.Subject & ids, "lab.WaterRestriction": lab.WaterRestriction & h2os}
    elif step == "load-insertion-location":
        tables = {
            "ephys.ProbeInsertion.InsertionLocation": ephys.ProbeInsertion.InsertionLocation & subject,
            "ephys.ProbeInsertion.RecordableBrainRegion": ephys.ProbeInsertion.RecordableBrainRegion & subject,
            "ephys.ProbeInsertionQuality": ephys.ProbeInsertionQuality & subject,
            "ephys.ProbeInsertionQuality.GoodTrial": ephys.ProbeInsertionQuality.GoodTrial & subject,
        }
    return {name: len(t) for name, t in tables.items()}


#: steps whose runs (one case each) are independent and claim nothing (no ingest work items): their
#: mapshell runs go two at a time
CONCURRENT_STEPS = {"ccfload", "load-animal", "load-insertion-location"}

#: the table that says an item of the step was loaded
MAIN = {
    "ingest-behavior": "experiment.Session",
    "ingest-foraging": "experiment.Session",
    "ingest-tracking": "tracking.Tracking",
    "ingest-ephys": "ephys.Unit",
    "ingest-histology": "histology.ElectrodeCCFPosition.ElectrodePosition",
}


class Corpus:
    """Builds the slots of a step, prepares the database, runs mapshell and records each case's outcome."""

    def __init__(self, backend, folder: Path):
        self.backend, self.folder = backend, folder
        self.k = itertools.count(1)
        self.runs = itertools.count(1)
        self.subjects = itertools.count(700_001)
        self.outcomes: dict[str, Outcome] = {}
        self.ccf_loaded = False

    # --- the database before a run ----------------------------------------------------------
    def _animal(self, h2o: str) -> None:
        from pipeline import lab

        if _subject(h2o) > 0:
            return
        sid = next(self.subjects)
        lab.Subject.insert1(dict(subject_id=sid, sex="F"))
        lab.WaterRestriction.insert1(
            dict(subject_id=sid, water_restriction_number=h2o, wr_start_date="2018-01-01", wr_start_weight=21)
        )

    def _tracking_session(self, h2o: str, spec: dict) -> None:
        from pipeline import experiment, lab

        lab.Person.insert1(("tester", "Test Er"), skip_duplicates=True)
        lab.Rig.insert1(dict(rig=spec["rig"]), skip_duplicates=True)
        key = dict(subject_id=_subject(h2o), session=1)
        when = dt.datetime.combine(spec["day"], dt.time(10))
        experiment.Session.insert1(
            dict(key, session_date=spec["day"], session_datetime=when, username="tester", rig=spec["rig"])
        )
        experiment.SessionTrial.insert(
            [dict(key, trial=t, start_time=10.0 * t, stop_time=10.0 * t + 8) for t in spec["trials"]]
        )

    def _ccf(self) -> None:
        from pipeline import ccf
        from pipeline.synthetic.ccf import write_annotation_nrrd, write_ontology_csv

        if self.ccf_loaded:
            return
        folder = self.folder / "ccf"
        nrrd = folder / "annotation_100um.nrrd"
        write_annotation_nrrd(nrrd, shape=(132, 80, 114), voxel_um=100, seed=0)
        paths = dict(
            version_name="CCF_2017", region_csv=str(write_ontology_csv(folder / "tree.csv")), annotation_nrrd=str(nrrd)
        )
        ccf.CCFBrainRegion.load_regions(paths)
        ccf.CCFAnnotation.load_ccf_annotation(paths, step=2)
        ccf._volume_cache.clear()
        self.ccf_loaded = True

    def prepare(self, slots: list[damage.Slot]) -> None:
        from pipeline import lab
        from pipeline.ingest.behavior import ingest_behavior
        from pipeline.ingest.ephys import ingest_ephys

        for s in slots:
            if "animal" in s.needs:
                self._animal(s.needs["animal"])
            if "person" in s.needs:
                lab.Person.insert1((s.needs["person"], "Corpus Person"), skip_duplicates=True)
            if "session" in s.needs:
                self._tracking_session(s.h2o, s.needs["session"])
            if s.needs.get("ccf"):
                self._ccf()
        rigs = sorted({s.needs["rig_file"].parent for s in slots if "rig_file" in s.needs})
        if rigs:
            summary = ingest_behavior([[damage.RIG, str(r), 0] for r in rigs], progress=False)
            assert summary.ok and not summary.skipped, summary.report()
        probes = sorted({s.needs["probe"] for s in slots if "probe" in s.needs})
        if probes:
            summary = ingest_ephys([str(p) for p in probes], progress=False)
            assert summary.ok and len(summary.loaded) == len([s for s in slots if "probe" in s.needs]), summary.report()

    # --- one run -----------------------------------------------------------------------------
    def build(self, cases: list[damage.Case]) -> dict:
        """Write the slots of one run (its cases' damaged items and, for an ingest step, good items)."""
        step = cases[0].step
        run_dir = self.folder / f"{damage.SHORT[step]}-{next(self.runs):03d}"
        real = REAL_DATA if HAVE_REAL else None
        pairs = []
        for c in cases:
            slot = damage.make_slot(step, run_dir, next(self.k), real=real, base=c.real, variant=c.variant)
            pairs.append((c, slot, c.apply(slot)))
        goods = []
        if step in damage.GROUPED_STEPS:
            goods = [damage.make_slot(step, run_dir, next(self.k), real=real) for _ in range(GOOD_PER_RUN)]
        return dict(step=step, run_dir=run_dir, pairs=pairs, goods=goods)

    def run(self, run: dict) -> tuple[list[str], object, float]:
        """Run mapshell once over a built run: (its arguments, the finished process, seconds). Touches
        no database connection of this process (so runs can go in threads)."""
        import json

        step, run_dir, pairs, goods = run["step"], run["run_dir"], run["pairs"], run["goods"]
        args, custom, conf = damage.run_settings(step, [s for _, s, _ in pairs] + goods)
        if conf is None:
            conf = run_dir / "dj_local_conf.json"
            conf.write_text(json.dumps({"custom": custom}, indent=2))
        t0 = time.perf_counter()
        r = run_mapshell([*args, "--verbose"], self.backend.env(MAP_CONFIG=str(conf)), cwd=run_dir)
        return args, r, time.perf_counter() - t0

    def execute(self, run: dict, done: tuple[list[str], object, float] | None = None) -> None:
        """Run mapshell once over a built run (unless ``done`` is its run) and record each of its
        cases' outcome."""
        step, run_dir, pairs, goods = run["step"], run["run_dir"], run["pairs"], run["goods"]
        args, r, seconds = done or self.run(run)
        good = {s.h2o: item_rows(step, s)[MAIN[step]] for s in goods} if goods else None
        for c, slot, dmg in pairs:
            if step == "ccfload":  # the ontology and the annotation are the two items of a run
                rows = item_rows(step, slot)
                region_damaged = dmg.path != slot.files["annotation_nrrd"]
                part = "ccf.CCFBrainRegion" if region_damaged else "ccf.CCFAnnotation"
                other = "ccf.CCFAnnotation" if region_damaged else "ccf.CCFBrainRegion"
                item, good_here = {part: rows[part]}, {other: rows[other]}
            else:
                item, good_here = item_rows(step, slot, dmg), good
            self.outcomes[c.name] = Outcome(
                case=c,
                damage=dmg,
                slot=slot,
                run=run_dir,
                args=args,
                returncode=r.returncode,
                stdout=r.stdout,
                stderr=r.stderr,
                rows=item,
                good=good_here,
                seconds=seconds,
                others=[d.path for c2, _, d in pairs if c2 is not c],
                other_h2o=[s.h2o for s in [*(s2 for c2, s2, _ in pairs if c2 is not c), *goods] if s.h2o],
            )

    def outcome(self, case: damage.Case) -> Outcome:
        """The case's outcome; the first case of a step builds every run of the step, prepares the
        database for all of them at once, and runs them."""
        if case.name not in self.outcomes:
            step_cases = [c for c in CASES if c.step == case.step]
            grouped = [c for c in step_cases if c.grouped]
            runs = [self.build(grouped)] if grouped else []
            runs += [self.build([c]) for c in step_cases if not c.grouped]
            self.prepare([s for r in runs for s in [*(p[1] for p in r["pairs"]), *r["goods"]]])
            finished = [None] * len(runs)  # run one after the other, each recorded when it finishes
            if case.step in CONCURRENT_STEPS:
                # independent runs (each its own files, animals or annotation version) two at a time,
                # each recorded once all have finished
                with ThreadPoolExecutor(max_workers=2) as pool:
                    finished = list(pool.map(self.run, runs))
            for r, done in zip(runs, finished, strict=True):
                self.execute(r, done)
        return self.outcomes[case.name]


def item_lines(o: Outcome) -> list[str]:
    """The output lines about the case's item (its file, or its animal)."""
    d = o.damage
    alone = not o.others

    def about(x: str) -> bool:
        if str(d.path) in x or (o.slot.h2o and re.search(rf"\b{re.escape(o.slot.h2o)}\b", x)):
            return True
        return alone and x.startswith(("mapshell ", "ERROR: ", "WARNING: ", "    "))

    return [x.strip() for x in (o.stdout + "\n" + own_stderr(o)).splitlines() if about(x)]


@pytest.fixture(scope="module")
def corpus(backend, tmp_path_factory):
    _clear_tables()
    c = Corpus(backend, tmp_path_factory.mktemp("damaged"))
    yield c
    _clear_tables()
    versions = sorted({o.slot.info["version_name"] for o in c.outcomes.values() if o.case.step == "ccfload"})
    if versions:  # AnnotationVersion is a lookup table (not cleared): remove the corpus's versions
        from pipeline import ccf, db

        names = ", ".join(f"'{v}'" for v in versions)
        db.connect().query(f"DELETE FROM {ccf.AnnotationVersion.full_table_name} WHERE annotation_version IN ({names})")
    report = os.environ.get("MAP_CORPUS_REPORT")  # a file: what each case's run printed about its item
    if report:
        with open(report, "w") as f:
            for name, o in c.outcomes.items():
                f.write(
                    f"{name} [{o.damage.outcome}, expected exit {o.damage.exit_status}, got {o.returncode}]"
                    f" {o.damage.what}\n  file: {o.damage.path}\n"
                )
                f.write("".join(f"  | {x}\n" for x in item_lines(o)[:6]))
                f.write(f"  rows: { {t: n for t, n in o.rows.items() if n} } good: {o.good}\n")


def _scrub(line: str, run: Path) -> str:
    """The line without the paths of the run's files (so a reason is not matched inside a file name)."""
    return re.sub(re.escape(str(run)) + r"[^\s:),']*", "<file>", line)


_RECORD = re.compile(r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL): |^mapshell ")


def records(stderr: str) -> list[str]:
    """stderr as records: a log line (or mapshell's own line) with what follows it (a traceback)."""
    out: list[list[str]] = []
    for line in stderr.splitlines():
        if not out or _RECORD.match(line):
            out.append([line])
        else:
            out[-1].append(line)
    return ["\n".join(r) for r in out]


def own_stderr(o: Outcome) -> str:
    """stderr without the records about the other items of a shared run (their tracebacks are theirs)."""
    if not o.slot.h2o or not o.other_h2o:
        return o.stderr

    def mentions(text: str, h2o: str) -> bool:
        return re.search(rf"\b{re.escape(h2o)}\b", text) is not None

    return "\n".join(
        r for r in records(o.stderr) if mentions(r, o.slot.h2o) or not any(mentions(r, h) for h in o.other_h2o)
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_damaged_input(corpus, case):
    o = corpus.outcome(case)
    d = o.damage
    stderr = own_stderr(o)
    about = item_lines(o)
    context = f"{' | '.join(about[:3]) or '(the file is not mentioned)'}\n\n{o.show()}"
    tb = [x for x in stderr.splitlines() if x and not x.startswith(" ") and "Traceback" not in x]
    assert "Traceback" not in o.stdout + stderr, f"traceback: {tb[-1] if tb else ''}\n{context}"
    assert o.returncode == d.exit_status, f"exit status {o.returncode}, expected {d.exit_status}: {context}"

    # the line names the file: its path, or its name when no other file of the run has that name
    unique_name = sum(1 for _ in o.run.rglob(d.path.name)) <= 1

    def names(line: str) -> bool:
        return str(d.path) in line or bool(unique_name and re.search(rf"(^|[\s(/'\"]){re.escape(d.path.name)}\b", line))

    sec = sections(o.stdout)
    failure_lines = sec.get("failed", []) + [x for x in stderr.splitlines() if x.strip()]
    failing = [x for x in failure_lines if names(x)]
    if d.outcome == "skip":
        skipping = [x for x in sec.get("skipped", []) if names(x)]
        assert len(skipping) == 1 and not failing, f"{len(skipping)} skip lines name the file: {context}"
        line = skipping[0]
    else:
        assert len(failing) == 1, f"{len(failing)} failure lines name the file: {context}"
        line = failing[0]
    reason = _scrub(line, o.run)
    assert re.search(d.reason, reason), f"the reason does not match {d.reason!r}: {line}\n\n{o.show()}"
    assert not any(str(p) in line for p in o.others if not str(d.path).startswith(str(p))), context
    # nothing partial of the damaged item
    partial = {t: n for t, n in o.rows.items() if n}
    assert not partial, f"rows of the damaged item: {partial}; {context}"
    # the good items of the same run are loaded
    if o.good is not None:
        assert all(o.good.values()), f"good items not loaded: {o.good}; {context}"


# ------------------------------------------------------------- reader fixes found by the corpus
def test_pybpod_reader_fixes(tmp_path):
    from pipeline.errors import SkipItem
    from pipeline.io.pybpod import NotForaging, PybpodError, read_foraging_day, read_session_info, read_subject_meta
    from pipeline.synthetic.pybpod import write_foraging_day, write_subject_meta

    log = tmp_path / "20210301-100000.csv"
    log.write_bytes(b"")
    with pytest.raises(PybpodError, match="empty"):  # was {}: the step skipped the day without naming the file
        read_session_info(log)
    meta = write_subject_meta(tmp_path / "meta", "FOR01", [dt.date(2021, 3, 1)])
    meta.write_text(meta.read_text().replace(",foraging,0.", ",foraging,-0."))
    with pytest.raises(PybpodError, match=r"Water during training.*not a non-negative amount"):
        read_subject_meta(meta)
    other = write_foraging_day(tmp_path / "p", h2o="FOR01", seed=1, experiment="PassiveViewing").files
    with pytest.raises(NotForaging, match="not a foraging experiment") as e:
        read_foraging_day(other, "FOR01")
    assert isinstance(e.value, SkipItem)
    mixed = other + write_foraging_day(tmp_path / "p", h2o="FOR01", seed=2).files
    with pytest.raises(PybpodError, match="also has foraging sessions") as e:
        read_foraging_day(mixed, "FOR01")
    assert not isinstance(e.value, SkipItem)


def test_dlc_h5_error_is_one_line(tmp_path):
    pytest.importorskip("tables")
    from pipeline.io.dlc import DLCError, read_dlc
    from pipeline.synthetic.dlc import make_dlc_frame, write_dlc

    p = damage.truncate(write_dlc(tmp_path / "a_side_1-0000.h5", make_dlc_frame(["nose"], 50)))
    with pytest.raises(DLCError) as e:
        read_dlc(p)
    assert "\n" not in str(e.value) and "truncated file" in str(e.value), str(e.value)


def test_ccf_reader_fixes(tmp_path):
    from pipeline.io.ccf import CCFError, read_ontology
    from pipeline.synthetic.ccf import write_ontology_csv

    tree = write_ontology_csv(tmp_path / "tree.csv")
    assert len(read_ontology(tree)) == 12
    cut = tmp_path / "cut.csv"
    cut.write_bytes(tree.read_bytes()[:-12])
    with pytest.raises(CCFError, match="has no line end"):  # was: loaded without the last regions
        read_ontology(cut)
    bad = tmp_path / "misspelt.csv"
    bad.write_text(tree.read_text().replace("parent_structure_id", "parent_structur_id"))
    with pytest.raises(CCFError, match="misspelt"):  # was: loaded without the hierarchy
        read_ontology(bad)


def test_spreadsheet_reader_fixes(tmp_path):
    from pipeline.io.spreadsheet import SpreadsheetError, read_table

    empty_sheet = damage.empty(tmp_path / "a.xlsx")
    with pytest.raises(SpreadsheetError, match="empty file"):  # was: "Excel file format cannot be determined..."
        read_table(empty_sheet)
    latin = tmp_path / "b.csv"
    latin.write_bytes(b"subject_id,animal_source\n1,Jackson\n2,\xe9levage\n")
    with pytest.raises(SpreadsheetError, match=r"line 3: not UTF-8"):  # was: 'utf-8' codec can't decode ...
        read_table(latin)
