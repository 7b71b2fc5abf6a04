"""A load-animal spreadsheet: subjects with water-restriction records."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = (
    "subject_id",
    "username",
    "cage_number",
    "date_of_birth",
    "sex",
    "animal_source",
    "water_restriction_number",
    "wr_start_date",
    "wr_start_weight",
)


def make_animals(
    n: int = 4, seed: int = 0, username: str = "demo", h2o_prefix: str = "dm", first_subject: int = 100001
) -> pd.DataFrame:
    """``n`` plausible animals (ids first_subject..., h2o ids ``<prefix>1``...)."""
    rng = np.random.default_rng(seed)
    dob = [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 300, n)]
    wr_start = [d + dt.timedelta(days=int(k)) for d, k in zip(dob, rng.integers(60, 120, n))]
    return pd.DataFrame(
        {
            "subject_id": np.arange(first_subject, first_subject + n),
            "username": username,
            "cage_number": rng.integers(150000, 160000, n),
            "date_of_birth": dob,
            "sex": rng.choice(["M", "F"], n),
            "animal_source": rng.choice(["Jackson Labs", "Janelia"], n),
            "water_restriction_number": [f"{h2o_prefix}{i + 1}" for i in range(n)],
            "wr_start_date": wr_start,
            "wr_start_weight": np.round(rng.uniform(18, 30, n), 1),
        },
        columns=list(COLUMNS),
    )


def write_animals(path: str | Path, df: pd.DataFrame) -> Path:
    """Write ``df`` as .xlsx or .csv (by the suffix of ``path``) with spreadsheet-style headers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pretty = df.rename(
        columns={c: c.replace("_", " ").title() if c in ("subject_id", "sex") else c for c in df.columns}
    )  # exercise the header normalisation
    if path.suffix.lower() == ".xlsx":
        pretty.to_excel(path, index=False)
    else:
        pretty.to_csv(path, index=False)
    return path
