"""Trial conditions (spec: psth.TrialCondition): named selections of a session's trials.

A condition is a function name and arguments. Every argument selects trials whose column equals
the value (all must hold); an argument whose name starts with ``_`` *excludes* trials whose column
equals the value (any of them excludes). ``exclude_stim`` keeps only trials without
photostimulation, ``include_stim`` only stimulated ones; stimulation columns are ``stim_area``
(e.g. ALM) and ``stim_side`` (left, right, both).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

_COMMON = dict(task="audio delay", task_protocol=1, early_lick="no early", auto_water=0, free_water=0)


def _conditions() -> dict[str, tuple[str, dict]]:
    out: dict[str, tuple[str, dict]] = {
        "good_noearlylick_hit": ("exclude_stim", dict(_COMMON, outcome="hit")),
    }
    for side in ("left", "right"):
        for outcome in ("hit", "miss"):
            out[f"good_noearlylick_{side}_{outcome}"] = (
                "exclude_stim",
                dict(_COMMON, outcome=outcome, trial_instruction=side),
            )
    out["all_noearlylick_nostim"] = ("exclude_stim", dict(_COMMON, _outcome="ignore"))
    for side in ("left", "right"):
        out[f"all_noearlylick_nostim_{side}"] = (
            "exclude_stim",
            dict(_COMMON, _outcome="ignore", trial_instruction=side),
        )
    for stim in ("left", "right", "both"):
        base = dict(_COMMON, _outcome="ignore", stim_area="ALM", stim_side=stim)
        out[f"all_noearlylick_{stim}_alm_stim"] = ("include_stim", base)
        for side in ("left", "right"):
            out[f"all_noearlylick_{stim}_alm_stim_{side}"] = ("include_stim", dict(base, trial_instruction=side))
    return out


#: name -> (function, arguments): the original's 17 conditions.
CONDITIONS = _conditions()


def condition_hash(func: str, arg: dict) -> str:
    """The original's ``dict_to_hash({func, **arg})``: md5 of the sorted items (hex)."""
    text = json.dumps({"trial_condition_func": func, **arg}, sort_keys=True, default=str)
    return hashlib.md5(text.encode()).hexdigest()


def select(trials: pd.DataFrame, func: str, arg: dict) -> np.ndarray:
    """Boolean mask over ``trials`` (one row per trial with the BehaviorTrial columns and
    ``stim`` (bool), ``stim_area``, ``stim_side``) for one condition."""
    if func == "exclude_stim":
        mask = ~trials["stim"].to_numpy(dtype=bool, copy=True)
    elif func == "include_stim":
        mask = trials["stim"].to_numpy(dtype=bool, copy=True)
    else:
        raise ValueError(f"unknown trial condition function {func!r}")
    excluded = np.zeros(len(trials), dtype=bool)
    for k, v in arg.items():
        col = trials[k.lstrip("_")]
        hit = (col == v).to_numpy(dtype=bool)
        if k.startswith("_"):
            excluded |= hit
        else:
            mask &= hit
    return mask & ~excluded
