"""SpikeGLX ``.meta`` files and MAP bitcode ``.mat`` files with known ground truth.

``write_meta`` writes the meta of one imec stream the way SpikeGLX does (key=value lines, the
``~imroTbl`` readout table, ``~snsChanMap`` and the site map ``~snsShankMap`` or, for newer
software, ``~snsGeomMap``) for a Neuropixels 1.0 3B probe (AP or LF stream), a Neuropixels 2.0
four-shank prototype (imDatPrb_type 24), a commercial NP2.0 four-shank (type 2013: NP2014, NP2013)
or single-shank (type 2003: NP2003) probe, an NHP short linear NP1015 (type 0) or an NP1110 UHD
switchable probe (type 1110, group-wise bank table), with any electrode selection SpikeGLX allows
(NP1110: column mode 'ALL' only) and a full or partial set of saved channels. Its ground truth
(electrode numbers in ``pipeline.probes`` numbering, x/y) is computed here from the probes' published
layout, independently of the reader.

``write_bitcode_mat`` writes a ``{h2o}_*bitcode.mat`` for given behaviour bitcodes: the new format
(sTrig, goCue, bitCodeS, bitcode, trialNum, optional foraging extras) or the old one (bitCodeS and
bitcode only), as MATLAB v5 (scipy) or v7.3 (hdf5storage), with the alignment a reader must find.

TTL-triggered recordings (``ttl_margin_s``, default off): ``write_meta`` writes ``trigMode=TTL`` and
``trgTTLMarginS``; ``write_bitcode_mat`` and ``write_xa_files`` then record each trial as SpikeGLX
does, its data starting the margin before its trigger pulse, so the sync's trial start (the pulse:
``sTrig``, the ``XA_0_0`` edge, and the bit pulses after it) is ``round(margin x rate)`` samples of the
probe later than the trial's true start (``trial_start`` of the ground truth; ``sync_start`` is what
the file says). Events keep their own times: goCue is written where it is, and the rigs' go times
(behaviour files) count from the pulse.

``write_xa_files`` writes the CatGT edge files of the NIDQ sync route (spec 3.4 (b)): trial starts
(``*.XA_0_0[.adj].txt``) and bit pulses (``*.XA_1_2[.adj].txt``, a pulse 0.05 s + k x 0.007 s after
the start for every '1' at character k of the trial's 10-character code, each moved by a random
jitter so that a reader must round), with the ground truth; ``mtl_bitcodes`` gives the MTL rigs'
codes (trial number in 10 bits, least significant first).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io as sio

__all__ = [
    "PROBES",
    "GeneratedMeta",
    "write_meta",
    "GeneratedBitcode",
    "random_bitcodes",
    "write_bitcode_mat",
    "subset_text",
    "GeneratedXA",
    "mtl_bitcodes",
    "write_xa_files",
]


@dataclass(frozen=True)
class _Probe:
    probe_type: str  # lab.ProbeType name
    type_code: int  # imDatPrb_type
    part_number: str  # imDatPrb_pn
    shanks: int
    sites_per_shank: int
    row_pitch: float
    col_pitch: float
    stagger: float  # x shift of even (0-based) rows, um
    shank_pitch: float
    x0: float  # x of a column-0 site of an odd row from the shank's left edge (snsGeomMap)
    acq: tuple[int, int, int]  # acqApLfSy
    v_range: float  # imAiRangeMax
    max_int: int
    ap_gain: float
    lf_gain: float | None
    ref_sites: tuple[int, ...]  # 0-based catalogue sites SpikeGLX marks unused (reference)
    cols: int = 2  # sites per row; site i is in row i // cols, column i % cols


#: generator probe name -> layout (NP1: 2 columns 32 um apart, 20 um rows, even rows +16 um;
#: NP2: 2 columns 32 um apart, 15 um rows, no stagger, shanks 250 um apart)
PROBES = {
    "np1": _Probe(
        "neuropixels 1.0 - 3B",
        0,
        "PRB_1_4_0480_1",
        1,
        960,
        20.0,
        32.0,
        16.0,
        0.0,
        11.0,
        (384, 384, 1),
        0.6,
        512,
        500.0,
        250.0,
        (191, 575, 959),
    ),
    "np2_4shank": _Probe(
        "neuropixels 2.0 - MS",
        24,
        "NP2010",
        4,
        1280,
        15.0,
        32.0,
        0.0,
        250.0,
        27.0,
        (384, 0, 1),
        0.5,
        8192,
        80.0,
        None,
        (),
    ),
    "np2_4shank_commercial": _Probe(
        "neuropixels 2.0 - MS",
        2013,
        "NP2014",
        4,
        1280,
        15.0,
        32.0,
        0.0,
        250.0,
        27.0,
        (384, 0, 1),
        0.62,
        2048,
        100.0,
        None,
        (),
    ),
    "np2_4shank_np2013": _Probe(
        "neuropixels 2.0 - MS", 2013, "NP2013", 4, 1280, 15.0, 32.0, 0.0, 250.0, 27.0, (384, 0, 1), 0.62, 2048,
        100.0, None, (),
    ),
    # commercial NP2.0 single shank (imro type 2003: channel, bank mask, reference, electrode)
    "np2_1shank_commercial": _Probe(
        "neuropixels 2.0 - SS", 2003, "NP2003", 1, 1280, 15.0, 32.0, 0.0, 0.0, 27.0, (384, 0, 1), 0.62, 2048,
        100.0, None, (),
    ),
    # NP1015 NHP short linear: NP1.0 electronics (imro type 0, SpikeGLX writes imDatPrb_type=0), no stagger
    "np1_nhp_short": _Probe(
        "neuropixels 1.0 - NHP short", 0, "NP1015", 1, 960, 20.0, 32.0, 0.0, 0.0, 27.0, (384, 384, 1), 0.6, 512,
        500.0, 250.0, (191, 575, 959),
    ),
    # NP1110 UHD switchable: 8 x 768 sites, 6 um pitch; the imro table picks a bank per group of 16
    # channels (written in 'ALL' column mode: bankA = bankB)
    "np1110": _Probe(
        "neuropixels 1.0 - UHD switchable", 1110, "NP1110", 1, 6144, 6.0, 6.0, 0.0, 0.0, 15.5, (384, 384, 1), 0.6,
        512, 500.0, 250.0, (), cols=8,
    ),
}  # fmt: skip

_NP1110_COL_TBL = np.array([0, 3, 1, 2, 1, 2, 0, 3])


def _np1110_sites(group_banks) -> np.ndarray:
    """Catalogue site (8 * row + column) of each readout channel 0..383 of an NP1110 in column mode
    'ALL', ``group_banks`` the bank of each of the 24 groups: SpikeGLX's IMROTbl_T1110 rules."""
    ch = np.arange(384)
    grp = 2 * (ch // 32) + (ch & 1)
    b = np.asarray(group_banks, dtype=np.int64)[grp]
    odd = (ch & 1).astype(bool)
    ingrp_col = (((ch % 32) // 2) & 1) ^ ((b // 4) & 1)
    col = 2 * _NP1110_COL_TBL[4 * (b & 1) + grp % 4] + np.where(odd, 1 - ingrp_col, ingrp_col)
    ingrp_row = (ch % 32) // 4
    row = 48 * b + 8 * (grp // 4) + np.where(odd, 7 - ingrp_row, ingrp_row)
    return 8 * row + col


@dataclass
class GeneratedMeta:
    path: Path
    stream: str
    probe_type: str
    part_number: str
    serial: str
    sampling_rate: float
    n_saved_channels: int
    saved_channels: np.ndarray  #: 0-based acquisition channels in the file (sync included)
    electrodes: np.ndarray  #: per saved neural channel, 1-based pipeline.probes electrode
    shank: np.ndarray  #: 1-based
    x: np.ndarray
    y: np.ndarray
    is_used: np.ndarray
    uv_per_bit: float
    file_create_time: dt.datetime
    first_sample: int
    readout_sites: np.ndarray  #: per readout channel 0..383: 0-based (shank, site on shank)
    ttl_margin_s: float | None = None  #: trgTTLMarginS written (None: not TTL-triggered)
    ttl_margin_samples: int = 0  #: the margin in samples of the stream, round(margin x rate)


def subset_text(channels) -> str:
    """0-based channels as SpikeGLX's snsSaveChanSubset ('0:149,200:383,768')."""
    c = np.unique(np.asarray(channels, dtype=np.int64))
    breaks = np.flatnonzero(np.diff(c) != 1)
    starts, ends = c[np.r_[0, breaks + 1]], c[np.r_[breaks, c.size - 1]]
    return ",".join(f"{a}:{b}" if b > a else f"{a}" for a, b in zip(starts.tolist(), ends.tolist()))


def _select_sites(p: _Probe, layout: str, rng, bank: int, shank: int, banks) -> np.ndarray:
    """(384, 2) array of (shank, site-on-shank) per readout channel, as SpikeGLX can select them."""
    ch = np.arange(384)
    if p.type_code == 1110:  # banks per group of 16 channels: ``banks`` (24), 'bank' or 'random'
        if banks is not None:
            g = np.asarray(banks, dtype=np.int64)
        elif layout in ("bank", "random"):
            g = np.full(24, bank) if layout == "bank" else rng.integers(0, 16, size=24)
        else:
            raise ValueError(f"layout {layout!r} not available for an NP1110 probe")
        if g.shape != (24,) or g.min() < 0 or g.max() > 15:
            raise ValueError("an NP1110 needs 24 group banks in 0..15")
        return np.c_[np.zeros(384, dtype=np.int64), _np1110_sites(g)]
    if p.shanks == 1:
        if banks is not None:
            b = np.asarray(banks, dtype=np.int64)
        elif layout == "bank":
            b = np.full(384, bank)
        elif layout == "random":  # NP1: channel c reaches sites c, c + 384, c + 768 (< 960)
            b = rng.integers(0, 3, size=384)
            b[(ch + 384 * b) >= p.sites_per_shank] = 0
        else:
            raise ValueError(f"layout {layout!r} not available for a single-shank probe")
        site = ch + 384 * b
        if np.any(site >= p.sites_per_shank) or np.any(b < 0):
            raise ValueError("bank selection beyond the probe's sites")
        return np.c_[np.zeros(384, dtype=np.int64), site]
    if layout == "stripe":  # 96 channels on each shank, the same rows (SpikeGLX 'hStripe')
        start = 2 * int(rng.integers(0, 640 - 48))
        return np.c_[ch // 96, start + ch % 96]
    if layout == "bank":  # all 384 channels on one shank, one bank
        site = bank * 384 + ch
        if site.max() >= p.sites_per_shank:
            raise ValueError(f"bank {bank} does not fit on a shank of {p.sites_per_shank} sites")
        return np.c_[np.full(384, shank), site]
    if layout == "random":  # any 384 distinct sites (geometry test; not a hardware-valid map)
        flat = rng.choice(p.shanks * p.sites_per_shank, size=384, replace=False)
        return np.c_[flat // p.sites_per_shank, flat % p.sites_per_shank]
    raise ValueError(f"unknown layout {layout!r}")


def write_meta(
    path,
    probe: str = "np1",
    stream: str = "ap",
    *,
    layout: str = "bank",
    bank: int = 0,
    shank: int = 0,
    banks=None,
    saved=None,
    site_map: str | None = "auto",
    tilde: bool = True,
    original_create_time: dt.datetime | None = None,
    seed: int = 0,
    overrides: dict[str, str | None] | None = None,
    duration_s: float = 3600.0,
    ttl_margin_s: float | None = None,
) -> GeneratedMeta:
    """Write one imec stream's ``.meta`` file.

    ``layout``: 'bank' (every channel on bank ``bank``, on shank ``shank`` for 4-shank probes),
    'random' (NP1: a random bank per channel; NP2: random distinct sites), 'stripe' (NP2: 96
    channels per shank); NP1110: 'bank' or 'random' (a bank per group of 16 channels). ``banks`` gives
    the bank of each readout channel (NP1) or of each of the 24 groups (NP1110). ``saved``: the neural
    readout channels written to the file (default all 384; the sync channel is always saved).
    ``site_map``: 'shank' (snsShankMap), 'geom' (snsGeomMap), None, or 'auto' (geom for the commercial
    NP2.0 probes and the NP1110 as their newer SpikeGLX writes, shank otherwise). ``tilde=False`` writes the
    tables without their '~' (as some tools do). ``original_create_time`` writes a CatGT-style
    ``fileCreateTime_original``. ``overrides`` sets keys (value None deletes the key). ``duration_s``:
    the recording length that ``fileSizeBytes``/``fileTimeSecs`` describe (int16 samples).
    ``ttl_margin_s``: a TTL-triggered recording with this pre-trigger margin (``trigMode=TTL``,
    ``trgTTLMarginS`` and the other ``trgTTL*`` keys SpikeGLX writes); default: not triggered
    (``trigMode=Immediate``, no ``trgTTL*`` key). The file is otherwise the same (same random draws).
    """
    path = Path(path)
    p = PROBES[probe]
    if stream not in ("ap", "lf") or (stream == "lf" and not p.acq[1]):
        raise ValueError(f"stream {stream!r} not available for {probe}")
    rng = np.random.default_rng(seed)
    sites = _select_sites(p, layout, rng, bank, shank, banks)
    n_ap, n_lf, n_sy = p.acq
    neural = np.arange(384) if saved is None else np.unique(np.asarray(saved, dtype=np.int64))
    base = 0 if stream == "ap" else n_ap
    saved_acq = np.r_[base + neural, n_ap + n_lf + np.arange(n_sy)]
    ap_rate = 30000.0 + float(np.round(rng.uniform(-0.5, 0.5), 6))
    rate = ap_rate if stream == "ap" else ap_rate / 12.0
    serial = str(int(rng.integers(10**10, 10**11)))
    created = dt.datetime(2021, 3, 4, 12, 30, 5) + dt.timedelta(seconds=int(rng.integers(0, 10**6)))
    first_sample = int(rng.integers(10**5, 10**8))

    # ground truth from the layout, per saved neural channel
    s, site = sites[neural, 0], sites[neural, 1]
    row, col = site // p.cols, site % p.cols
    electrodes = s * p.sites_per_shank + site + 1
    x = s * p.shank_pitch + col * p.col_pitch + np.where(row % 2 == 0, p.stagger, 0.0)
    y = row * p.row_pitch
    is_used = ~np.isin(s * p.sites_per_shank + site, p.ref_sites)
    gain = p.ap_gain if stream == "ap" else p.lf_gain
    uv = 2 * p.v_range / (2 * p.max_int) / gain * 1e6

    # ~imroTbl: per readout channel
    imro_header = f"({p.type_code},384)"
    if p.type_code == 0:
        b = sites[:, 1] // 384
        entries = [f"({c} {b[c]} 0 {p.ap_gain:g} {p.lf_gain:g} 1)" for c in range(384)]
    elif p.type_code == 1110:  # (type,col_mode=ALL,ref,ap gain,lf gain,hp filter)(group bankA bankB)
        imro_header = f"(1110,2,0,{p.ap_gain:g},{p.lf_gain:g},1)"
        g_bank = sites[np.arange(24) // 2 * 32 + np.arange(24) % 2, 1] // 384  # channel 0 / 1 of each group
        entries = [f"({g} {g_bank[g]} {g_bank[g]})" for g in range(24)]
    elif p.type_code == 2003:
        entries = [f"({c} {1 << (sites[c, 1] // 384)} 0 {sites[c, 1]})" for c in range(384)]
    else:
        entries = [f"({c} {sites[c, 0]} {sites[c, 1] // 384} 0 {sites[c, 1]})" for c in range(384)]
    imro = imro_header + "".join(entries)
    label = "AP" if stream == "ap" else "LF"
    chan_map = (
        f"({n_ap},{n_lf},{n_sy})"
        + "".join(f"({label}{c};{base + c}:{base + c})" for c in neural)
        + "".join(f"(SY{k};{n_ap + n_lf + k}:{n_ap + n_lf + k})" for k in range(n_sy))
    )
    used_flag = is_used.astype(int)
    keys: dict[str, str | None] = {
        "acqApLfSy": ",".join(map(str, p.acq)),
        "appVersion": {2013: "20230905", 2003: "20230905", 1110: "20251218"}.get(p.type_code, "20201103"),
        "fileCreateTime": created.strftime("%Y-%m-%dT%H:%M:%S"),
        "fileName": f"D:/data/{path.stem}.bin",
        "fileSHA1": "".join(rng.choice(list("0123456789ABCDEF"), size=40)),
        "fileSizeBytes": str(2 * len(saved_acq) * int(rate * duration_s)),
        "fileTimeSecs": f"{float(duration_s):g}",
        "firstSample": str(first_sample if stream == "ap" else first_sample // 12),
        "gateMode": "Immediate",
        "imAiRangeMax": f"{p.v_range:g}",
        "imAiRangeMin": f"{-p.v_range:g}",
        "imDatPrb_dock": "1",
        "imDatPrb_pn": p.part_number,
        "imDatPrb_port": "1",
        "imDatPrb_slot": "2",
        "imDatPrb_sn": serial,
        "imDatPrb_type": str(p.type_code),
        "imMaxInt": str(p.max_int),
        "imSampRate": f"{rate!r}",
        "nSavedChans": str(len(saved_acq)),
        "snsApLfSy": f"{len(neural) if stream == 'ap' else 0},{len(neural) if stream == 'lf' else 0},{n_sy}",
        "snsSaveChanSubset": subset_text(saved_acq),
        "syncSourceIdx": "0",
        "trigMode": "Immediate",
        "typeImEnabled": "1",
        "typeNiEnabled": "1",
        "typeThis": "imec",
        "userNotes": "",
    }
    if p.type_code in (2013, 2003, 1110):
        keys["imChan0apGain"] = f"{p.ap_gain:g}"
        keys["imIsSvyRun"] = "false"
    if original_create_time is not None:
        keys["fileCreateTime_original"] = original_create_time.strftime("%Y-%m-%dT%H:%M:%S")
    if ttl_margin_s is not None:  # as SpikeGLX writes a TTL-triggered run (the real sample3B2_exported)
        keys.update(
            trigMode="TTL",
            trgTTLMarginS=f"{float(ttl_margin_s):g}",
            trgTTLAIChan="1",
            trgTTLBit="0",
            trgTTLInarow="5",
            trgTTLIsAnalog="true",
            trgTTLIsNInf="true",
            trgTTLMode="2",
            trgTTLNH="10",
            trgTTLRefractS="0.5",
            trgTTLStream="nidq",
            trgTTLTH="0.5",
            trgTTLThresh="1.1",
        )
    overrides = dict(overrides or {})
    table_names = ("imroTbl", "snsChanMap", "snsShankMap", "snsGeomMap")
    keys.update({k: v for k, v in overrides.items() if k not in table_names})
    t = "~" if tilde else ""
    lines = [f"{k}={v}" for k, v in sorted(keys.items(), key=lambda kv: kv[0].lower()) if v is not None]
    tables = {f"{t}imroTbl": imro, f"{t}snsChanMap": chan_map}
    if site_map == "auto":
        site_map = "geom" if p.type_code in (2013, 2003, 1110) else "shank"
    if site_map == "shank" and stream == "ap":
        tables[f"{t}snsShankMap"] = f"({p.shanks},{p.cols},{p.sites_per_shank // p.cols})" + "".join(
            f"({a}:{c}:{r}:{u})" for a, c, r, u in zip(s, col, row, used_flag)
        )
    elif site_map == "geom" and stream == "ap":
        gx = p.x0 + col * p.col_pitch + np.where(row % 2 == 0, p.stagger, 0.0)
        width = 73 if p.type_code == 1110 else 70
        tables[f"{t}snsGeomMap"] = f"({p.part_number},{p.shanks},{p.shank_pitch:g},{width})" + "".join(
            f"({a}:{xx:g}:{yy:g}:{u})" for a, xx, yy, u in zip(s, gx, y, used_flag)
        )
    for k, v in tables.items():
        v = overrides.get(k.lstrip("~"), v)
        if v is not None:
            lines.append(f"{k}={v}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return GeneratedMeta(
        path=path,
        stream=stream,
        probe_type=p.probe_type,
        part_number=p.part_number,
        serial=serial,
        sampling_rate=rate,
        n_saved_channels=len(saved_acq),
        saved_channels=saved_acq,
        electrodes=electrodes.astype(np.int64),
        shank=(s + 1).astype(np.int64),
        x=x.astype(float),
        y=y.astype(float),
        is_used=is_used if site_map and stream == "ap" else np.ones(len(neural), bool),
        uv_per_bit=uv,
        file_create_time=original_create_time or created,
        first_sample=first_sample if stream == "ap" else first_sample // 12,
        readout_sites=sites,
        ttl_margin_s=None if ttl_margin_s is None else float(ttl_margin_s),
        ttl_margin_samples=0 if ttl_margin_s is None else int(round(float(ttl_margin_s) * rate)),
    )


# ---------------------------------------------------------------------------------------------
# bitcode files


@dataclass
class GeneratedBitcode:
    path: Path
    version: str
    bitcodes: list[str]  #: per ephys trial, as written
    trial_start: np.ndarray | None  #: samples, the trials' true starts (= sTrig unless TTL-triggered)
    go_cue: np.ndarray | None  #: samples, NaN at free-water trials (full length)
    trial_numbers: np.ndarray | None  #: trialNum as written (0 = no behaviour trial)
    free_water: np.ndarray  #: per ephys trial
    behavior_trials: np.ndarray  #: 1-based behaviour trial of each ephys trial kept
    ephys_index: np.ndarray  #: 0-based ephys trial of each of those
    dropped_ephys: list[int] = field(default_factory=list)
    extras: dict = field(default_factory=dict)
    sync_start: np.ndarray | None = None  #: samples, sTrig as written (trial_start + ttl_margin_samples)
    ttl_margin_samples: int = 0  #: the TTL pre-trigger margin, samples of the probe (0: not triggered)


def random_bitcodes(n: int, nbits: int = 16, seed: int = 0) -> list[str]:
    """``n`` distinct random bitcodes of ``nbits`` bits (as Bpod's GUI.randomID)."""
    rng = np.random.default_rng(seed)
    values = rng.choice(2**nbits, size=n, replace=False)
    return [np.binary_repr(int(v), nbits) for v in values]


def _cell(items) -> np.ndarray:
    arr = np.empty((len(items), 1), dtype=object)
    for i, v in enumerate(items):
        arr[i, 0] = v
    return arr


def _ephys_trials(rng, b: list[str], nbits: int, recorded, n_before: int, n_after: int):
    """The trials an ephys recording saw of a behaviour session with codes ``b``: (0-based behaviour
    trials ``recorded``, consecutive, default all; the ephys trials' codes, ``n_before``/``n_after``
    extra trials first/last with random codes unknown to the behaviour; each ephys trial's behaviour
    trial, 1-based, 0 for the extra ones)."""
    idx = np.arange(len(b)) if recorded is None else np.asarray(recorded, dtype=np.int64)
    if idx.size and np.any(np.diff(idx) != 1):
        raise ValueError("recorded behaviour trials must be consecutive")
    known = set(b)
    extra: list[str] = []
    while len(extra) < n_before + n_after:
        c = np.binary_repr(int(rng.integers(0, 2**nbits)), nbits)
        if c not in known and c not in extra:
            extra.append(c)
    codes = extra[:n_before] + [b[i] for i in idx] + extra[n_before:]
    behav_of_ephys = np.r_[np.zeros(n_before, dtype=np.int64), idx + 1, np.zeros(n_after, dtype=np.int64)]
    return idx, codes, behav_of_ephys


#: digMarkerPerTrial's columns in the foraging rigs' files (choice left and right are both 'choice')
FORAGING_HEADINGS = ("bitcodestart", "go", "choice", "choice", "reward", "trialend", "bpodstart", "zaberready")


def write_bitcode_mat(
    path,
    behavior_codes,
    *,
    recorded=None,
    n_before: int = 0,
    n_after: int = 0,
    free_water=None,
    fs: float = 30000.0,
    fmt: str = "new",
    version: str = "5",
    trial_num: bool = True,
    go_cue_layout: str = "nan",
    corrupt: dict[int, str] | None = None,
    foraging_extras: bool = False,
    seed: int = 0,
    trial_start_s=None,
    go_s=None,
    first_sample: int | None = None,
    ttl_margin_s: float | None = None,
) -> GeneratedBitcode:
    """Write a bitcode file for the ephys recording of (part of) a behaviour session.

    ``recorded``: 0-based behaviour trials the recording saw (consecutive; default all).
    ``n_before``/``n_after``: extra ephys trials with codes unknown to the behaviour file (trialNum 0);
    bitcodes alone align them only when they lie outside the behaviour file (``recorded`` starts at
    its first / ends at its last trial), else only trialNum can (the ground truth is trialNum's).
    ``free_water``: bool per behaviour trial (goCue NaN, or omitted with ``go_cue_layout='short'``).
    ``corrupt``: ephys trial -> code written instead of the true one. ``fmt='old'``: bitCodeS and
    bitcode only (like the real dl25 file). ``version``: '5' (scipy) or '7.3' (hdf5storage).
    ``trial_start_s``/``go_s``: the recorded trials' starts and go cues (s, e.g. the behaviour's own,
    so that generated spikes can respond to the task) at ``first_sample`` + s x fs, instead of random.
    ``ttl_margin_s``: a TTL-triggered recording (pass the meta's ``trgTTLMarginS``, with ``fs`` the
    meta's ``imSampRate``): sTrig is written ``round(ttl_margin_s x fs)`` samples after each trial's
    true start (``trial_start``), goCue where it is; the foraging extras count from the pulse.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    b = [str(c) for c in behavior_codes]
    nbits = len(b[0])
    idx, codes, behav_of_ephys = _ephys_trials(rng, b, nbits, recorded, n_before, n_after)
    n = len(codes)
    fw_b = np.zeros(len(b), dtype=bool) if free_water is None else np.asarray(free_water, dtype=bool)
    fw = np.r_[np.zeros(n_before, bool), fw_b[idx], np.zeros(n_after, bool)]
    written = list(codes)
    for i, c in (corrupt or {}).items():
        written[i] = c
    start = np.cumsum(np.round(rng.uniform(4.0, 8.0, size=n) * fs)) + float(rng.integers(10**4, 10**6))
    go = start + np.round(rng.uniform(1.5, 3.0, size=n) * fs)
    if trial_start_s is not None:
        if n_before or n_after or len(trial_start_s) != n:
            raise ValueError("trial_start_s needs one start per recorded trial (and no extra ephys trials)")
        first = int(first_sample if first_sample is not None else rng.integers(10**4, 10**6))
        start = first + np.round(np.asarray(trial_start_s, dtype=np.float64) * fs)
        go = first + np.round(np.asarray(go_s, dtype=np.float64) * fs)
    go[fw] = np.nan
    margin = 0 if ttl_margin_s is None else int(round(float(ttl_margin_s) * fs))
    sync_start = start + margin  # where SpikeGLX puts the trigger pulse: the margin into the trial
    data: dict[str, object] = {}
    if version == "7.3":
        data["bitCodeS"] = np.array(written, dtype=f"U{nbits}").reshape(-1, 1)  # an n x nbits char matrix
    else:
        data["bitCodeS"] = np.array(written, dtype=f"U{nbits}")
    data["bitcode"] = np.array([[int(ch) for ch in c] for c in written], dtype=np.uint8)
    extras: dict[str, object] = {}
    if fmt == "new":
        data["sTrig"] = sync_start.reshape(-1, 1)
        data["goCue"] = (go if go_cue_layout == "nan" else go[~fw]).reshape(-1, 1)
        if trial_num:
            data["trialNum"] = behav_of_ephys.astype(np.float64).reshape(-1, 1)
        if foraging_extras:
            # as the foraging rigs' files: s on the recording's clock; choice left or right (the other
            # NaN; both NaN: no choice), reward only after some choices; one cell per trial (and per
            # camera for the frames, named by chan.cameraNameInDJ)
            headings = list(FORAGING_HEADINGS)
            t0 = sync_start / fs  # the trial-start pulse (bitcodestart)
            m = np.full((n, len(headings)), np.nan)
            m[:, 0] = t0
            m[:, 1] = go / fs  # NaN for free-water trials (no go cue)
            side = rng.integers(0, 3, n)  # 0 left, 1 right, 2 no choice
            choice_t = m[:, 1] + rng.uniform(0.1, 0.6, n)
            m[side == 0, 2], m[side == 1, 3] = choice_t[side == 0], choice_t[side == 1]
            rewarded = (side < 2) & (rng.uniform(size=n) < 0.6)
            m[rewarded, 4] = choice_t[rewarded] + 0.01
            m[:, 5] = t0 + 5.0
            m[:, 6] = t0 - 0.02
            m[:, 7] = t0 + rng.uniform(0.2, 0.4, n)
            extras["headings"] = headings
            extras["digMarkerPerTrial"] = m
            extras["zaberPerTrial"] = [t + np.sort(rng.uniform(0.01, 0.2, int(rng.integers(1, 4)))) for t in t0]
            extras["lickLPerTrial"] = [t + np.sort(rng.uniform(1, 4, int(rng.integers(1, 6)))) for t in t0]
            extras["lickRPerTrial"] = [t + np.sort(rng.uniform(1, 4, int(rng.integers(1, 6)))) for t in t0]
            extras["cameraNameInDJ"] = ["Camera 0", "Camera 1"]
            extras["cameraPerTrial"] = [[t + np.arange(0, 3.0, 0.0034) for t in t0] for _ in extras["cameraNameInDJ"]]
            data["headings"] = _cell(headings)
            data["digMarkerPerTrial"] = m
            for k in ("zaberPerTrial", "lickLPerTrial", "lickRPerTrial"):
                data[k] = _cell([np.asarray(v).reshape(1, -1) for v in extras[k]])
            data["cameraPerTrial"] = _cell(
                [_cell([np.asarray(v).reshape(1, -1) for v in cam]) for cam in extras["cameraPerTrial"]]
            )
            data["chan"] = {"cameraNameInDJ": _cell(extras["cameraNameInDJ"])}
    elif fmt != "old":
        raise ValueError(f"fmt must be 'new' or 'old', not {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if version == "5":
        sio.savemat(path, data, do_compression=False)
    elif version == "7.3":
        from . import hdf5storage as _need_hdf5storage

        hdf5storage = _need_hdf5storage()

        hdf5storage.savemat(str(path), data, format="7.3", matlab_compatible=True)
    else:
        raise ValueError(f"version must be '5' or '7.3', not {version!r}")
    keep = np.flatnonzero(behav_of_ephys > 0)
    return GeneratedBitcode(
        path=path,
        version=version,
        bitcodes=written,
        trial_start=start if fmt == "new" else None,
        go_cue=go if fmt == "new" else None,
        trial_numbers=behav_of_ephys if fmt == "new" and trial_num else None,
        free_water=fw,
        behavior_trials=behav_of_ephys[keep],
        ephys_index=keep,
        dropped_ephys=np.flatnonzero(behav_of_ephys == 0).tolist(),
        extras=extras,
        sync_start=sync_start if fmt == "new" else None,
        ttl_margin_samples=margin,
    )


# ---------------------------------------------------------------------------------------------
# CatGT edge files of the NIDQ stream (trial starts and bit pulses)

XA_FIRST_BIT_S = 0.05  # the rigs' protocol, written here independently of the reader
XA_BIT_INTERVAL_S = 0.007
XA_BITS = 10


@dataclass
class GeneratedXA:
    starts_path: Path
    pulses_path: Path | None  #: None: no pulse file written
    adjusted: bool  #: the '.adj' names
    trial_start: np.ndarray  #: s, per ephys trial, the true start (= the edge written unless TTL-triggered)
    pulses: np.ndarray  #: s, as written
    bitcodes: list[str]  #: per ephys trial, the code its pulses carry
    behavior_trials: np.ndarray  #: 1-based behaviour trial of each ephys trial kept
    ephys_index: np.ndarray  #: 0-based ephys trial of each of those
    dropped_ephys: list[int] = field(default_factory=list)
    max_jitter: float = 0.0  #: largest |pulse - its nominal time| written, s
    sync_start: np.ndarray | None = None  #: s, the trial-start edges as written (6 decimals)
    ttl_margin_s: float = 0.0  #: the TTL pre-trigger margin as recorded, s (round(margin x rate) / rate)


def mtl_bitcodes(trials) -> list[str]:
    """The MTL rigs' code of each trial number: ``binary_repr(trial, 10)`` reversed (spec 3.1)."""
    return [np.binary_repr(int(t), XA_BITS)[::-1] for t in trials]


def write_xa_files(
    folder,
    behavior_codes,
    trial_start_s=None,
    *,
    recorded=None,
    n_before: int = 0,
    n_after: int = 0,
    stem: str = "run_g0_tcat.nidq",
    adjusted: bool = True,
    pulses: str = "file",
    jitter_s: float = 0.0012,
    offset_s: float = 0.0,
    corrupt: dict[int, str] | None = None,
    upper: bool = True,
    seed: int = 0,
    ttl_margin_s: float | None = None,
    rate: float = 30000.0,
) -> GeneratedXA:
    """Write ``<folder>/<stem>.XA_0_0[.adj].txt`` and ``.XA_1_2[.adj].txt`` for (part of) a session.

    ``behavior_codes``: the behaviour trials' 10-character codes. ``recorded``: 0-based behaviour
    trials the NIDQ saw (consecutive; default all); ``n_before``/``n_after`` extra ephys trials with
    codes unknown to the behaviour file. ``trial_start_s``: the recorded trials' starts (s, e.g. the
    behaviour's own trial starts); default random 4-8 s apart from a random first start; both moved
    by ``offset_s``. ``pulses``: 'file', 'none' (no pulse file) or 'empty' (a zero-byte one). Each pulse is
    moved by a uniform jitter in +-``jitter_s`` (< a quarter of the bit interval, so that rounding each
    gap still decodes it). ``corrupt``: ephys trial -> code written instead of the true one.
    ``upper=False`` writes CatGT's own lower-case ``xa_`` names. ``ttl_margin_s``: a TTL-triggered
    recording (pass the probe meta's ``trgTTLMarginS`` and ``imSampRate`` as ``rate``): each trial's
    start edge, and its bit pulses after it, are written ``round(ttl_margin_s x rate) / rate`` s (the
    margin in whole samples of the probe) after its true start, ``trial_start``, which stays the
    ground truth (6 decimals); ``sync_start`` is what the file says.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    b = [str(c) for c in behavior_codes]
    if any(len(c) != XA_BITS or set(c) - {"0", "1"} for c in b):
        raise ValueError(f"behaviour codes must be {XA_BITS}-character 0/1 strings for the XA route")
    if not 0 <= jitter_s < XA_BIT_INTERVAL_S / 4:
        raise ValueError("jitter_s must be below a quarter of the bit interval")
    idx, codes, behav_of_ephys = _ephys_trials(rng, b, XA_BITS, recorded, n_before, n_after)
    for i, c in (corrupt or {}).items():
        codes[i] = c
    n = len(codes)
    if trial_start_s is None:
        start = float(rng.uniform(1.0, 20.0)) + np.r_[0.0, np.cumsum(rng.uniform(4.0, 8.0, size=n - 1))] + offset_s
    else:
        start = np.asarray(trial_start_s, dtype=np.float64).ravel() + offset_s
        if n_before or n_after or len(start) != n:
            raise ValueError("trial_start_s needs one start per recorded trial (and no extra ephys trials)")
    start = np.round(start, 6)
    margin_s = 0.0 if ttl_margin_s is None else round(float(ttl_margin_s) * rate) / rate
    edge = start if ttl_margin_s is None else np.round(start + margin_s, 6)  # the trigger pulse, margin_s in
    nominal, written = [], []
    for s0, c in zip(edge, codes):
        for k, ch in enumerate(c):
            if ch == "1":
                t = s0 + XA_FIRST_BIT_S + k * XA_BIT_INTERVAL_S
                nominal.append(t)
                written.append(t + rng.uniform(-jitter_s, jitter_s))
    pulse_times = np.round(np.asarray(written, dtype=np.float64), 6)
    kind = "XA" if upper else "xa"
    adj = ".adj" if adjusted else ""
    folder.mkdir(parents=True, exist_ok=True)
    starts_path = folder / f"{stem}.{kind}_0_0{adj}.txt"
    starts_path.write_text("".join(f"{v:.6f}\n" for v in edge))
    pulses_path: Path | None = folder / f"{stem}.{kind}_1_2{adj}.txt"
    if pulses == "file":
        pulses_path.write_text("".join(f"{v:.6f}\n" for v in pulse_times))
    elif pulses == "empty":
        pulses_path.write_bytes(b"")
    elif pulses == "none":
        pulses_path = None
    else:
        raise ValueError(f"pulses must be 'file', 'empty' or 'none', not {pulses!r}")
    keep = np.flatnonzero(behav_of_ephys > 0)
    return GeneratedXA(
        starts_path=starts_path,
        pulses_path=pulses_path,
        adjusted=adjusted,
        trial_start=start,
        pulses=pulse_times if pulses == "file" else np.zeros(0),
        bitcodes=codes,
        behavior_trials=behav_of_ephys[keep],
        ephys_index=keep,
        dropped_ephys=np.flatnonzero(behav_of_ephys == 0).tolist(),
        max_jitter=float(np.max(np.abs(pulse_times - np.asarray(nominal)), initial=0.0)),
        sync_start=edge,
        ttl_margin_s=margin_s,
    )
