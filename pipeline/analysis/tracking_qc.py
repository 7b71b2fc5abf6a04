"""Tracking quality: frames where a tracked point jumps further than an animal can move in one frame.

Pure functions, no database: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np


def jump_frames(x: np.ndarray, y: np.ndarray, threshold_px: float) -> np.ndarray:
    """Indices of the frames whose x or y differs from the previous frame's by more than
    ``threshold_px`` pixels, in either direction (frame 0 is never bad; a NaN position never is).

    The original checked the signed difference, so a jump back (or a jump up or to the left) was
    not counted; here the jump's size counts, whatever its sign.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        jumped = (np.abs(np.diff(x)) > threshold_px) | (np.abs(np.diff(y)) > threshold_px)
    return np.flatnonzero(jumped) + 1
