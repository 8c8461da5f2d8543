"""EARS C1, C2 and C3, as the CDC's Early Aberration Reporting System defines them.

C1 compares a day with the mean and standard deviation of the 7 days before
it; C2 leaves a 2-day guard band (days t-9 … t-3), so a rise that began
yesterday does not hide in its own baseline; C3 sums the positive C2
excesses over 1 sd of the last three days. Thresholds: 3 for C1 and C2, 2
for C3. The baseline every other method here is compared with.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Standard-deviation floor, so that a flat baseline of zeros does not make every single call an outbreak.
MIN_SD = 0.5
THRESHOLDS = {"ears-c1": 3.0, "ears-c2": 3.0, "ears-c3": 2.0}


def _baseline(counts: np.ndarray, lag: int, width: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of the ``width`` days ending ``lag`` days before each day (NaN where history is short)."""
    cells, days = counts.shape
    mean = np.full((cells, days), np.nan)
    sd = np.full((cells, days), np.nan)
    if days > width + lag - 1:
        windows = sliding_window_view(counts.astype(float), width, axis=1)  # windows[:, s] covers s … s+width-1
        first = width + lag - 1  # first day with a full baseline
        w = windows[:, : days - first]
        mean[:, first:] = w.mean(axis=2)
        sd[:, first:] = w.std(axis=2, ddof=1)
    return mean, np.maximum(sd, MIN_SD)


def ears(counts: np.ndarray, method: str = "ears-c2") -> tuple[np.ndarray, np.ndarray]:
    """(statistic, expected) per cell and day; flag where the statistic exceeds ``THRESHOLDS[method]``."""
    if method == "ears-c1":
        mean, sd = _baseline(counts, lag=1)
        return (counts - mean) / sd, mean
    mean, sd = _baseline(counts, lag=3)
    c2 = (counts - mean) / sd
    if method == "ears-c2":
        return c2, mean
    if method == "ears-c3":
        excess = np.nan_to_num(np.maximum(c2 - 1.0, 0.0))
        c3 = excess.copy()
        c3[:, 1:] += excess[:, :-1]
        c3[:, 2:] += excess[:, :-2]
        c3[np.isnan(c2)] = np.nan
        return c3, mean
    raise ValueError(f"unknown EARS method {method!r}")
