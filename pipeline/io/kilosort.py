"""Kilosort 2/2.5/3/4 and phy output folders -> ``SortingResult`` (spikes, clusters, labels, waveforms, metrics).

``SortingResult`` is shared with the JRClust reader (``pipeline.io.jrclust``), so the ephys ingest
handles every sorter the same way. Conventions:

* spike times are int64 sample indices, 0-based (sample 0 = first sample of the sorted file), in
  ascending order; every per-spike array follows that order;
* a *site* is a column of the channel map (0-based); ``channel_map[site]`` is the acquisition channel;
* ``cluster_ids`` are the clusters that have spikes, ascending; every per-cluster field follows them.

Files read (spec 3.4), all but ``spike_times.npy`` optional, each absence listed in ``missing``:

* ``params.py`` (parsed with ``ast``, never executed): ``sample_rate`` (else 30 kHz is assumed);
* ``spike_times.npy``; ``spike_times_sec.npy`` / ``spike_times_sec_adj.npy`` (seconds, e.g. after
  TPrime) go to ``spike_times_sec``; ``spike_clusters.npy`` (phy's curated ids; required: a folder
  without it is refused unless ``clusters_from_templates=True``, then ``spike_templates.npy`` is
  used), ``spike_templates.npy``, ``amplitudes.npy``;
* ``channel_map.npy``, ``channel_positions.npy``;
* ``templates.npy`` (+ ``templates_ind.npy`` when sparse) and ``whitening_mat_inv.npy``: a cluster's
  mean waveform is the spike-weighted mean of its unwhitened templates scaled by the spike amplitudes
  (raw data units, i.e. ADC bits), the peak site is the site of largest peak-to-peak, ``unit_amp`` its
  peak-to-peak;
* ``pc_features.npy`` + ``pc_feature_ind.npy``: spike depth = y of the ``pc_feature_ind`` sites of the
  spike's template weighted by the squared first-PC feature, negative features counted as 0 (the
  cortex-lab ``ksDriftmap`` rule). Without PC features a spike's depth is the y of its template's
  peak site; without templates the template's peak site is ``pc_feature_ind[t, 0]`` (Kilosort orders
  those channels by template amplitude, largest first);
* labels: ``cluster_group.tsv`` / legacy ``cluster_groups.csv`` (phy's curated ``group``),
  ``cluster_KSLabel.tsv`` and any other ``cluster_*.tsv`` (``cluster_info.tsv``, phy's summary
  table, is not a label file). Quality: curated group if it is good/mua/noise, else KSLabel, else
  'all'; good -> good, mua -> multi, noise / unsorted -> all;
* ecephys ``metrics.csv``, ``waveform_metrics.csv`` and ``mean_waveforms.npy`` (units x channels x
  samples, in uV, indexed by cluster id and acquisition channel): when present they give the peak
  channel, amplitude (uV), SNR and the mean waveform (uV), as the original MAP ingest did.

Checks (each a one-line KilosortError naming the file): per-spike files have one entry per spike;
spike times are finite whole non-negative sample numbers below ``MAX_RECORDING_DAYS`` of recording
(float files holding whole numbers are accepted), template/cluster ids whole and non-negative;
channel_map.npy lists distinct channels below params.py ``n_channels_dat``; when the sorted binary
(``dat_path``) is in the folder, its size is whole samples and holds every spike.
:func:`check_geometry` checks a sorting against the SpikeGLX ``.meta`` of its recording.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import InputError

if TYPE_CHECKING:
    from .spikeglx import SpikeGLXMeta

__all__ = [
    "KilosortError",
    "SortingResult",
    "read_kilosort",
    "read_params",
    "SPIKE_FIELDS",
    "check_geometry",
    "group_by_cluster",
    "dense_cluster_index",
    "ks_quality",
    "WAVEFORM_METRIC_COLUMNS",
    "CLUSTER_METRIC_COLUMNS",
]

DEFAULT_SAMPLE_RATE = 30000.0
CLUSTER_METRIC_COLUMNS = (
    "presence_ratio",
    "amplitude_cutoff",
    "isolation_distance",
    "l_ratio",
    "d_prime",
    "nn_hit_rate",
    "nn_miss_rate",
    "silhouette_score",
    "max_drift",
    "cumulative_drift",
)
WAVEFORM_METRIC_COLUMNS = (
    "duration",
    "halfwidth",
    "PT_ratio",
    "repolarization_slope",
    "recovery_slope",
    "spread",
    "velocity_above",
    "velocity_below",
)
_GROUP_QUALITY = {"good": "good", "mua": "multi", "noise": "all"}
_KSLABEL_QUALITY = {"good": "good", "mua": "multi"}
_SPIKE_CHUNK = 1 << 18  # spikes per block when streaming per-spike files
_ROW_BYTES = 1 << 22  # bytes per block when streaming pc_features.npy
_PLACE_CHUNK = 1 << 16  # spikes per block when writing per-spike arrays in cluster order (~10 temporaries)
_CLUSTER_CHUNK = 256  # clusters per block when averaging templates


class KilosortError(InputError):
    """The folder cannot be read; the message starts with the folder or file at fault."""


@dataclass
class SortingResult:
    """One probe's spike sorting, whatever the sorter (see the module docstring for conventions)."""

    path: Path
    sorter: str  # 'kilosort2' | 'pykilosort2.5' | 'jrclust_v3' | 'jrclust_v4'
    sample_rate: float  # Hz
    spike_times: np.ndarray  # int64 (N,) samples, 0-based, ascending
    spike_clusters: np.ndarray  # int32 (N,)
    spike_sites: np.ndarray | None  # int32 (N,) site index of the spike's peak
    spike_depths: np.ndarray | None  # float32 (N,) um
    amplitudes: np.ndarray | None  # float32 (N,)
    channel_map: np.ndarray  # (C,) acquisition channel of each site
    channel_positions: np.ndarray  # (C, 2) um
    cluster_ids: np.ndarray  # (K,) ascending, clusters that have spikes
    cluster_quality: dict[int, str]  # cluster -> good | ok | multi | all
    cluster_labels: pd.DataFrame  # index cluster_id; one column per label, raw strings
    peak_channel: np.ndarray  # (K,) int64 site index of each cluster's peak, -1 if unknown
    mean_waveforms: np.ndarray | None  # (K, n_samples) at the peak site
    waveform_unit: str  # 'uV' | 'bits' | '' (no waveforms)
    unit_amp: np.ndarray | None  # (K,) peak-to-peak amplitude, in ``amp_unit``
    unit_snr: np.ndarray | None  # (K,)
    unit_position: np.ndarray | None  # (K, 2) um
    metrics: pd.DataFrame | None  # metrics.csv, index cluster_id
    waveform_metrics: pd.DataFrame | None
    missing: list[str]  # '<file or field>: <what its absence costs>'
    amp_unit: str = ""  # unit of unit_amp: 'uV' | 'bits' | ''
    spike_times_sec: np.ndarray | None = None  # float64 (N,) when the folder has spike_times_sec[_adj].npy
    dropped_spikes: int = 0  # spikes left out (JRClust clusters <= 0)
    params: dict[str, Any] = field(default_factory=dict)
    # (K + 1,) when the per-spike arrays are grouped by cluster (``read_kilosort(by_cluster=True)``):
    # cluster_ids[k]'s spikes are [cluster_offsets[k]:cluster_offsets[k + 1]], in time order; else None
    cluster_offsets: np.ndarray | None = None
    #: repairs made while reading (e.g. spikes put in time order), each a sentence naming the file
    repairs: list[str] = field(default_factory=list)
    #: set by check_geometry: (signs, offsets) with sorting position = sign * meta position + offset per
    #: axis (x, y), so meta position = sign * (sorting position - offset); None until checked
    probe_frame: tuple[np.ndarray, np.ndarray] | None = None

    def to_probe_frame(self, xy: np.ndarray, axis: int | None = None) -> np.ndarray:
        """Positions (or, with ``axis``, one coordinate) from the sorting's frame into the probe's
        (SpikeGLX meta / lab.ProbeType.Electrode) frame; unchanged when the frame is not known."""
        if self.probe_frame is None:
            return xy
        signs, offsets = self.probe_frame
        if axis is not None:
            return (xy - offsets[axis]) * signs[axis]
        return (np.asarray(xy, dtype=np.float64) - offsets) * signs

    @property
    def n_spikes(self) -> int:
        if self.spike_times is None and self.cluster_offsets is not None:
            return int(self.cluster_offsets[-1])
        return int(self.spike_times.size)

    def spike_trains(self, *names: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """``group_by_cluster`` of the named per-spike fields (default: spike_times)."""
        names = names or ("spike_times",)
        if self.cluster_offsets is not None:  # already grouped
            return self.cluster_ids, self.cluster_offsets, [getattr(self, n) for n in names]
        cluster_ids, offsets, out = group_by_cluster(self.spike_clusters, *(getattr(self, n) for n in names))
        return cluster_ids, offsets, out


# ---------------------------------------------------------------------------------------------- grouping


def dense_cluster_index(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted unique ids, their counts, each element's rank among the unique ids as uint16/uint32).

    Uses bincount + a lookup table when the id range is small compared to the number of elements (the
    normal case for cluster ids), else np.unique.
    """
    ids = np.asarray(ids).ravel()
    if ids.size == 0:
        return ids.copy(), np.zeros(0, np.int64), np.zeros(0, np.uint16)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"cluster ids must be integers, got {ids.dtype}")
    lo, hi = int(ids.min()), int(ids.max())
    span = hi - lo + 1
    if span <= max(4 * ids.size, 1 << 16) and span < 2**31:
        if lo == 0 and ids.dtype.itemsize <= 4:
            rel = ids
        elif ids.dtype.kind == "i" and ids.dtype.itemsize <= 4:
            rel = ids.astype(np.int32, copy=False) - np.int32(lo)  # wraps correctly: 0 <= result < 2**31
        else:
            rel = ids.astype(np.int64) - lo
        counts = np.bincount(rel, minlength=span)
        present = np.flatnonzero(counts)
        k = present.size
        rank_type = np.uint16 if k <= 1 << 16 else np.uint32
        lut = np.zeros(span, rank_type)
        lut[present] = np.arange(k, dtype=rank_type)
        return (present + lo).astype(ids.dtype), counts[present], lut[rel]
    uniq, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    rank_type = np.uint16 if uniq.size <= 1 << 16 else np.uint32
    return uniq, counts, inverse.astype(rank_type)


def _stable_order(rank: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative ranks: numpy's radix sort on 16-bit keys, two passes (LSD) above."""
    if rank.dtype == np.uint16 or rank.dtype == np.uint8:
        return np.argsort(rank, kind="stable")
    order = np.argsort((rank & 0xFFFF).astype(np.uint16), kind="stable")
    high = (rank[order] >> 16).astype(np.uint16)
    return order[np.argsort(high, kind="stable")]


def group_by_cluster(
    spike_clusters: np.ndarray, *arrays: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Reorder per-spike arrays so that each cluster's spikes are contiguous.

    Returns (cluster_ids (K,) ascending, offsets (K+1,), [each array reordered]); unit k's spikes are
    ``out[offsets[k]:offsets[k + 1]]``, in their input order (time order for time-sorted input).

    Algorithm: each spike's key ``(cluster - min) << 32 | index`` is unique, so one unstable sort of
    those uint64 keys (numpy's SIMD sort) is a stable sort by cluster; the low 32 bits are then the
    permutation, and the cluster boundaries come from binary searches in the sorted keys (no bincount
    pass). Input that is already grouped is returned without reordering. Falls back to a stable radix
    argsort of dense ranks for more than 2**32 spikes or an id span of 2**31 or more.
    """
    clusters = np.asarray(spike_clusters).ravel()
    n = clusters.size
    for i, a in enumerate(arrays):
        if a is not None and len(a) != n:
            raise ValueError(f"array {i} has {len(a)} elements but spike_clusters has {n}")
    if clusters.dtype.kind not in "iu":
        raise TypeError(f"cluster ids must be integers, got {clusters.dtype}")
    if n == 0:
        return clusters.copy(), np.zeros(1, np.int64), [None if a is None else np.asarray(a)[:0] for a in arrays]
    lo, hi = int(clusters.min()), int(clusters.max())
    span = hi - lo + 1
    if n >= 2**32 or span >= 2**31:
        cluster_ids, counts, rank = dense_cluster_index(clusters)
        offsets = np.zeros(cluster_ids.size + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        order = None if np.all(rank[1:] >= rank[:-1]) else _stable_order(rank)
    else:
        if lo >= 0:
            keys = clusters.astype(np.uint64)
            if lo:
                keys -= np.uint64(lo)
        else:
            keys = (clusters.astype(np.int64) - lo).astype(np.uint64)
        grouped = bool(np.all(clusters[1:] >= clusters[:-1]))
        keys <<= np.uint64(32)
        if not grouped:
            keys |= np.arange(n, dtype=np.uint64)
            keys.sort()
        if span <= 4 * n + (1 << 16):
            bounds = np.searchsorted(keys, np.arange(span + 1, dtype=np.uint64) << np.uint64(32))
            present = np.flatnonzero(np.diff(bounds))
            cluster_ids = (present + lo).astype(clusters.dtype)
            offsets = np.append(bounds[present], n).astype(np.int64)
        else:
            high = keys >> np.uint64(32)
            starts = np.flatnonzero(np.concatenate(([True], high[1:] != high[:-1])))
            cluster_ids = (high[starts].astype(np.int64) + lo).astype(clusters.dtype)
            offsets = np.append(starts, n).astype(np.int64)
            del high
        if grouped:
            order = None
        else:
            keys &= np.uint64(0xFFFFFFFF)
            order = keys.view(np.int64)
    out = [None if a is None else (np.asarray(a) if order is None else np.asarray(a)[order]) for a in arrays]
    return cluster_ids, offsets, out


# ------------------------------------------------------------------------------------------------ inputs


def read_params(path: str | Path) -> dict[str, Any]:
    """Kilosort/phy ``params.py`` as a dict of its literal assignments (never executed)."""
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(errors="replace"), filename=str(path))
    except SyntaxError as e:
        raise KilosortError(f"{path}: not a readable params.py ({e.msg}, line {e.lineno})") from None
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue  # an expression, not a literal: ignored
    return out


def _load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError/... for bad files
        if mmap:
            try:  # some valid files cannot be memory-mapped (e.g. zero-length, odd headers)
                return np.load(path, allow_pickle=False)
            except Exception:  # noqa: BLE001
                pass
        raise KilosortError(f"{path}: not a readable .npy file ({type(e).__name__}: {e})") from None


def _vector(path: Path, a: np.ndarray) -> np.ndarray:
    """(N,), (N, 1) or (1, N) -> (N,)."""
    if a.ndim == 1:
        return a
    if a.ndim == 2 and 1 in a.shape:
        return a.reshape(-1)
    raise KilosortError(f"{path}: expected a vector, got shape {a.shape}")


#: spike times beyond this many days of recording (at the folder's sample rate) are refused as corrupt
MAX_RECORDING_DAYS = 10


def _first_bad(path: Path, bad: np.ndarray, problem: str, values: np.ndarray, what: str = "spike") -> None:
    """KilosortError naming the first ``bad`` element (index and value) and how many there are."""
    if not bad.any():
        return
    k = np.flatnonzero(bad)
    i = int(k[0])
    v = values[i]
    shown = np.array2string(np.asarray(v), precision=6) if np.ndim(v) else repr(v.item() if hasattr(v, "item") else v)
    more = f" ({k.size} {what}s in all)" if k.size > 1 else ""
    raise KilosortError(f"{path}: {what} {i} (0-based): {shown} {problem}{more}")


def _spike_times(path: Path, a: np.ndarray, sample_rate: float) -> np.ndarray:
    """spike_times.npy as int64 samples; integer-valued floats are accepted, anything else refused."""
    if a.dtype.kind == "b" or a.dtype.kind not in "iuf":
        raise KilosortError(f"{path}: spike times of type {a.dtype}, expected integer sample numbers")
    limit = int(sample_rate * 86400 * MAX_RECORDING_DAYS)
    if a.size == 0:
        return np.zeros(0, np.int64)
    if a.dtype.kind == "f":
        _first_bad(path, ~np.isfinite(a), "is not a finite sample number", a)
        _first_bad(path, a != np.floor(a), "is not a whole sample number (spike times are sample indices)", a)
    _first_bad(path, a < 0, "is a negative sample number", a)
    too_big = a > limit
    if too_big.any():
        _first_bad(
            path,
            too_big,
            f"samples is beyond {MAX_RECORDING_DAYS} days of recording at {sample_rate:g} Hz: not a plausible "
            "spike time (corrupt file?)",
            a,
        )
    return a.astype(np.int64)


def _ids(path: Path, a: np.ndarray, what: str) -> np.ndarray:
    """Per-spike template or cluster ids as int32: whole, non-negative numbers only."""
    if a.dtype.kind == "b" or a.dtype.kind not in "iuf":
        raise KilosortError(f"{path}: {what} ids of type {a.dtype}, expected integers")
    if a.size == 0:
        return np.zeros(0, np.int32)
    if a.dtype.kind == "f":
        _first_bad(path, ~np.isfinite(a), f"is not a finite {what} id", a)
        _first_bad(path, a != np.floor(a), f"is not a whole number ({what} ids are integers)", a)
    _first_bad(path, a < 0, f"is a negative {what} id", a)
    _first_bad(path, a > np.iinfo(np.int32).max, f"is too large for a {what} id (more than 2**31 - 1)", a)
    return a.astype(np.int32)


def _n_channels_dat(folder: Path, params: dict[str, Any]) -> int | None:
    if "n_channels_dat" not in params:
        return None
    v = params["n_channels_dat"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v != int(v) or v < 1:
        raise KilosortError(f"{folder / 'params.py'}: n_channels_dat {v!r} is not a positive whole number")
    return int(v)


def _check_channel_map(folder: Path, channel_map: np.ndarray, params: dict[str, Any]) -> None:
    """channel_map.npy: distinct channels, each inside the n_channels_dat of the sorted file."""
    path = folder / "channel_map.npy"
    if channel_map.size and channel_map.min() < 0:
        raise KilosortError(f"{path}: negative channel {int(channel_map.min())}")
    uniq, counts = np.unique(channel_map, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise KilosortError(f"{path}: channel(s) {dup[:5].tolist()} listed more than once")
    n_dat = _n_channels_dat(folder, params)
    if n_dat is None:
        return
    if channel_map.size > n_dat:
        raise KilosortError(
            f"{folder / 'params.py'}: n_channels_dat = {n_dat} but channel_map.npy lists {channel_map.size} channels"
        )
    if channel_map.size and channel_map.max() >= n_dat:
        raise KilosortError(
            f"{folder / 'channel_map.npy'}: refers to channel {int(channel_map.max())} (0-based), but params.py "
            f"n_channels_dat = {n_dat}: the file has channels 0..{n_dat - 1}"
        )


def _check_dat_file(folder: Path, params: dict[str, Any], times_max: int | None) -> None:
    """When the sorted binary named by params.py ``dat_path`` is in the folder: its size must be whole
    samples of n_channels_dat channels, and every spike time (the last: ``times_max``, None without
    spikes) inside it."""
    dat = params.get("dat_path")
    if isinstance(dat, (list, tuple)) and len(dat) == 1:
        dat = dat[0]
    if not isinstance(dat, str) or not dat.strip():
        return
    name = dat.replace("\\", "/").rsplit("/", 1)[-1]
    candidates = [Path(dat), folder / dat, folder / name]
    p = None
    for c in candidates:
        try:
            if c.is_file():
                p = c
                break
        except OSError:  # e.g. a name too long for this system: not a file here
            continue
    n_dat = _n_channels_dat(folder, params)
    if p is None or n_dat is None:
        return
    try:
        itemsize = np.dtype(str(params.get("dtype", "int16"))).itemsize
    except TypeError:
        raise KilosortError(f"{folder / 'params.py'}: dtype {params.get('dtype')!r} is not a numpy type") from None
    try:
        offset = int(params.get("offset", 0) or 0)
    except (TypeError, ValueError):
        raise KilosortError(
            f"{folder / 'params.py'}: offset {params.get('offset')!r} is not a number of bytes"
        ) from None
    size = p.stat().st_size - offset
    frame = n_dat * itemsize
    if size < 0 or size % frame:
        raise KilosortError(
            f"{p}: {size} data bytes is not a whole number of samples of n_channels_dat = {n_dat} "
            f"x {itemsize} bytes ({folder / 'params.py'})"
        )
    n_samples = size // frame
    if times_max is not None and times_max >= n_samples:
        raise KilosortError(
            f"{folder / 'spike_times.npy'}: spike time {times_max} (samples) is past the end of "
            f"{p} ({n_samples} samples of {n_dat} channels)"
        )


def _check_len(path: Path, a: np.ndarray, n: int, what: str = "spike_times.npy") -> None:
    if a.shape[0] != n:
        raise KilosortError(
            f"{path}: {a.shape[0]} entries but {what} has {n} spikes (every per-spike file has one entry per spike)"
        )


def _read_table(path: Path) -> pd.DataFrame:
    """A phy label file (tab-separated; legacy .csv files may use commas) as raw strings."""
    try:
        with open(path, newline="") as f:
            first = f.readline()
        sep = "\t" if "\t" in first or "," not in first else ","
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as e:  # noqa: BLE001
        raise KilosortError(f"{path}: not a readable table ({type(e).__name__}: {e})") from None
    df.columns = [str(c).strip() for c in df.columns]
    id_col = next((c for c in ("cluster_id", "id") if c in df.columns), df.columns[0] if len(df.columns) else None)
    if id_col is None or len(df.columns) < 2:
        raise KilosortError(f"{path}: expected a cluster id column and at least one label column")
    try:
        ids = pd.to_numeric(df[id_col].str.strip()).astype(np.int64)
    except (ValueError, TypeError):
        raise KilosortError(f"{path}: column {id_col!r} holds non-integer cluster ids") from None
    df = df.drop(columns=[id_col]).apply(lambda s: s.str.strip())
    df.index = pd.Index(ids, name="cluster_id")
    return df[~df.index.duplicated(keep="first")]


def _label_files(folder: Path) -> list[Path]:
    first = [folder / n for n in ("cluster_group.tsv", "cluster_groups.csv", "cluster_KSLabel.tsv")]
    others = sorted(
        p
        for p in folder.glob("cluster_*.tsv")
        if p.name not in {"cluster_group.tsv", "cluster_KSLabel.tsv", "cluster_info.tsv"}
    )
    return [p for p in first if p.is_file()] + others


def _read_labels(folder: Path, cluster_ids: np.ndarray) -> pd.DataFrame:
    labels = pd.DataFrame(index=pd.Index(cluster_ids.astype(np.int64), name="cluster_id"))
    for path in _label_files(folder):
        df = _read_table(path)
        for col in df.columns:
            if col not in labels.columns:  # cluster_group.tsv wins over a legacy cluster_groups.csv
                labels[col] = df[col].reindex(labels.index).fillna("").astype(str)
    return labels


def ks_quality(labels: pd.DataFrame) -> dict[int, str]:
    """cluster -> good | multi | all from phy's group (curated) or else Kilosort's KSLabel."""
    out = {}
    group = labels["group"] if "group" in labels.columns else None
    kslabel = labels["KSLabel"] if "KSLabel" in labels.columns else None
    for cid in labels.index:
        q = None
        if group is not None:
            q = _GROUP_QUALITY.get(group[cid].strip().lower())
        if q is None and kslabel is not None:
            q = _KSLABEL_QUALITY.get(kslabel[cid].strip().lower())
        out[int(cid)] = q or "all"
    return out


def _read_metrics(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except Exception as e:  # noqa: BLE001
        raise KilosortError(f"{path}: not a readable csv ({type(e).__name__}: {e})") from None
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed:")])
    if "cluster_id" not in df.columns:
        raise KilosortError(f"{path}: no cluster_id column (columns: {', '.join(map(str, df.columns))})")
    df["cluster_id"] = df["cluster_id"].astype(np.int64)
    df = df.drop_duplicates("cluster_id", keep="first").set_index("cluster_id").sort_index()
    return df


# ----------------------------------------------------------------------------------------------- reading

#: the per-spike fields of a SortingResult, as named by ``read_kilosort(spike_fields=...)``
SPIKE_FIELDS = ("spike_times", "spike_clusters", "spike_sites", "spike_depths", "amplitudes", "spike_times_sec")


def read_kilosort(
    folder: str | Path,
    *,
    clusters_from_templates: bool = False,
    by_cluster: bool = False,
    spike_fields: tuple[str, ...] | None = None,
) -> SortingResult:
    """Read a Kilosort/phy output folder (see the module docstring); raises KilosortError.

    A folder without ``spike_clusters.npy`` is refused (KilosortError naming the folder) unless
    ``clusters_from_templates``: then the clusters are the Kilosort templates.

    ``by_cluster``: the per-spike arrays come grouped by cluster, as ``group_by_cluster`` would return
    them (``cluster_offsets`` gives each cluster's slice, spikes in time order), and ``spike_sites`` is
    int16 when the probe has fewer than 2**15 sites. The per-spike files are then read in blocks (never
    memory-mapped whole) and each spike written once to its place (a counting sort by cluster, block by
    block): besides the arrays returned, the read needs a block's worth of memory, instead of a copy
    of every file plus the grouped copies. This needs the spike times in time
    order, as Kilosort and phy write them; other folders are read as usual and grouped after.
    ``spike_fields``: the per-spike fields to return (of ``SPIKE_FIELDS``; default all), the others
    are None.
    """
    folder = Path(folder)
    fields = SPIKE_FIELDS if spike_fields is None else tuple(spike_fields)
    unknown = set(fields) - set(SPIKE_FIELDS)
    if unknown:
        raise ValueError(f"unknown per-spike fields {sorted(unknown)}; known: {', '.join(SPIKE_FIELDS)}")
    if by_cluster:
        result = _read_kilosort(folder, clusters_from_templates, fields, stream=True)
        if result is not None:
            return result
    result = _read_kilosort(folder, clusters_from_templates, SPIKE_FIELDS, stream=False)
    if by_cluster:
        return _group_result(result, fields)
    for name in SPIKE_FIELDS:
        if name not in fields:
            setattr(result, name, None)
    return result


def _group_result(result: SortingResult, fields: tuple[str, ...]) -> SortingResult:
    """An in-memory SortingResult grouped by cluster (what by_cluster returns)."""
    arrays = [getattr(result, name) if name in fields else None for name in SPIKE_FIELDS]
    _, offsets, grouped = group_by_cluster(result.spike_clusters, *arrays)
    for name, a in zip(SPIKE_FIELDS, grouped):
        setattr(result, name, a)
    if result.spike_sites is not None:
        result.spike_sites = result.spike_sites.astype(_site_type(result.channel_map.size))
    result.cluster_offsets = offsets
    return result


def _site_type(n_sites: int) -> type:
    return np.int16 if n_sites <= np.iinfo(np.int16).max else np.int32


class _NpyRows:
    """Blocks of rows of a .npy array (a per-spike vector or pc_features.npy), read from its file with
    read() into fresh arrays when it is memory-mapped: the pages of a memory map that a pass touches
    stay in the process' resident set until it is unmapped, a whole file's worth by the end of the
    pass. An in-memory array is sliced."""

    def __init__(self, path: Path, a: np.ndarray):
        self.path, self.a, self.n = path, a, int(a.shape[0])
        self.offset: int | None = None
        self.row_bytes = int(np.prod(a.shape[1:], dtype=np.int64)) * a.dtype.itemsize
        if not isinstance(a, np.memmap):
            return
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    return
                offset = f.tell()
        except (OSError, ValueError):
            return
        whole = dtype == a.dtype and int(np.prod(shape, dtype=np.int64)) == a.size
        if whole and (not fortran or sum(d > 1 for d in shape) <= 1) and (a.ndim == 1 or tuple(shape) == a.shape):
            self.offset = offset

    def blocks(self, rows: int | None = None, check=None):
        """(lo, hi, rows lo:hi) in order; ``check`` (a per-spike validator/converter, raising
        KilosortError) is applied to each block, and when a block fails, to the whole array, so that
        the error names the first bad entry and counts them all, as a whole-array check does."""
        rows = max(1, int(rows or _SPIKE_CHUNK))
        f = None if self.offset is None else open(self.path, "rb")
        try:
            for lo in range(0, self.n, rows):
                hi = min(self.n, lo + rows)
                if f is None:
                    b = self.a[lo:hi]
                else:
                    b = np.empty((hi - lo,) + self.a.shape[1:], self.a.dtype)
                    f.seek(self.offset + lo * self.row_bytes)
                    if b.size and f.readinto(b.reshape(-1).view(np.uint8)) != b.nbytes:
                        raise KilosortError(f"{self.path}: the file ends before its row {hi - 1} (truncated?)")
                if check is not None:
                    try:
                        b = check(b)
                    except KilosortError:
                        check(self.a)
                        raise
                yield lo, hi, b
        finally:
            if f is not None:
                f.close()


@dataclass
class _SpikeFiles:
    """The per-spike files of a folder, checked: in memory in time order, or (streamed) as block
    readers in file order, which is then time order."""

    n: int
    times_max: int | None  # None without spikes
    n_templates: int  # largest template id + 1 (0 without spike_templates.npy or spikes)
    cluster_ids: np.ndarray
    cluster_counts: np.ndarray
    # in memory
    spike_times: np.ndarray | None = None
    spike_times_sec: np.ndarray | None = None
    spike_templates: np.ndarray | None = None  # time order
    file_templates: np.ndarray | None = None  # file order (pc_features.npy rows)
    spike_clusters: np.ndarray | None = None
    amplitudes: np.ndarray | None = None
    order: np.ndarray | None = None  # file -> time order, None if the file is in time order
    cluster_rank: np.ndarray | None = None
    # streamed: (reader, check) per file
    src: dict[str, tuple[_NpyRows, Any]] = field(default_factory=dict)

    @property
    def has_templates(self) -> bool:
        return self.spike_templates is not None or "spike_templates" in self.src

    @property
    def has_amplitudes(self) -> bool:
        return self.amplitudes is not None or "amplitudes" in self.src

    def blocks(self, name: str, rows: int | None = None):
        reader, check = self.src[name]
        return reader.blocks(rows, check)


def _sec_check(path: Path):
    def check(b: np.ndarray) -> np.ndarray:
        sec = np.asarray(b, dtype=np.float64)
        _first_bad(path, ~np.isfinite(sec), "is not a finite number of seconds", b)
        return sec

    return check


def _amp_check(path: Path):
    def check(b: np.ndarray) -> np.ndarray:
        amp = b.astype(np.float32)
        _first_bad(path, ~np.isfinite(amp), "is not a finite number", amp)
        return amp

    return check


def _spike_files(
    folder: Path,
    sample_rate: float,
    clusters_from_templates: bool,
    missing: list[str],
    stream: bool,
    repairs: list[str] | None = None,
):
    """Check the per-spike files (errors in the order of the files below). Streamed: None when the
    folder needs reading into memory (no spikes, 2**32 or more, not in time order, a huge cluster id)."""
    st_path = folder / "spike_times.npy"
    if not st_path.is_file():
        raise KilosortError(f"{st_path}: missing (every Kilosort/phy folder has spike times)")
    st_file = _vector(st_path, _load_npy(st_path))
    n = st_file.shape[0]
    if stream and not 0 < n < 2**32:
        return None
    src: dict[str, tuple[_NpyRows, Any]] = {}

    def spike_file(name: str, path: Path, a: np.ndarray, check) -> np.ndarray | None:
        """Check a per-spike file: whole (in memory) or block by block (streamed, returning None)."""
        if not stream:
            return check(a)
        src[name] = (_NpyRows(path, a), check)
        for _ in src[name][0].blocks(_SPIKE_CHUNK, check):
            pass
        return None

    def times_check(b: np.ndarray) -> np.ndarray:
        return _spike_times(st_path, b, sample_rate)

    spike_times = None
    times_max = None
    if stream:  # in time order? (else: read into memory, sorted there)
        src["spike_times"] = (_NpyRows(st_path, st_file), times_check)
        prev = None
        for _, _, b in src["spike_times"][0].blocks(_SPIKE_CHUNK, times_check):
            if (prev is not None and b[0] < prev) or not np.all(b[1:] >= b[:-1]):
                return None
            prev = b[-1]
        times_max = int(prev)
    else:
        spike_times = times_check(st_file)
        times_max = int(spike_times.max()) if n else None

    spike_times_sec = None
    for name in ("spike_times_sec_adj.npy", "spike_times_sec.npy"):
        if (folder / name).is_file():
            sec_path = folder / name
            a = _vector(sec_path, _load_npy(sec_path))
            _check_len(sec_path, a, n)
            if a.dtype.kind not in "iuf":
                raise KilosortError(f"{sec_path}: values of type {a.dtype}, expected seconds (numbers)")
            spike_times_sec = spike_file("spike_times_sec", sec_path, a, _sec_check(sec_path))
            break

    templates_path = folder / "spike_templates.npy"
    spike_templates = None
    has_templates = templates_path.is_file()
    n_templates = 0
    if has_templates:
        a = _vector(templates_path, _load_npy(templates_path))
        _check_len(templates_path, a, n)

        def templates_check(b: np.ndarray) -> np.ndarray:
            return _ids(templates_path, b, "template")

        if stream:
            src["spike_templates"] = (_NpyRows(templates_path, a), templates_check)
            for _, _, b in src["spike_templates"][0].blocks(_SPIKE_CHUNK, templates_check):
                n_templates = max(n_templates, int(b.max()) + 1)
        else:
            spike_templates = templates_check(a)
            n_templates = int(spike_templates.max()) + 1 if n else 0
    clusters_path = folder / "spike_clusters.npy"
    spike_clusters = None
    if clusters_path.is_file():
        a = _vector(clusters_path, _load_npy(clusters_path))
        _check_len(clusters_path, a, n)

        def clusters_check(b: np.ndarray) -> np.ndarray:
            return _ids(clusters_path, b, "cluster")

        if stream:
            src["spike_clusters"] = (_NpyRows(clusters_path, a), clusters_check)
        else:
            spike_clusters = clusters_check(a)
    elif has_templates and clusters_from_templates:
        if stream:
            src["spike_clusters"] = src["spike_templates"]
        else:
            spike_clusters = spike_templates.copy()
        missing.append("spike_clusters.npy: clusters are the Kilosort templates (no phy curation)")
    elif has_templates:
        raise KilosortError(
            f"{folder}: no spike_clusters.npy (the cluster of each spike, which Kilosort 2+ and phy write): "
            "the folder is incomplete; to use the Kilosort templates as clusters, pass clusters_from_templates=True"
        )
    else:
        raise KilosortError(
            f"{folder}: no spike_clusters.npy and no spike_templates.npy: the cluster of each spike is unknown"
        )
    counts = np.zeros(0, np.int64)
    if stream:  # cluster sizes by id (a bincount; a huge id: read into memory instead)
        for _, _, b in src["spike_clusters"][0].blocks(_SPIKE_CHUNK, src["spike_clusters"][1]):
            if int(b.max()) >= 4 * n + (1 << 16):
                return None
            c = np.bincount(b, minlength=counts.size)
            c[: counts.size] += counts
            counts = c
    if not has_templates:
        missing.append("spike_templates.npy: no per-spike template, so no spike sites, depths or template waveforms")

    amplitudes = None
    amp_path = folder / "amplitudes.npy"
    if amp_path.is_file():
        a = _vector(amp_path, _load_npy(amp_path))
        _check_len(amp_path, a, n)
        if a.dtype.kind not in "iuf":
            raise KilosortError(f"{amp_path}: values of type {a.dtype}, expected numbers")
        amplitudes = spike_file("amplitudes", amp_path, a, _amp_check(amp_path))
    else:
        missing.append("amplitudes.npy: no spike amplitudes")

    if stream:
        present = np.flatnonzero(counts)
        return _SpikeFiles(
            n=n,
            times_max=times_max,
            n_templates=n_templates,
            cluster_ids=present.astype(np.int32),
            cluster_counts=counts[present],
            src=src,
        )

    # spikes in time order (Kilosort writes them sorted; phy keeps the order)
    file_templates, order = spike_templates, None  # pc_features.npy rows stay in file order
    if n and not np.all(spike_times[1:] >= spike_times[:-1]):
        if repairs is not None:
            back = int(np.count_nonzero(spike_times[1:] < spike_times[:-1]))
            repairs.append(
                f"{folder / 'spike_times.npy'}: {back} spikes earlier than the one before them; "
                "the spikes were put in time order (with their clusters, templates and amplitudes)"
            )
        order = np.argsort(spike_times, kind="stable")
        spike_times, spike_clusters = spike_times[order], spike_clusters[order]
        spike_templates = None if spike_templates is None else spike_templates[order]
        amplitudes = None if amplitudes is None else amplitudes[order]
        spike_times_sec = None if spike_times_sec is None else spike_times_sec[order]
    cluster_ids, cluster_counts, cluster_rank = dense_cluster_index(spike_clusters)
    return _SpikeFiles(
        n=n,
        times_max=times_max,
        n_templates=n_templates,
        cluster_ids=cluster_ids,
        cluster_counts=cluster_counts,
        spike_times=spike_times,
        spike_times_sec=spike_times_sec,
        spike_templates=spike_templates,
        file_templates=file_templates,
        spike_clusters=spike_clusters,
        amplitudes=amplitudes,
        order=order,
        cluster_rank=cluster_rank,
    )


def _read_kilosort(
    folder: Path, clusters_from_templates: bool, fields: tuple[str, ...], stream: bool
) -> SortingResult | None:
    if not folder.is_dir():
        raise KilosortError(f"{folder}: not a folder")
    missing: list[str] = []

    def opt(name: str, cost: str, mmap: bool = True) -> np.ndarray | None:
        p = folder / name
        if p.is_file():
            return _load_npy(p, mmap)
        missing.append(f"{name}: {cost}")
        return None

    # -- params
    params: dict[str, Any] = {}
    if (folder / "params.py").is_file():
        params = read_params(folder / "params.py")
    if "sample_rate" in params:
        try:
            sample_rate = float(params["sample_rate"])
        except (TypeError, ValueError):
            raise KilosortError(
                f"{folder / 'params.py'}: sample_rate {params['sample_rate']!r} is not a number"
            ) from None
        if not sample_rate > 0:
            raise KilosortError(f"{folder / 'params.py'}: sample_rate {sample_rate} is not positive")
    else:
        sample_rate = DEFAULT_SAMPLE_RATE
        missing.append(f"params.py: no sample_rate, {DEFAULT_SAMPLE_RATE:g} Hz assumed")

    # -- spikes
    repairs: list[str] = []
    spikes = _spike_files(folder, sample_rate, clusters_from_templates, missing, stream, repairs)
    if spikes is None:
        return None
    n = spikes.n
    cluster_ids, cluster_counts = spikes.cluster_ids, spikes.cluster_counts
    k = cluster_ids.size

    # -- probe
    channel_map = opt("channel_map.npy", "site -> channel map unknown, identity assumed")
    channel_positions = opt("channel_positions.npy", "no site positions: no spike depths or unit positions")
    if channel_map is not None:
        channel_map = _vector(folder / "channel_map.npy", np.asarray(channel_map)).astype(np.int64)
    if channel_positions is not None:
        channel_positions = np.asarray(channel_positions, dtype=np.float64)
        if channel_positions.ndim != 2 or channel_positions.shape[1] < 2:
            raise KilosortError(
                f"{folder / 'channel_positions.npy'}: expected (sites, 2), got {channel_positions.shape}"
            )
        channel_positions = channel_positions[:, :2]
        if channel_map is not None and channel_map.size != channel_positions.shape[0]:
            raise KilosortError(
                f"{folder / 'channel_positions.npy'}: {channel_positions.shape[0]} sites but "
                f"channel_map.npy has {channel_map.size}"
            )
        _first_bad(
            folder / "channel_positions.npy",
            ~np.isfinite(channel_positions).all(axis=1),
            "is not a finite position",
            channel_positions,
            what="site",
        )
    if channel_map is not None:
        _check_channel_map(folder, channel_map, params)
    _check_dat_file(folder, params, spikes.times_max)

    # -- templates
    n_templates = spikes.n_templates
    templates = opt("templates.npy", "no template waveforms, so no mean waveforms or unit amplitudes from them")
    has_templates_file = templates is not None
    unwhitened = None
    if has_templates_file:
        unwhitened = _unwhitened_templates(folder, templates, channel_map, missing)
        del templates  # the memory map: its pages count as resident until it is released
        if spikes.has_templates and n and unwhitened.shape[0] < n_templates:
            raise KilosortError(
                f"{folder / 'templates.npy'}: {unwhitened.shape[0]} templates but "
                f"spike_templates.npy refers to template {n_templates - 1}"
            )
        n_templates = max(n_templates, unwhitened.shape[0])
        if channel_map is None:
            channel_map = np.arange(unwhitened.shape[2])
    pc_feature_ind = None
    if (folder / "pc_feature_ind.npy").is_file():
        pc_feature_ind = np.asarray(_load_npy(folder / "pc_feature_ind.npy", mmap=False))
        if pc_feature_ind.ndim != 2:
            raise KilosortError(
                f"{folder / 'pc_feature_ind.npy'}: expected (templates, channels), got {pc_feature_ind.shape}"
            )
        pc_feature_ind = pc_feature_ind.astype(np.int64)
        if spikes.has_templates and n and pc_feature_ind.shape[0] < n_templates:
            raise KilosortError(
                f"{folder / 'pc_feature_ind.npy'}: {pc_feature_ind.shape[0]} templates but "
                f"spike_templates.npy refers to template {n_templates - 1}"
            )
    if channel_map is None:
        n_sites = (
            channel_positions.shape[0]
            if channel_positions is not None
            else int(pc_feature_ind.max()) + 1
            if pc_feature_ind is not None and pc_feature_ind.size
            else 0
        )
        channel_map = np.arange(n_sites)
    n_sites = channel_map.size
    if channel_positions is None:
        channel_positions = np.full((n_sites, 2), np.nan)
    if pc_feature_ind is not None and pc_feature_ind.size and pc_feature_ind.max() >= n_sites:
        raise KilosortError(
            f"{folder / 'pc_feature_ind.npy'}: site {pc_feature_ind.max()} but the probe has {n_sites} sites"
        )

    # per-template peak site
    template_peak = None
    if unwhitened is not None:
        template_peak = np.ptp(unwhitened, axis=1).argmax(axis=1)
    elif pc_feature_ind is not None:
        template_peak = pc_feature_ind[:, 0]
    if template_peak is None and spikes.has_templates:
        missing.append("pc_feature_ind.npy: no template peak sites (no templates.npy either), so no spike sites")
    with_sites = template_peak is not None and spikes.has_templates

    # -- spike depths: how
    ycoords = channel_positions[:, 1]
    has_positions = bool(np.isfinite(ycoords).all()) and n_sites > 0
    pc_path = folder / "pc_features.npy"
    pcs = None
    if not has_positions:
        pass
    elif pc_path.is_file() and pc_feature_ind is not None and spikes.has_templates:
        pcs = _NpyRows(pc_path, _pc_shape(pc_path, _load_npy(pc_path), pc_feature_ind, n))
    elif with_sites:
        missing.append("pc_features.npy: spike depth is the y of the template's peak site")
    else:
        missing.append("pc_features.npy: no spike depths")
    with_depths = has_positions and (pcs is not None or with_sites)
    with_kt = spikes.has_templates and n_templates and template_peak is not None

    per_spike: dict[str, np.ndarray | None] = dict.fromkeys(SPIKE_FIELDS)
    offsets = None
    if stream:  # per-spike arrays last, once the templates are freed (see _stream_per_spike)
        counts_kt, amps_kt = _stream_counts(spikes, n_templates if with_kt else 0)
    else:
        spike_templates, amplitudes = spikes.spike_templates, spikes.amplitudes
        per_spike.update(
            spike_times=spikes.spike_times,
            spike_clusters=spikes.spike_clusters,
            amplitudes=amplitudes,
            spike_times_sec=spikes.spike_times_sec,
        )
        spike_sites = None
        if with_sites:
            spike_sites = template_peak[spike_templates].astype(np.int32)
        # -- per-cluster x template spike counts / amplitude sums (K x T, small)
        counts_kt = amps_kt = None
        if with_kt:
            key = spikes.cluster_rank.astype(np.int64) * n_templates + spike_templates
            counts_kt = np.bincount(key, minlength=k * n_templates).reshape(k, n_templates)
            if amplitudes is not None:
                amps_kt = np.bincount(key, weights=amplitudes, minlength=k * n_templates).reshape(k, n_templates)
            del key
        # -- spike depths
        spike_depths = None
        if pcs is not None:
            fallback = None if template_peak is None else ycoords[template_peak]
            spike_depths = _pc_depths(pcs, pc_feature_ind, spikes.file_templates, ycoords, fallback)
            if spikes.order is not None:
                spike_depths = spike_depths[spikes.order]
        elif with_depths:
            spike_depths = ycoords[spike_sites].astype(np.float32)
        per_spike.update(spike_sites=spike_sites, spike_depths=spike_depths)
        del spikes

    # -- labels, metrics
    labels = _read_labels(folder, cluster_ids)
    if labels.shape[1] == 0:
        missing.append("cluster_group.tsv: no cluster labels, every unit's quality is 'all'")
    quality = ks_quality(labels)
    metrics = None
    if (folder / "metrics.csv").is_file():
        metrics = _read_metrics(folder / "metrics.csv")
    else:
        missing.append("metrics.csv: no cluster metrics, peak/amplitude from templates, no SNR")
    waveform_metrics = None
    if (folder / "waveform_metrics.csv").is_file():
        waveform_metrics = _read_metrics(folder / "waveform_metrics.csv")
    elif metrics is not None and set(WAVEFORM_METRIC_COLUMNS) <= set(metrics.columns):
        waveform_metrics = metrics[list(WAVEFORM_METRIC_COLUMNS)].copy()

    # -- per-cluster peak, waveform, amplitude, snr
    site_of_channel = np.full(int(channel_map.max()) + 1 if n_sites else 0, -1, np.int64)
    site_of_channel[channel_map] = np.arange(n_sites)
    peak_channel = np.full(k, -1, np.int64)
    mean_waveforms = None
    waveform_unit = amp_unit = ""
    unit_amp = unit_snr = None
    from_metrics = metrics is not None and "peak_channel" in metrics.columns
    if from_metrics:
        chan = metrics["peak_channel"].reindex(cluster_ids.astype(np.int64)).to_numpy()
        ok = np.isfinite(chan)
        chan_i = np.where(ok, chan, -1).astype(np.int64)
        ok &= (chan_i >= 0) & (chan_i < site_of_channel.size)
        peak_channel[ok] = site_of_channel[chan_i[ok]]
        if "amplitude" in metrics.columns:
            unit_amp = metrics["amplitude"].reindex(cluster_ids.astype(np.int64)).to_numpy(np.float64)
            amp_unit = "uV"
        if "snr" in metrics.columns:
            unit_snr = metrics["snr"].reindex(cluster_ids.astype(np.int64)).to_numpy(np.float64)
        mw_path = folder / "mean_waveforms.npy"
        if mw_path.is_file():
            mean_waveforms = _waveforms_from_file(mw_path, _load_npy(mw_path), cluster_ids, channel_map, peak_channel)
            waveform_unit = "uV"
        else:
            missing.append(
                "mean_waveforms.npy: no mean waveforms in uV"
                + (" (from the templates instead, raw units)" if has_templates_file else "")
            )
    if counts_kt is not None and unwhitened is not None:
        if amps_kt is None:
            missing.append("amplitudes.npy: template waveforms not scaled by spike amplitudes")
        w = amps_kt if amps_kt is not None else counts_kt.astype(np.float64)
        t_peak, t_wave = _template_cluster_waveforms(
            unwhitened, w, cluster_counts, peak_channel if from_metrics else None
        )
        if not from_metrics:
            peak_channel = t_peak
        if mean_waveforms is None:
            mean_waveforms, waveform_unit = t_wave, "bits"
        if unit_amp is None:
            unit_amp = np.ptp(t_wave, axis=1).astype(np.float64)
            amp_unit = "bits"
    elif counts_kt is not None and not from_metrics:
        # no templates: the peak site of the template holding most of the cluster's spikes
        peak_channel = template_peak[counts_kt.argmax(axis=1)].astype(np.int64)
    if unit_amp is None:
        missing.append("unit amplitude: neither templates.npy nor metrics.csv amplitude")
    unit_position = None
    if has_positions and (peak_channel >= 0).any():
        unit_position = np.full((k, 2), np.nan)
        known = peak_channel >= 0
        unit_position[known] = channel_positions[peak_channel[known]]

    if stream:
        del unwhitened, counts_kt, amps_kt
        offsets = np.zeros(k + 1, np.int64)
        np.cumsum(cluster_counts, out=offsets[1:])
        per_spike = _stream_per_spike(
            spikes,
            fields,
            template_peak.astype(_site_type(n_sites)) if with_sites else None,
            ycoords if with_depths else None,
            pcs,
            pc_feature_ind,
            template_peak,
            offsets,
        )
        del spikes

    sorter = "pykilosort2.5" if "pyks25" in str(folder.resolve()).lower() else "kilosort2"
    return SortingResult(
        path=folder,
        sorter=sorter,
        sample_rate=sample_rate,
        spike_times=per_spike["spike_times"],
        spike_clusters=per_spike["spike_clusters"],
        spike_sites=per_spike["spike_sites"],
        spike_depths=per_spike["spike_depths"],
        amplitudes=per_spike["amplitudes"],
        channel_map=channel_map,
        channel_positions=channel_positions,
        cluster_ids=cluster_ids,
        cluster_quality=quality,
        cluster_labels=labels,
        peak_channel=peak_channel,
        mean_waveforms=mean_waveforms,
        waveform_unit=waveform_unit,
        unit_amp=unit_amp,
        unit_snr=unit_snr,
        unit_position=unit_position,
        metrics=metrics,
        waveform_metrics=waveform_metrics,
        missing=missing,
        repairs=repairs,
        amp_unit=amp_unit,
        spike_times_sec=per_spike["spike_times_sec"],
        params=params,
        cluster_offsets=offsets,
    )


def _cluster_rank(spikes: _SpikeFiles) -> np.ndarray:
    """Lookup table cluster id -> rank among cluster_ids (uint64)."""
    lut = np.zeros(int(spikes.cluster_ids[-1]) + 1, np.uint64)
    lut[spikes.cluster_ids] = np.arange(spikes.cluster_ids.size, dtype=np.uint64)
    return lut


def _stream_counts(spikes: _SpikeFiles, n_templates: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The K x T spike counts and amplitude sums (``n_templates``: 0 for none) in one pass over the
    cluster, template and amplitude files.

    The sums are bit for bit those of one ``np.bincount`` over all spikes: each block's bincount starts
    from the running sums (prepended as weights; 0.0 + s is s), so every sum is accumulated in spike
    order as there."""
    if not n_templates:
        return None, None
    k = spikes.cluster_ids.size
    nkt = k * n_templates
    lut = _cluster_rank(spikes)
    counts_kt = np.zeros(nkt, np.int64)
    amps_kt = np.zeros(nkt, np.float64) if spikes.has_amplitudes else None
    rows = max(_SPIKE_CHUNK, nkt)  # a block's bincount costs its length + nkt
    templates = spikes.blocks("spike_templates", rows)
    amplitudes = spikes.blocks("amplitudes", rows) if amps_kt is not None else None
    for _, _, c in spikes.blocks("spike_clusters", rows):
        key = lut[c].view(np.int64) * n_templates + next(templates)[2]
        counts_kt += np.bincount(key, minlength=nkt)
        if amps_kt is not None:
            running = np.flatnonzero(amps_kt)
            amps_kt = np.bincount(
                np.concatenate((running, key)),
                weights=np.concatenate((amps_kt[running], next(amplitudes)[2])),
                minlength=nkt,
            )
    return counts_kt.reshape(k, n_templates), None if amps_kt is None else amps_kt.reshape(k, n_templates)


def _stream_per_spike(
    spikes: _SpikeFiles,
    fields: tuple[str, ...],
    site_of_template: np.ndarray | None,
    ycoords: np.ndarray | None,
    pcs: _NpyRows | None,
    pc_feature_ind: np.ndarray | None,
    template_peak: np.ndarray | None,
    offsets: np.ndarray,
) -> dict[str, np.ndarray | None]:
    """The requested per-spike arrays in cluster order (stable: time order within a cluster), each
    filled block by block from its file, every spike written once to its place (see
    ``_cluster_places``): besides the arrays returned, only a block's worth of memory.
    ``site_of_template``: None for no spike sites; ``ycoords``: None for no spike depths (from ``pcs``
    when given, else the y of the template's peak site)."""
    out: dict[str, np.ndarray | None] = dict.fromkeys(SPIKE_FIELDS)
    if "spike_sites" in fields and site_of_template is not None:
        out["spike_sites"] = _scatter(
            spikes,
            offsets,
            spikes.blocks("spike_templates", _PLACE_CHUNK),
            site_of_template.dtype,
            lambda t: site_of_template[t],
        )
    if "spike_depths" in fields and ycoords is not None:
        if pcs is not None:
            fallback = None if template_peak is None else ycoords[template_peak]
            rows = max(1, min(_PLACE_CHUNK, _ROW_BYTES // max(1, pcs.row_bytes)))
            blocks = (
                (lo, hi, _pc_depth_block(f, t, pc_feature_ind, ycoords, fallback))
                for (lo, hi, f), (_, _, t) in zip(pcs.blocks(rows), spikes.blocks("spike_templates", rows))
            )
            out["spike_depths"] = _scatter(spikes, offsets, blocks, np.float32, rows=rows)
        else:
            y = ycoords[template_peak]
            out["spike_depths"] = _scatter(
                spikes,
                offsets,
                spikes.blocks("spike_templates", _PLACE_CHUNK),
                np.float32,
                lambda t: y[t].astype(np.float32),
            )
    for name, dtype in (("spike_times", np.int64), ("spike_times_sec", np.float64), ("amplitudes", np.float32)):
        if name in fields and name in spikes.src:
            out[name] = _scatter(spikes, offsets, spikes.blocks(name, _PLACE_CHUNK), dtype)
    if "spike_clusters" in fields:
        out["spike_clusters"] = np.repeat(spikes.cluster_ids, spikes.cluster_counts)
    return out


def _cluster_places(spikes: _SpikeFiles, offsets: np.ndarray, rows: int):
    """(lo, hi, places) for each block of spikes in file (= time) order: each spike's index in cluster
    order, spikes of one cluster in file order.

    A counting sort: a cluster's next free place starts at its offset; within a block, a stable
    argsort of the cluster ranks (numpy's radix sort for up to 2**16 clusters) numbers each spike
    among the block's spikes of its cluster. No per-spike array of the whole file is made."""
    k = spikes.cluster_ids.size
    lut = _cluster_rank(spikes).astype(np.uint16 if k <= 1 << 16 else np.intp)
    cursor = offsets[:-1].copy()
    for lo, hi, c in spikes.blocks("spike_clusters", rows):
        rank = lut[c]
        order = np.argsort(rank, kind="stable")
        counts = np.bincount(rank, minlength=k)
        first = np.cumsum(counts) - counts  # where each cluster's spikes start among the block's, sorted
        sorted_rank = rank[order]
        places = np.empty(hi - lo, np.int64)
        places[order] = cursor[sorted_rank] + (np.arange(hi - lo) - first[sorted_rank])
        cursor += counts
        yield lo, hi, places


def _scatter(spikes: _SpikeFiles, offsets: np.ndarray, blocks, dtype, convert=None, rows: int = _PLACE_CHUNK):
    """A per-spike array in cluster order from ``blocks`` (lo, hi, values) of ``rows`` spikes in file
    order, each block written to its places (``_cluster_places``)."""
    out = np.empty(spikes.n, dtype)
    for (lo, hi, b), (_, _, places) in zip(blocks, _cluster_places(spikes, offsets, rows)):
        out[places] = b if convert is None else convert(b)
    return out


def _unwhitened_templates(
    folder: Path, templates: np.ndarray, channel_map: np.ndarray | None, missing: list[str]
) -> np.ndarray:
    """templates.npy (T, samples, channels[, sparse]) -> unwhitened dense float32 (T, samples, sites)."""
    path = folder / "templates.npy"
    if templates.ndim != 3:
        raise KilosortError(f"{path}: expected (templates, samples, channels), got {templates.shape}")
    templates = np.asarray(templates, dtype=np.float32)
    n_sites = channel_map.size if channel_map is not None else None
    if n_sites is not None and templates.shape[2] != n_sites:
        ind_path = folder / "templates_ind.npy"
        if not ind_path.is_file():
            raise KilosortError(
                f"{path}: {templates.shape[2]} channels but channel_map.npy has {n_sites} sites "
                "and there is no templates_ind.npy"
            )
        ind = np.asarray(_load_npy(ind_path, mmap=False)).astype(np.int64)
        if ind.shape != (templates.shape[0], templates.shape[2]):
            raise KilosortError(f"{ind_path}: shape {ind.shape}, expected {(templates.shape[0], templates.shape[2])}")
        dense = np.zeros((templates.shape[0], templates.shape[1], n_sites), np.float32)
        t_idx, c_idx = np.nonzero((ind >= 0) & (ind < n_sites))
        dense[t_idx, :, ind[t_idx, c_idx]] = templates[t_idx, :, c_idx]
        templates = dense
    winv_path = folder / "whitening_mat_inv.npy"
    if winv_path.is_file():
        winv = np.asarray(_load_npy(winv_path, mmap=False), dtype=np.float32)
        if winv.shape != (templates.shape[2], templates.shape[2]):
            raise KilosortError(f"{winv_path}: shape {winv.shape}, expected {(templates.shape[2],) * 2}")
        flat = templates.reshape(-1, templates.shape[2])
        if np.count_nonzero(flat) < 0.25 * flat.size:  # templates are local: sparse product is cheaper
            import scipy.sparse as sp

            w = sp.csr_matrix(winv) if np.count_nonzero(winv) < 0.25 * winv.size else winv
            out = sp.csr_matrix(flat) @ w
            out = out.toarray() if sp.issparse(out) else np.asarray(out)
            return out.astype(np.float32, copy=False).reshape(templates.shape)
        return np.matmul(templates, winv)
    missing.append("whitening_mat_inv.npy: templates used as stored (whitened)")
    return templates


def _template_cluster_waveforms(
    unwhitened: np.ndarray, weights: np.ndarray, counts: np.ndarray, peak: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster, mean over its spikes of amplitude x unwhitened template -> (peak site, waveform there).

    ``weights[k, t]`` = sum of the amplitudes of cluster k's spikes of template t. When ``peak`` is given
    (from metrics.csv) the waveform is taken at that site (-1: at the template peak).
    """
    import scipy.sparse as sp

    n_t, n_s, n_c = unwhitened.shape
    flat = unwhitened.reshape(n_t, n_s * n_c)
    k = weights.shape[0]
    out_peak = np.zeros(k, np.int64)
    out_wave = np.zeros((k, n_s), np.float32)
    for lo in range(0, k, _CLUSTER_CHUNK):
        hi = min(k, lo + _CLUSTER_CHUNK)
        w = sp.csr_matrix((weights[lo:hi] / counts[lo:hi, None]).astype(np.float32))  # few templates per cluster
        mean = np.asarray(w @ flat).reshape(hi - lo, n_s, n_c)
        p = np.ptp(mean, axis=1).argmax(axis=1)
        if peak is not None:
            p = np.where(peak[lo:hi] >= 0, peak[lo:hi], p)
        out_peak[lo:hi] = p
        out_wave[lo:hi] = mean[np.arange(hi - lo), :, p]
    return out_peak, out_wave


def _pc_shape(path: Path, pc: np.ndarray, pc_feature_ind: np.ndarray, n: int) -> np.ndarray:
    if pc.ndim != 3 or pc.shape[0] != n or pc.shape[2] != pc_feature_ind.shape[1]:
        raise KilosortError(f"{path}: shape {pc.shape}, expected ({n}, n_pcs, {pc_feature_ind.shape[1]})")
    return pc


def _pc_depth_block(
    rows: np.ndarray,
    spike_templates: np.ndarray,
    pc_feature_ind: np.ndarray,
    ycoords: np.ndarray,
    fallback: np.ndarray | None,
) -> np.ndarray:
    """PC1^2-weighted mean y of the template's feature channels (negative features count as 0) of a
    block of pc_features.npy rows; ``fallback[t]`` (y of template t's peak site) where all are <= 0."""
    f = np.array(rows[:, 0, :], dtype=np.float32)
    np.maximum(f, 0, out=f)
    f *= f
    total = f.sum(axis=1)
    y = ycoords[pc_feature_ind[spike_templates]].astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = (f * y).sum(axis=1) / total
    if fallback is not None:
        d = np.where(total > 0, d, fallback[spike_templates])
    return d


def _pc_depths(
    pcs: _NpyRows,
    pc_feature_ind: np.ndarray,
    spike_templates: np.ndarray,
    ycoords: np.ndarray,
    fallback: np.ndarray | None,
) -> np.ndarray:
    """Per-spike depths (file order) from pc_features.npy, read in blocks of rows (see _pc_depth_block)."""
    out = np.empty(pcs.n, np.float32)
    for lo, hi, rows in pcs.blocks(max(1, _ROW_BYTES // max(1, pcs.row_bytes))):
        out[lo:hi] = _pc_depth_block(rows, spike_templates[lo:hi], pc_feature_ind, ycoords, fallback)
    return out


def _waveforms_from_file(
    path: Path, mw: np.ndarray, cluster_ids: np.ndarray, channel_map: np.ndarray, peak_site: np.ndarray
) -> np.ndarray:
    """ecephys mean_waveforms.npy (ids, channels, samples) at each cluster's peak channel; NaN if absent."""
    if mw.ndim != 3:
        raise KilosortError(f"{path}: expected (clusters, channels, samples), got {mw.shape}")
    k = cluster_ids.size
    out = np.full((k, mw.shape[2]), np.nan, np.float32)
    chan = np.where(peak_site >= 0, channel_map[np.clip(peak_site, 0, None)] if channel_map.size else -1, -1)
    ok = (cluster_ids >= 0) & (cluster_ids < mw.shape[0]) & (chan >= 0) & (chan < mw.shape[1])
    idx = np.flatnonzero(ok)
    if idx.size:
        out[idx] = mw[cluster_ids[idx], chan[idx], :]
    return out


# ------------------------------------------------------------------------------------- probe geometry


def check_geometry(sorting: SortingResult, meta: SpikeGLXMeta, *, tol_um: float = 1.0) -> list[str]:
    """Check a sorting against the SpikeGLX ``.meta`` of the recording it sorted (pure, no database).

    * ``params.py`` ``n_channels_dat`` must be the meta's saved channel count, with or without its sync
      channel(s) (385 saved = 384 neural + 1 sync: 385 or 384);
    * every channel of ``channel_map`` must be one of the meta's saved neural channels;
    * ``channel_positions`` must be the meta's site positions of those channels (``meta.x``/``meta.y``
      at ``channel_map``), up to a shift and a flip of each axis (Kilosort channel maps often mirror x
      and start y at another origin): a file from another probe layout or with rows in another order
      fails;
    * spike times must fall inside the recording when the meta gives its size (``fileSizeBytes``).

    Raises KilosortError naming both files and the disagreement. Returns one short sentence per check
    made or skipped, for the loader's log.
    """
    folder = sorting.path if sorting.path.is_dir() else sorting.path.parent
    where = sorting.path
    n_neural = int(len(meta.electrodes))
    n_saved = int(meta.n_saved_channels)
    n_sync = n_saved - n_neural
    if meta.stream == "nidq" or n_neural == 0:
        raise KilosortError(f"{meta.path}: a {meta.stream} stream has no probe channels to check {where} against")
    notes: list[str] = []
    n_dat = _n_channels_dat(folder, sorting.params) if sorting.params else None
    if n_dat is None:
        notes.append("n_channels_dat: not in params.py, channel count not checked")
    elif n_dat not in (n_saved, n_neural):
        raise KilosortError(
            f"{folder / 'params.py'}: n_channels_dat = {n_dat} but {meta.path} saves {n_saved} channels "
            f"({n_neural} neural + {n_sync} sync, so {n_saved} or {n_neural} expected): "
            "the sorting is not of this recording"
        )
    else:
        notes.append(f"n_channels_dat {n_dat} = {n_neural} neural{f' + {n_sync} sync' if n_dat == n_saved else ''}")
    cm = np.asarray(sorting.channel_map, dtype=np.int64).ravel()
    cm_path = folder / "channel_map.npy" if sorting.path.is_dir() else sorting.path
    if cm.size and (cm.min() < 0 or cm.max() >= n_neural):
        bad = int(cm.max()) if cm.max() >= n_neural else int(cm.min())
        raise KilosortError(
            f"{cm_path}: channel {bad} is not one of the {n_neural} neural channels that {meta.path} saves"
        )
    pos = np.asarray(sorting.channel_positions, dtype=np.float64)
    pos_path = folder / "channel_positions.npy" if sorting.path.is_dir() else sorting.path
    if cm.size == 0 or pos.shape != (cm.size, 2) or not np.isfinite(pos).all():
        notes.append("channel_positions: not available, site positions not checked")
    else:
        ref = np.column_stack([np.asarray(meta.x, dtype=np.float64)[cm], np.asarray(meta.y, dtype=np.float64)[cm]])
        fitted = np.empty_like(ref)
        how, signs, offsets = [], [], []
        for axis, name in ((0, "x"), (1, "y")):
            best = None
            for sign in (1.0, -1.0):  # the direction (then offset) most sites agree on
                off = float(np.median(pos[:, axis] - sign * ref[:, axis]))
                err = np.abs(pos[:, axis] - (sign * ref[:, axis] + off))
                key = (int((err > tol_um).sum()), float(err.max()))
                if best is None or key < best[0]:
                    best = (key, sign, off)
            _, sign, off = best
            signs.append(sign)
            offsets.append(off)
            fitted[:, axis] = sign * ref[:, axis] + off
            how.append(f"{name}{' mirrored' if sign < 0 else ''}{f' shifted {off:+g} um' if off else ''}")
        wrong = np.flatnonzero((np.abs(pos - fitted) > tol_um).any(axis=1))
        if wrong.size:
            i = int(wrong[0])
            raise KilosortError(
                f"{pos_path}: site positions disagree with {meta.path} at {wrong.size} of {cm.size} sites "
                f"(first: site {i}, channel {int(cm[i])}: ({pos[i, 0]:g}, {pos[i, 1]:g}) um in the sorting, "
                f"({ref[i, 0]:g}, {ref[i, 1]:g}) um in the meta; compared up to a shift/flip of each axis): "
                "scrambled or from another probe layout"
            )
        notes.append(f"channel_positions match the meta's sites ({', '.join(how)})")
        sorting.probe_frame = (np.array(signs), np.array(offsets))
    size = meta.raw.get("fileSizeBytes")
    try:
        n_samples = int(size) // (2 * n_saved) if size else None
    except ValueError:
        n_samples = None
    st = np.asarray(sorting.spike_times)
    if n_samples and st.size and int(st.max()) >= n_samples:
        raise KilosortError(
            f"{where}: spike time {int(st.max())} (samples) is past the end of the recording of {meta.path} "
            f"(fileSizeBytes {size} = {n_samples} samples of {n_saved} int16 channels)"
        )
    notes.append("spike times inside the recording" if n_samples else "fileSizeBytes: not in the meta")
    return notes
