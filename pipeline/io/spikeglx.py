"""Read SpikeGLX ``.meta`` files (spec 3.4): stream, probe type, saved channels and their electrodes.

A ``.meta`` file is ``key=value`` text, one pair a line; SpikeGLX marks the long tables with a
leading ``~`` (``~imroTbl``, ``~snsChanMap``, ``~snsShankMap``, ``~snsGeomMap``), but some tools
strip it, so both spellings are accepted. Acquisition channels of an imec stream are numbered
``AP 0..nAP-1, LF nAP..nAP+nLF-1, SY after`` (``acqApLfSy``); ``snsSaveChanSubset`` lists the ones
written to the file (``all`` or ``a:b,c`` with inclusive ranges).

Electrodes. The imec readout table ``~imroTbl`` says which electrode (and shank) each readout channel
records; it is decoded by probeinterface (the same code as ``probeinterface.read_spikeglx``, which
cannot read LF streams or files without an imro table). Every saved neural channel then gets the
1-based electrode number of ``pipeline.probes`` for the lab probe type (1 + the site's index in
``build_neuropixels_probe(part_number)`` order, so it joins ``lab.ProbeType.Electrode``) and that
electrode's shank and x/y. When the file also carries SpikeGLX's own site map (``~snsShankMap``:
shank:col:row:used per saved channel, or the newer ``~snsGeomMap``: shank:x:z:used), the two are
compared and any disagreement is an error, never a silent guess; its ``used`` flag becomes
``SpikeGLXMeta.is_used`` (False for reference sites).

Probe types: ``imDatPrb_type`` missing or <= 1 is Neuropixels 1.0, phase 3A when the file has
``typeEnabled`` / ``imProbeOpt`` (3A software), else 3B (``typeImEnabled``) -- unless the part number
``imDatPrb_pn`` has another layout: SpikeGLX writes type 0 for the NP1.0-family parts without a type
code of their own, so e.g. NP1015/NP1016/NP1017 (NHP short linear) become the lab type with that
layout (a type-0 file naming a part that has its own code, e.g. NP1030, is refused). Other codes come from ``IMEC_TYPES``
(1110: NP1110 UHD switchable; 2003: commercial NP2.0 single shank NP2003/NP2004; 2013: commercial
four-shank NP2013/NP2014). A part number must be in probeinterface's catalogue (else the file is
refused: no geometry is known) and its site layout must equal the lab type's, else the probe is
unsupported; the refusal is one line naming the file, the part number and the type code.

NP1110 (UHD switchable, 6144 sites in 8 columns x 768 rows): its imro table has one entry per group
of 16 channels (group, bankA, bankB) and a column mode (ALL, INNER, OUTER) in its header;
probeinterface resolves it to the 384 recorded sites (SpikeGLX's IMROTbl_T1110 rules), checked here
against SpikeGLX's ``~snsGeomMap`` when present. Only the imro table written in the file is used:
a change of selection during a recording is not visible in the ``.meta``.

µV per bit = (imAiRangeMax - imAiRangeMin) / (2 * imMaxInt) / gain * 1e6, the gain being the
imro table's per-channel AP (or LF) gain, else its header's (NP1110), else ``imChan0apGain`` /
``imChan0lfGain``, else the catalogue's only gain; missing range / imMaxInt come from the catalogue
(ADC range, 2**(bits-1)).
NIDQ: (niAiRangeMax - niAiRangeMin) / (2 * niMaxInt, default 32768) / gain, gain of the saved
analog channel kind (MN: niMNGain, MA: niMAGain, XA: 1), None if mixed or none.

TTL-triggered recordings: SpikeGLX's ``trgTTLMarginS`` (s) is the pre-trigger margin, each triggered
file starting that long before its trigger pulse. It becomes ``SpikeGLXMeta.ttl_margin_s``, None when
the key is absent (a recording that was not TTL-triggered); a value that is not a finite, non-negative
number is an error. ``ttl_margin_samples`` = round(trgTTLMarginS x the stream's sampling rate), 0
without it; the ephys ingest moves the trial starts back by that many samples (spec 3.4).
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from .. import probes
from ..errors import InputError

__all__ = [
    "SpikeGLXError",
    "UnsupportedProbe",
    "SpikeGLXMeta",
    "read_meta",
    "electrode_config",
    "expand_channel_subset",
    "IMEC_TYPES",
    "ELECTRODE_CONFIG_NAME_MAX",
]

log = logging.getLogger(__name__)


class SpikeGLXError(InputError):
    """A .meta file that cannot be read or is inconsistent; the message starts with the file path."""


class UnsupportedProbe(SpikeGLXError):
    """A readable .meta file for a probe that no lab.ProbeType describes; the message says which one."""


NP1_3A = "neuropixels 1.0 - 3A"
NP1_3B = "neuropixels 1.0 - 3B"

#: SpikeGLX ``imDatPrb_type`` code -> lab.ProbeType name (codes <= 1 are NP1.0 3A/3B, see module doc).
#: Commercial NP2.0 codes share the site layout of the prototypes they replace (checked at runtime).
IMEC_TYPES: dict[int, str] = {
    21: "neuropixels 2.0 - SS",  # NP2.0 single shank, prototype (PRB2_1_2_0640_0)
    2003: "neuropixels 2.0 - SS",  # NP2.0 single shank, commercial (NP2003, NP2004)
    24: "neuropixels 2.0 - MS",  # NP2.0 four shanks, prototype (NP2010 / PRB2_4_2_0640_0)
    2013: "neuropixels 2.0 - MS",  # NP2.0 four shanks, commercial (NP2013, NP2014)
    1030: "neuropixels 1.0 - NHP long",  # NP1030 (NHP long, SOI90)
    1100: "neuropixels 1.0 - ultra",  # NP1100 (Neuropixels Ultra, UHD1 passive)
    1110: "neuropixels 1.0 - UHD switchable",  # NP1110 (Neuropixels Ultra switchable, UHD2 active)
    2020: "neuropixels 2.0 - quad base",  # NP2020 / NP2021 (quad base)
}

#: lab.ElectrodeConfig.electrode_config_name is varchar(64)
ELECTRODE_CONFIG_NAME_MAX = 64

_NP1110_GROUPS = 24  # NP1110 imro: 24 groups of 16 readout channels (SpikeGLX IMROTbl_T1110)
_NI_MAX_INT_DEFAULT = 32768  # SpikeGLX's NI full scale when niMaxInt is absent (16-bit)


@dataclass
class SpikeGLXMeta:
    path: Path
    raw: dict[str, str]  #: every key=value as written (``~imroTbl`` keeps its ``~``)
    stream: str  #: 'ap' | 'lf' | 'nidq'
    probe_type: str | None  #: lab.ProbeType name (None for nidq)
    part_number: str | None  #: imDatPrb_pn, else the catalogue part number of the geometry
    serial: str | None  #: imProbeSN (3A) / imDatPrb_sn
    sampling_rate: float  #: imSampRate / niSampRate, Hz
    n_saved_channels: int  #: nSavedChans (sync channels included)
    saved_channels: np.ndarray  #: 0-based acquisition channel of each saved channel, file order
    electrodes: np.ndarray  #: per saved neural channel: 1-based pipeline.probes electrode
    shank: np.ndarray  #: per saved neural channel: 1-based shank
    x: np.ndarray  #: um, as pipeline.probes.electrode_table x_coord
    y: np.ndarray  #: um, as pipeline.probes.electrode_table y_coord
    uv_per_bit: float | None  #: microvolts per bit of the stream
    file_create_time: datetime | None  #: fileCreateTime_original (CatGT) or fileCreateTime
    first_sample: int | None  #: firstSample (absent while SpikeGLX is still writing)
    #: per saved neural channel: SpikeGLX's 'used' flag (False = reference site); all True without a site map
    is_used: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))
    #: trgTTLMarginS, s: a TTL-triggered file starts this long before its trigger; None when absent
    ttl_margin_s: float | None = None

    @property
    def ttl_margin_samples(self) -> int:
        """The TTL pre-trigger margin in samples of this stream: round(trgTTLMarginS x sampling rate)
        (half to even, as numpy's round of the original pipeline), 0 without the key."""
        return 0 if self.ttl_margin_s is None else int(round(self.ttl_margin_s * self.sampling_rate))

    @property
    def neural_channels(self) -> np.ndarray:
        """The saved acquisition channels that carry electrodes (sync channels excluded)."""
        return self.saved_channels[: len(self.electrodes)] if self.stream != "nidq" else self.saved_channels[:0]

    def electrode_config(self) -> dict:
        """``electrode_config(self.probe_type, self.electrodes)``."""
        if self.probe_type is None:
            raise SpikeGLXError(f"{self.path}: a {self.stream} stream has no probe electrodes")
        return electrode_config(self.probe_type, self.electrodes)


# ---------------------------------------------------------------------------------------------
# small parsers


def _read_pairs(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise SpikeGLXError(f"{path}: file not found")
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise SpikeGLXError(f"{path}: cannot read ({e})") from None
    if "\x00" in text:
        raise SpikeGLXError(f"{path}: binary content, not a SpikeGLX .meta text file")
    raw: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            raw[key.strip()] = value.strip()
    if not raw:
        raise SpikeGLXError(f"{path}: no key=value lines, not a SpikeGLX .meta file")
    return raw


def expand_channel_subset(text: str, n_saved: int | None = None) -> np.ndarray:
    """``snsSaveChanSubset`` ('all' or 'a:b,c,...', inclusive ranges) as 0-based channel indices."""
    text = text.strip()
    if text.lower() == "all":
        if n_saved is None:
            raise ValueError("'all' needs the number of saved channels")
        return np.arange(n_saved, dtype=np.int64)
    parts = []
    for item in text.split(","):
        a, sep, b = item.strip().partition(":")
        lo = int(a)
        hi = int(b) if sep else lo
        if hi < lo:
            raise ValueError(f"descending range {item!r}")
        parts.append(np.arange(lo, hi + 1, dtype=np.int64))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


_ENTRY = re.compile(r"\(([^)]*)\)")


def _entries(path: Path, key: str, text: str) -> tuple[list[str], list[str]]:
    """'(h1,h2,..)(e1)(e2)...' -> (header fields, entry texts); anything outside the parentheses is
    an error naming the key."""
    m = re.match(r"\s*\(([^)]*)\)", text)
    if m is None:
        raise SpikeGLXError(f"{path}: ~{key} does not start with a '(...)' header ({text[:30]!r})")
    body = text[m.end() :]
    rest = _ENTRY.sub("", body).strip()
    if rest:
        raise SpikeGLXError(f"{path}: ~{key} has text outside its '(...)' entries ({rest[:30]!r}): a broken map")
    return [h.strip() for h in m.group(1).split(",")], _ENTRY.findall(body)


def _site_map(path: Path, key: str, text: str) -> tuple[list[str], np.ndarray]:
    """'(h1,h2,..)(a:b:c:d)...' -> (header fields, float array n x 4); a malformed entry is an error
    naming the key and the entry."""
    header, rows = _entries(path, key, text)
    if not rows:
        return header, np.empty((0, 4))
    try:
        arr = np.array([r.split(":") for r in rows], dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 4 or not np.isfinite(arr).all():
            raise ValueError
    except ValueError:
        for i, r in enumerate(rows):  # only to name the bad entry
            parts = r.split(":")
            try:
                ok = len(parts) == 4 and all(np.isfinite(float(p)) for p in parts)
            except ValueError:
                ok = False
            if not ok:
                raise SpikeGLXError(
                    f"{path}: ~{key}: unreadable value in entry {i} ({r!r}): expected 4 numbers a:b:c:d"
                ) from None
        raise SpikeGLXError(f"{path}: ~{key}: unreadable entries") from None
    return header, arr


def _check_chan_map(path: Path, m: dict[str, str], saved: np.ndarray, stream: str) -> None:
    """``~snsChanMap``: one ``(NAME;channel:order)`` entry per saved channel, in file order, each naming
    its acquisition channel; for imec streams the header is ``acqApLfSy`` and the names AP/LF/SY + index."""
    text = m.get("snsChanMap")
    if not text:
        return
    header, rows = _entries(path, "snsChanMap", text)
    if len(rows) != len(saved):
        raise SpikeGLXError(
            f"{path}: ~snsChanMap has {len(rows)} entries but the file saves {len(saved)} channels "
            f"(nSavedChans={m.get('nSavedChans')})"
        )
    parsed = [re.fullmatch(r"\s*([A-Za-z]+)(\d+)\s*;\s*(\d+)\s*:\s*(\d+)\s*", r) for r in rows]
    bad = next((i for i, p in enumerate(parsed) if p is None), None)
    if bad is not None:
        raise SpikeGLXError(f"{path}: ~snsChanMap: entry {bad} ({rows[bad]!r}) is not NAME;channel:order")
    kind = np.array([p.group(1) for p in parsed])
    index = np.array([int(p.group(2)) for p in parsed], dtype=np.int64)
    chan = np.array([int(p.group(3)) for p in parsed], dtype=np.int64)
    wrong = np.flatnonzero(chan != saved)
    if wrong.size:
        i = int(wrong[0])
        raise SpikeGLXError(
            f"{path}: ~snsChanMap entry {i} ({rows[i]!r}) is channel {chan[i]} but snsSaveChanSubset "
            f"saves channel {saved[i]} there ({wrong.size} such entries)"
        )
    if stream == "nidq" or not m.get("acqApLfSy"):
        return
    acq = _ints(m["acqApLfSy"])
    if [int(h) for h in header if h] != acq:
        raise SpikeGLXError(f"{path}: ~snsChanMap header ({','.join(header)}) is not acqApLfSy={m['acqApLfSy']}")
    n_ap, n_lf = acq[0], acq[1]
    want_kind = np.where(saved < n_ap, "AP", np.where(saved < n_ap + n_lf, "LF", "SY"))
    want_index = np.where(saved < n_ap, saved, np.where(saved < n_ap + n_lf, saved - n_ap, saved - n_ap - n_lf))
    wrong = np.flatnonzero((kind != want_kind) | (index != want_index))
    if wrong.size:
        i = int(wrong[0])
        raise SpikeGLXError(
            f"{path}: ~snsChanMap entry {i} ({rows[i]!r}) should be named {want_kind[i]}{want_index[i]} "
            f"(acquisition channel {saved[i]} with acqApLfSy={m['acqApLfSy']})"
        )


def _float(m: dict[str, str], key: str) -> float | None:
    v = m.get(key)
    if v is None or v == "":
        return None
    return float(v)


# ---------------------------------------------------------------------------------------------
# probe geometry helpers (probeinterface's catalogue)


def _pi_tools():
    """probeinterface's Neuropixels helpers (the imro decoding behind ``read_spikeglx``; 0.4.x API)."""
    try:
        from probeinterface.neuropixels_tools import (
            _get_imro_active_contact_ids,
            _load_np_probe_features,
            _parse_imro_string,
            build_neuropixels_probe,
        )
    except ImportError as e:  # the helpers are private: name the version this module was written for
        raise ImportError(f"pipeline.io.spikeglx needs probeinterface 0.4.x ({e})") from None
    return _parse_imro_string, _get_imro_active_contact_ids, _load_np_probe_features, build_neuropixels_probe


def _np_features() -> dict:
    return _pi_tools()[2]()


def _catalogue_spec(part_number: str | None) -> dict | None:
    if not part_number:
        return None
    return _np_features()["neuropixels_probes"].get(part_number)


@cache
def _same_layout(part_number: str, lab_part_number: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = _pi_tools()[3](part_number)
    b = probes._catalogue_probe(lab_part_number)
    return (
        a.get_contact_count() == b.get_contact_count()
        and np.allclose(a.contact_positions, b.contact_positions)
        and list(a.contact_ids) == list(b.contact_ids)
    )


@cache
def _contact_index(lab_part_number: str) -> pd.Index:
    return pd.Index(probes._catalogue_probe(lab_part_number).contact_ids)


@cache
def _table(probe_type: str) -> dict[str, np.ndarray]:
    return probes.electrode_table(probe_type)


def _type0_lab_type(part_number: str) -> str | None:
    """The lab probe type, among those SpikeGLX writes as imDatPrb_type 0 (no code of their own in
    ``IMEC_TYPES``), whose catalogue layout equals ``part_number``'s, if any."""
    own_code = set(IMEC_TYPES.values())
    for p in probes.PROBE_TYPES:
        if p.part_number is not None and p.probe_type not in own_code and _same_layout(part_number, p.part_number):
            return p.probe_type
    return None


def _probe_type(path: Path, m: dict[str, str]) -> tuple[str, str | None]:
    """(lab probe type, part number as written or None)."""
    pn = m.get("imDatPrb_pn") or None
    code_text = m.get("imDatPrb_type", "")
    try:
        code = int(code_text) if code_text != "" else None
    except ValueError:
        raise UnsupportedProbe(f"{path}: imDatPrb_type={code_text!r} is not a SpikeGLX probe type code") from None
    if pn is not None and _catalogue_spec(pn) is None:
        raise UnsupportedProbe(
            f"{path}: probe part number {pn} (imDatPrb_type={code_text or 'not given'}) is not in "
            "probeinterface's Neuropixels catalogue, so its site layout is unknown; the file cannot be read"
        )
    if code is None or code <= 1:
        if "imProbeOpt" in m or "typeEnabled" in m:
            probe_type = NP1_3A
        elif "typeImEnabled" in m or pn is not None:
            probe_type = NP1_3B
        else:
            raise UnsupportedProbe(
                f"{path}: no imDatPrb_type, imProbeOpt, typeEnabled or typeImEnabled; "
                "cannot tell which Neuropixels probe recorded this stream"
            )
        # SpikeGLX writes type 0 for the NP1.0-family parts without a type code of their own, whatever
        # their site layout (e.g. NP1015 NHP short linear): the part number decides
        if pn is not None and not _same_layout(pn, probes.info(probe_type).part_number):
            probe_type = _type0_lab_type(pn) or probe_type
    elif code in IMEC_TYPES:
        probe_type = IMEC_TYPES[code]
    else:
        raise UnsupportedProbe(
            f"{path}: probe imDatPrb_type={code} (part number {pn or 'not given'}) is not mapped to a "
            f"lab.ProbeType; supported types: 0 (NP1.0 3A/3B, NP1015 NHP short), "
            + ", ".join(f"{k} ({v})" for k, v in IMEC_TYPES.items())
        )
    lab_pn = probes.info(probe_type).part_number
    if pn is not None and not _same_layout(pn, lab_pn):
        raise UnsupportedProbe(
            f"{path}: part number {pn} (imDatPrb_type={code}) has a site layout different "
            f"from lab probe type {probe_type!r} ({lab_pn}); add a probe type for it"
        )
    return probe_type, pn


def _readout_electrodes(path: Path, m: dict[str, str], probe_type: str) -> tuple[np.ndarray, dict]:
    """Per imro entry: (readout channel, 0-based index into the lab catalogue probe); and the parsed imro."""
    _parse_imro_string, _get_imro_active_contact_ids = _pi_tools()[:2]
    text = m.get("imroTbl")
    if not text:
        raise SpikeGLXError(f"{path}: no ~imroTbl, cannot tell which electrodes were recorded")
    header, rows = _entries(path, "imroTbl", text)
    if 2 <= len(header) <= 3:  # (type,n) / 3A (serial,option,n): the last field is the entry count
        try:
            n_declared = int(header[-1])
        except ValueError:
            raise SpikeGLXError(
                f"{path}: ~imroTbl header ({','.join(header)}) does not end with a channel count"
            ) from None
        if len(rows) != n_declared:
            raise SpikeGLXError(f"{path}: ~imroTbl header says {n_declared} channels but it has {len(rows)} entries")
    n_acq = _ints(m["acqApLfSy"])[0] if m.get("acqApLfSy") else None
    # NP1110 (UHD switchable) tables have one (group bankA bankB) entry per group of 16 channels
    grouped = header[0] in ("1110", "NP1110")
    n_entries = _NP1110_GROUPS * 16 if grouped else len(rows)
    if grouped and len(rows) != _NP1110_GROUPS:
        raise SpikeGLXError(
            f"{path}: ~imroTbl of an NP1110 probe has {len(rows)} group entries, expected {_NP1110_GROUPS}"
        )
    if n_acq is not None and n_entries != n_acq:
        raise SpikeGLXError(
            f"{path}: ~imroTbl has {len(rows)} entries but acqApLfSy={m['acqApLfSy']} acquires {n_acq} channels"
        )
    if len({len(r.split()) for r in rows}) > 1:
        i = next(i for i, r in enumerate(rows) if len(r.split()) != len(rows[0].split()))
        raise SpikeGLXError(f"{path}: ~imroTbl: entry {i} ({rows[i]!r}) has a different number of fields than entry 0")
    try:
        imro = _parse_imro_string(text)
        header_len = len(text.split(")")[0].split(","))
        if probe_type == NP1_3A and header_len == 3:
            opt = int(text.split(")")[0].split(",")[1])
            banks = np.asarray(imro.get("bank", []), dtype=np.int64)
            if opt == 4 and banks.size and banks.max() > 0:
                raise UnsupportedProbe(
                    f"{path}: phase 3A option 4 probe (276 channels) with banks > 0; "
                    "its electrode numbering differs from NP1.0 and is not supported"
                )
        contact_ids = _get_imro_active_contact_ids(imro)
        channels = np.asarray(imro["channel"], dtype=np.int64)
    except SpikeGLXError:
        raise
    except Exception as e:  # probeinterface raises ValueError/AssertionError/KeyError on odd tables
        raise SpikeGLXError(f"{path}: cannot decode ~imroTbl ({type(e).__name__}: {e})") from None
    lab_pn = probes.info(probe_type).part_number
    index = _contact_index(lab_pn).get_indexer(pd.Index(contact_ids))
    if np.any(index < 0):
        bad = np.asarray(contact_ids)[index < 0][:5]
        raise SpikeGLXError(
            f"{path}: ~imroTbl names sites {list(bad)} that probe type {probe_type!r} ({lab_pn}) does not have"
        )
    if len(np.unique(channels)) != len(channels):
        raise SpikeGLXError(f"{path}: ~imroTbl lists a readout channel twice")
    return np.c_[channels, index], imro


def _check_site_maps(path: Path, m: dict[str, str], electrodes: np.ndarray, probe_type: str) -> np.ndarray:
    """Compare the imro-derived electrodes with SpikeGLX's own site map; return its 'used' flags."""
    n = len(electrodes)
    t = _table(probe_type)
    i = electrodes - 1
    shank_map, geom_map = m.get("snsShankMap"), m.get("snsGeomMap")
    used = np.ones(n, dtype=bool)
    if shank_map:
        header, a = _site_map(path, "snsShankMap", shank_map)
        _check_map_entries(path, "snsShankMap", header, a, n)
        if n:
            ok = (
                (a[:, 0] + 1 == t["shank"][i]) & (a[:, 1] + 1 == t["shank_col"][i]) & (a[:, 2] + 1 == t["shank_row"][i])
            )
            if not ok.all():
                k = int(np.flatnonzero(~ok)[0])
                raise SpikeGLXError(
                    f"{path}: ~imroTbl and ~snsShankMap disagree on {int((~ok).sum())} of {n} saved channels "
                    f"(first: saved channel {k}: imro electrode {electrodes[k]} is shank/col/row "
                    f"{t['shank'][i[k]]}/{t['shank_col'][i[k]]}/{t['shank_row'][i[k]]} (1-based), shank map "
                    f"says {int(a[k, 0]) + 1}/{int(a[k, 1]) + 1}/{int(a[k, 2]) + 1})"
                )
            used = a[:, 3] != 0
    if geom_map:
        header, a = _site_map(path, "snsGeomMap", geom_map)
        _check_map_entries(path, "snsGeomMap", header, a, n)
        if n:
            pitch = float(header[2]) if len(header) > 2 else 0.0
            x_abs = a[:, 1] + a[:, 0] * pitch
            dx = x_abs - t["x_coord"][i]
            ok = (a[:, 0] + 1 == t["shank"][i]) & np.isclose(a[:, 2], t["y_coord"][i]) & np.isclose(dx, dx[0])
            if not ok.all():
                k = int(np.flatnonzero(~ok)[0])
                raise SpikeGLXError(
                    f"{path}: ~imroTbl and ~snsGeomMap disagree on {int((~ok).sum())} of {n} saved channels "
                    f"(first: saved channel {k}: imro electrode {electrodes[k]} at shank {t['shank'][i[k]]} "
                    f"x={t['x_coord'][i[k]]} y={t['y_coord'][i[k]]}, geometry map says shank {int(a[k, 0]) + 1} "
                    f"x={a[k, 1]} (on its shank) z={a[k, 2]})"
                )
            used = a[:, 3] != 0
    return used


def _check_map_entries(path: Path, key: str, header: list[str], a: np.ndarray, n: int) -> None:
    """One entry per saved neural channel; shank (and for snsShankMap column and row) whole numbers
    inside the header's counts; the 'used' flag 0 or 1."""
    if len(a) != n:
        raise SpikeGLXError(f"{path}: ~{key} has {len(a)} entries but the file saves {n} neural channels")
    if not n:
        return
    # (header field, entry column, what): snsShankMap (nShanks,nCols,nRows)(shank:col:row:used),
    # snsGeomMap (part number,nShanks,pitch,width)(shank:x:z:used)
    bounds = ((0, 0, "shanks"), (1, 1, "columns"), (2, 2, "rows")) if key == "snsShankMap" else ((1, 0, "shanks"),)
    cols = [c for _, c, _ in bounds]
    whole = a[:, cols]
    frac = np.flatnonzero(((whole != np.floor(whole)) | (whole < 0)).any(axis=1))
    if frac.size:
        i = int(frac[0])
        raise SpikeGLXError(
            f"{path}: ~{key}: entry {i} ({':'.join(f'{v:g}' for v in a[i])}) has a negative or fractional "
            + "/".join(w[:-1] for _, _, w in bounds)
        )
    flag = np.flatnonzero(~np.isin(a[:, 3], (0, 1)))
    if flag.size:
        raise SpikeGLXError(f"{path}: ~{key}: entry {int(flag[0])} has 'used' flag {a[flag[0], 3]:g} (0 or 1)")
    for field_i, col, what in bounds:
        if field_i >= len(header):
            raise SpikeGLXError(f"{path}: ~{key} header ({','.join(header)}) lacks the number of {what}")
        try:
            bound = int(header[field_i])
        except ValueError:
            raise SpikeGLXError(
                f"{path}: ~{key} header field {field_i + 1} ({header[field_i]!r}) is not a number of {what}"
            ) from None
        out = np.flatnonzero(a[:, col] >= bound)
        if out.size:
            i = int(out[0])
            raise SpikeGLXError(
                f"{path}: ~{key}: entry {i} is {what[:-1]} {a[i, col]:g} but the header has {bound} {what} "
                f"({out.size} such entries)"
            )


def _imec_uv_per_bit(
    path: Path, m: dict[str, str], stream: str, pn: str | None, probe_type: str, imro: dict, entries: np.ndarray
) -> float | None:
    spec = _catalogue_spec(pn) or _catalogue_spec(probes.info(probe_type).part_number) or {}
    lo, hi = _float(m, "imAiRangeMin"), _float(m, "imAiRangeMax")
    vpp = (hi - lo) if lo is not None and hi is not None else (float(spec["adc_range_vpp"]) if spec else None)
    max_int = _float(m, "imMaxInt")
    if max_int is None and spec:
        max_int = 2.0 ** (int(spec["adc_bit_depth"]) - 1)
    field_name, key, list_key = (
        ("ap_gain", "imChan0apGain", "ap_gain_list") if stream == "ap" else ("lf_gain", "imChan0lfGain", "lf_gain_list")
    )
    gain = None
    gains = np.asarray(imro.get(field_name, []), dtype=np.float64)
    if gains.size == len(imro.get("channel", [])) and gains.size:
        g = gains[entries]
        if g.size and np.all(g == g[0]):
            gain = float(g[0])
        elif g.size:
            log.warning(
                "%s: channels have different %s (%s); uv_per_bit left None", path, field_name, sorted(set(g.tolist()))
            )
            return None
    if gain is None and imro.get("header", {}).get(field_name):  # NP1110: one gain in the header
        gain = float(imro["header"][field_name])
    if gain is None:
        gain = _float(m, key)
    if gain is None and spec.get(list_key):
        values = [float(v) for v in str(spec[list_key]).split(",") if v.strip()]
        gain = values[0] if len(values) == 1 else None
    if vpp is None or max_int is None or not gain:
        return None
    return vpp / (2.0 * max_int) / gain * 1e6


def _nidq_uv_per_bit(m: dict[str, str]) -> float | None:
    lo, hi = _float(m, "niAiRangeMin"), _float(m, "niAiRangeMax")
    if lo is None or hi is None:
        return None
    max_int = _float(m, "niMaxInt") or _NI_MAX_INT_DEFAULT
    counts = _ints(m["snsMnMaXaDw"]) if m.get("snsMnMaXaDw") else None
    if counts is None or len(counts) < 3:
        return None
    gains = []
    if counts[0]:
        gains.append(_float(m, "niMNGain") or 1.0)
    if counts[1]:
        gains.append(_float(m, "niMAGain") or 1.0)
    if counts[2]:
        gains.append(1.0)
    if not gains or len(set(gains)) > 1:
        return None
    return (hi - lo) / (2.0 * max_int) / gains[0] * 1e6


def _stream(path: Path, m: dict[str, str]) -> str:
    kind = m.get("typeThis")
    name = path.name.lower()
    if kind is None:
        kind = "nidq" if ".nidq." in name else ("imec" if ("imec" in name or "imroTbl" in m) else None)
    if kind == "nidq":
        return "nidq"
    if kind != "imec":
        raise SpikeGLXError(f"{path}: stream typeThis={kind!r} is not supported (imec AP/LF or nidq only)")
    by_name = "ap" if ".ap." in name else ("lf" if ".lf." in name else None)
    if m.get("snsApLfSy"):
        n_ap, n_lf, _ = _ints(m["snsApLfSy"])
        if n_ap and n_lf:
            raise SpikeGLXError(f"{path}: snsApLfSy={m['snsApLfSy']} saves AP and LF channels in one file")
        by_counts = "ap" if n_ap else ("lf" if n_lf else None)
        if by_counts and by_name and by_counts != by_name:
            raise SpikeGLXError(
                f"{path}: the file name says {by_name.upper()} but snsApLfSy={m['snsApLfSy']} says {by_counts.upper()}"
            )
        if by_counts:
            return by_counts
    if by_name:
        return by_name
    raise SpikeGLXError(f"{path}: cannot tell whether this imec stream is AP or LF")


# ---------------------------------------------------------------------------------------------


def _ttl_margin(path: Path, m: dict[str, str]) -> float | None:
    """``trgTTLMarginS`` as a float (s), None when absent or blank."""
    text = m.get("trgTTLMarginS", "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise SpikeGLXError(f"{path}: trgTTLMarginS={text!r} is not a margin in seconds (a number >= 0)")
    return value


def read_meta(path: str | Path) -> SpikeGLXMeta:
    """Read one SpikeGLX ``.meta`` file (imec AP/LF or NIDQ); see the module doc for the rules."""
    path = Path(path)
    try:
        return _read_meta(path)
    except SpikeGLXError:
        raise
    except (ValueError, IndexError, KeyError) as e:  # a malformed value somewhere in the tables
        raise SpikeGLXError(f"{path}: unreadable value ({type(e).__name__}: {e})") from None


def _read_meta(path: Path) -> SpikeGLXMeta:
    raw = _read_pairs(path)
    m = {k.lstrip("~"): v for k, v in raw.items()}
    stream = _stream(path, m)
    try:
        n_saved = int(m["nSavedChans"])
        saved = expand_channel_subset(m.get("snsSaveChanSubset", "all"), n_saved)
        rate = float(m["niSampRate" if stream == "nidq" else "imSampRate"])
    except KeyError as e:
        raise SpikeGLXError(f"{path}: required key {e.args[0]} missing") from None
    except ValueError as e:
        raise SpikeGLXError(f"{path}: unreadable value ({e})") from None
    if len(saved) != n_saved:
        raise SpikeGLXError(f"{path}: snsSaveChanSubset lists {len(saved)} channels but nSavedChans={n_saved}")
    if len(np.unique(saved)) != len(saved):
        raise SpikeGLXError(f"{path}: snsSaveChanSubset lists a channel twice")
    created_text = m.get("fileCreateTime_original") or m.get("fileCreateTime")
    try:
        created = datetime.fromisoformat(created_text) if created_text else None
        first_sample = int(m["firstSample"]) if m.get("firstSample") else None
    except ValueError as e:
        raise SpikeGLXError(f"{path}: unreadable value ({e})") from None
    ttl_margin = _ttl_margin(path, m)

    common = dict(
        path=path,
        raw=raw,
        stream=stream,
        sampling_rate=rate,
        n_saved_channels=n_saved,
        saved_channels=saved,
        file_create_time=created,
        first_sample=first_sample,
        ttl_margin_s=ttl_margin,
    )
    if stream == "nidq":
        _check_chan_map(path, m, saved, stream)
        return SpikeGLXMeta(
            **common,
            probe_type=None,
            part_number=None,
            serial=None,
            electrodes=np.empty(0, dtype=np.int64),
            shank=np.empty(0, dtype=np.int64),
            x=np.empty(0),
            y=np.empty(0),
            uv_per_bit=_nidq_uv_per_bit(m),
            is_used=np.empty(0, dtype=bool),
        )

    probe_type, pn = _probe_type(path, m)
    try:
        n_ap, n_lf, n_sy = _ints(m["acqApLfSy"])
    except KeyError:
        raise SpikeGLXError(f"{path}: required key acqApLfSy missing") from None
    neural = saved < n_ap + n_lf
    if np.any(saved >= n_ap + n_lf + n_sy):
        raise SpikeGLXError(
            f"{path}: snsSaveChanSubset has channels beyond the {n_ap + n_lf + n_sy} acquired "
            f"(acqApLfSy={m['acqApLfSy']})"
        )
    if np.any(np.diff(neural.astype(np.int8)) > 0):
        raise SpikeGLXError(f"{path}: a sync channel is saved before neural channels")
    in_lf = saved >= n_ap
    if stream == "ap" and np.any(neural & in_lf) or stream == "lf" and np.any(neural & ~in_lf):
        raise SpikeGLXError(f"{path}: an {stream.upper()} file saves {'LF' if stream == 'ap' else 'AP'} channels")
    if m.get("snsApLfSy"):
        s_ap, s_lf, s_sy = _ints(m["snsApLfSy"])
        if s_ap + s_lf != int(neural.sum()) or s_sy != int((~neural).sum()):
            raise SpikeGLXError(
                f"{path}: snsApLfSy={m['snsApLfSy']} does not match the {int(neural.sum())} "
                f"neural and {int((~neural).sum())} sync channels of snsSaveChanSubset"
            )
    _check_chan_map(path, m, saved, stream)
    readout = np.where(in_lf, saved - n_ap, saved)[neural]

    entries, imro = _readout_electrodes(path, m, probe_type)
    lookup = np.full(max(int(entries[:, 0].max()) + 1, n_ap, n_lf), -1, dtype=np.int64)
    lookup[entries[:, 0]] = np.arange(len(entries))
    entry_of_channel = lookup[readout] if readout.size == 0 or readout.max() < len(lookup) else None
    if entry_of_channel is None or np.any(entry_of_channel < 0):
        raise SpikeGLXError(f"{path}: saved channels have no ~imroTbl entry (imro lists {len(entries)} channels)")
    electrodes = entries[entry_of_channel, 1] + 1
    t = _table(probe_type)
    is_used = _check_site_maps(path, m, electrodes, probe_type)
    return SpikeGLXMeta(
        **common,
        probe_type=probe_type,
        part_number=pn or probes.info(probe_type).part_number,
        serial=m.get("imDatPrb_sn") or m.get("imProbeSN") or None,
        electrodes=electrodes.astype(np.int64),
        shank=t["shank"][electrodes - 1].astype(np.int64),
        x=t["x_coord"][electrodes - 1].astype(np.float64),
        y=t["y_coord"][electrodes - 1].astype(np.float64),
        uv_per_bit=_imec_uv_per_bit(path, m, stream, pn, probe_type, imro, entry_of_channel),
        is_used=is_used,
    )


def electrode_config(probe_type: str, electrodes) -> dict:
    """The spec's ElectrodeConfig for the electrodes a recording used.

    Returns ``probe_type``, ``electrodes`` (sorted, unique, int64), ``electrode_ranges`` (runs of
    consecutive electrodes, ``'1-192; 385-576'``; a single electrode is written ``'5-5'``, as the
    original pipeline did), ``electrode_config_name`` (the ranges; when longer than the 64 characters
    of lab.ElectrodeConfig it becomes ``'{n} electrodes {first}-{last}, {k} ranges #{hash[:8]}'``) and
    ``electrode_config_hash``: the UUID whose bytes are the MD5 of the concatenation, in ascending
    electrode order, of ``str({'probe_type': probe_type, 'electrode': e})`` -- the original
    pipeline's ``dict_value_to_hash`` of the lab.ProbeType.Electrode keys -- so the same probe type
    and electrode set give the same hash everywhere, whatever the input order or duplicates.
    """
    pinfo = probes.info(probe_type)
    e = np.unique(np.asarray(electrodes, dtype=np.int64).ravel())
    if e.size == 0:
        raise ValueError(f"no electrodes for an electrode configuration of {probe_type!r}")
    if pinfo.part_number is not None:
        n = len(_table(probe_type)["electrode"])
        if e[0] < 1 or e[-1] > n:
            raise ValueError(f"electrodes {e[0]}..{e[-1]} outside 1..{n} of probe type {probe_type!r}")
    elif e[0] < 1:
        raise ValueError("electrode numbers are 1-based")
    breaks = np.flatnonzero(np.diff(e) != 1)
    starts = e[np.r_[0, breaks + 1]]
    ends = e[np.r_[breaks, e.size - 1]]
    ranges = "; ".join(f"{a}-{b}" for a, b in zip(starts.tolist(), ends.tolist()))
    md5 = hashlib.md5()
    for v in e.tolist():
        md5.update(str({"probe_type": probe_type, "electrode": v}).encode())
    config_hash = uuid.UUID(hex=md5.hexdigest())
    name = ranges
    if len(name) > ELECTRODE_CONFIG_NAME_MAX:
        name = f"{e.size} electrodes {e[0]}-{e[-1]}, {starts.size} ranges #{config_hash.hex[:8]}"
    return {
        "probe_type": probe_type,
        "electrode_config_name": name,
        "electrode_config_hash": config_hash,
        "electrodes": e,
        "electrode_ranges": ranges,
    }
