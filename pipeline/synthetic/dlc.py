"""DeepLabCut output files and MAP tracking folders with known ground truth.

DLC writes its results with pandas: a DataFrame whose columns are a (scorer, bodyparts, coords)
MultiIndex, saved with ``to_csv`` (3 header rows) or ``to_hdf``. We write them the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SCORER = "DLC_resnet50_MAPsideNov4shuffle1_1030000"


def make_dlc_frame(bodyparts: list[str], n_frames: int, seed: int = 0, scorer: str = SCORER) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = pd.MultiIndex.from_product(
        [[scorer], bodyparts, ["x", "y", "likelihood"]], names=["scorer", "bodyparts", "coords"]
    )
    data = np.empty((n_frames, len(cols)))
    for i in range(len(bodyparts)):
        walk = np.cumsum(rng.normal(0, 2.0, (n_frames, 2)), axis=0) + rng.uniform(50, 400, 2)
        data[:, 3 * i] = np.round(walk[:, 0], 3)
        data[:, 3 * i + 1] = np.round(walk[:, 1], 3)
        data[:, 3 * i + 2] = np.round(rng.uniform(0, 1, n_frames), 4)
    return pd.DataFrame(data, columns=cols)


def write_dlc(path: str | Path, df: pd.DataFrame) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".h5":
        df.to_hdf(path, key="df_with_missing", mode="w")
    else:
        df.to_csv(path)
    return path


@dataclass
class GeneratedTracking:
    folder: Path
    files: dict[tuple[str, int], Path]  # (camera position, trial) -> file
    frames: dict[tuple[str, int], pd.DataFrame]  # ground truth per file
    #: (camera position, trial, bodypart) -> frames given a one-frame outlier
    glitches: dict[tuple[str, int, str], np.ndarray] = field(default_factory=dict)
    #: camera position -> its folder (all ``folder`` except in the MTL layout)
    folders: dict[str, Path] = field(default_factory=dict)


def write_tracking_session(
    root: str | Path,
    h2o: str,
    day: dt.date,
    trials: list[int],
    n: int = 1,
    positions: tuple[str, ...] = ("side", "bottom"),
    bodyparts: tuple[str, ...] = ("nose", "tongue", "jaw", "paw_left", "paw_right", "lickport"),
    frames_per_trial: tuple[int, int] = (200, 400),
    seed: int = 0,
    trial_map: dict[int, int] | None = None,
    glitches: tuple[str, ...] = (),
    n_glitches: int = 3,
    layout: str = "standard",
) -> GeneratedTracking:
    """``{root}/{h2o}/{h2o}_{mmddyy}[_n]/{h2o}_{pos}_{idx}-0000.csv`` for each trial and camera.

    ``trial_map`` (file index -> trial) writes ``{h2o}_{mmddyy}_{pos}.txt`` and names files by index.
    ``glitches``: body parts given ``n_glitches`` one-frame outliers per file (40-80 px away, in a
    random direction, at frames 1..n-2 never next to each other), as DeepLabCut's mistakes look;
    their frames are in ``GeneratedTracking.glitches[(position, trial, bodypart)]``.
    ``layout="mtl"``: the multi-target-licking rig's folders ``{root}/{pos}/{h2o}/{YYYY_mm_dd}[_n]/``
    with ``{h2o}_{pos}_{idx}.csv``, idx = trial - 1 (or ``trial_map``'s, in ``{h2o}_{YYYY_mm_dd}_{pos}.txt``).
    """
    if layout not in ("standard", "mtl"):
        raise ValueError(f"layout must be 'standard' or 'mtl', not {layout!r}")
    mtl = layout == "mtl"
    rng = np.random.default_rng(seed)
    suffix = f"_{n}" if n > 1 else ""
    folder = Path(root) / h2o / (f"{h2o}_{day:%m%d%y}" + suffix)
    folders = {pos: Path(root) / pos / h2o / f"{day:%Y_%m_%d}{suffix}" if mtl else folder for pos in positions}
    if mtl:
        folder = Path(root)
    else:
        folder.mkdir(parents=True, exist_ok=True)
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    if trial_map is not None:
        index_of = {t: i for i, t in trial_map.items()}
    else:
        index_of = {t: t - 1 if mtl else t for t in trials}
    files, frames, planted = {}, {}, {}
    for pos in positions:
        pos_folder = folders[pos]
        if trial_map is not None:
            date_text = f"{day:%Y_%m_%d}" if mtl else f"{day:%m%d%y}"
            (pos_folder / f"{h2o}_{date_text}_{pos}.txt").write_text(
                "".join(f"{i}\t{t}\n" for i, t in sorted(trial_map.items()))
            )
        for t in trials:
            df = make_dlc_frame(list(bodyparts), int(rng.integers(*frames_per_trial)), seed=int(rng.integers(1 << 30)))
            for bp in glitches:
                at = _glitch_frames(rng, len(df), n_glitches)
                angle = rng.uniform(0, 2 * np.pi, len(at))
                size = rng.uniform(40, 80, len(at))
                df.loc[at, (SCORER, bp, "x")] += np.round(size * np.cos(angle), 3)
                df.loc[at, (SCORER, bp, "y")] += np.round(size * np.sin(angle), 3)
                planted[(pos, t, bp)] = at
            name = f"{h2o}_{pos}_{index_of[t]}.csv" if mtl else f"{h2o}_{pos}_{index_of[t]}-0000.csv"
            p = write_dlc(pos_folder / name, df)
            files[(pos, t)], frames[(pos, t)] = p, df
    return GeneratedTracking(folder, files, frames, planted, folders)


def _glitch_frames(rng, n_frames: int, n: int) -> np.ndarray:
    """``n`` frames in 1..n_frames-2, sorted, no two adjacent (each outlier jumps out and back)."""
    candidates = np.arange(1, n_frames - 1, 3)
    return np.sort(rng.choice(candidates, size=min(n, len(candidates)), replace=False))
