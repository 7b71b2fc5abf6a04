"""A corpus of damaged inputs for every step, made from the generators and the real samples.

Each *case* is a small function that is given a :class:`Slot`, one good item of a step's folder
(a day of rig files, a pybpod session, a tracking folder, a probe folder, an insertion's histology
files, a CCF ontology + annotation, an animal sheet, an insertion-location sheet, a settings file),
damages exactly one file of it (truncated, emptied, bytes flipped, a wrong dtype, NaN, a value out of
range, a companion file missing, a misspelt column...) and returns a :class:`Damage`: the step, the
damaged file, and what the pipeline must do with it:

* ``fail``: the item fails, exit status 1, one failure line names the file with a reason matching
  ``reason`` (a regular expression), nothing of the item is in the database, the other items load;
* ``skip``: the input is valid but not loadable (another Bpod protocol, an animal that is not
  registered): skipped with a reason, exit status 0;
* ``settings``: a settings problem, exit status 2, one line naming the settings file.

The slots are written by :func:`make_slot` with the generators of this package, or start from a real
sample (``Case.real``, a path under the real-data folder, copied into the slot). What must be in the
database before a run (the animal, the behaviour session, the ingested probe, the CCF annotation) is
listed in ``Slot.needs``; :func:`run_settings` gives the mapshell action and the ``custom`` settings
of a run over a set of slots. ``tests/test_damaged_inputs.py`` runs the whole catalogue
(:data:`CATALOGUE`) through ``mapshell`` on a real database.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io as sio

__all__ = [
    "STEPS",
    "GROUPED_STEPS",
    "SHORT",
    "CATALOGUE",
    "Case",
    "Damage",
    "Slot",
    "make_slot",
    "run_settings",
    "truncate",
    "empty",
    "flip_bytes",
]

#: every step the corpus covers ("settings" = the dj_local_conf.json file)
STEPS = (
    "ingest-behavior",
    "ingest-foraging",
    "ingest-tracking",
    "ingest-ephys",
    "ingest-histology",
    "ccfload",
    "load-animal",
    "load-insertion-location",
    "settings",
)
#: steps whose items are independent within one run (one folder, many items): their ``fail`` cases
#: can share one mapshell run
GROUPED_STEPS = ("ingest-behavior", "ingest-foraging", "ingest-tracking", "ingest-ephys", "ingest-histology")

EXIT_STATUS = {"fail": 1, "skip": 0, "settings": 2}

BEHAVIOR_DAY = dt.datetime(2022, 1, 10, 9, 0, 0)
FORAGING_FIRST_DAY = dt.date(2021, 3, 1)
TRACKING_DAY = dt.date(2022, 4, 5)
EPHYS_WHEN = dt.datetime(2023, 5, 4, 10, 0, 0)
RIG = "RRig"


# ------------------------------------------------------------------------------------ descriptions
@dataclass
class Slot:
    """One good item of a step, written into ``root`` (the folder the step's run is pointed at)."""

    step: str
    k: int  #: unique number of the slot (names, seeds)
    root: Path
    h2o: str  #: the animal of the item ('' when none)
    files: dict[str, Path] = field(default_factory=dict)  #: role -> file (or folder) of the item
    info: dict = field(default_factory=dict)
    #: what the database must hold before the run: 'animal' (h2o), 'session' (tracking: dict),
    #: 'rig_file' (a rig file to load with ingest-behavior first), 'probe' (ephys root to ingest first),
    #: 'ccf' (the generated CCF annotation loaded), 'person' (a lab.Person username)
    needs: dict = field(default_factory=dict)


@dataclass
class Damage:
    """What a case did and what the pipeline must do about it."""

    step: str
    path: Path  #: the damaged file (or the folder, when a file of it is missing)
    outcome: str  #: 'fail' | 'skip' | 'settings'
    reason: str  #: regular expression the reason must match
    what: str  #: one line: the damage

    @property
    def exit_status(self) -> int:
        """The exit status of a run whose only damage is this one."""
        return EXIT_STATUS[self.outcome]


@dataclass(frozen=True)
class Case:
    name: str
    step: str
    outcome: str
    reason: str
    what: str
    fn: Callable[[Slot], Path]
    real: str | None = None  #: the real sample (path under the real-data folder) the slot starts from
    variant: str | None = None  #: a variant of the good item (e.g. 'jrclust_v3', 'site_info')

    def apply(self, slot: Slot) -> Damage:
        """Damage ``slot`` and describe it."""
        path = Path(self.fn(slot))
        return Damage(step=self.step, path=path, outcome=self.outcome, reason=self.reason, what=self.what)

    @property
    def grouped(self) -> bool:
        """True if the case can share one run with the other ``fail`` cases of its step."""
        return self.step in GROUPED_STEPS and self.outcome == "fail"


CATALOGUE: list[Case] = []
#: short step names: the prefix of the case names
SHORT = {
    "ingest-behavior": "behavior",
    "ingest-foraging": "foraging",
    "ingest-tracking": "tracking",
    "ingest-ephys": "ephys",
    "ingest-histology": "histology",
    "ccfload": "ccf",
    "load-animal": "animal",
    "load-insertion-location": "insertion",
    "settings": "settings",
}


def case(step: str, name: str, *, fail=None, skip=None, settings=None, real=None, variant=None):
    """Register a damage function: ``fail`` / ``skip`` / ``settings`` = the reason's regular expression."""
    (outcome, reason), *more = [(k, v) for k, v in (("fail", fail), ("skip", skip), ("settings", settings)) if v]
    assert not more and step in STEPS

    def register(fn: Callable[[Slot], Path]) -> Callable[[Slot], Path]:
        full = f"{SHORT[step]}-{name}"
        assert all(c.name != full for c in CATALOGUE), full
        what = " ".join((fn.__doc__ or name).split())
        CATALOGUE.append(Case(full, step, outcome, reason, what, fn, real, variant))
        return fn

    return register


# ------------------------------------------------------------------------------- byte-level damage
def truncate(path: Path, fraction: float = 0.5) -> Path:
    """Keep the first ``fraction`` of the file's bytes (a copy or download cut off)."""
    raw = Path(path).read_bytes()
    Path(path).write_bytes(raw[: int(len(raw) * fraction)])
    return Path(path)


def empty(path: Path) -> Path:
    """Make the file zero bytes long."""
    Path(path).write_bytes(b"")
    return Path(path)


def flip_bytes(path: Path, offset: int, n: int = 8) -> Path:
    """Invert ``n`` bytes from ``offset`` (negative: from the end)."""
    raw = bytearray(Path(path).read_bytes())
    start = offset if offset >= 0 else len(raw) + offset
    for i in range(start, min(start + n, len(raw))):
        raw[i] ^= 0xFF
    Path(path).write_bytes(bytes(raw))
    return Path(path)


def _replace(path: Path, old: bytes | str, new: bytes | str, count: int = 1) -> Path:
    raw = Path(path).read_bytes()
    old_b = old.encode() if isinstance(old, str) else old
    new_b = new.encode() if isinstance(new, str) else new
    if old_b not in raw:
        raise ValueError(f"{path}: {old_b[:40]!r} not found; the damage cannot be applied")
    Path(path).write_bytes(raw.replace(old_b, new_b, count))
    return Path(path)


def _lines(path: Path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").split("\n")


def _write_lines(path: Path, lines: list[str]) -> Path:
    Path(path).write_text("\n".join(lines), encoding="utf-8")
    return Path(path)


def _copy_real(real: Path | None, rel: str, dest: Path) -> Path:
    if real is None:
        raise FileNotFoundError(f"this case starts from the real sample {rel}, but no real-data folder was given")
    src = Path(real) / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest)
        for p in [dest, *dest.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    else:
        shutil.copyfile(src, dest)
        dest.chmod(0o644)
    return dest


# ------------------------------------------------------------------------------------ MAT editing
def _load_mat(path: Path) -> dict:
    return {
        k: v for k, v in sio.loadmat(path, struct_as_record=True, squeeze_me=False).items() if not k.startswith("__")
    }


def _save_mat(path: Path, data: dict) -> Path:
    sio.savemat(path, data, do_compression=False)
    return path


def _without(struct: np.ndarray, name: str) -> np.ndarray:
    """A copy of a MATLAB struct array (numpy record array) without field ``name``."""
    names = [n for n in struct.dtype.names if n != name]
    out = np.empty(struct.shape, dtype=[(n, object) for n in names])
    for n in names:
        out[n] = struct[n]
    return out


def _edit_session(path: Path, fn: Callable[[np.ndarray], np.ndarray | None]) -> Path:
    """Apply ``fn`` to the SessionData struct (1 x 1 record array) of a rig file and save it again."""
    data = _load_mat(path)
    new = fn(data["SessionData"])
    if new is not None:
        data["SessionData"] = new
    return _save_mat(path, data)


def _field(sd: np.ndarray, name: str):
    return sd[name][0, 0]


def _set(sd: np.ndarray, name: str, value) -> None:
    sd[name][0, 0] = value


# ================================================================================== the good items
def make_slot(
    step: str, root: Path, k: int, *, real: Path | None = None, base: str | None = None, variant: str | None = None
) -> Slot:
    """Write good item number ``k`` of ``step`` into ``root`` (from the real sample ``base`` when given)."""
    root = Path(root)
    return _MAKERS[step](root, k, real, base, variant)


def _behavior_slot(root, k, real, base, variant) -> Slot:
    from .bpod_delay_response import write_session_file

    rig = root / "rig"
    h2o = f"bh{k:03d}"
    if base is None:
        truth = write_session_file(
            rig, h2o=h2o, when=BEHAVIOR_DAY, n_trials=12, seed=k, version="7.3" if variant == "v73" else "5"
        )
        path = truth.path
    elif base.endswith("dl25_tw2_20180225_102508.mat"):
        path = _copy_real(real, base, rig / f"{h2o}_tw2_20180225_102508.mat")
    else:  # another Bpod protocol's file
        path = _copy_real(real, base, rig / f"{h2o}_whisk_20250817_100000.mat")
    return Slot("ingest-behavior", k, rig, h2o, {"rig_file": path}, {}, {"animal": h2o})


def _foraging_slot(root, k, real, base, variant) -> Slot:
    from .pybpod import write_foraging_day, write_subject_meta

    project, meta = root / "Tower-2" / "Foraging", root / "Metadata"
    if base is None:
        h2o = f"FG{k:03d}"
        day = FORAGING_FIRST_DAY + dt.timedelta(days=k)
        gen = write_foraging_day(
            project,
            h2o=h2o,
            date=day,
            n_sessions=1,
            trials_per_session=12,
            seed=k,
            experiment="Foraging" if variant is None else variant,
        )
        log = gen.files[0]
    else:  # the real iblrig log (subject test_mouse), put where a foraging project keeps its sessions
        h2o, day = "test_mouse", dt.date(2018, 7, 20)
        name = "20180720-131919"
        log = _copy_real(
            real, base, project / "experiments" / "Foraging" / "setups" / "Tower-2" / "sessions" / name / f"{name}.csv"
        )
    sheet = write_subject_meta(meta, h2o, [day], seed=k)
    return Slot(
        step="ingest-foraging",
        k=k,
        root=root,
        h2o=h2o,
        files={"log": log, "meta": sheet},
        info={"day": day},
        needs={"animal": h2o},
    )


def _tracking_slot(root, k, real, base, variant) -> Slot:
    from .dlc import write_tracking_session

    video = root / "video"
    h2o = f"tk{k:03d}"
    gen = write_tracking_session(
        video,
        h2o,
        TRACKING_DAY,
        trials=[1, 2, 3],
        positions=("side",),
        bodyparts=("nose", "tongue", "jaw"),
        frames_per_trial=(20, 40),
        seed=k,
    )
    files = {f"trial{t}": p for (_, t), p in gen.files.items()}
    files["folder"] = gen.folder
    if base is not None:  # the real DeepLabCut file stands in for trial 2's
        files["trial2"].unlink()
        files["trial2"] = _copy_real(real, base, gen.folder / f"{h2o}_side_2-0000{Path(base).suffix}")
    return Slot(
        "ingest-tracking",
        k,
        video,
        h2o,
        files,
        {"day": TRACKING_DAY},
        {"animal": h2o, "session": dict(day=TRACKING_DAY, trials=[1, 2, 3], rig=RIG)},
    )


def _probe(root: Path, prereq: Path, h2o: str, k: int, positions_from_meta: bool = False):
    """A behaviour rig file (in ``prereq``, loaded before the run) and a Kilosort probe folder for it."""
    from ..io.spikeglx import read_meta
    from .bpod_delay_response import write_session_file
    from .sorting import write_kilosort
    from .spikeglx import write_bitcode_mat, write_meta

    truth = write_session_file(prereq, h2o=h2o, when=EPHYS_WHEN, n_trials=12, seed=k)
    codes = list(truth.notes[truth.notes.trial_note_type == "bitcode"].sort_values("trial").trial_note)
    pdir = root / h2o / EPHYS_WHEN.strftime("%Y%m%d") / "1"
    meta = write_meta(pdir / f"{h2o}_g0_tcat.imec0.ap.meta", probe="np1", seed=1).path
    bit = write_bitcode_mat(pdir / f"{h2o}_g0_bitcode.mat", codes, seed=2).path
    kw = {}
    if positions_from_meta:
        m = read_meta(meta)
        kw["positions"] = np.c_[m.x, m.y]
    sort = write_kilosort(pdir / "kilosort2", n_units=4, n_spikes=1500, duration_s=120.0, seed=3, **kw).path
    return truth.path, codes, pdir, meta, bit, sort


def _ephys_slot(root, k, real, base, variant) -> Slot:
    from .sorting import write_jrclust_v3, write_jrclust_v4

    h2o = f"ep{k:03d}"
    ephys = root / "ephys"
    rig_file, codes, pdir, meta, bit, sort = _probe(ephys, root / "prereq_rig", h2o, k)
    files = {"meta": meta, "bitcode": bit, "sorting": sort, "probe": pdir}
    if variant in ("jrclust_v3", "jrclust_v4"):
        shutil.rmtree(sort)
        if variant == "jrclust_v3":
            files["sorting"] = write_jrclust_v3(
                pdir / f"{h2o}_g0_t0.imec0.ap_imec3_opt3_jrc.mat", n_units=4, n_spikes=1500, seed=5, fmt="5"
            ).path
        else:
            files["sorting"] = write_jrclust_v4(
                pdir / f"{h2o}_g0_t0.imec0.ap_res.mat", n_units=4, n_spikes=1500, seed=4
            ).path
            files["prm"] = files["sorting"].with_name(files["sorting"].name[: -len("_res.mat")] + ".prm")
    if base is not None:
        if base.endswith(".meta"):
            meta.unlink()
            files["meta"] = _copy_real(real, base, meta)
        elif base.endswith("bitcode.mat"):
            bit.unlink()
            files["bitcode"] = _copy_real(real, base, bit)
        else:  # a real Kilosort/phy folder instead of the generated one
            shutil.rmtree(sort)
            files["sorting"] = _copy_real(real, base, sort)
    return Slot("ingest-ephys", k, ephys, h2o, files, {"codes": codes}, {"animal": h2o, "rig_file": rig_file})


def _histology_slot(root, k, real, base, variant) -> Slot:
    from .histology import histology_filename, write_ibl_alignment, write_site_info

    h2o = f"hs{k:03d}"
    ephys, histology = root / "ephys", root / "histology"
    histology.mkdir(parents=True, exist_ok=True)
    rig_file, _, pdir, *_ = _probe(ephys, root / "prereq_rig", h2o, k, positions_from_meta=True)
    t = write_ibl_alignment(pdir, n_channels=384, seed=k)
    files = {"channel_locations": t.channel_locations_path, "xyz_picks": t.xyz_picks_path, "probe": pdir}
    folder = histology / h2o / "histology"
    if variant == "site_info":
        for p in (t.channel_locations_path, t.xyz_picks_path):
            p.unlink()
        files.pop("channel_locations"), files.pop("xyz_picks")
        files["site_info"] = write_site_info(
            folder / histology_filename(h2o, EPHYS_WHEN.date(), 1), n_sites=384, seed=k
        ).path
    if base is not None:
        if base.endswith("_pts.csv"):  # the real Lasagna track replaces the IBL picks
            t.xyz_picks_path.unlink()
            files.pop("xyz_picks")
            files["track_points"] = _copy_real(real, base, folder / f"{h2o}_{EPHYS_WHEN:%Y%m%d}_1_pts.csv")
        else:
            t.channel_locations_path.unlink()
            files["channel_locations"] = _copy_real(real, base, t.channel_locations_path)
    return Slot(
        "ingest-histology",
        k,
        histology,
        h2o,
        files,
        {"date": EPHYS_WHEN.date()},
        {"animal": h2o, "rig_file": rig_file, "probe": ephys, "ccf": True},
    )


def _ccf_slot(root, k, real, base, variant) -> Slot:
    from .ccf import write_annotation_nrrd, write_ontology_csv

    folder = root / f"ccf{k:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    if base is None:
        files["region_csv"] = write_ontology_csv(folder / "structure_tree.csv")
    elif base.endswith("mousebrainontology_2.csv"):  # the MAP ontology: names + colours, no header
        files["region_csv"] = _copy_real(real, base, folder / "mousebrainontology_2.csv")
        files["hexcode_csv"] = _copy_real(real, str(Path(base).with_name("hexcode.csv")), folder / "hexcode.csv")
    else:
        files["region_csv"] = _copy_real(real, base, folder / Path(base).name)
    files["annotation_nrrd"] = folder / "annotation_20um.nrrd"
    write_annotation_nrrd(files["annotation_nrrd"], shape=(24, 16, 20), voxel_um=20, seed=k)
    return Slot("ccfload", k, folder, "", files, {"version_name": f"dmg{k:03d}"}, {})


def _animal_slot(root, k, real, base, variant) -> Slot:
    from .animals import make_animals, write_animals

    df = make_animals(n=3, seed=k, username="demo", h2o_prefix=f"an{k:03d}x", first_subject=200_000 + 10 * k)
    sheet = write_animals(root / f"animals{k:03d}.{variant or 'csv'}", df)
    return Slot("load-animal", k, root, "", {"sheet": sheet}, {"animals": df}, {"person": "demo"})


INSERTION_COLUMNS = (
    "water_restriction_number",
    "session_date",
    "insertion_number",
    "skull_reference",
    "ap_location",
    "ml_location",
    "depth",
    "theta",
    "phi",
    "brain_area",
    "hemisphere",
    "alignment_confidence",
    "good_period",
)


def _insertion_rows(h2o: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(
                water_restriction_number=h2o,
                session_date=EPHYS_WHEN.date().isoformat(),
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
        ],
        columns=list(INSERTION_COLUMNS),
    )


def _write_sheet(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".xlsx":
        df.to_excel(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def _insertion_slot(root, k, real, base, variant) -> Slot:
    h2o = f"il{k:03d}"
    rig_file, *_ = _probe(root / "ephys", root / "prereq_rig", h2o, k)
    df = _insertion_rows(h2o)
    sheet = _write_sheet(root / f"recording_notes{k:03d}.{variant or 'csv'}", df)
    return Slot(
        "load-insertion-location",
        k,
        root,
        h2o,
        {"sheet": sheet},
        {"rows": df},
        {"animal": h2o, "rig_file": rig_file, "probe": root / "ephys"},
    )


def _settings_slot(root, k, real, base, variant) -> Slot:
    from .bpod_delay_response import write_session_file

    h2o = f"st{k:03d}"
    folder = root / f"settings{k:03d}"
    rig = folder / "rig"
    write_session_file(rig, h2o=h2o, when=BEHAVIOR_DAY, n_trials=8, seed=k)
    conf = folder / "dj_local_conf.json"
    custom = {"behavior_data_paths": [[RIG, str(rig), 0]]}
    conf.write_text(json.dumps({"custom": custom}, indent=4) + "\n")
    return Slot(
        "settings",
        k,
        folder,
        h2o,
        {"conf": conf, "rig": rig},
        {"args": ["ingest-behavior"], "custom": custom},
        {"animal": h2o},
    )


_MAKERS = {
    "ingest-behavior": _behavior_slot,
    "ingest-foraging": _foraging_slot,
    "ingest-tracking": _tracking_slot,
    "ingest-ephys": _ephys_slot,
    "ingest-histology": _histology_slot,
    "ccfload": _ccf_slot,
    "load-animal": _animal_slot,
    "load-insertion-location": _insertion_slot,
    "settings": _settings_slot,
}


def run_settings(step: str, slots: list[Slot]) -> tuple[list[str], dict, Path | None]:
    """(mapshell arguments, ``custom`` settings, settings file to use as is) of one run over ``slots``
    (all of one step, written into the same run folder)."""
    s0 = slots[0]
    if step == "ingest-behavior":
        return ["ingest-behavior"], {"behavior_data_paths": [[RIG, str(s0.root), 0]]}, None
    if step == "ingest-foraging":
        return (
            ["ingest-foraging"],
            {
                "behavior_bpod": {
                    "meta_dir": str(s0.root / "Metadata"),
                    "project_paths": [str(s0.root / "Tower-2" / "Foraging")],
                }
            },
            None,
        )
    if step == "ingest-tracking":
        return ["ingest-tracking"], {"tracking_data_paths": [[RIG, str(s0.root)]]}, None
    if step == "ingest-ephys":
        return ["ingest-ephys"], {"ephys_data_paths": [str(s0.root)]}, None
    if step == "ingest-histology":
        return ["ingest-histology"], {"histology_data_paths": [str(s0.root)]}, None
    if step == "ccfload":
        assert len(slots) == 1
        paths = {"version_name": s0.info["version_name"], **{r: str(p) for r, p in s0.files.items()}}
        return ["ccfload"], {"ccf_data_paths": paths}, None
    if step == "load-animal":
        assert len(slots) == 1
        return ["load-animal", str(s0.files["sheet"])], {}, None
    if step == "load-insertion-location":
        assert len(slots) == 1
        return ["load-insertion-location", str(s0.files["sheet"])], {}, None
    if step == "settings":
        assert len(slots) == 1
        return list(s0.info["args"]), s0.info["custom"], s0.files["conf"]
    raise ValueError(step)


# ========================================================================================= the cases
# ---------------------------------------------------------------------------------- ingest-behavior
B = "ingest-behavior"
DL25 = "map_rig_behavior_mat/dl25_tw2_20180225_102508.mat"
W2T = "bpod_sessiondata_mat/w2t-bkin/session_file01.mat"


@case(B, "truncated", fail=r"truncated|cannot read")
def _(s):
    """the rig file cut off at half its size"""
    return truncate(s.files["rig_file"])


@case(B, "zero-bytes", fail=r"empty")
def _(s):
    """the rig file is zero bytes long"""
    return empty(s.files["rig_file"])


@case(B, "flipped-tag-bytes", fail=r"cannot read|corrupt")
def _(s):
    """8 bytes of the first data element's tag (after the 128-byte header) inverted"""
    return flip_bytes(s.files["rig_file"], 128, 8)


@case(B, "not-a-mat-file", fail=r"not a MATLAB")
def _(s):
    """a text file with the rig file's name"""
    s.files["rig_file"].write_text("Trial,Outcome\n1,hit\n2,miss\n")
    return s.files["rig_file"]


@case(B, "nan-trial-start", fail=r"TrialStartTimestamp")
def _(s):
    """TrialStartTimestamp of trial 4 is NaN"""

    def edit(sd):
        ts = _field(sd, "TrialStartTimestamp").astype(np.float64)
        ts[0, 3] = np.nan
        _set(sd, "TrialStartTimestamp", ts)

    return _edit_session(s.files["rig_file"], edit)


@case(B, "trial-start-backwards", fail=r"backwards|increase")
def _(s):
    """TrialStartTimestamp of trials 5 and 6 swapped (not monotonic)"""

    def edit(sd):
        ts = _field(sd, "TrialStartTimestamp").astype(np.float64)
        ts[0, [4, 5]] = ts[0, [5, 4]]
        _set(sd, "TrialStartTimestamp", ts)

    return _edit_session(s.files["rig_file"], edit)


@case(B, "trial-start-as-text", fail=r"TrialStartTimestamp")
def _(s):
    """TrialStartTimestamp written as a cell of strings (wrong type)"""

    def edit(sd):
        ts = _field(sd, "TrialStartTimestamp")
        cell = np.empty(ts.shape, dtype=object)
        for i in range(ts.shape[1]):
            cell[0, i] = f"{ts[0, i]:.3f} s"
        _set(sd, "TrialStartTimestamp", cell)

    return _edit_session(s.files["rig_file"], edit)


@case(B, "negative-ntrials", fail=r"nTrials")
def _(s):
    """nTrials is -3"""
    return _edit_session(s.files["rig_file"], lambda sd: _set(sd, "nTrials", np.array([[-3.0]])))


@case(B, "trialtypes-too-short", fail=r"TrialTypes has \d+ entries")
def _(s):
    """TrialTypes has two entries fewer than nTrials (mismatched lengths)"""
    return _edit_session(
        s.files["rig_file"], lambda sd: _set(sd, "TrialTypes", _field(sd, "TrialTypes")[:, :-2].copy())
    )


@case(B, "rawevents-missing", fail=r"RawEvents")
def _(s):
    """the RawEvents field is gone"""
    return _edit_session(s.files["rig_file"], lambda sd: _without(sd, "RawEvents"))


@case(B, "protocoltype-missing-on-a-trial", fail=r"ProtocolType")
def _(s):
    """TrialSettings(3).GUI has no ProtocolType (the other trials have it)"""

    def edit(sd):
        ts = _field(sd, "TrialSettings")
        ts[0, 2]["GUI"] = _without(ts[0, 2]["GUI"], "ProtocolType")

    return _edit_session(s.files["rig_file"], edit)


@case(B, "info-date-garbled", fail=r"SessionDate")
def _(s):
    """Info.SessionDate is '31-Foo-2022'"""

    def edit(sd):
        info = _field(sd, "Info")
        info["SessionDate"][0, 0] = np.array(["31-Foo-2022"])

    return _edit_session(s.files["rig_file"], edit)


@case(B, "renamed-to-another-day", fail=r"disagrees")
def _(s):
    """the file renamed to the next day: its name's date is not Info.SessionDate"""
    p = s.files["rig_file"]
    new = p.with_name(p.name.replace(f"{BEHAVIOR_DAY:%Y%m%d}", f"{BEHAVIOR_DAY + dt.timedelta(days=1):%Y%m%d}"))
    return p.rename(new)


@case(B, "impossible-date-in-name", fail=r"not a valid")
def _(s):
    """the file name's date is 2022-13-45"""
    p = s.files["rig_file"]
    return p.rename(p.with_name(p.name.replace(f"{BEHAVIOR_DAY:%Y%m%d}", "20221345")))


@case(B, "second-file-overlaps", fail=r"overlap")
def _(s):
    """a second rig file of the same day starts one minute after the first, while its trials still run"""
    from .bpod_delay_response import write_session_file

    return write_session_file(
        s.root, h2o=s.h2o, when=BEHAVIOR_DAY + dt.timedelta(minutes=1), n_trials=12, seed=s.k + 1000
    ).path


@case(B, "v73-truncated", fail=r"truncated|cannot read", variant="v73")
def _(s):
    """a MATLAB v7.3 (HDF5) rig file cut off at half its size"""
    return truncate(s.files["rig_file"])


@case(B, "real-truncated", fail=r"truncated|cannot read", real=DL25)
def _(s):
    """the real dl25 rig file cut off at half its size"""
    return truncate(s.files["rig_file"])


@case(B, "real-nan-trial-start", fail=r"TrialStartTimestamp", real=DL25)
def _(s):
    """the real dl25 rig file with TrialStartTimestamp of trial 2 NaN"""

    def edit(sd):
        ts = _field(sd, "TrialStartTimestamp").astype(np.float64)
        ts[0, 1] = np.nan
        _set(sd, "TrialStartTimestamp", ts)

    return _edit_session(s.files["rig_file"], edit)


@case(B, "real-rawevents-one-trial-short", fail=r"RawEvents\.Trial has", real=DL25)
def _(s):
    """the real dl25 rig file with one trial fewer in RawEvents.Trial than nTrials"""

    def edit(sd):
        raw = _field(sd, "RawEvents")
        raw["Trial"][0, 0] = raw["Trial"][0, 0][:, :-1].copy()

    return _edit_session(s.files["rig_file"], edit)


@case(B, "other-protocol", skip=r"unsupported protocol")
def _(s):
    """a Bpod file of another task (states ITI / WaitForPoke / Reward): valid, not delay-response"""
    from .bpod_delay_response import write_other_protocol_file

    s.files["rig_file"].unlink()
    return write_other_protocol_file(s.root, h2o=s.h2o, task="water", when=BEHAVIOR_DAY)


@case(B, "real-bpod2-other-protocol", skip=r"unsupported protocol", real=W2T)
def _(s):
    """the real Bpod 2 SessionData of another lab's task"""
    return s.files["rig_file"]


@case(B, "unknown-animal", skip=r"not in lab\.WaterRestriction")
def _(s):
    """a good rig file of an animal that is not registered (no load-animal for it)"""
    s.needs.pop("animal")
    return s.files["rig_file"]


# ---------------------------------------------------------------------------------- ingest-foraging
F = "ingest-foraging"
IBLRIG = (
    "pybpod_csv/iblrig/experiments/test_basicChoiceWorld/setups/test_basicChoiceWorld_box0/sessions/"
    "20180720-131919/20180720-131919.csv"
)


def _stdout_value_line(lines: list[str], marker: str) -> int:
    """Index of the row printed right after the stdout marker row ``marker`` (its value)."""
    for i, line in enumerate(lines):
        f = line.split(";")
        if len(f) >= 5 and f[0] == "stdout" and f[4].strip() == marker:
            for j in range(i + 1, len(lines)):
                g = lines[j].split(";")
                if len(g) >= 5 and g[0] == "stdout" and g[4].strip():
                    return j
    raise ValueError(f"no {marker!r} row")


@case(F, "log-truncated", fail=r"truncated")
def _(s):
    """the session log cut off at half its size"""
    return truncate(s.files["log"])


@case(F, "log-zero-bytes", fail=r"empty")
def _(s):
    """the session log is zero bytes long"""
    return empty(s.files["log"])


@case(F, "log-binary-garbage", fail=r"undecodable|binary|damaged")
def _(s):
    """a run of NUL bytes in the middle of the session log"""
    raw = s.files["log"].read_bytes()
    mid = raw.index(b"\n", len(raw) // 2) + 1
    s.files["log"].write_bytes(raw[:mid] + b"\x00" * 16 + raw[mid:])
    return s.files["log"]


@case(F, "log-wrong-header", fail=r"header")
def _(s):
    """the column header row says PCTIME instead of PC-TIME"""
    return _replace(s.files["log"], "TYPE;PC-TIME;", "TYPE;PCTIME;")


@case(F, "log-variables-not-a-literal", fail=r"literal|Variables")
def _(s):
    """the task's 'Variables:' value is cut off (not a Python dict)"""
    lines = _lines(s.files["log"])
    j = _stdout_value_line(lines, "Variables:")
    f = lines[j].split(";")
    f[4] = f[4][: len(f[4]) // 2]
    lines[j] = ";".join(f)
    return _write_lines(s.files["log"], lines)


@case(F, "log-unreadable-pc-time", fail=r"PC-TIME")
def _(s):
    """a TRIAL row's PC-TIME is 'yesterday'"""
    lines = _lines(s.files["log"])
    i = next(i for i, x in enumerate(lines) if x.startswith("TRIAL;"))
    f = lines[i].split(";")
    f[1] = "yesterday"
    lines[i] = ";".join(f)
    return _write_lines(s.files["log"], lines)


@case(F, "log-last-end-trial-missing", fail=r"END-TRIAL|truncated")
def _(s):
    """the last trial has no END-TRIAL row (the task was killed mid-trial)"""
    lines = _lines(s.files["log"])
    i = max(i for i, x in enumerate(lines) if x.startswith("END-TRIAL;"))
    return _write_lines(s.files["log"], lines[:i] + lines[i + 1 :])


@case(F, "real-log-aborted-without-trials", fail=r"no trials", real=IBLRIG)
def _(s):
    """the real iblrig session log: session information only, no trial (an aborted session)"""
    return s.files["log"]


@case(F, "meta-misspelt-column", fail=r"missing column")
def _(s):
    """the metadata sheet's 'Weight' column header is 'Wieght'"""
    return _replace(s.files["meta"], "Weight", "Wieght")


def _edit_meta(path: Path, col: int, value: str) -> Path:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    rows[-1][col] = value
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


@case(F, "meta-ambiguous-date", fail=r"not a valid date")
def _(s):
    """the training day's date written 03/02/2021 (month/day or day/month?)"""
    d = s.info["day"]
    return _edit_meta(s.files["meta"], 0, d.strftime("%m/%d/%Y"))


@case(F, "meta-impossible-time", fail=r"not a valid time")
def _(s):
    """the training row's end time is 25:61"""
    return _edit_meta(s.files["meta"], 2, "25:61")


@case(F, "meta-weight-not-a-number", fail=r"not a number")
def _(s):
    """the training row's weight is 'heavy'"""
    return _edit_meta(s.files["meta"], 5, "heavy")


@case(F, "meta-negative-water", fail=r"Water during training|negative")
def _(s):
    """the training row's 'Water during training' is -0.8 ml"""
    return _edit_meta(s.files["meta"], 4, "-0.8")


@case(F, "meta-not-utf8", fail=r"UTF-8")
def _(s):
    """a Latin-1 byte in the metadata sheet's notes"""
    return _replace(s.files["meta"], "handling, calm", b"handling, tr\xe8s calme")


@case(F, "other-experiment", skip=r"not a foraging experiment|another", variant="PassiveViewing")
def _(s):
    """a good pybpod session of another experiment (PassiveViewing), not foraging"""
    return s.files["log"]


# ---------------------------------------------------------------------------------- ingest-tracking
T = "ingest-tracking"
DLC_CSV = "deeplabcut_csv/DeepLabCut/vid1_camera-1DLC_resnet50_TESTNov4shuffle1_10filtered.csv"
DLC_CSV2 = "deeplabcut_csv/DeepLabCut/vid1_camera-2DLC_resnet50_TESTNov4shuffle2_10filtered.csv"
DLC_LABELLED = "deeplabcut_csv/DeepLabCut/CollectedData_Pranav.csv"
DLC_H5 = "deeplabcut_h5/DeepLabCut/vid1_camera-1DLC_resnet50_TESTNov4shuffle1_10filtered.h5"
DLC_MULTI = "deeplabcut_h5/DeepLabCut/m3v1mp4shortDLC_effnet_b0_multi_mouseApr12shuffle1_5_el.h5"
DLC_SKELETON = (
    "deeplabcut_h5/DeepLabCut/181211_CA3692_1Overview_6DeepCut_resnet101_maze_joinedFeb22shuffle1_450000_skeleton.h5"
)


def _edit_cell(path: Path, line: int, column: int, value: str) -> Path:
    """Set field ``column`` of 1-based ``line`` of a CSV (no quoting in DeepLabCut's files)."""
    lines = _lines(path)
    f = lines[line - 1].split(",")
    f[column] = value
    lines[line - 1] = ",".join(f)
    return _write_lines(path, lines)


@case(T, "csv-truncated", fail=r"cut off|no line end")
def _(s):
    """trial 2's DeepLabCut CSV cut off at half its size"""
    return truncate(s.files["trial2"])


@case(T, "csv-zero-bytes", fail=r"empty")
def _(s):
    """trial 2's DeepLabCut CSV is zero bytes long"""
    return empty(s.files["trial2"])


@case(T, "likelihood-above-one", fail=r"likelihood")
def _(s):
    """a likelihood of 1.7 on line 5"""
    return _edit_cell(s.files["trial2"], 5, 3, "1.7")


@case(T, "negative-likelihood", fail=r"likelihood")
def _(s):
    """a likelihood of -0.2 on line 6"""
    return _edit_cell(s.files["trial2"], 6, 6, "-0.2")


@case(T, "infinite-coordinate", fail=r"infinite")
def _(s):
    """an x coordinate 'inf' on line 7"""
    return _edit_cell(s.files["trial2"], 7, 1, "inf")


@case(T, "coordinate-not-a-number", fail=r"not a number")
def _(s):
    """an x coordinate 'abc' on line 8"""
    return _edit_cell(s.files["trial2"], 8, 4, "abc")


@case(T, "x-nan-y-not", fail=r"NaN|missing")
def _(s):
    """x blank (NaN) but y and likelihood present on line 9"""
    return _edit_cell(s.files["trial2"], 9, 1, "")


@case(T, "frame-numbers-backwards", fail=r"frame number")
def _(s):
    """the frame numbers of lines 5 and 6 swapped"""
    lines = _lines(s.files["trial2"])
    a, b = lines[4].split(",", 1), lines[5].split(",", 1)
    lines[4], lines[5] = ",".join([b[0], a[1]]), ",".join([a[0], b[1]])
    return _write_lines(s.files["trial2"], lines)


@case(T, "header-row-missing", fail=r"header")
def _(s):
    """the 'coords' header row is gone (two header rows)"""
    lines = _lines(s.files["trial2"])
    return _write_lines(s.files["trial2"], lines[:2] + lines[3:])


@case(T, "csv-not-utf8", fail=r"DeepLabCut CSV|decode|UTF")
def _(s):
    """bytes that are not UTF-8 in the scorer name"""
    return _replace(s.files["trial2"], "DLC_", b"DLC\xff\xfe_", count=1)


@case(T, "row-with-a-field-missing", fail=r"fields")
def _(s):
    """line 6 has one field fewer than the header (mismatched lengths)"""
    lines = _lines(s.files["trial2"])
    lines[5] = lines[5].rsplit(",", 1)[0]
    return _write_lines(s.files["trial2"], lines)


@case(T, "trial-file-missing", fail=r"files but the session has")
def _(s):
    """trial 3's file is missing and there is no trial map (2 files for 3 trials)"""
    s.files["trial3"].unlink()
    return s.files["folder"]


def _trial_map(s: Slot, text: str) -> Path:
    p = s.files["folder"] / f"{s.h2o}_{s.info['day']:%m%d%y}_side.txt"
    p.write_text(text)
    return p


@case(T, "trial-map-bad-line", fail=r"index<TAB>trial|expected")
def _(s):
    """the trial map's line 2 is '2 two'"""
    return _trial_map(s, "1\t1\n2\ttwo\n3\t3\n")


@case(T, "trial-map-unknown-trial", fail=r"trial 9")
def _(s):
    """the trial map sends file 3 to trial 9, which the session does not have (out-of-range id)"""
    return _trial_map(s, "1\t1\n2\t2\n3\t9\n")


@case(T, "real-csv-likelihood-above-one", fail=r"likelihood", real=DLC_CSV)
def _(s):
    """the real DeepLabCut CSV with a likelihood of 1.5 on line 6"""
    return _edit_cell(s.files["trial2"], 6, 3, "1.5")


@case(T, "real-csv-truncated", fail=r"cut off|no line end", real=DLC_CSV2)
def _(s):
    """the real DeepLabCut CSV (camera 2) cut off at half its size"""
    return truncate(s.files["trial2"])


@case(T, "real-labelled-data", fail=r"labelled", real=DLC_LABELLED)
def _(s):
    """the real labelled-data CSV (training frames, x/y only) where a video's output belongs"""
    return s.files["trial2"]


@case(T, "real-h5-truncated", fail=r"HDF5|cannot read|truncat", real=DLC_H5)
def _(s):
    """the real DeepLabCut .h5 cut off at half its size"""
    return truncate(s.files["trial2"])


@case(T, "real-h5-multi-animal", fail=r"multi-animal", real=DLC_MULTI)
def _(s):
    """the real multi-animal DeepLabCut .h5 (an 'individuals' level)"""
    return s.files["trial2"]


@case(T, "real-h5-skeleton", fail=r"coordinate|bodypart|coords|not a pose", real=DLC_SKELETON)
def _(s):
    """the real DeepLabCut skeleton table (bone lengths), not a pose table"""
    return s.files["trial2"]


# ------------------------------------------------------------------------------------- ingest-ephys
E = "ingest-ephys"
REAL_META = "spikeglx_meta/ibl-neuropixel/sample3B_g0_t0.imec1.ap.meta"
REAL_BITCODE = "map_ephys_bitcode_mat/dl25_bitcode.mat"
REAL_PHY = "kilosort_phy/phy-data"


def _meta_line(path: Path, key: str, value: str | None) -> Path:
    """Set ``key=value`` in a .meta file (None: delete the line)."""
    lines = _lines(path)
    idx = [i for i, x in enumerate(lines) if x.split("=", 1)[0] == key]
    if not idx:
        raise ValueError(f"{path}: no {key}")
    if value is None:
        del lines[idx[0]]
    else:
        lines[idx[0]] = f"{key}={value}"
    return _write_lines(path, lines)


@case(E, "meta-truncated", fail=r"missing|no ~imroTbl|broken|truncat|unreadable|entries")
def _(s):
    """the .ap.meta cut off at half its size"""
    return truncate(s.files["meta"])


@case(E, "meta-zero-bytes", fail=r"empty|no key=value")
def _(s):
    """the .ap.meta is zero bytes long"""
    return empty(s.files["meta"])


@case(E, "meta-binary", fail=r"binary")
def _(s):
    """NUL bytes in the middle of the .ap.meta"""
    raw = s.files["meta"].read_bytes()
    s.files["meta"].write_bytes(raw[:200] + b"\x00" * 32 + raw[200:])
    return s.files["meta"]


@case(E, "meta-nsavedchans-wrong", fail=r"nSavedChans|saved")
def _(s):
    """nSavedChans=300 while the file lists 385 saved channels"""
    return _meta_line(s.files["meta"], "nSavedChans", "300")


@case(E, "meta-unknown-probe-type", fail=r"probe type|imDatPrb_type")
def _(s):
    """imDatPrb_type=9999 (no such probe)"""
    lines = _lines(s.files["meta"])
    if any(x.startswith("imDatPrb_type=") for x in lines):
        return _meta_line(s.files["meta"], "imDatPrb_type", "9999")
    lines.insert(0, "imDatPrb_type=9999")
    return _write_lines(s.files["meta"], lines)


@case(E, "meta-missing", fail=r"\.ap\.meta|meta")
def _(s):
    """the probe folder has no .ap.meta (sorting and bitcode are there)"""
    s.files["meta"].unlink()
    return s.files["probe"]


@case(E, "two-ap-metas", fail=r"expected one \.ap\.meta")
def _(s):
    """two non-CatGT .ap.meta files in the probe folder (g0 and g1)"""
    m = s.files["meta"]
    a = m.rename(m.with_name(f"{s.h2o}_g0_t0.imec0.ap.meta"))
    shutil.copyfile(a, a.with_name(f"{s.h2o}_g1_t0.imec0.ap.meta"))
    return s.files["probe"]


def _npy(s: Slot, name: str) -> Path:
    return s.files["sorting"] / name


@case(E, "spike-times-truncated", fail=r"\.npy|truncat")
def _(s):
    """spike_times.npy cut off at half its size"""
    return truncate(_npy(s, "spike_times.npy"))


@case(E, "spike-times-zero-bytes", fail=r"empty|not a readable")
def _(s):
    """spike_times.npy is zero bytes long"""
    return empty(_npy(s, "spike_times.npy"))


@case(E, "spike-times-float", fail=r"type float|integer|whole sample")
def _(s):
    """spike_times.npy holds float64 seconds instead of integer samples (wrong dtype)"""
    p = _npy(s, "spike_times.npy")
    np.save(p, np.load(p).astype(np.float64) / 30000.0)
    return p


@case(E, "spike-times-negative", fail=r"negative")
def _(s):
    """the first spike time is -5 samples"""
    p = _npy(s, "spike_times.npy")
    a = np.load(p).astype(np.int64)
    a[0] = -5
    np.save(p, a)
    return p


@case(E, "spike-clusters-too-short", fail=r"spike_clusters|\d+ spikes|entries|elements")
def _(s):
    """spike_clusters.npy has 10 entries fewer than spike_times.npy (mismatched lengths)"""
    p = _npy(s, "spike_clusters.npy")
    np.save(p, np.load(p)[:-10])
    return p


@case(E, "spike-clusters-float", fail=r"type float|integer")
def _(s):
    """spike_clusters.npy holds floats (wrong dtype)"""
    p = _npy(s, "spike_clusters.npy")
    np.save(p, np.load(p).astype(np.float64) + 0.5)
    return p


@case(E, "params-syntax-error", fail=r"params\.py")
def _(s):
    """params.py has a line 'sample_rate = = 3'"""
    p = _npy(s, "params.py")
    p.write_text(p.read_text() + "sample_rate = = 3\n")
    return p


@case(E, "params-negative-sample-rate", fail=r"sample_rate")
def _(s):
    """params.py says sample_rate = -30000"""
    p = _npy(s, "params.py")
    lines = [("sample_rate = -30000.0" if x.startswith("sample_rate") else x) for x in p.read_text().splitlines()]
    p.write_text("\n".join(lines) + "\n")
    return p


@case(E, "channel-map-duplicate", fail=r"more than once")
def _(s):
    """channel_map.npy lists channel 4 twice"""
    p = _npy(s, "channel_map.npy")
    a = np.load(p)
    a.ravel()[5] = a.ravel()[4]
    np.save(p, a)
    return p


@case(E, "channel-map-out-of-range", fail=r"channel")
def _(s):
    """channel_map.npy refers to channel 500 of a 385-channel recording (out-of-range id)"""
    p = _npy(s, "channel_map.npy")
    a = np.load(p)
    a.ravel()[-1] = 500
    np.save(p, a)
    return p


@case(E, "cluster-group-bad-id", fail=r"non-integer|cluster id")
def _(s):
    """cluster_group.tsv has the cluster id 'x7'"""
    p = _npy(s, "cluster_group.tsv")
    lines = p.read_text().split("\n")
    lines[1] = "x7" + lines[1][lines[1].index("\t") :]
    p.write_text("\n".join(lines))
    return p


@case(E, "metrics-without-cluster-id", fail=r"cluster_id")
def _(s):
    """metrics.csv's cluster_id column is named clusterid"""
    return _replace(_npy(s, "metrics.csv"), "cluster_id", "clusterid")


@case(E, "templates-wrong-shape", fail=r"templates")
def _(s):
    """templates.npy is 2-D (one channel only)"""
    p = _npy(s, "templates.npy")
    np.save(p, np.load(p)[:, :, 0])
    return p


@case(E, "amplitudes-too-long", fail=r"\d+ entries but .* has \d+ spikes")
def _(s):
    """amplitudes.npy has 7 entries more than spike_times.npy (mismatched lengths)"""
    p = _npy(s, "amplitudes.npy")
    a = np.load(p)
    np.save(p, np.concatenate([a, a[:7]]))
    return p


@case(E, "sorting-missing", fail=r"no sorting")
def _(s):
    """the Kilosort folder is gone (meta and bitcode are there)"""
    shutil.rmtree(s.files["sorting"])
    return s.files["probe"]


@case(E, "bitcode-truncated", fail=r"cannot read|truncat")
def _(s):
    """the bitcode .mat cut off at half its size"""
    return truncate(s.files["bitcode"])


@case(E, "bitcode-missing", fail=r"bitcode")
def _(s):
    """the bitcode .mat is missing"""
    s.files["bitcode"].unlink()
    return s.files["probe"]


def _edit_bitcode(path: Path, fn) -> Path:
    data = _load_mat(path)
    fn(data)
    return _save_mat(path, data)


@case(E, "bitcode-strig-backwards", fail=r"sTrig")
def _(s):
    """sTrig (trial starts) goes backwards at trial 4"""

    def edit(d):
        d["sTrig"][3, 0] = d["sTrig"][2, 0] - 100

    return _edit_bitcode(s.files["bitcode"], edit)


@case(E, "bitcode-strig-too-short", fail=r"sTrig has")
def _(s):
    """sTrig has two entries fewer than there are bitcodes (mismatched lengths)"""
    return _edit_bitcode(s.files["bitcode"], lambda d: d.__setitem__("sTrig", d["sTrig"][:-2]))


@case(E, "bitcode-not-binary", fail=r"0 and 1|0/1")
def _(s):
    """the bitcode matrix holds a 2"""

    def edit(d):
        d["bitcode"][2, 5] = 2

    return _edit_bitcode(s.files["bitcode"], edit)


@case(E, "bitcode-codes-of-another-session", fail=r"bitcode|overlap|match")
def _(s):
    """every trial's bitcode is one the behaviour session never used"""
    from .spikeglx import random_bitcodes

    def edit(d):
        n = d["bitcode"].shape[0]
        codes = [c for c in random_bitcodes(n + 40, seed=s.k + 77) if c not in set(s.info["codes"])][:n]
        d["bitCodeS"] = np.array(codes, dtype="U16")
        d["bitcode"] = np.array([[int(ch) for ch in c] for c in codes], dtype=np.uint8)
        d.pop("trialNum", None)

    return _edit_bitcode(s.files["bitcode"], edit)


@case(E, "jrclust-v3-truncated", fail=r"cannot read|truncat", variant="jrclust_v3")
def _(s):
    """a JRClust v3 _jrc.mat cut off at half its size"""
    return truncate(s.files["sorting"])


@case(E, "jrclust-v4-zero-bytes", fail=r"empty|no MATLAB header", variant="jrclust_v4")
def _(s):
    """a JRClust v4 _res.mat that is zero bytes long"""
    return empty(s.files["sorting"])


@case(E, "jrclust-v4-prm-sample-rate-text", fail=r"sampleRate|\.prm", variant="jrclust_v4")
def _(s):
    """the JRClust v4 .prm says sampleRate = 'fast'"""
    p = s.files["prm"]
    lines = [("sampleRate = 'fast';" if x.startswith("sampleRate") else x) for x in p.read_text().splitlines()]
    p.write_text("\n".join(lines) + "\n")
    return p


@case(E, "real-meta-truncated", fail=r"missing|no ~imroTbl|broken|truncat|unreadable|entries", real=REAL_META)
def _(s):
    """the real SpikeGLX 3B .ap.meta cut off at half its size"""
    return truncate(s.files["meta"])


@case(E, "real-bitcode-old-format", fail=r"old-format|sTrig", real=REAL_BITCODE)
def _(s):
    """the real dl25 bitcode file: old format, no sTrig/goCue trial times"""
    return s.files["bitcode"]


@case(E, "real-kilosort-spike-times-truncated", fail=r"\.npy|truncat", real=REAL_PHY)
def _(s):
    """the real phy test dataset with spike_times.npy cut off at half its size"""
    return truncate(_npy(s, "spike_times.npy"))


@case(E, "real-kilosort-cluster-group-bad-id", fail=r"non-integer|cluster id", real=REAL_PHY)
def _(s):
    """the real phy test dataset with a cluster id 'four' in cluster_group.tsv"""
    p = _npy(s, "cluster_group.tsv")
    lines = p.read_text().split("\n")
    lines[1] = "four" + lines[1][lines[1].index("\t") :]
    p.write_text("\n".join(lines))
    return p


# --------------------------------------------------------------------------------- ingest-histology
H = "ingest-histology"
GIGG = "histology_ibl_json/GiggLab/channel_locations.json"
PTS = "histology_track_points/ibllib/2019-12-04_KS014_001_probe00_pts.csv"


def _edit_json(path: Path, fn) -> Path:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data, indent=1))
    return path


@case(H, "channel-locations-truncated", fail=r"JSON")
def _(s):
    """channel_locations.json cut off at half its size"""
    return truncate(s.files["channel_locations"])


@case(H, "channel-locations-zero-bytes", fail=r"empty|JSON")
def _(s):
    """channel_locations.json is zero bytes long"""
    return empty(s.files["channel_locations"])


@case(H, "channel-locations-not-utf8", fail=r"JSON|UTF|decode")
def _(s):
    """bytes that are not UTF-8 in a region name of channel_locations.json"""
    return _replace(s.files["channel_locations"], '"brain_region": "', b'"brain_region": "\xff\xfe', count=1)


@case(H, "channel-nan-coordinate", fail=r"finite")
def _(s):
    """channel_10's x is NaN"""
    return _edit_json(s.files["channel_locations"], lambda d: d["channel_10"].__setitem__("x", float("nan")))


@case(H, "channels-missing", fail=r"channels")
def _(s):
    """ten channels are missing from channel_locations.json"""

    def edit(d):
        for i in range(370, 380):
            d.pop(f"channel_{i}")

    return _edit_json(s.files["channel_locations"], edit)


@case(H, "origin-wrong-shape", fail=r"origin")
def _(s):
    """the origin has 2 coordinates (a setting of the wrong shape)"""
    return _edit_json(s.files["channel_locations"], lambda d: d.__setitem__("origin", {"bregma": [1.0, 2.0]}))


@case(H, "origin-missing", fail=r"origin")
def _(s):
    """channel_locations.json has no origin"""
    return _edit_json(s.files["channel_locations"], lambda d: d.pop("origin"))


@case(H, "region-id-not-integer", fail=r"integer")
def _(s):
    """channel_3's brain_region_id is 315.5"""
    return _edit_json(s.files["channel_locations"], lambda d: d["channel_3"].__setitem__("brain_region_id", 315.5))


@case(H, "channels-outside-the-volume", fail=r"outside")
def _(s):
    """every channel moved 100 mm to the side, outside the annotation volume"""

    def edit(d):
        for k, v in d.items():
            if k.startswith("channel_"):
                v["x"] += 100_000.0

    return _edit_json(s.files["channel_locations"], edit)


@case(H, "xyz-picks-truncated", fail=r"JSON")
def _(s):
    """xyz_picks.json cut off at half its size"""
    return truncate(s.files["xyz_picks"])


@case(H, "xyz-picks-nan", fail=r"finite")
def _(s):
    """a NaN in xyz_picks.json"""
    return _edit_json(s.files["xyz_picks"], lambda d: d["xyz_picks"][3].__setitem__(1, float("nan")))


@case(H, "xyz-picks-wrong-shape", fail=r"N x 3")
def _(s):
    """xyz_picks.json holds (x, y) pairs, not (x, y, z)"""
    return _edit_json(s.files["xyz_picks"], lambda d: d.__setitem__("xyz_picks", [p[:2] for p in d["xyz_picks"]]))


@case(H, "site-info-truncated", fail=r"cannot read|truncat", variant="site_info")
def _(s):
    """a MAP siteInfo .mat cut off at half its size"""
    return truncate(s.files["site_info"])


@case(H, "landmarks-bad-warp-flag", fail=r"warp flag", variant="site_info")
def _(s):
    """the BigWarp landmark CSV beside a good siteInfo has the warp flag 'maybe'"""
    from .histology import write_landmarks_csv

    p = s.files["site_info"].with_name(s.files["site_info"].name.replace("_siteInfo.mat", ".csv"))
    write_landmarks_csv(p, seed=s.k)
    return _replace(p, ",true,", ",maybe,")


@case(H, "track-points-for-a-probe-that-does-not-exist", fail=r"matches no probe insertion")
def _(s):
    """a Lasagna track-points file named for probe 9, which the session does not have (out-of-range id)"""
    for role in ("channel_locations", "xyz_picks"):
        s.files.pop(role).unlink()
    p = s.root / s.h2o / "histology" / f"{s.h2o}_{s.info['date']:%Y%m%d}_9_pts.csv"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("200,279,165\n201,279,164\n202,280,160\n")
    return p


@case(H, "real-channel-locations", fail=r"channels", real=GIGG)
def _(s):
    """the real GiggLab channel_locations.json (2 channels, no origin) for a 384-channel probe"""
    return s.files["channel_locations"]


@case(H, "real-track-points-bad-line", fail=r"line \d+", real=PTS)
def _(s):
    """the real Lasagna track points with a line of two numbers"""
    p = s.files["track_points"]
    lines = p.read_text().splitlines()
    lines.insert(10, "201,279")
    p.write_text("\n".join(lines) + "\n")
    return p


# ------------------------------------------------------------------------------------------- ccfload
C = "ccfload"
MAP_ONTOLOGY = "allen_ccf_ontology/mousebrainontology_2.csv"
ALLEN_TREE = "allen_ccf_ontology/allenCCF/structure_tree_safe_2017.csv"


def _csv_line(path: Path, n: int, fn) -> Path:
    lines = Path(path).read_bytes().split(b"\n")
    lines[n] = fn(lines[n])
    Path(path).write_bytes(b"\n".join(lines))
    return Path(path)


@case(C, "real-ontology-truncated", fail=r"truncat|line|name|cut", real=MAP_ONTOLOGY)
def _(s):
    """the real MAP ontology CSV cut off at half its size"""
    return truncate(s.files["region_csv"])


@case(C, "real-ontology-zero-bytes", fail=r"empty", real=MAP_ONTOLOGY)
def _(s):
    """the real MAP ontology CSV is zero bytes long"""
    return empty(s.files["region_csv"])


@case(C, "real-ontology-not-utf8", fail=r"UTF|text|decode", real=MAP_ONTOLOGY)
def _(s):
    """a Latin-1 byte in a region name of the real MAP ontology"""
    return _csv_line(s.files["region_csv"], 2, lambda b: b.replace(b"fissure", b"fissur\xe9"))


@case(C, "real-ontology-id-not-integer", fail=r"not an integer", real=MAP_ONTOLOGY)
def _(s):
    """a region id '12a' on line 11 of the real MAP ontology"""
    return _csv_line(s.files["region_csv"], 10, lambda b: b"12a" + b[b.index(b",") :])


@case(C, "real-ontology-duplicate-id", fail=r"twice|duplicate|more than once|repeat", real=MAP_ONTOLOGY)
def _(s):
    """line 21 of the real MAP ontology repeats the id of line 20 with another name"""
    lines = s.files["region_csv"].read_bytes().split(b"\n")
    lines[20] = lines[19].split(b",", 1)[0] + b",Another region"
    s.files["region_csv"].write_bytes(b"\n".join(lines))
    return s.files["region_csv"]


@case(C, "real-hexcode-bad-colour", fail=r"hex|colour|color", real=MAP_ONTOLOGY)
def _(s):
    """the colour GGGGGG on line 5 of the real hexcode.csv"""
    return _csv_line(s.files["hexcode_csv"], 4, lambda b: b.split(b",")[0] + b",GGGGGG")


@case(C, "real-hexcode-zero-bytes", fail=r"empty", real=MAP_ONTOLOGY)
def _(s):
    """the real hexcode.csv is zero bytes long"""
    return empty(s.files["hexcode_csv"])


@case(C, "real-tree-misspelt-column", fail=r"lacks columns|parent_structure_id", real=ALLEN_TREE)
def _(s):
    """the real Allen structure tree's parent_structure_id header is parent_structur_id"""
    return _replace(s.files["region_csv"], "parent_structure_id", "parent_structur_id")


@case(C, "real-tree-unknown-parent", fail=r"parent", real=ALLEN_TREE)
def _(s):
    """a structure of the real Allen tree names parent 987654321, which the tree does not have"""
    p = s.files["region_csv"]
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    df.loc[5, "parent_structure_id"] = "987654321"
    df.to_csv(p, index=False)
    return p


@case(C, "annotation-truncated", fail=r"truncated")
def _(s):
    """the annotation NRRD cut off at half its size"""
    return truncate(s.files["annotation_nrrd"])


@case(C, "annotation-zero-bytes", fail=r"empty|NRRD")
def _(s):
    """the annotation NRRD is zero bytes long"""
    return empty(s.files["annotation_nrrd"])


@case(C, "annotation-no-magic", fail=r"NRRD")
def _(s):
    """the annotation's first bytes are not the NRRD magic"""
    return _replace(s.files["annotation_nrrd"], b"NRRD000", b"XRRD000")


@case(C, "annotation-gzip-damaged", fail=r"corrupt|gzip|truncat|zlib|decompress|damaged")
def _(s):
    """bytes inverted in the middle of the annotation's gzip data"""
    size = s.files["annotation_nrrd"].stat().st_size
    return flip_bytes(s.files["annotation_nrrd"], size // 2, 64)


def _write_nrrd(path: Path, data: np.ndarray, spacing=(20.0, 20.0, 20.0)) -> Path:
    import nrrd

    header = {
        "space directions": np.diag([float(v) for v in spacing])
        if data.ndim == 3
        else np.diag([float(v) for v in spacing[: data.ndim]]),
        "kinds": ["domain"] * data.ndim,
        "endian": "little",
        "encoding": "gzip",
    }
    if data.ndim == 3:
        header["space"] = "left-posterior-superior"
    nrrd.write(str(path), data, header, index_order="F")
    return path


@case(C, "annotation-float-type", fail=r"not an integer type")
def _(s):
    """the annotation holds float32 region ids (wrong dtype)"""
    import nrrd

    data, _ = nrrd.read(str(s.files["annotation_nrrd"]), index_order="F")
    return _write_nrrd(s.files["annotation_nrrd"], data.astype(np.float32))


@case(C, "annotation-negative-id", fail=r"negative")
def _(s):
    """an int32 annotation with region id -5 in one voxel"""
    import nrrd

    data, _ = nrrd.read(str(s.files["annotation_nrrd"]), index_order="F")
    data = data.astype(np.int32)
    data[3, 4, 5] = -5
    return _write_nrrd(s.files["annotation_nrrd"], data)


@case(C, "annotation-anisotropic", fail=r"isotropic")
def _(s):
    """voxels of 20 x 20 x 40 um"""
    import nrrd

    data, _ = nrrd.read(str(s.files["annotation_nrrd"]), index_order="F")
    return _write_nrrd(s.files["annotation_nrrd"], data, spacing=(20.0, 20.0, 40.0))


@case(C, "annotation-2d", fail=r"3-D|dimension")
def _(s):
    """a 2-D annotation (one plane)"""
    import nrrd

    data, _ = nrrd.read(str(s.files["annotation_nrrd"]), index_order="F")
    return _write_nrrd(s.files["annotation_nrrd"], np.ascontiguousarray(data[:, :, 3]))


# --------------------------------------------------------------------------------------- load-animal
A = "load-animal"


def _rewrite_animals(s: Slot, fn) -> Path:
    from .animals import write_animals

    df = s.info["animals"].astype(object).copy()
    fn(df)
    return write_animals(s.files["sheet"], df)


@case(A, "xlsx-truncated", fail=r"cannot read|spreadsheet|zip|not a", variant="xlsx")
def _(s):
    """the .xlsx sheet cut off at half its size"""
    return truncate(s.files["sheet"])


@case(A, "xlsx-zero-bytes", fail=r"empty|cannot read", variant="xlsx")
def _(s):
    """the .xlsx sheet is zero bytes long"""
    return empty(s.files["sheet"])


@case(A, "csv-not-utf8", fail=r"UTF|decode|cannot read|encoding")
def _(s):
    """a Latin-1 byte in the .csv sheet"""
    df = s.info["animals"]
    return _replace(s.files["sheet"], str(df.animal_source.iloc[1]), b"Jackson Labs \xe9levage")


@case(A, "misspelt-column", fail=r"missing column|wr_start_date")
def _(s):
    """the column wr_start_date is headed wr_strat_date"""
    return _replace(s.files["sheet"], "wr_start_date", "wr_strat_date")


@case(A, "ambiguous-date", fail=r"ambiguous")
def _(s):
    """row 3's wr_start_date is 03/04/2024"""
    return _rewrite_animals(
        s, lambda df: df.__setitem__("wr_start_date", [df.wr_start_date[0], "03/04/2024", df.wr_start_date[2]])
    )


@case(A, "subject-id-out-of-range", fail=r"subject_id")
def _(s):
    """row 2's subject_id is 3000000000 (beyond the column's range)"""
    return _rewrite_animals(s, lambda df: df.__setitem__("subject_id", [3_000_000_000, *df.subject_id[1:]]))


@case(A, "subject-id-not-whole", fail=r"subject_id")
def _(s):
    """row 4's subject_id is 12.5"""
    return _rewrite_animals(s, lambda df: df.__setitem__("subject_id", [*df.subject_id[:2], 12.5]))


@case(A, "negative-weight", fail=r"wr_start_weight")
def _(s):
    """row 3's wr_start_weight is -21"""
    return _rewrite_animals(
        s, lambda df: df.__setitem__("wr_start_weight", [df.wr_start_weight[0], -21, df.wr_start_weight[2]])
    )


@case(A, "weight-nan-text", fail=r"wr_start_weight")
def _(s):
    """row 2's wr_start_weight is the text 'NaN g'"""
    return _rewrite_animals(s, lambda df: df.__setitem__("wr_start_weight", ["NaN g", *df.wr_start_weight[1:]]))


@case(A, "sex-unknown-code", fail=r"sex")
def _(s):
    """row 4's sex is 'X'"""
    return _rewrite_animals(s, lambda df: df.__setitem__("sex", [*df.sex[:2], "X"]))


@case(A, "repeated-h2o", fail=r"repeats")
def _(s):
    """row 3 repeats row 2's water_restriction_number"""
    h = list(s.info["animals"].water_restriction_number)
    return _rewrite_animals(s, lambda df: df.__setitem__("water_restriction_number", [h[0], h[0], h[2]]))


@case(A, "born-after-restriction", fail=r"after")
def _(s):
    """row 2's date_of_birth is after its wr_start_date"""

    def edit(df):
        dob = list(df.date_of_birth)
        dob[0] = df.wr_start_date[0] + dt.timedelta(days=30)
        df["date_of_birth"] = dob

    return _rewrite_animals(s, edit)


@case(A, "h2o-too-long", fail=r"water_restriction_number")
def _(s):
    """row 3's water_restriction_number has 40 characters (beyond the column's 16)"""
    return _rewrite_animals(
        s,
        lambda df: df.__setitem__(
            "water_restriction_number", [df.water_restriction_number[0], "x" * 40, df.water_restriction_number[2]]
        ),
    )


# --------------------------------------------------------------------------- load-insertion-location
IL = "load-insertion-location"


def _rewrite_notes(s: Slot, fn) -> Path:
    df = s.info["rows"].astype(object).copy()
    fn(df)
    return _write_sheet(s.files["sheet"], df)


@case(IL, "misspelt-column", fail=r"missing column|ml_location")
def _(s):
    """the column ml_location is headed ml_locaton"""
    return _replace(s.files["sheet"], "ml_location", "ml_locaton")


@case(IL, "ambiguous-date", fail=r"ambiguous")
def _(s):
    """session_date is 05/04/2023"""
    return _rewrite_notes(s, lambda df: df.__setitem__("session_date", ["05/04/2023"]))


@case(IL, "insertion-that-does-not-exist", fail=r"insertion")
def _(s):
    """insertion_number 9: the session has probe 1 only (out-of-range id)"""
    return _rewrite_notes(s, lambda df: df.__setitem__("insertion_number", [9]))


@case(IL, "unknown-animal", fail=r"zz99|water_restriction")
def _(s):
    """water_restriction_number zz99, an animal that is not registered"""
    return _rewrite_notes(s, lambda df: df.__setitem__("water_restriction_number", ["zz99"]))


@case(IL, "ap-location-not-a-number", fail=r"ap_location")
def _(s):
    """ap_location is 'front'"""
    return _rewrite_notes(s, lambda df: df.__setitem__("ap_location", ["front"]))


@case(IL, "depth-nan", fail=r"depth")
def _(s):
    """depth is NaN"""
    return _rewrite_notes(s, lambda df: df.__setitem__("depth", [float("nan")]))


@case(IL, "good-period-reversed", fail=r"good_period")
def _(s):
    """good_period '20-10' ends before it starts"""
    return _rewrite_notes(s, lambda df: df.__setitem__("good_period", ["20-10"]))


@case(IL, "csv-not-utf8", fail=r"UTF|decode|cannot read|encoding")
def _(s):
    """a Latin-1 byte in the .csv sheet"""
    return _replace(s.files["sheet"], "Bregma", b"Br\xe9gma")


@case(IL, "xlsx-truncated", fail=r"cannot read|spreadsheet|zip|not a", variant="xlsx")
def _(s):
    """the .xlsx sheet cut off at half its size"""
    return truncate(s.files["sheet"])


# ----------------------------------------------------------------------------- dj_local_conf.json
S = "settings"


def _conf(s: Slot, custom: dict | None = None, text: str | None = None, args: list[str] | None = None) -> Path:
    if args is not None:
        s.info["args"] = args
    if text is None:
        text = json.dumps({"custom": custom}, indent=4) + "\n"
    s.files["conf"].write_text(text)
    return s.files["conf"]


def _rig(s: Slot) -> str:
    return str(s.files["rig"])


@case(S, "truncated", settings=r"not valid JSON")
def _(s):
    """the settings file cut off at half its size"""
    return truncate(s.files["conf"])


@case(S, "zero-bytes", settings=r"not valid JSON|empty")
def _(s):
    """the settings file is zero bytes long"""
    return empty(s.files["conf"])


@case(S, "not-utf8", settings=r"UTF-8")
def _(s):
    """a Latin-1 byte in a rig name of the settings file"""
    return _replace(s.files["conf"], f'"{RIG}"', b'"R\xe9Rig"')


@case(S, "behavior-paths-flat", settings=r"behavior_data_paths")
def _(s):
    """behavior_data_paths is one [rig, path, priority] entry, not a list of them (wrong shape)"""
    return _conf(s, {"behavior_data_paths": [RIG, _rig(s), 0]})


@case(S, "behavior-priority-text", settings=r"behavior_data_paths")
def _(s):
    """behavior_data_paths' priority is the string '0'"""
    return _conf(s, {"behavior_data_paths": [[RIG, _rig(s), "0"]]})


@case(S, "tracking-paths-with-priority", settings=r"tracking_data_paths")
def _(s):
    """tracking_data_paths entries have a priority (3 elements, not [rig, path])"""
    return _conf(s, {"tracking_data_paths": [[RIG, _rig(s), 0]]}, args=["ingest-tracking"])


@case(S, "ephys-paths-number", settings=r"ephys_data_paths")
def _(s):
    """ephys_data_paths is the number 42"""
    return _conf(s, {"ephys_data_paths": 42}, args=["ingest-ephys"])


@case(S, "bpod-without-project-paths", settings=r"behavior_bpod")
def _(s):
    """behavior_bpod has meta_dir only"""
    return _conf(s, {"behavior_bpod": {"meta_dir": _rig(s)}}, args=["ingest-foraging"])


@case(S, "bpod-misspelt-field", settings=r"behavior_bpod")
def _(s):
    """behavior_bpod's meta_dir is spelt meta_dri"""
    return _conf(s, {"behavior_bpod": {"meta_dri": _rig(s), "project_paths": [_rig(s)]}}, args=["ingest-foraging"])


@case(S, "ccf-paths-misspelt-field", settings=r"ccf_data_paths")
def _(s):
    """ccf_data_paths' region_csv is spelt region_cvs"""
    return _conf(s, {"ccf_data_paths": {"version_name": "CCF_2017", "region_cvs": _rig(s)}}, args=["ccfload"])


@case(S, "misspelt-setting", settings=r"behaviour_data_paths|unknown setting")
def _(s):
    """the key behaviour_data_paths (British spelling) instead of behavior_data_paths"""
    return _conf(s, {"behaviour_data_paths": [[RIG, _rig(s), 0]]})


@case(S, "top-level-list", settings=r"JSON object")
def _(s):
    """the file holds a JSON list, not an object"""
    return _conf(s, text=json.dumps([{"custom": s.info["custom"]}]))


@case(S, "custom-not-an-object", settings=r"custom")
def _(s):
    """ "custom" is a string"""
    return _conf(s, text=json.dumps({"custom": "behavior_data_paths"}))


@case(S, "loglevel-unknown", settings=r"loglevel")
def _(s):
    """loglevel is 'LOUD'"""
    return _conf(s, text=json.dumps({"loglevel": "LOUD", "custom": s.info["custom"]}))


@case(S, "histology-paths-empty-string", settings=r"histology_data_paths")
def _(s):
    """histology_data_paths is [""]"""
    return _conf(s, {"histology_data_paths": [""]}, args=["ingest-histology"])


if __name__ == "__main__":  # python -m pipeline.synthetic.damage: the catalogue, one line per case
    for c in CATALOGUE:
        print(f"{c.name:<50} {c.outcome:<8} {'real' if c.real else '':<5} {c.what}")
    print(f"{len(CATALOGUE)} cases")
