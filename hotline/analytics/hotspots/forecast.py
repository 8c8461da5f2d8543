"""Forecasts of daily counts per cell for the coming days, with prediction intervals.

The same count regression as the detector's baseline (level, damped trend,
working-week and holiday factors), refitted on the latest ``window`` days
with no guard band; when the history holds the same season last year, the
cell's year-over-year pattern for the coming days (heating in November,
waterlogging in the plum rains, school places in August) multiplies it,
shrunk toward 1 by how many cases back it. Intervals are negative-binomial
with the day-to-day over-dispersion plus the uncertainty of the level.

:func:`backtest` evaluates it by rolling origins against the seasonal-naive
forecast (the same weekday last week): MASE and interval coverage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from hotline.analytics.hotspots.baseline import DISPERSION_DAYS, Baseline, calendar_factors, fit, fit_level, interval
from hotline.analytics.hotspots.series import CountTable
from hotline.calendar import day_features
from hotline.errors import InvalidInput

#: Each forecast day keeps this share of the trend of the day before (a trend does not run forever).
DAMPING = 0.9
#: Pseudo-cases that pull last year's seasonal ratio toward 1.
SEASON_PRIOR = 10.0


@dataclass
class CellForecast:
    area: str
    category: str
    days: list[date]
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    normal: float               # the cell's recent normal daily level (calendar-adjusted)
    season: np.ndarray = field(default_factory=lambda: np.ones(0))

    @property
    def peak_week(self) -> slice:
        """The seven forecast days with the most expected cases."""
        week = min(7, len(self.mean))
        sums = np.convolve(self.mean, np.ones(week), mode="valid")
        first = int(np.argmax(sums))
        return slice(first, first + week)

    @property
    def rise(self) -> float:
        """Expected cases above the normal level over the peak week of the forecast."""
        window = self.mean[self.peak_week]
        return float(window.sum() - self.normal * len(window))

    def to_dict(self) -> dict[str, object]:
        return {
            "area": self.area, "category": self.category, "normal": round(self.normal, 2),
            "rise": round(self.rise, 2),
            "days": [{"date": d.isoformat(), "mean": round(float(m), 2), "low": int(lo), "high": int(hi)}
                     for d, m, lo, hi in zip(self.days, self.mean, self.low, self.high, strict=True)],
        }


def forecast(table: CountTable, horizon: int = 14, coverage: float = 0.8, window: int = 56,
             origin: int | None = None, baseline: Baseline | None = None) -> list[CellForecast]:
    """Forecasts for every cell for the ``horizon`` days after ``origin`` (default: the last day).

    ``baseline`` (the detector's prospective fit of the same table) supplies
    the over-dispersion; it is computed when not given.
    """
    if not 1 <= horizon <= 60:
        raise InvalidInput(f"horizon must be 1 to 60 days, not {horizon}")
    counts = table.counts.astype(float)
    last = counts.shape[1] - 1 if origin is None else origin
    if not 0 <= last < counts.shape[1]:
        raise InvalidInput(f"forecast origin {origin} is outside the {counts.shape[1]} days of data")
    if last + 1 < 14:
        raise InvalidInput("forecasting needs at least 14 days of history")
    days_all = table.days[: last + 1]
    future = [days_all[-1] + timedelta(days=h) for h in range(1, horizon + 1)]
    dow_all, hol_all = day_features(days_all + future)
    dow, holiday = dow_all[: last + 1], hol_all[: last + 1]
    # Factors as known at the end of the last day: computed for one day past it (the padding is never read).
    totals = np.append(counts[:, : last + 1].sum(axis=0), 0.0)
    weekday, hol = calendar_factors(totals, dow_all[: last + 2], hol_all[: last + 2], since=last + 1)
    today = last + 1  # the factors known at the end of the last day
    start = max(0, today - window)
    offset_window = weekday[today][dow[start:today]] * np.where(holiday[start:today], hol[today], 1.0)
    a, b = fit_level(counts[:, start:today], offset_window)
    n = today - start
    steps = np.cumsum(DAMPING ** np.arange(1, horizon + 1))
    ahead = (n - 1) / 2.0 + steps
    offset_future = weekday[today][dow_all[today:]] * np.where(hol_all[today:], hol[today], 1.0)
    season = _season(counts[:, :today], horizon)
    mean = np.exp(a[:, None] + b[:, None] * ahead[None, :]) * offset_future[None, :] * season
    if baseline is None:  # only the dispersion of the last day is read: fit the days it needs
        baseline = fit(counts, *table.calendar(), since=last - DISPERSION_DAYS)
    size = float(baseline.size[last])
    level_size = counts[:, start:today].sum(axis=1) + 1.0  # a level fitted on N cases is known to about 1/sqrt(N)
    lo, hi = interval(mean, size, coverage, extra_size=level_size[:, None])
    normal = np.exp(a + b * (n - 1) / 2.0)
    return [
        CellForecast(area, category, future, mean[i], lo[i], hi[i], float(normal[i]), season[i])
        for i, (area, category) in enumerate(table.cells)
    ]


def _season(counts: np.ndarray, horizon: int, smooth: int = 3, reference: int = 28) -> np.ndarray:
    """Last year's ratio of the coming days to the weeks before them, per cell (1 without a year of history)."""
    cells, days = counts.shape
    ratio = np.ones((cells, horizon))
    year = 364  # whole weeks, so weekdays line up
    if days < year + reference:
        return ratio
    base_lo, base_hi = days - year - reference, days - year
    base = counts[:, base_lo:base_hi].mean(axis=1)
    for h in range(horizon):
        centre = days - year + h
        lo, hi = max(0, centre - smooth), min(days, centre + smooth + 1)
        observed = counts[:, lo:hi].sum(axis=1)
        expected = base * (hi - lo)
        ratio[:, h] = (observed + SEASON_PRIOR) / (expected + SEASON_PRIOR)
    return ratio


def rising(forecasts: list[CellForecast], top: int = 20, min_rise: float = 2.0, min_ratio: float = 1.3) -> list[CellForecast]:
    """Cells expected to rise above their normal level in a week of the horizon, largest rise first."""
    chosen = [
        f for f in forecasts
        if f.rise >= min_rise and f.mean[f.peak_week].mean() >= min_ratio * max(f.normal, 0.05)
    ]
    return sorted(chosen, key=lambda f: -f.rise)[:top]


@dataclass
class Backtest:
    origins: int
    mase: float
    mase_seasonal_naive: float
    coverage: float
    mae: float
    mae_seasonal_naive: float


def backtest(table: CountTable, horizon: int = 14, step: int = 7, first: int = 70, coverage: float = 0.8) -> Backtest:
    """Rolling-origin evaluation; MASE is scaled by the in-sample MAE of the weekly seasonal-naive forecast."""
    counts = table.counts.astype(float)
    days = counts.shape[1]
    errors, naive_errors, inside, scale_parts, origins = [], [], [], [], 0
    baseline = fit(counts, *table.calendar())
    for origin in range(first, days - horizon, step):
        fc = forecast(table, horizon=horizon, coverage=coverage, origin=origin, baseline=baseline)
        actual = counts[:, origin + 1 : origin + 1 + horizon]
        mean = np.stack([f.mean for f in fc])
        lo, hi = np.stack([f.low for f in fc]), np.stack([f.high for f in fc])
        naive = np.stack([counts[:, origin - 6 + (h % 7)] for h in range(horizon)], axis=1)
        errors.append(np.abs(actual - mean))
        naive_errors.append(np.abs(actual - naive))
        inside.append((actual >= lo) & (actual <= hi))
        history = counts[:, : origin + 1]
        scale_parts.append(np.abs(history[:, 7:] - history[:, :-7]).mean())
        origins += 1
    if not origins:
        raise InvalidInput(f"too little data for a backtest: {days} days, need {first + horizon + 1}")
    scale = float(np.mean(scale_parts))
    mae, mae_naive = float(np.mean(errors)), float(np.mean(naive_errors))
    return Backtest(origins, mae / scale, mae_naive / scale, float(np.mean(inside)), mae, mae_naive)
