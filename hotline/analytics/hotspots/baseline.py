"""The normal level of each cell: a negative-binomial count regression, refitted every day.

For day t the expected count of a cell is

    mu[c, t] = exp(a_c + b_c * (t - centre)) * weekday[t] * holiday[t]

- ``weekday`` and ``holiday`` factors are pooled over all cells (one city's
  working week; public holidays and make-up working days from the Chinese
  calendar), estimated from the days before t;
- level ``a_c`` and trend ``b_c`` are the Poisson maximum-likelihood fit on
  the ``window`` (six weeks) days that end ``guard`` days before t (a surge
  that started yesterday is not yet part of normal), with a Gaussian prior on
  the trend so that a few noisy days do not make a slope; six weeks and one
  guard day detected the most injected outbreaks at a fixed false-alarm rate
  on generated counts (bench/hotspots.py; 4, 8 and 12 weeks were close);
- over-dispersion (size ``r`` of the negative binomial) is estimated from
  how far the previous weeks' out-of-sample predictions missed.

Season enters through the moving window (and, in forecasts, last year's
pattern when a year of history exists). Everything is prospective: the fit
for day t never sees t.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from hotline.analytics.hotspots.series import CountTable

#: Prior standard deviation of the daily log-trend (1%/day is a month's +35%).
TREND_SD = 0.01
#: Factor of public holidays until the data has shown some (calls drop on holidays).
HOLIDAY_PRIOR = 0.8


@dataclass
class Baseline:
    """Expected counts and dispersion per cell and day, with the fitted level and trend."""

    mu: np.ndarray          # expected count [cell, day] (NaN before enough history)
    size: np.ndarray        # negative-binomial size r per day (pooled over cells)
    level: np.ndarray       # log level a at the window centre [cell, day]
    trend: np.ndarray       # daily log-trend b [cell, day]
    weekday: np.ndarray     # weekday factors used on each day [day, 7]
    holiday: np.ndarray     # holiday factor used on each day [day]
    window: int
    guard: int


def calendar_factors(totals: np.ndarray, dow: np.ndarray, holiday: np.ndarray,
                     history: int = 364, since: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Weekday factors [day, 7] (mean 1) and public-holiday factor [day] from the days before each day
    (from day ``since`` on; the days before it keep the priors)."""
    days = len(totals)
    weekday = np.ones((days, 7))
    hol = np.full(days, HOLIDAY_PRIOR)
    for t in range(max(0, since), days):
        lo = max(0, t - history)
        x, d, h = totals[lo:t], dow[lo:t], holiday[lo:t]
        normal = ~h
        if normal.sum() >= 14 and x[normal].mean() > 0:
            means = np.array([x[normal & (d == w)].mean() if (normal & (d == w)).any() else np.nan for w in range(7)])
            means = np.where(np.isnan(means), np.nanmean(means), means)
            weekday[t] = means / means.mean()
            if h.any():
                expected = (x[normal].mean() * weekday[t][d[h]]).sum()
                observed = x[h].sum()
                # Shrink toward the prior by the evidence: a couple of holidays say little.
                hol[t] = (observed + HOLIDAY_PRIOR * 20) / (expected + 20)
    return weekday, hol


#: Days of past misses the over-dispersion of a day is estimated from.
DISPERSION_DAYS = 56
#: Days a view's fit starts before its first day: the misses its dispersion reads, and as many again for
#: the CUSUM to forget where it began (the rises it watches for are a few weeks long). A view then fits
#: the same number of days whether the store holds one year or five (the whole table took 0.3 s of a
#: report's second at a city's volume, and twice that with two years).
VIEW_LEAD_DAYS = 2 * DISPERSION_DAYS


def fit_view(table: CountTable, start: date | None = None) -> Baseline:
    """The fit a view from ``start`` reads: its days and the :data:`VIEW_LEAD_DAYS` before them (the whole
    table without ``start``)."""
    since = 0 if start is None else max(0, (start - table.start).days - VIEW_LEAD_DAYS)
    return fit(table.counts, *table.calendar(), since=since)


def fit(counts: np.ndarray, dow: np.ndarray, holiday: np.ndarray, window: int = 42, guard: int = 1,
        min_history: int = 14, since: int = 0) -> Baseline:
    """Prospective expected counts for every cell and day (see the module docstring).

    Days before ``since`` are left unknown: what is computed for a day from
    ``since + DISPERSION_DAYS`` on is exactly what the full fit gives (each
    day's level reads only counts; its dispersion only the misses of the
    days just before), at a fraction of the cost when only the last days are
    wanted (a forecast).
    """
    counts = np.asarray(counts, dtype=float)
    cells, days = counts.shape
    weekday, hol = calendar_factors(counts.sum(axis=0), dow, holiday, since=since)
    offset = weekday[np.arange(days), dow] * np.where(holiday, hol, 1.0)  # the factor of day t, known on day t
    mu = np.full((cells, days), np.nan)
    level = np.full((cells, days), np.nan)
    trend = np.zeros((cells, days))
    for t in range(max(0, since), days):
        end = t - guard
        start = max(0, end - window)
        n = end - start
        if n < min_history:
            continue
        # Offsets as they were known on each window day (the calendar factors of day t, applied to the window).
        o = weekday[t][dow[start:end]] * np.where(holiday[start:end], hol[t], 1.0)
        a, b = fit_level(counts[:, start:end], o)
        level[:, t], trend[:, t] = a, b
        ahead = (n - 1) / 2.0 + guard  # day t sits guard days past the window's last day
        mu[:, t] = np.exp(a + b * ahead) * offset[t]
    size = dispersion(counts, mu)
    return Baseline(mu, size, level, trend, weekday, hol, window, guard)


def fit_level(x: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poisson MLE of log level ``a`` (at the window centre) and daily log-trend ``b`` per row of ``x``.

    Newton steps on both parameters for all cells at once, with the prior on
    the trend; six steps converge for any count level met here.
    """
    cells, n = x.shape
    prior = 1.0 / TREND_SD**2
    tau = np.arange(n) - (n - 1) / 2.0
    a = np.log((x.sum(axis=1) + 0.5) / offset.sum())
    b = np.zeros(cells)
    for _ in range(6):
        m = np.exp(a[:, None] + b[:, None] * tau) * offset
        ga, gb = (x - m).sum(axis=1), ((x - m) * tau).sum(axis=1) - prior * b
        haa, hab, hbb = m.sum(axis=1), (m * tau).sum(axis=1), (m * tau * tau).sum(axis=1) + prior
        det = haa * hbb - hab * hab
        a = a + (hbb * ga - hab * gb) / det
        b = b + (haa * gb - hab * ga) / det
    return a, b


def dispersion(counts: np.ndarray, mu: np.ndarray, window: int = DISPERSION_DAYS) -> np.ndarray:
    """Negative-binomial size r per day, from the previous ``window`` days' out-of-sample misses."""
    days = counts.shape[1]
    excess = np.nan_to_num((counts - mu) ** 2 - mu)
    square = np.nan_to_num(mu**2)
    ce, cs = np.concatenate([[0.0], np.cumsum(excess.sum(axis=0))]), np.concatenate([[0.0], np.cumsum(square.sum(axis=0))])
    size = np.full(days, 50.0)
    for t in range(days):
        lo = max(0, t - window)
        e, s = ce[t] - ce[lo], cs[t] - cs[lo]
        if s > 0:
            inverse = max(e / s, 1e-3)
            size[t] = float(np.clip(1.0 / inverse, 0.5, 1000.0))
    return size


def upper_tail(observed: np.ndarray, mu: np.ndarray, size: np.ndarray | float) -> np.ndarray:
    """P(X >= observed) under NB(mean mu, size r); NaN where mu is unknown."""
    mu = np.asarray(mu, dtype=float)
    r = np.broadcast_to(np.asarray(size, dtype=float), mu.shape)
    safe = np.where(np.isnan(mu), 1.0, np.maximum(mu, 1e-9))
    p = stats.nbinom.sf(np.asarray(observed) - 1, r, r / (r + safe))
    return np.where(np.isnan(mu), np.nan, p)


def interval(mu: np.ndarray, size: np.ndarray | float, coverage: float = 0.8,
             extra_size: np.ndarray | float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Prediction interval of a count; ``extra_size`` adds the uncertainty of the level itself.

    Counts are whole numbers: for a mean of 0.3 the interval [0, 0] holds 74%
    and [0, 1] 96%, so a plain quantile interval covers far more than asked
    at low counts. The upper end is the quantile or one less, whichever
    brings the interval's probability closer to ``coverage``.
    """
    r = 1.0 / (1.0 / np.asarray(size, dtype=float) + 1.0 / np.asarray(extra_size, dtype=float))
    r = np.broadcast_to(r, np.shape(mu))
    safe = np.maximum(mu, 1e-9)
    p = r / (r + safe)
    tail = (1 - coverage) / 2
    lo = stats.nbinom.ppf(tail, r, p)
    hi = stats.nbinom.ppf(1 - tail, r, p)
    below = stats.nbinom.cdf(lo - 1, r, p)
    wide = stats.nbinom.cdf(hi, r, p) - below
    narrow = stats.nbinom.cdf(hi - 1, r, p) - below
    hi = np.where((hi > lo) & (np.abs(narrow - coverage) < np.abs(wide - coverage)), hi - 1, hi)
    return lo, hi


def cusum(counts: np.ndarray, mu: np.ndarray, size: np.ndarray, k: float = 0.5, h: float = 5.0) -> np.ndarray:
    """Upper CUSUM of standardised residuals per cell and day (reset after each alarm): slow rises add up."""
    cells, days = counts.shape
    z = (counts - mu) / np.sqrt(mu + mu**2 / size[None, :])
    z = np.nan_to_num(z)
    s = np.zeros((cells, days))
    current = np.zeros(cells)
    for t in range(days):
        current = np.maximum(0.0, current + z[:, t] - k)
        s[:, t] = current
        current = np.where(current > h, 0.0, current)
    return s
