"""JRClust v3 ``*_jrc.mat`` and v4 ``*_res.mat`` -> ``SortingResult`` (the Kilosort reader's dataclass).

Both are MATLAB files, v7.3 (HDF5) in practice; they are read with h5py one field at a time (a real
``_jrc.mat`` holds much more than the ingest needs), classic v5 files through ``read_mat``. Fields
(spec 3.4), MATLAB indices made 0-based:

* v3: P.sRateHz, viTime_spk, viSite_spk, mrPos_spk (spike x, y), S_clu.{viClu, trWav_raw_clu,
  csNote_clu, vrPosX_clu, vrPosY_clu, vrVpp_uv_clu, vrSnr_clu, viSite_clu}; the site map from
  P.viSite2Chan / P.mrSiteXY when present;
* v4: spikeTimes, spikeSites, spikePositions, spikeClusters, meanWfLocalRaw, clusterNotes,
  clusterCentroids, unitVppRaw, unitSNR, clusterSites. (Files saved without raw waveforms: the filtered
  trWav_spk_clu / meanWfLocal instead, said in ``missing``.) A res file has no sample rate or site map: they
  come from the JRClust parameter file beside it (``<name>.prm``: sampleRate, siteMap, siteLoc), else
  the sample rate from a SpikeGLX ``*.ap.meta`` there (imSampRate), else 30 kHz is assumed.

Spikes of clusters <= 0 (JRClust's noise / deleted) are dropped (``dropped_spikes`` counts them).
spike_times are JRClust's 1-based sample numbers minus 1; spike_depths the y of the spike's position;
mean waveforms the first local site (the cluster's centre = peak site) of trWav_raw_clu /
meanWfLocalRaw, in uV; quality from the cluster note: single* -> good, multi* -> multi, ok* -> ok,
anything else (empty, noise, ...) -> all (case-insensitive prefixes, as the original matched them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .kilosort import DEFAULT_SAMPLE_RATE, SortingResult
from .matfile import MatFileError, mat_version, read_mat

__all__ = ["JRClustError", "read_jrclust", "read_jrclust_v3", "read_jrclust_v4", "jrc_quality", "read_prm"]


class JRClustError(InputError):
    """The file cannot be read; the message starts with the file at fault."""


def jrc_quality(note: str) -> str:
    n = (note or "").strip().lower()
    if n.startswith("single"):
        return "good"
    if n.startswith("multi"):
        return "multi"
    if n.startswith("ok"):
        return "ok"
    return "all"


# ------------------------------------------------------------------------------------------ MATLAB access


class _MatFile:
    """Field access by 'a/b' path, values in MATLAB orientation (numeric), str (char) or list (cell)."""

    def __init__(self, path: Path):
        self.path = path
        self._h5 = None
        self._data: dict | None = None
        if not path.is_file():
            raise JRClustError(f"{path}: file not found")
        try:
            version = mat_version(path)
        except (OSError, MatFileError) as e:
            raise JRClustError(f"{path}: {e}" if not str(e).startswith(str(path)) else str(e)) from None
        if version == "7.3":
            import h5py

            try:
                self._h5 = h5py.File(path, "r")
            except OSError as e:
                raise JRClustError(
                    f"{path}: cannot open as MATLAB v7.3/HDF5 ({e}); the file may be truncated"
                ) from None
        else:
            try:
                self._data = read_mat(path)
            except MatFileError as e:
                raise JRClustError(str(e)) from None

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def has(self, name: str) -> bool:
        if self._h5 is not None:
            return name in self._h5
        node: Any = self._data
        for part in name.split("/"):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def get(self, name: str, what: str = "") -> Any:
        if not self.has(name):
            raise JRClustError(f"{self.path}: missing field {name.replace('/', '.')}" + (f" ({what})" if what else ""))
        try:
            if self._h5 is not None:
                return self._h5_value(self._h5[name])
            node: Any = self._data
            for part in name.split("/"):
                node = node[part]
            return node
        except JRClustError:
            raise
        except Exception as e:  # noqa: BLE001 - h5py errors on damaged files
            raise JRClustError(
                f"{self.path}: cannot read field {name.replace('/', '.')} ({type(e).__name__}: {e})"
            ) from None

    def _h5_value(self, obj) -> Any:
        import h5py

        if isinstance(obj, h5py.Group):
            return {k: self._h5_value(obj[k]) for k in obj}
        cls = obj.attrs.get("MATLAB_class", b"")
        cls = cls.decode() if isinstance(cls, bytes) else str(cls)
        empty = bool(obj.attrs.get("MATLAB_empty", 0))
        if cls == "char":
            if empty:
                return ""
            return "".join(map(chr, np.asarray(obj[()]).T.ravel()))
        if cls == "cell":
            refs = np.asarray(obj[()]).ravel()  # HDF5 C order = MATLAB column-major order
            return [self._h5_value(obj.file[r]) for r in refs]
        if empty or cls == "canonical empty":
            return np.zeros(0)
        return np.asarray(obj[()]).T


def _vec(mat: _MatFile, name: str, what: str = "") -> np.ndarray:
    a = np.asarray(mat.get(name, what))
    if a.ndim > 1 and sum(s > 1 for s in a.shape) > 1:
        raise JRClustError(f"{mat.path}: field {name.replace('/', '.')} has shape {a.shape}, expected a vector")
    return a.reshape(-1)


def _matrix2(mat: _MatFile, name: str, rows: int) -> np.ndarray:
    """An (rows, 2) MATLAB matrix (scipy squeezes (1, 2) to (2,))."""
    a = np.asarray(mat.get(name), dtype=np.float64)
    if a.ndim == 1 and a.size == 2 * rows:
        a = a.reshape(rows, 2) if rows == 1 else a.reshape(2, rows).T
    if a.shape != (rows, 2):
        raise JRClustError(f"{mat.path}: field {name.replace('/', '.')} has shape {a.shape}, expected ({rows}, 2)")
    return a


def _waveforms(mat: _MatFile, raw: str, filtered: str, missing: list[str]) -> np.ndarray:
    """Mean raw waveforms, else (files saved without raw waveforms) the filtered ones, with a note."""
    if mat.has(raw):
        wav = np.asarray(mat.get(raw))
        if wav.size:
            return wav
    if mat.has(filtered) and np.asarray(mat.get(filtered)).size:
        missing.append(
            f"{raw.replace('/', '.')}: no raw mean waveforms, the filtered ones ({filtered.replace('/', '.')}) instead"
        )
        return np.asarray(mat.get(filtered))
    return np.asarray(mat.get(raw, "mean raw waveforms"))


def _as_str(x: Any) -> str:
    if isinstance(x, str):
        return x
    a = np.asarray(x)
    if a.size == 0:
        return ""
    if a.dtype.kind in "US":
        return "".join(a.ravel().astype(str))
    if a.dtype.kind in "iu":
        return "".join(map(chr, a.ravel()))
    return str(x)


def _notes(mat: _MatFile, name: str, k: int) -> list[str]:
    raw = mat.get(name, "cluster notes")
    if isinstance(raw, str):
        raw = [raw]
    elif isinstance(raw, np.ndarray):
        raw = list(raw.ravel()) if raw.dtype == object else ([] if raw.size == 0 else [raw])
    notes = [_as_str(x) for x in raw]
    if len(notes) != k:
        raise JRClustError(f"{mat.path}: field {name.replace('/', '.')} has {len(notes)} notes for {k} clusters")
    return notes


# ------------------------------------------------------------------------------------------ .prm / .meta

_PRM_LINE = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(.*)$")


def _strip_comment(line: str) -> str:
    out, quoted = [], False
    for ch in line:
        if ch == "'":
            quoted = not quoted
        elif ch == "%" and not quoted:
            break
        out.append(ch)
    return "".join(out)


def _matlab_literal(text: str) -> Any:
    text = text.strip().rstrip(";").strip()
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    if text.startswith("{"):
        return [s.replace("''", "'") for s in re.findall(r"'((?:[^']|'')*)'", text)]
    if text.startswith("["):
        body = re.sub(r"\.\.\.[^\n]*(\n|$)", " ", text.strip("[]")).strip()  # '...' continues the row
        if not body:
            return np.zeros(0)
        rows = [r for r in re.split(r"[;\n]", body) if r.strip()]
        values = [[float(v) for v in re.split(r"[,\s]+", r.strip()) if v] for r in rows]
        if len(values) == 1:
            return np.array(values[0])
        return np.array(values)
    return float(text)


def read_prm(path: str | Path) -> dict[str, Any]:
    """The literal assignments of a JRClust parameter file (numbers, matrices, strings, cells, true/false)."""
    path = Path(path)
    out: dict[str, Any] = {}
    lines = path.read_text(errors="replace").splitlines()
    i = 0
    while i < len(lines):
        m = _PRM_LINE.match(_strip_comment(lines[i]))
        i += 1
        if not m:
            continue
        name, value = m.group(1), m.group(2)
        while value.count("[") > value.count("]") or value.count("{") > value.count("}"):
            if i >= len(lines):
                break
            value += "\n" + _strip_comment(lines[i])
            i += 1
        try:
            out[name] = _matlab_literal(value)
        except (ValueError, TypeError):
            continue  # an expression: not needed
    return out


def _v4_side_files(path: Path, missing: list[str]) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """(sample rate, 0-based site -> channel map, site positions) from the .prm or the SpikeGLX .meta beside."""
    stem = path.name[: -len("_res.mat")] if path.name.endswith("_res.mat") else path.stem
    prm_path = path.with_name(stem + ".prm")
    if not prm_path.is_file():
        candidates = sorted(path.parent.glob("*.prm"))
        prm_path = candidates[0] if len(candidates) == 1 else None
    prm = read_prm(prm_path) if prm_path is not None else {}
    fs = prm.get("sampleRate", prm.get("sRateHz"))
    if fs is not None:
        try:
            fs = float(np.asarray(fs, dtype=np.float64).ravel()[0])
        except (TypeError, ValueError, IndexError):
            raise JRClustError(f"{prm_path}: sampleRate = {fs!r} is not a number (Hz)") from None
        if not (np.isfinite(fs) and fs > 0):
            raise JRClustError(f"{prm_path}: sampleRate = {fs!r} is not a positive sample rate (Hz)")
    site_map = prm.get("siteMap", prm.get("viSite2Chan"))
    site_loc = prm.get("siteLoc", prm.get("mrSiteXY"))
    if fs is None:
        metas = sorted(path.parent.glob("*.ap.meta"))
        for meta in metas:
            for line in meta.read_text(errors="replace").splitlines():
                if line.startswith("imSampRate="):
                    fs = float(line.split("=", 1)[1])
                    break
            if fs is not None:
                break
    if fs is None:
        fs = DEFAULT_SAMPLE_RATE
        missing.append(f"{stem}.prm: no sampleRate (nor a SpikeGLX .ap.meta), {DEFAULT_SAMPLE_RATE:g} Hz assumed")
    channel_map = positions = None
    if site_map is not None:
        channel_map = np.asarray(site_map, dtype=np.float64).reshape(-1).astype(np.int64) - 1
    if site_loc is not None:
        positions = np.asarray(site_loc, dtype=np.float64).reshape(-1, 2)
    return float(fs), channel_map, positions


# ----------------------------------------------------------------------------------------------- reading


def read_jrclust(path: str | Path) -> SortingResult:
    """A JRClust v3 ``_jrc.mat`` or v4 ``_res.mat``, told apart by their fields."""
    path = Path(path)
    with _MatFile(path) as mat:
        if mat.has("spikeTimes"):
            return _read_v4(path, mat)
        if mat.has("viTime_spk") or mat.has("S_clu"):
            return _read_v3(path, mat)
    raise JRClustError(f"{path}: neither a JRClust v3 (viTime_spk, S_clu) nor a v4 (spikeTimes) file")


def read_jrclust_v3(path: str | Path) -> SortingResult:
    path = Path(path)
    with _MatFile(path) as mat:
        return _read_v3(path, mat)


def read_jrclust_v4(path: str | Path) -> SortingResult:
    path = Path(path)
    with _MatFile(path) as mat:
        return _read_v4(path, mat)


def _read_v3(path: Path, mat: _MatFile) -> SortingResult:
    missing: list[str] = []
    fs = float(_vec(mat, "P/sRateHz", "sampling rate")[0])
    times = _vec(mat, "viTime_spk", "spike times")
    sites = _vec(mat, "viSite_spk", "spike sites")
    clusters = _vec(mat, "S_clu/viClu", "spike clusters")
    n = times.size
    positions_spk = _matrix2(mat, "mrPos_spk", n) if mat.has("mrPos_spk") else None
    if positions_spk is None:
        missing.append("mrPos_spk: spike depth is the y of the spike's site")
    wav = _waveforms(mat, "S_clu/trWav_raw_clu", "S_clu/trWav_spk_clu", missing)
    k_file = int(wav.shape[-1]) if wav.ndim == 3 else 1
    notes = _notes(mat, "S_clu/csNote_clu", k_file)
    cluster_fields = {
        name: _vec(mat, f"S_clu/{name}")
        for name in ("vrPosX_clu", "vrPosY_clu", "vrVpp_uv_clu", "vrSnr_clu", "viSite_clu")
    }
    site_map = _vec(mat, "P/viSite2Chan") if mat.has("P/viSite2Chan") else None
    site_xy = None
    if mat.has("P/mrSiteXY"):
        site_xy = _matrix2(
            mat, "P/mrSiteXY", site_map.size if site_map is not None else np.asarray(mat.get("P/mrSiteXY")).size // 2
        )
    return _assemble(
        path,
        "jrclust_v3",
        fs,
        times,
        sites,
        clusters,
        positions_spk,
        wav,
        notes,
        pos_x=cluster_fields["vrPosX_clu"],
        pos_y=cluster_fields["vrPosY_clu"],
        amp=cluster_fields["vrVpp_uv_clu"],
        snr=cluster_fields["vrSnr_clu"],
        cluster_sites=cluster_fields["viSite_clu"],
        channel_map=None if site_map is None else site_map.astype(np.int64) - 1,
        site_positions=site_xy,
        missing=missing,
        mat=mat,
        names={
            "times": "viTime_spk",
            "sites": "viSite_spk",
            "pos": "mrPos_spk",
            "wav": "S_clu.trWav_raw_clu",
            "clu": "S_clu.viClu",
            "csite": "S_clu.viSite_clu",
        },
    )


def _read_v4(path: Path, mat: _MatFile) -> SortingResult:
    missing: list[str] = []
    times = _vec(mat, "spikeTimes", "spike times")
    sites = _vec(mat, "spikeSites", "spike sites")
    clusters = _vec(mat, "spikeClusters", "spike clusters")
    n = times.size
    positions_spk = _matrix2(mat, "spikePositions", n) if mat.has("spikePositions") else None
    if positions_spk is None:
        missing.append("spikePositions: spike depth is the y of the spike's site")
    wav = _waveforms(mat, "meanWfLocalRaw", "meanWfLocal", missing)
    k_file = int(wav.shape[-1]) if wav.ndim == 3 else 1
    notes = _notes(mat, "clusterNotes", k_file)
    centroids = _matrix2(mat, "clusterCentroids", k_file)
    fs, channel_map, site_positions = _v4_side_files(path, missing)
    return _assemble(
        path,
        "jrclust_v4",
        fs,
        times,
        sites,
        clusters,
        positions_spk,
        wav,
        notes,
        pos_x=centroids[:, 0],
        pos_y=centroids[:, 1],
        amp=_vec(mat, "unitVppRaw"),
        snr=_vec(mat, "unitSNR"),
        cluster_sites=_vec(mat, "clusterSites"),
        channel_map=channel_map,
        site_positions=site_positions,
        missing=missing,
        mat=mat,
        names={
            "times": "spikeTimes",
            "sites": "spikeSites",
            "pos": "spikePositions",
            "wav": "meanWfLocalRaw",
            "clu": "spikeClusters",
            "csite": "clusterSites",
        },
    )


def _assemble(
    path: Path,
    sorter: str,
    fs: float,
    times,
    sites,
    clusters,
    positions_spk,
    wav,
    notes,
    *,
    pos_x,
    pos_y,
    amp,
    snr,
    cluster_sites,
    channel_map,
    site_positions,
    missing,
    mat,
    names,
) -> SortingResult:
    n = times.size
    for arr, key in ((sites, "sites"), (clusters, "clu")):
        if arr.size != n:
            raise JRClustError(f"{path}: {names[key]} has {arr.size} spikes but {names['times']} has {n}")
    if not fs > 0:
        raise JRClustError(f"{path}: sampling rate {fs} is not positive")
    if wav.ndim == 2:  # one cluster, squeezed by scipy
        wav = wav[:, :, None]
    if wav.ndim != 3:
        raise JRClustError(f"{path}: {names['wav']} has shape {wav.shape}, expected (samples, sites, clusters)")
    k_file = wav.shape[2]
    for arr, name in (
        (pos_x, "x positions"),
        (pos_y, "y positions"),
        (amp, "amplitudes"),
        (snr, "SNR"),
        (cluster_sites, names["csite"]),
    ):
        if arr.size != k_file:
            raise JRClustError(f"{path}: {arr.size} cluster {name} for {k_file} clusters")
    if not (np.all(np.isfinite(times)) and np.all(np.isfinite(clusters)) and np.all(np.isfinite(sites))):
        raise JRClustError(f"{path}: non-finite spike times, sites or clusters")
    for arr, key, what in ((times, "times", "sample number"), (sites, "sites", "site"), (clusters, "clu", "cluster")):
        frac = np.flatnonzero(np.asarray(arr) != np.floor(arr))
        if frac.size:
            i = int(frac[0])
            raise JRClustError(
                f"{path}: {names[key]}[{i}] (0-based) is {float(np.asarray(arr)[i])!r}, not a whole {what} "
                f"({frac.size} such spikes)"
            )
    limit = fs * 86400 * 10
    if times.size and float(np.max(times)) > limit:
        i = int(np.argmax(times))
        raise JRClustError(
            f"{path}: {names['times']}[{i}] (0-based) is {float(times[i]):g} samples, beyond 10 days of recording "
            f"at {fs:g} Hz: not a plausible spike time (corrupt file?)"
        )
    if times.size and float(np.min(times)) < 1:
        i = int(np.argmin(times))
        raise JRClustError(
            f"{path}: {names['times']}[{i}] (0-based) is {float(times[i]):g}; JRClust sample numbers start at 1"
        )
    times = times.astype(np.int64) - 1
    sites = sites.astype(np.int64) - 1
    clusters = clusters.astype(np.int64)

    keep = clusters > 0
    dropped = int(n - keep.sum())
    if dropped:
        times, sites, clusters = times[keep], sites[keep], clusters[keep]
        if positions_spk is not None:
            positions_spk = positions_spk[keep]
    if clusters.size and clusters.max() > k_file:
        raise JRClustError(
            f"{path}: {names['clu']} refers to cluster {clusters.max()} but the file describes {k_file} clusters"
        )
    if times.size and not np.all(times[1:] >= times[:-1]):
        order = np.argsort(times, kind="stable")
        times, sites, clusters = times[order], sites[order], clusters[order]
        if positions_spk is not None:
            positions_spk = positions_spk[order]

    cluster_sites0 = np.asarray(cluster_sites, dtype=np.float64).astype(np.int64) - 1
    n_sites_used = int(max(sites.max(initial=-1), cluster_sites0.max(initial=-1))) + 1
    if channel_map is None:
        channel_map = np.arange(n_sites_used)
        missing.append(
            f"{'P.viSite2Chan' if sorter == 'jrclust_v3' else 'siteMap'}: site -> channel map unknown, identity assumed"
        )
    if site_positions is None or site_positions.shape[0] != channel_map.size:
        if site_positions is not None:
            missing.append(f"site positions: {site_positions.shape[0]} for {channel_map.size} sites, ignored")
        else:
            missing.append(f"{'P.mrSiteXY' if sorter == 'jrclust_v3' else 'siteLoc'}: site positions unknown")
        site_positions = np.full((channel_map.size, 2), np.nan)
    if sites.size and (sites.min() < 0 or sites.max() >= channel_map.size):
        raise JRClustError(f"{path}: {names['sites']} has sites outside 1..{channel_map.size}")

    if positions_spk is not None:
        depths = positions_spk[:, 1].astype(np.float32)
    else:
        depths = site_positions[sites, 1].astype(np.float32)

    cluster_ids = np.unique(clusters)
    idx = cluster_ids - 1
    labels = pd.DataFrame(
        {"note": [notes[i] for i in idx]}, index=pd.Index(cluster_ids.astype(np.int64), name="cluster_id")
    )
    quality = {int(c): jrc_quality(notes[c - 1]) for c in cluster_ids}
    peak = cluster_sites0[idx]
    return SortingResult(
        path=path,
        sorter=sorter,
        sample_rate=float(fs),
        spike_times=times,
        spike_clusters=clusters.astype(np.int32),
        spike_sites=sites.astype(np.int32),
        spike_depths=depths,
        amplitudes=None,
        channel_map=channel_map,
        channel_positions=site_positions,
        cluster_ids=cluster_ids.astype(np.int32),
        cluster_quality=quality,
        cluster_labels=labels,
        peak_channel=peak,
        mean_waveforms=np.ascontiguousarray(wav[:, 0, idx].T),
        waveform_unit="uV",
        unit_amp=np.asarray(amp, dtype=np.float64)[idx],
        unit_snr=np.asarray(snr, dtype=np.float64)[idx],
        unit_position=np.column_stack([np.asarray(pos_x, np.float64)[idx], np.asarray(pos_y, np.float64)[idx]]),
        metrics=None,
        waveform_metrics=None,
        missing=missing,
        amp_unit="uV",
        dropped_spikes=dropped,
    )
