"""``ingest-ephys``: spike sorting per probe, for behavior sessions, from ``ephys_data_paths``.

Layout (spec 3.4, in our words): a session's folder is ``<root>/<h2o>/<YYYYMMDD>/`` (also
``YYYY-MM-DD``, ``catgt_<YYYYMMDD>_g0`` and ``*<h2o>*<YYYYMMDD|mmddyy>_*`` run folders); each probe
has a sub-folder named by its number (``1``, ``2``) or ending in ``imec<N>`` (insertion N+1), with
the SpikeGLX ``.ap.meta`` (a CatGT ``tcat`` one preferred), the sorting (JRClust v4 ``*.ap_res.mat``
> JRClust v3 ``*_jrc.mat`` > one Kilosort/phy folder found below it) and the MAP bitcode file
``*bitcode.mat`` that ties ephys trials to behaviour trials.

Trial sync, two routes (spec 3.4; the loaded line says which one a probe took, as ``sync ...``):

* the probe folder's ``*bitcode.mat`` (route (a)): trial starts and go cues in samples of the probe's
  stream, codes aligned to the behaviour's TrialNote 'bitcode';
* else the CatGT edge files of the NIDQ stream in the *session* folder (route (b), shared by its
  probes): ``*.XA_0_0[.adj].txt`` trial starts and ``*.XA_1_2[.adj].txt`` bit pulses (s), decoded
  into 10-character codes and aligned the same way (see ``pipeline.io.bitcode``). go = trial start +
  the behaviour's go time (its first TrialEvent 'go', s from the trial start); a trial without one
  has no go time, except multi-target-licking trials (no go cue in that task), whose go is the trial
  start, as the original did. Clock: the ``.adj`` files (CatGT's adjusted edges) are taken to be on
  the clock of the probe being loaded, and are used when present; plain XA files are on the NIDQ
  clock and are used only when there is no ``.adj`` file, with a note in the summary that the trial
  times are not clock-corrected (NIDQ and imec clocks drift apart by up to tens of ms an hour).
  Seconds become samples of the probe with the meta's ``imSampRate`` (the rate CatGT's times use),
  else the sorting's rate. Without bit pulses (no or an empty ``XA_1_2`` file), only an RRig-MTL
  session (rig "RRig-MTL") aligns: trial i of the NIDQ is behaviour trial i when the counts are
  equal (said in the notes); unequal counts, or another rig, are an error.

TTL-triggered recordings (spec 3.4, as the original): when the probe's ``.ap.meta`` has SpikeGLX's
``trgTTLMarginS``, each trial's data starts that margin before its trigger pulse, where the sync
places the trial start; on both routes the trial starts, in samples of the probe, become
``start - round(trgTTLMarginS x imSampRate)`` (the meta's rate; the XA seconds are converted to
probe samples first, with that rate), so the spikes of a trial's pre-trigger margin belong to it and
spike times count from the first trial's margin. Go times are events and do not move: route (a)'s
goCue as recorded, route (b)'s go = the trial-start pulse + the behaviour's go time
(multi-target-licking: the pulse). The loaded line then ends in
``starts - trgTTLMarginS 0.5 s (15000 samples)``. Without the key (a recording that was not
TTL-triggered) the starts are the sync's.

Foraging rigs' bitcode files also carry ``digMarkerPerTrial`` (+ ``headings``), ``zaberPerTrial``,
``lick{L,R,M}PerTrial`` and ``cameraPerTrial`` (spec 3.4): for the aligned trials they become
``ephys.TrialEvent`` (go, choice, reward, trialend, ... and zaber steps), ``ephys.ActionEvent``
(licks) and ``tracking.EphysFrameTime`` (frame times of each camera named by
``chan.cameraNameInDJ``), in s on the recording's clock as the file gives them, with the probe whose
file carries them (the original loaded them with probe 1 only, by row number instead of by the
trial alignment).

Each probe is one transaction: ProbeInsertion (+sampling rate), its electrode configuration,
Clustering with its trials on the probe clock, units with spike arrays, metrics and labels, and
the EphysIngest record of the files (size, time and SHA-1 content hash; the large PC/template
feature files by size and time only). Re-runs skip loaded probes; a probe whose files changed,
even with the same size and time stamp, is reported, not reloaded, unless asked to:

Re-sorting (``mapshell ingest-ephys --replace [RESTRICTION]``, ``ingest_ephys(replace=True)``): a
loaded probe (of those matching the restriction) whose files changed is loaded as a new sorting in
place of the loaded one, which is archived first (its rows and spike arrays, one checked file in
the ``archive_url`` archive; ``ingest_ephys.ArchivedClustering``). One transaction archives the
record, deletes the old sorting and everything computed from it, and inserts the new one; the
insertion's location, quality and histology stay. The new files must be of the same probe,
electrode configuration and sampling rate. ``mapshell archive list`` shows the archived sortings,
``mapshell archive restore '<insertion key>' N`` puts one back (archiving the current one). See
``pipeline.ingest.archive``.

Databases created before the hash column get it from ``mapshell migrate --apply`` (migration 1).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datajoint as dj
import numpy as np
import pandas as pd

from ...errors import InputError
from .. import runner
from ..bulk import insert_frame, with_key
from ..files import readable_roots, sha1
from ..summary import Summary

log = logging.getLogger(__name__)

METRIC_COLUMNS = {  # metrics.csv column -> Clustering.ClusterMetric attribute
    "presence_ratio": "presence_ratio",
    "amplitude_cutoff": "amplitude_cutoff",
    "isolation_distance": "isolation_distance",
    "l_ratio": "l_ratio",
    "d_prime": "d_prime",
    "nn_hit_rate": "nn_hit_rate",
    "nn_miss_rate": "nn_miss_rate",
    "silhouette_score": "silhouette_score",
    "max_drift": "max_drift",
    "cumulative_drift": "cumulative_drift",
    "isi_viol": "isi_violation",
    "firing_rate": "avg_firing_rate",
}
WAVEFORM_METRIC_COLUMNS = {
    "duration": "duration",
    "halfwidth": "halfwidth",
    "PT_ratio": "pt_ratio",
    "pt_ratio": "pt_ratio",
    "repolarization_slope": "repolarization_slope",
    "recovery_slope": "recovery_slope",
    "spread": "spread",
    "velocity_above": "velocity_above",
    "velocity_below": "velocity_below",
}


class EphysIngestError(InputError):
    """A probe folder cannot be loaded; the message says which file and why."""


@dataclass
class ProbeFolder:
    root: Path
    session_dir: Path
    path: Path
    insertion_number: int


# --- discovery ------------------------------------------------------------------------------


def session_dirs(root: Path, h2o: str, day: dt.date) -> list[Path]:
    base = root / h2o
    if not base.is_dir():
        return []
    ymd, dashed, mdy = day.strftime("%Y%m%d"), day.isoformat(), day.strftime("%m%d%y")
    out = [base / ymd, base / dashed, base / f"catgt_{ymd}_g0"]
    out += sorted(p for p in base.glob(f"*{h2o}*_*") if p.is_dir() and (ymd in p.name or mdy in p.name))
    seen, result = set(), []
    for p in out:
        if p.is_dir() and p not in seen:
            seen.add(p)
            result.append(p)
    return result


def insertion_number(folder: Path) -> int | None:
    """``1`` -> 1; ``..._imec0`` -> 1 (SpikeGLX numbers probes from 0, insertions from 1)."""
    if folder.name.isdigit():
        return int(folder.name)
    m = re.search(r"imec(\d+)$", folder.name)
    return int(m.group(1)) + 1 if m else None


def probe_folders(root: Path, h2o: str, day: dt.date) -> list[ProbeFolder]:
    found: dict[int, ProbeFolder] = {}
    for sdir in session_dirs(root, h2o, day):
        for child in sorted(sdir.iterdir()):
            n = insertion_number(child) if child.is_dir() else None
            if n is not None and n not in found:  # without an .ap.meta it fails, naming the folder
                found[n] = ProbeFolder(root, sdir, child, n)
    return [found[k] for k in sorted(found)]


def ap_meta(folder: Path) -> Path:
    metas = sorted(folder.glob("*.ap.meta"))
    tcat = [m for m in metas if "tcat" in m.name]
    if len(tcat) == 1 or (not tcat and len(metas) == 1):
        return (tcat or metas)[0]
    raise EphysIngestError(
        f"{folder}: expected one .ap.meta (or one CatGT *tcat*.ap.meta), found "
        f"{', '.join(m.name for m in metas) or 'none'}"
    )


def find_sorting(folder: Path, h2o: str) -> tuple[str, Path]:
    """(clustering method, path) by the original's priority: JRClust v4 > v3 > Kilosort."""
    for pattern, method in (
        (f"{h2o}_*.ap_res.mat", "jrclust_v4"),
        ("*.ap_res.mat", "jrclust_v4"),
        (f"{h2o}_*_jrc.mat", "jrclust_v3"),
        ("*_jrc.mat", "jrclust_v3"),
    ):
        hits = sorted(folder.glob(pattern))
        if len(hits) > 1:
            raise EphysIngestError(f"{folder}: several {method} files: {', '.join(h.name for h in hits)}")
        if hits:
            return method, hits[0]
    ks = sorted({p.parent for p in folder.rglob("spike_times.npy")})
    if len(ks) > 1:
        preferred = [d for d in ks if (d / "mean_waveforms.npy").exists()]
        if len(preferred) != 1:
            raise EphysIngestError(f"{folder}: several Kilosort outputs: {', '.join(str(d) for d in ks)}")
        ks = preferred
    if ks:
        return ("pykilosort2.5" if "pyks25" in str(ks[0]) else "kilosort2"), ks[0]
    raise EphysIngestError(
        f"{folder}: no sorting found (JRClust *.ap_res.mat / *_jrc.mat, or Kilosort spike_times.npy)"
    )


def find_bitcode(folder: Path, h2o: str) -> Path:
    hits = sorted(folder.glob(f"{h2o}_*bitcode.mat")) or sorted(folder.glob("*bitcode.mat"))
    if len(hits) != 1:
        raise EphysIngestError(
            f"{folder}: expected one {h2o}_*bitcode.mat (the trial sync file), found "
            f"{', '.join(h.name for h in hits) or 'none'}"
        )
    return hits[0]


def find_sync(pf: ProbeFolder, h2o: str):
    """The probe's trial sync: ``('bitcode', path)`` for a ``*bitcode.mat`` in the probe folder, else
    ``('xa', XAFiles)`` for the CatGT edge files of its session folder; an error naming the probe
    folder when there is neither."""
    from ...io.bitcode import find_xa_files

    hits = sorted(pf.path.glob(f"{h2o}_*bitcode.mat")) or sorted(pf.path.glob("*bitcode.mat"))
    if len(hits) == 1:
        return "bitcode", hits[0]
    if len(hits) > 1:
        return "bitcode", find_bitcode(pf.path, h2o)  # raises, naming the files
    xa = find_xa_files(pf.session_dir)
    if xa is None:
        raise EphysIngestError(
            f"{pf.path}: no trial sync: expected one {h2o}_*bitcode.mat here, or the CatGT NIDQ edge files "
            f"*.XA_0_0[.adj].txt (trial starts) and *.XA_1_2[.adj].txt (bit pulses) in {pf.session_dir}"
        )
    return "xa", xa


def manually_curated(sorting_path: Path) -> bool:
    log_file = (sorting_path if sorting_path.is_dir() else sorting_path.parent) / "phy.log"
    if not log_file.exists():
        return False
    text = log_file.read_text(errors="replace")
    return any(s in text for s in ("Merge clusters", "Split cluster", "Change metadata_group"))


# --- reading and computing one probe ----------------------------------------------------------


def read_sorting(method: str, path: Path):
    """The sorting; a Kilosort folder's spikes come grouped by cluster (``cluster_offsets``), with only
    the per-spike fields the ingest stores."""
    if method.startswith("jrclust"):
        from ...io.jrclust import read_jrclust_v3, read_jrclust_v4

        result = read_jrclust_v4(path) if method == "jrclust_v4" else read_jrclust_v3(path)
    else:
        from ...io.kilosort import read_kilosort

        result = read_kilosort(path, by_cluster=True, spike_fields=("spike_times", "spike_sites", "spike_depths"))
    return result


_BLOCK = 1 << 18  # spikes per block of the per-spike conversions below (their temporaries stay this small)


def segment_spikes(spike_samples: np.ndarray, trial_start: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Behaviour trial of each spike: spikes from a trial's start to the next trial's start belong to
    it (the last trial keeps everything after its start); 0 before the first trial."""
    spike_samples = np.asarray(spike_samples)
    trial_of = np.zeros(len(trials) + 1, dtype=np.int32)  # by the number of trial starts at or before
    trial_of[1:] = trials
    out = np.empty(len(spike_samples), dtype=np.int32)
    for lo in range(0, out.size, _BLOCK):
        hi = min(out.size, lo + _BLOCK)
        out[lo:hi] = trial_of[np.searchsorted(trial_start, spike_samples[lo:hi], side="right")]
    return out


class UnitRows(Sequence):
    """A probe's ``Clustering.Unit`` rows (dicts), each made when it is asked for, so that the record
    holds one grouped array per spike field instead of every unit's arrays, and the write makes a
    unit's spike times (s) and trials only while it inserts that unit.

    ``rows[k]``: unit k's row without its per-spike arrays; its spikes are ``offsets[k]:offsets[k + 1]``
    of ``samples`` (sample numbers, which become ``spike_times`` = (samples - t0) / fs and
    ``spike_trials`` by :func:`segment_spikes`), ``sites`` and ``depths`` (None: not known), all
    grouped by unit (see ``pipeline.io.kilosort.group_by_cluster``)."""

    def __init__(self, rows, offsets, samples, t0, fs, trial_start, trials, sites=None, depths=None):
        self.rows, self.offsets, self.samples = rows, offsets, samples
        self.t0, self.fs, self.trial_start, self.trials = t0, fs, trial_start, trials
        self.sites, self.depths = sites, depths

    @property
    def nbytes(self) -> int:
        """Bytes of the per-spike arrays held (each unit's arrays are made when asked for)."""
        return sum(a.nbytes for a in (self.samples, self.sites, self.depths) if a is not None)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        sl = slice(self.offsets[k], self.offsets[k + 1])
        samples = self.samples[sl]
        seconds = np.subtract(samples, self.t0, dtype=np.float64)
        seconds /= self.fs
        return dict(
            self.rows[k],
            spike_times=seconds,
            spike_trials=segment_spikes(samples, self.trial_start, self.trials),
            spike_sites=None if self.sites is None else self.sites[sl],
            spike_depths=None if self.depths is None else self.depths[sl],
        )


def _spike_electrodes(spike_sites: np.ndarray, site_electrode: np.ndarray) -> np.ndarray:
    """``site_electrode[spike_sites]`` as int16, block by block; in the sites' own memory when they are
    a writable int16 array."""
    spike_sites = np.asarray(spike_sites)
    electrode_of = site_electrode.astype(np.int16)
    inplace = spike_sites.dtype == np.int16 and spike_sites.flags.writeable
    out = spike_sites if inplace else np.empty(spike_sites.shape, np.int16)
    for lo in range(0, out.size, _BLOCK):
        hi = min(out.size, lo + _BLOCK)
        out[lo:hi] = electrode_of[spike_sites[lo:hi]]
    return out


def _is_used(meta, electrodes: np.ndarray) -> np.ndarray:
    """SpikeGLX's 'used' flag of each electrode (False: a reference site), True if unknown."""
    flags = getattr(meta, "is_used", None)
    if flags is None or len(flags) != len(meta.electrodes):
        return np.ones(len(electrodes), dtype=bool)
    by_electrode = dict(zip(np.asarray(meta.electrodes).tolist(), np.asarray(flags, dtype=bool).tolist()))
    return np.array([by_electrode.get(int(e), True) for e in electrodes], dtype=bool)


#: Files hashed only by size and time: large per-spike feature files the loaded values do not
#: depend on, or only through the spike depths (hashing gigabytes on every re-run is not worth it).
UNHASHED = ("pc_features.npy", "template_features.npy", "pc_feature_spike_ids.npy", "template_feature_spike_ids.npy")


def _hash(path: Path) -> str | None:
    return None if path.name in UNHASHED else sha1(path)


def _file_rows(folder: Path, files: dict[str, Path]) -> list[dict]:
    """One row per file the probe was loaded from: size, time and content hash (SHA-1)."""
    rows = []
    for role, p in files.items():
        paths = sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p]
        for q in paths:
            st = q.stat()
            rows.append(
                dict(
                    ephys_file=os.path.relpath(q, folder) if q.is_relative_to(folder.parent) else str(q),
                    file_role=role,
                    file_size=st.st_size,
                    file_mtime=dt.datetime.fromtimestamp(int(st.st_mtime)),
                    file_sha1=_hash(q),
                )
            )
    return rows


@dataclass
class ProbeInputs:
    """What build needs from the database: the behaviour session's trials."""

    trials: np.ndarray  # behaviour trial numbers with a bitcode, in order
    codes: list[str]  # their bitcodes
    free_water: dict[int, bool]  # trial -> free water (to pad old files' go cues); every behaviour trial
    rig: str | None = None  # the session's rig (RRig-MTL may align without bits)
    go_times: dict[int, float] = field(default_factory=dict)  # trial -> first go event, s from trial start
    tasks: dict[int, str] = field(default_factory=dict)  # trial -> task


@dataclass
class ProbeRecord:
    """One probe folder, read, aligned and converted: the rows to write (without the session key)."""

    probe_serial: str
    probe_type: str
    config: dict  # electrode_config_name, electrode_config_hash, electrodes, is_used
    sampling_rate: float
    clustering: dict
    trials: pd.DataFrame  # trial, trial_start, go_time
    units: Sequence[dict]  # Clustering.Unit rows without the clustering key / electrode config (UnitRows)
    metrics: list[tuple[str, pd.DataFrame]]  # (Clustering part name, rows)
    labels: pd.DataFrame | None
    files: list[dict]
    n_spikes: int
    method: str
    notes: list[str]
    sync: str = ""  # which trial sync route, and its file
    #: the foraging rigs' bitcode extras: trial_events, action_events (DataFrames), frames (rows); {} if none
    ephys_events: dict = field(default_factory=dict)


def read_probe_inputs(session_key: dict) -> ProbeInputs:
    """The behaviour session's bitcodes (TrialNote 'bitcode') and free-water flags, in trial order."""
    from ... import experiment

    notes = (experiment.TrialNote & session_key & {"trial_note_type": "bitcode"}).to_pandas().reset_index()
    notes = notes.sort_values("trial")
    trial, free, task = (experiment.BehaviorTrial & session_key).to_arrays("trial", "free_water", "task")
    go_trial, go_time = (experiment.TrialEvent & session_key & {"trial_event_type": "go"}).to_arrays(
        "trial", "trial_event_time"
    )
    go_times: dict[int, float] = {}
    for t, g in zip(np.asarray(go_trial).tolist(), np.asarray(go_time, dtype=np.float64).tolist()):
        go_times[int(t)] = min(g, go_times.get(int(t), np.inf))
    return ProbeInputs(
        notes["trial"].to_numpy(),
        [str(c) for c in notes["trial_note"]],
        {int(k): bool(v) for k, v in zip(trial, free)},
        rig=(experiment.Session & session_key).fetch1("rig"),
        go_times=go_times,
        tasks={int(k): str(v) for k, v in zip(trial, task)},
    )


def _bitcode_trials(bit_path: Path, inputs: ProbeInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Route (a): behaviour trials, starts and go cues (samples) from the probe's bitcode file, and
    the foraging rigs' extras it may carry (see :func:`foraging_rows`)."""
    from ...io.bitcode import BitcodeError, align_trials, foraging_events, read_bitcode

    bit = read_bitcode(bit_path)
    if bit.trial_start is None:
        raise EphysIngestError(
            f"{bit_path}: old-format bitcode file without sTrig/goCue trial times; "
            f"trials cannot be placed on the probe clock"
        )
    b_trials, b_codes = inputs.trials, inputs.codes
    if not len(b_codes):
        raise EphysIngestError(f"{bit_path}: the behaviour session has no trial bitcodes to align to")
    try:
        align = align_trials(bit.bitcodes, b_codes, bit.trial_numbers, path=bit_path, behavior_trial_numbers=b_trials)
    except BitcodeError as e:
        raise EphysIngestError(str(e)) from None
    trials = np.asarray(align.behavior_trials, dtype=np.int64)
    unknown = np.setdiff1d(trials, b_trials)
    if len(unknown):
        raise EphysIngestError(f"{bit_path}: aligned to behaviour trials {unknown[:5].tolist()} that the session lacks")
    starts = np.asarray(bit.trial_start, dtype=np.float64)[align.ephys_index]
    if bit.go_cue is None:
        go = np.full(bit.n_trials, np.nan)
    elif bit.go_cue_complete:
        go = np.asarray(bit.go_cue, dtype=np.float64)
    else:  # older files list go cues only for trials that were not free water: pad those with NaN
        fw = np.zeros(bit.n_trials, dtype=bool)
        fw[align.ephys_index] = [inputs.free_water.get(int(t), False) for t in align.behavior_trials]
        try:
            go = bit.pad_go_cue(fw)
        except BitcodeError as e:
            raise EphysIngestError(str(e)) from None
    go = np.asarray(go, dtype=np.float64)[align.ephys_index]
    if np.any(np.diff(starts) <= 0):
        raise EphysIngestError(f"{bit_path}: trial start times are not increasing")
    try:
        extras = foraging_rows(foraging_events(bit), align.ephys_index, trials)
    except BitcodeError as e:
        raise EphysIngestError(str(e)) from None
    return trials, starts, go, extras


def foraging_rows(events, ephys_index: np.ndarray, trials: np.ndarray) -> dict:
    """The foraging extras of a bitcode file (``pipeline.io.bitcode.ForagingEvents``) as rows of
    ephys.TrialEvent, ephys.ActionEvent and tracking.EphysFrameTime for the aligned trials
    (behaviour trial numbers; ephys trials that matched none are left out). {} without extras."""
    if events is None:
        return {}
    to_trial = pd.Series(trials, index=ephys_index)

    def aligned(frame: pd.DataFrame) -> pd.DataFrame:
        keep = frame[frame.ephys_trial.isin(to_trial.index)].copy()
        keep.insert(0, "trial", to_trial.loc[keep.ephys_trial].to_numpy())
        return keep.drop(columns="ephys_trial").reset_index(drop=True)

    frames = [
        dict(trial=int(to_trial[i]), tracking_device=camera, n_frames=len(times[i]), frame_time=times[i])
        for camera, times in events.camera_frames.items()
        for i in ephys_index
    ]
    return dict(
        trial_events=aligned(events.trial_events),
        action_events=aligned(events.action_events),
        frames=frames,
        notes=list(events.notes),
    )


def _xa_trials(
    files, inputs: ProbeInputs, rate: float, probe: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Route (b): behaviour trials, starts and go cues (samples of the probe at ``rate``) and notes
    from the session's CatGT NIDQ edge files."""
    from ...io.bitcode import BitcodeError, align_trials, read_xa_sync

    xa = read_xa_sync(files)
    notes: list[str] = []
    where = files.pulses if xa.bitcodes is not None else files.starts
    if not files.adjusted:
        notes.append(
            f"probe {probe}: trial times from {files.starts.name} on the NIDQ clock (no .adj edge files): "
            f"not clock-corrected to the probe"
        )
    if xa.bitcodes is not None:
        if not len(inputs.codes):
            raise EphysIngestError(f"{where}: the behaviour session has no trial bitcodes to align to")
        try:
            align = align_trials(xa.bitcodes, inputs.codes, path=where, behavior_trial_numbers=inputs.trials)
        except BitcodeError as e:
            raise EphysIngestError(str(e)) from None
        trials = np.asarray(align.behavior_trials, dtype=np.int64)
        index = np.asarray(align.ephys_index, dtype=np.int64)
        notes.extend(f"probe {probe}: {m}" for m in align.messages)
    else:
        behaviour = np.asarray(sorted(inputs.free_water), dtype=np.int64)
        if inputs.rig != "RRig-MTL":
            raise EphysIngestError(
                f"{files.starts}: no bit pulses ({xa.no_bits}) to tell which behaviour trials the "
                f"{xa.n_trials} NIDQ trials are; only RRig-MTL sessions align without them (this one is on "
                f"rig {inputs.rig!r})"
            )
        if xa.n_trials != len(behaviour):
            raise EphysIngestError(
                f"{files.starts}: RRig-MTL session without bit pulses ({xa.no_bits}): {xa.n_trials} NIDQ "
                f"trial starts but {len(behaviour)} behaviour trials, so they cannot be aligned one to one"
            )
        trials, index = behaviour, np.arange(xa.n_trials)
        notes.append(
            f"probe {probe}: RRig-MTL session without bit pulses ({xa.no_bits}): its {xa.n_trials} NIDQ trials "
            f"aligned one to one with the {len(behaviour)} behaviour trials"
        )
    start_s = xa.trial_start[index]
    go_rel = np.array(
        [
            0.0 if inputs.tasks.get(int(t)) == "multi-target-licking" else inputs.go_times.get(int(t), np.nan)
            for t in trials
        ],
        dtype=np.float64,
    )
    n_mtl = sum(inputs.tasks.get(int(t)) == "multi-target-licking" for t in trials)
    if n_mtl:
        notes.append(
            f"probe {probe}: {n_mtl} multi-target-licking trials have no go cue: go time = the trial-start pulse"
        )
    return trials, start_s * rate, (start_s + go_rel) * rate, notes


def ttl_margin_starts(starts: np.ndarray, meta) -> tuple[np.ndarray, str]:
    """Trial starts (samples of the probe) moved back by the TTL pre-trigger margin of a TTL-triggered
    recording: ``starts - round(trgTTLMarginS x imSampRate)`` when the probe's meta has
    ``trgTTLMarginS`` (spec 3.4), with the text the loaded line adds; unchanged and '' without it."""
    if meta.ttl_margin_s is None:
        return starts, ""
    margin = meta.ttl_margin_samples
    return starts - margin, f", starts - trgTTLMarginS {meta.ttl_margin_s:g} s ({margin} samples)"


def build_probe(h2o: str, session: int, pf: ProbeFolder, inputs: ProbeInputs) -> ProbeRecord:
    """Read, check and align one probe folder (pure: no database)."""
    from ...io.kilosort import group_by_cluster
    from ...io.spikeglx import electrode_config, read_meta

    notes: list[str] = []
    meta_path = ap_meta(pf.path)
    meta = read_meta(meta_path)
    method, sorting_path = find_sorting(pf.path, h2o)
    sorting = read_sorting(method, sorting_path)
    notes.extend(getattr(sorting, "repairs", []))  # repairs the reader made are named, never silent
    if not method.startswith("jrclust"):  # channel count and site positions against the meta
        from ...io.kilosort import check_geometry

        for line in check_geometry(sorting, meta):
            log.info("%s: %s", sorting_path, line)
    route, sync = find_sync(pf, h2o)
    if route == "bitcode":
        trials, starts, go, extras = _bitcode_trials(sync, inputs)
        notes.extend(extras.pop("notes", []))
        sync_files = {"bitcode": sync}
        sync_text = f"sync {sync.name}"
    else:
        rate = float(meta.sampling_rate or sorting.sample_rate)
        trials, starts, go, sync_notes = _xa_trials(sync, inputs, rate, pf.insertion_number)
        extras = {}
        notes.extend(sync_notes)
        sync_files = {"trial starts": sync.starts} | ({"bit pulses": sync.pulses} if sync.pulses else {})
        sync_text = f"sync CatGT {'adjusted ' if sync.adjusted else ''}NIDQ edges {sync.starts.name}"
    starts, margin_text = ttl_margin_starts(starts, meta)
    sync_text += margin_text
    fs = float(sorting.sample_rate)
    if meta.sampling_rate and abs(meta.sampling_rate - fs) > 1.0:
        notes.append(
            f"{sorting_path.name}: sorting sample rate {fs:.3f} Hz differs from the meta's "
            f"{meta.sampling_rate:.3f} Hz; the sorting's is used"
        )
    t0 = starts[0]
    # per-spike arrays grouped by unit (a Kilosort folder is read that way; JRClust's are grouped here),
    # converted in place where the dtype allows: memory ~ what the record holds
    if sorting.cluster_offsets is not None:
        ids, offsets = np.asarray(sorting.cluster_ids), sorting.cluster_offsets
        samples, sites, depths = sorting.spike_times, sorting.spike_sites, sorting.spike_depths
    else:
        ids, offsets, (samples, sites, depths) = group_by_cluster(
            np.asarray(sorting.spike_clusters),
            np.asarray(sorting.spike_times),
            sorting.spike_sites,
            sorting.spike_depths,
        )
    has_sites, has_depths = sites is not None, depths is not None
    for name in ("spike_times", "spike_clusters", "spike_sites", "spike_depths", "amplitudes", "spike_times_sec"):
        setattr(sorting, name, None)  # the grouped arrays below are the only per-spike ones kept
    n_spikes = int(offsets[-1])

    # electrodes: sorting site -> saved channel -> probe electrode
    chan_to_electrode = np.asarray(meta.electrodes)
    site_channel = np.asarray(sorting.channel_map).astype(np.int64).ravel()
    if site_channel.max(initial=0) >= len(chan_to_electrode):
        raise EphysIngestError(
            f"{sorting_path}: channel map refers to channel {site_channel.max()} but "
            f"{meta_path.name} has {len(chan_to_electrode)} neural channels"
        )
    site_electrode = chan_to_electrode[site_channel]
    if has_sites:
        sites = _spike_electrodes(sites, site_electrode)
    if has_depths:  # into the probe's frame (the electrodes' y), in place
        depths = np.asarray(depths, dtype=np.float32)
        if getattr(sorting, "probe_frame", None) is not None:
            sign, off = float(sorting.probe_frame[0][1]), float(sorting.probe_frame[1][1])
            if sign != 1.0 or off != 0.0:
                depths -= np.float32(off)
                depths *= np.float32(sign)
    unit_position = None if sorting.unit_position is None else np.asarray(sorting.unit_position, dtype=np.float64)
    if unit_position is not None and hasattr(sorting, "to_probe_frame"):
        unit_position = sorting.to_probe_frame(unit_position)  # the electrodes' x_coord/y_coord frame
    cfg = electrode_config(meta.probe_type, chan_to_electrode)
    peak_site = np.asarray(sorting.peak_channel)
    peak_electrode = np.where(peak_site >= 0, site_electrode[np.clip(peak_site, 0, None)], -1)
    uv = meta.uv_per_bit or 1.0

    index = {c: k for k, c in enumerate(np.asarray(sorting.cluster_ids))}
    rows = []
    for k, cid in enumerate(ids):
        j = index[int(cid)]
        wf = None if sorting.mean_waveforms is None else np.asarray(sorting.mean_waveforms[j], dtype=np.float32)
        if wf is not None and sorting.waveform_unit != "uV":
            wf = wf * np.float32(uv)
        amp = None if sorting.unit_amp is None else float(sorting.unit_amp[j])
        if amp is not None and getattr(sorting, "amp_unit", "uV") == "bits":
            amp *= uv
        rows.append(
            dict(
                unit=int(cid),
                unit_quality=sorting.cluster_quality.get(int(cid), "all"),
                electrode=int(peak_electrode[j]) if peak_electrode[j] >= 0 else None,
                unit_posx=None if unit_position is None else float(unit_position[j][0]),
                unit_posy=None if unit_position is None else float(unit_position[j][1]),
                n_spikes=int(offsets[k + 1] - offsets[k]),
                unit_amp=amp,
                unit_snr=None if sorting.unit_snr is None else float(sorting.unit_snr[j]),
                waveform=wf,
            )
        )
    # spike times (s) and trials are made per unit when the write asks for it (see UnitRows)
    units = UnitRows(rows, offsets, samples, t0, fs, starts, trials, sites, depths)
    del samples, sites, depths
    no_peak = sum(u["electrode"] is None for u in rows)
    if no_peak:
        notes.append(f"probe {pf.insertion_number}: {no_peak} units without a peak electrode (no metrics row)")
    unit_ids = [int(c) for c in ids]
    metrics = []
    for part, frame, columns in (
        ("ClusterMetric", sorting.metrics, METRIC_COLUMNS),
        ("WaveformMetric", sorting.waveform_metrics, WAVEFORM_METRIC_COLUMNS),
    ):
        if frame is not None:
            m = frame.reindex(unit_ids)
            missing = int(m.isna().all(axis=1).sum())
            if missing:
                notes.append(f"probe {pf.insertion_number}: {missing} units have no {part} row (loaded without)")
            cols = {c: a for c, a in columns.items() if c in m.columns}
            df = m[list(cols)].rename(columns=cols).reset_index(drop=True).astype(float)
            df = df.loc[:, ~df.columns.duplicated()]  # e.g. PT_ratio and pt_ratio both present
            df.insert(0, "unit", unit_ids)
            metrics.append((part, df))
    labels = sorting.cluster_labels
    long = None
    if labels is not None and len(labels.columns):
        long = (
            labels.reindex(unit_ids)
            .reset_index(names="unit")
            .melt(id_vars="unit", var_name="label_source", value_name="label")
            .dropna()
        )
        long["label"] = long["label"].astype(str).str[:64]
        long["label_source"] = long["label_source"].astype(str).str[:32]
    files = {"meta": meta_path, "sorting": sorting_path, **sync_files}
    return ProbeRecord(
        probe_serial=meta.serial or f"{h2o}-{session}-{pf.insertion_number}",
        probe_type=meta.probe_type,
        config=dict(cfg, is_used=_is_used(meta, cfg["electrodes"])),
        sampling_rate=fs,
        clustering=dict(
            clustering_method=method,
            clustering_time=dt.datetime.fromtimestamp(int(sorting_path.stat().st_mtime)),
            quality_control=sorting.metrics is not None,
            manual_curation=manually_curated(sorting_path),
            sampling_rate=fs,
            clustering_note=f"loaded from {sorting_path.name}"[:2000],
        ),
        trials=pd.DataFrame(dict(trial=trials, trial_start=(starts - t0) / fs, go_time=(go - t0) / fs)),
        units=units,
        metrics=metrics,
        labels=long,
        files=_file_rows(pf.path, files),
        n_spikes=n_spikes,
        method=method,
        notes=notes,
        sync=sync_text,
        ephys_events=extras,
    )


def electrode_config_key(rec: ProbeRecord) -> dict:
    """The key of the probe's electrode configuration, inserted first if it is new.

    A configuration is shared by every probe that recorded the same electrodes, so it is inserted in
    its own short transaction, before the probe's: two workers loading two probes of one new
    configuration at once both end up with it (the second insert waits for the first and skips,
    where check-then-insert inside the probe's transaction failed one of them with a duplicate key).
    """
    from ... import db, lab

    cfg = rec.config
    cfg_hash = cfg["electrode_config_hash"].hex  # hex text: DataJoint 2.3's uuid fails on PostgreSQL
    by_hash = lab.ElectrodeConfig & {"electrode_config_hash": cfg_hash}
    if not by_hash:
        key = dict(probe_type=rec.probe_type, electrode_config_name=cfg["electrode_config_name"])
        try:
            with db.connect().transaction:
                lab.ElectrodeConfig.insert1(dict(key, electrode_config_hash=cfg_hash), skip_duplicates=True)
                if (lab.ElectrodeConfig & key & {"electrode_config_hash": cfg_hash}) and not (
                    lab.ElectrodeConfig.ElectrodeGroup & key
                ):
                    lab.ElectrodeConfig.ElectrodeGroup.insert1(dict(key, electrode_group=0))
                    insert_frame(
                        lab.ElectrodeConfig.Electrode,
                        pd.DataFrame(
                            dict(
                                probe_type=rec.probe_type,
                                electrode_config_name=key["electrode_config_name"],
                                electrode_group=0,
                                electrode=np.asarray(cfg["electrodes"], dtype=np.int64),
                                is_used=cfg["is_used"],
                            )
                        ),
                    )
        except dj.errors.DuplicateError:  # the same electrodes, inserted meanwhile under another name
            pass
    row = by_hash.fetch1()
    return dict(probe_type=row["probe_type"], electrode_config_name=row["electrode_config_name"])


def write_probe(clustering_key: dict, pf: ProbeFolder, rec: ProbeRecord) -> None:
    """Insert one probe in one transaction."""
    from ... import db

    cfg_key = electrode_config_key(rec)
    with db.connect().transaction:
        insert_probe_rows(clustering_key, pf, rec, cfg_key)


def insert_probe_rows(clustering_key: dict, pf: ProbeFolder, rec: ProbeRecord, cfg_key: dict, new: bool = True) -> None:
    """The inserts of :func:`write_probe`, inside the caller's transaction. ``new=False`` (a
    re-sorting of a loaded insertion): the insertion's rows are there already and only the
    clustering is inserted; its probe, electrode configuration and sampling rate must be the same."""
    from ... import ephys, lab
    from .tables import EphysIngest

    if new:
        lab.Probe.insert1(dict(probe=rec.probe_serial, probe_type=rec.probe_type), skip_duplicates=True)
        ephys.ProbeInsertion.insert1(dict(clustering_key, probe=rec.probe_serial, **cfg_key))
        ephys.ProbeInsertion.RecordingSystemSetup.insert1(dict(clustering_key, sampling_rate=rec.sampling_rate))
    else:
        ins = (ephys.ProbeInsertion & clustering_key).fetch1()
        was = (ins["probe"], ins["probe_type"], ins["electrode_config_name"])
        now = (rec.probe_serial, cfg_key["probe_type"], cfg_key["electrode_config_name"])
        rates = (ephys.ProbeInsertion.RecordingSystemSetup & clustering_key).to_arrays("sampling_rate")
        if len(rates):
            was, now = (*was, float(rates[0])), (*now, float(rec.sampling_rate))
        if was != now:
            raise InputError(
                f"{pf.path}: the new files are of another probe, electrode configuration or sampling rate "
                f"({', '.join(map(str, now))}) than the loaded insertion ({', '.join(map(str, was))}); "
                "delete the insertion to load them"
            )
    ephys.Clustering.insert1(dict(clustering_key, **rec.clustering))
    insert_frame(ephys.Clustering.Trial, with_key(rec.trials, clustering_key))
    no_electrode = dict(probe_type=None, electrode_config_name=None, electrode_group=None, electrode=None)

    def unit_row(u: dict) -> dict:
        peak = (
            dict(cfg_key, electrode_group=0, electrode=u["electrode"]) if u["electrode"] is not None else no_electrode
        )
        return dict(clustering_key, **{**u, **peak})

    ephys.Clustering.Unit.insert(unit_row(u) for u in rec.units)  # one unit's spike arrays at a time
    for part, df in rec.metrics:
        insert_frame(getattr(ephys.Clustering, part), with_key(df, clustering_key))
    if rec.labels is not None:
        insert_frame(ephys.Clustering.UnitLabel, with_key(rec.labels, clustering_key))
    ev = rec.ephys_events
    if ev:
        from ... import tracking

        insert_frame(ephys.TrialEvent, with_key(ev["trial_events"], clustering_key))
        if len(ev["action_events"]):
            insert_frame(ephys.ActionEvent, with_key(ev["action_events"], clustering_key))
        if ev["frames"]:
            tracking.EphysFrameTime.insert([dict(clustering_key, **f) for f in ev["frames"]])
    EphysIngest.insert1(dict(clustering_key, probe_folder=str(pf.path), ephys_root=str(pf.root)))
    EphysIngest.EphysFile.insert([dict(clustering_key, **r) for r in rec.files])


def _changed(clustering_key: dict, pf: ProbeFolder) -> list[str]:
    from .tables import EphysIngest

    rows = (EphysIngest.EphysFile & clustering_key).to_dicts()
    out = []
    for r in rows:
        p = pf.path / r["ephys_file"]
        if not p.exists():
            out.append(f"{r['ephys_file']} (gone)")
            continue
        st = p.stat()
        if st.st_size != r["file_size"] or dt.datetime.fromtimestamp(int(st.st_mtime)) != r["file_mtime"]:
            out.append(r["ephys_file"])
        elif r.get("file_sha1") and _hash(p) != r["file_sha1"]:  # same size and time, other content
            out.append(f"{r['ephys_file']} (same size and time, different content)")
    return out


class EphysStep(runner.Step):
    name = "ingest-ephys"
    what = "probes"

    def __init__(self, paths: list | None = None, replace=False):
        self.paths = paths
        #: False, or the insertions (True: any; else a restriction) whose changed files are loaded as a
        #: new sorting, the loaded one archived (see pipeline.ingest.archive)
        self.replace = replace

    def _replaceable(self, key: dict) -> bool:
        from ... import ephys

        if self.replace is False:
            return False
        if self.replace is True:
            return True
        return bool(ephys.ProbeInsertion & key & self.replace)

    def find(self, summary: Summary) -> list[runner.Item]:
        from ... import db, experiment, lab

        roots = readable_roots("ephys_data_paths", self.paths, summary, "ephys")
        for r in roots:
            summary.look(
                f"{r}: <h2o>/<YYYYMMDD | YYYY-MM-DD | catgt_<YYYYMMDD>_g0 | *<h2o>*_<date>*>/"
                f"<N | *imec<N>>/*.ap.meta, for each behaviour session"
            )
        sessions = (
            (experiment.Session * lab.WaterRestriction).proj("session_date", "water_restriction_number").to_dicts()
        )
        items = []
        used: set[Path] = set()
        for s in sessions:
            key = dict(subject_id=s["subject_id"], session=s["session"])
            h2o, day = s["water_restriction_number"], s["session_date"]
            seen: set[int] = set()
            for root in roots:
                used.update(session_dirs(root, h2o, day))
                for pf in probe_folders(root, h2o, day):
                    if pf.insertion_number not in seen:
                        seen.add(pf.insertion_number)
                        items.append(
                            runner.Item(
                                label=f"{h2o} session {key['session']} probe {pf.insertion_number} ({pf.path})",
                                group=f"{h2o} {day}",
                                key=dict(key, insertion_number=pf.insertion_number),
                                data=(h2o, pf),
                            )
                        )
        known = {s["water_restriction_number"] for s in sessions}
        for root in roots:  # folders that no session took: a misnamed folder must not go unnoticed
            for animal in sorted(p for p in root.iterdir() if p.is_dir()):
                if animal.name not in known:
                    summary.ignore(str(animal), "no behaviour session of an animal with this water restriction id")
                    continue
                for folder in sorted(p for p in animal.iterdir() if p.is_dir() and p not in used):
                    summary.ignore(
                        str(folder), f"matches no behaviour session date of {animal.name} (or is not named by a date)"
                    )
        if items:
            db.warn_if_local_store()
        return items

    def check(self, item: runner.Item):
        from ... import ephys

        if ephys.ProbeInsertion & item.key:
            changed = _changed(item.key, item.data[1])
            if changed and self._replaceable(item.key):
                return None  # loaded again as a new sorting; the loaded one is archived
            if changed:
                return "fail", (
                    f"already loaded, but these files changed since: {', '.join(changed)}; "
                    f"load the new sorting with `mapshell ingest-ephys --replace` (the loaded one is archived)"
                )
            return "skip", "already loaded"
        return None

    def inputs(self, item: runner.Item) -> ProbeInputs:
        return read_probe_inputs({k: item.key[k] for k in ("subject_id", "session")})

    def build(self, item: runner.Item, inputs: ProbeInputs) -> ProbeRecord:
        h2o, pf = item.data
        return build_probe(h2o, item.key["session"], pf, inputs)

    def cleanup(self, item: runner.Item) -> None:
        from ... import db, ephys

        if ephys.Clustering & item.key:  # a re-sorting: these objects belong to the loaded sorting
            return
        db.remove_store_objects(ephys.Clustering.Unit, item.key)

    def write(self, item: runner.Item, record: ProbeRecord, inputs) -> runner.Done:
        from ... import ephys
        from ..archive import CLUSTERING, replace

        replaced = ""
        if ephys.ProbeInsertion & item.key:
            cfg_key = electrode_config_key(record)
            number = replace(
                CLUSTERING,
                item.key,
                "ingest-ephys --replace: its files changed",
                lambda: insert_probe_rows(item.key, item.data[1], record, cfg_key, new=False),
            )
            replaced = f" (replaced the loaded sorting, archived as number {number})"
        else:
            write_probe(item.key, item.data[1], record)
        n_units = len(record.units)
        return runner.Done(
            text=(
                f"{item.label}: {record.method}, {n_units} units, {record.n_spikes} spikes, "
                f"{len(record.trials)} trials" + (f", {record.sync}" if record.sync else "") + replaced
            ),
            counts=dict(probes=1, units=n_units, trials=len(record.trials)),
            notes=record.notes
            + (
                [
                    "computed results of the replaced sorting were removed: "
                    "populate-psth and generate-report (or the workers) compute them again"
                ]
                if replaced
                else []
            ),
        )


def ingest_ephys(paths: list | None = None, progress: bool | None = None, replace=False) -> Summary:
    """Load the probes of every behaviour session that has ephys folders under ``paths``
    (default: the ephys_data_paths setting). ``replace``: True, or a restriction of the insertions
    for which a changed sorting is loaded in place of the loaded one (archived first)."""
    return runner.run(EphysStep(paths, replace), progress=progress)
