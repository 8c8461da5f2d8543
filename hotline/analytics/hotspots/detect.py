"""Prospective surge detection over a count table: one alert per flagged (day, area, category).

Methods:

- ``nb`` (default): the negative-binomial baseline (:mod:`hotline.analytics.hotspots.baseline`);
  a cell-day is flagged when the count of the day, or of the last two or
  three days together, is improbably high (upper-tail p below ``alpha``) and
  at least ``MIN_COUNT`` calls came in over it and the day before, or when the
  CUSUM of its standardised residuals crosses its bound (a slow rise; method
  ``nb-cusum``);
- ``nb-fdr`` (the default at street level): the same tail tests, but each day's
  p-values across all cells go through Benjamini–Hochberg at ``FDR`` (5%):
  thousands of sparse street cells would otherwise raise dozens of false
  alarms a day at a per-cell level; on pure noise it raises an alert on at
  most about one day in twenty, and among its alerts at most about 5% are
  false (bench/hotspots.py ``--streets``);
- ``ears-c1``, ``ears-c2``, ``ears-c3``: the CDC's EARS, the baseline to beat;
- ``scan``: Kulldorff's space-time permutation scan per category, for
  clusters across neighbouring areas; every area of a significant cluster is
  flagged on the day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from hotline.analytics.hotspots import ears as ears_module
from hotline.analytics.hotspots.baseline import Baseline, cusum, fit, fit_view, upper_tail
from hotline.analytics.hotspots.scan import scan
from hotline.analytics.hotspots.series import CountTable
from hotline.errors import InvalidInput

DEFAULT_METHOD = "nb"
#: Street-level cells number in the thousands: false alarms are controlled across them.
STREET_METHOD = "nb-fdr"
#: Upper-tail probability (after the weighting below) under which the default method flags a cell-day: under one
#: false alarm per 100 cell-days on pure Poisson noise (0.86 with CUSUM), 0.45 on generated counts, 0.19 on the
#: sparse real ones (BENCHMARKS.md, ten replicates); ``--alpha 0.02`` doubles it for a more sensitive watch.
ALPHA = 0.01
#: A cell-day needs at least this many calls over it and the day before to be an alert: a single call is
#: nobody's hotspot (3 lost a third of the small outbreaks in the sparse real counts, see BENCHMARKS.md).
MIN_COUNT = 2
CUSUM_K, CUSUM_H = 0.5, 6.0
#: The false discovery rate ``nb-fdr`` keeps each day across all cells (street level).
FDR = 0.05
#: The longest run of days tested together (an outbreak reported over three days is still one outbreak).
WINDOW_DAYS = 3
#: Weighted Bonferroni over the runs tested: the day itself keeps most of the error budget, the sums of the last
#: 2 … WINDOW_DAYS days share the rest. The smallest of three raw p-values is no p-value (it raised the quiet days'
#: false alarms more than it found outbreaks: +15.9 against +17.7 points over EARS C2 on generated counts, ten
#: replicates of bench/hotspots.py).
DAY_WEIGHT = 0.8


@dataclass(frozen=True)
class Alert:
    date: date
    area: str
    category: str
    observed: int
    expected: float
    score: float
    method: str
    p_value: float | None = None

    def row(self) -> dict[str, object]:
        return {"date": self.date.isoformat(), "area": self.area, "category": self.category,
                "observed": self.observed, "expected": round(self.expected, 3), "score": round(self.score, 3),
                "method": self.method}


class Scores(NamedTuple):
    """Per cell and day: the score, the expected count, the p-value (NaN where there is none), and the threshold."""

    score: np.ndarray
    expected: np.ndarray
    p: np.ndarray
    threshold: float


@runtime_checkable
class Detector(Protocol):
    """A surge detector: the CLI, the API and the benchmark find every one in :data:`DETECTORS` by its name."""

    name: str
    #: Whether it scores every cell and day (the benchmark compares those at equal false-alarm rates).
    per_cell: bool

    def detect(self, table: CountTable, first: int, last: int, alpha: float | None,
               neighbours: Mapping[str, Sequence[str]], min_count: int, simulations: int,
               baseline: Baseline | None = None) -> list[Alert]:
        """Alerts for days ``first`` … ``last`` of ``table`` (indices), each from counts up to its own day
        (``baseline``: the table's fit, when the caller has it already)."""
        ...


class CellDetector:
    """A detector that scores each cell-day and flags the eligible ones at or over its threshold."""

    name = ""
    per_cell = True

    def scores(self, table: CountTable, baseline: Baseline | None = None) -> Scores:
        raise NotImplementedError

    def eligible(self, counts: np.ndarray, min_count: int = MIN_COUNT) -> np.ndarray:
        return np.ones(counts.shape, dtype=bool)

    def flag(self, table: CountTable, alpha: float | None, min_count: int,
             baseline: Baseline | None = None, since: int = 0) -> tuple[np.ndarray, Scores, np.ndarray]:
        """(flagged, scores, the method that flagged each cell-day); ``since``: the first day that must be
        right (a detector that fits a baseline itself fits it from :data:`VIEW_LEAD_DAYS` before that day)."""
        found = self.scores(table, baseline)
        flagged = (found.score >= found.threshold) & self.eligible(table.counts, min_count)
        return flagged, found, np.full(table.counts.shape, self.name, dtype=object)

    def detect(self, table: CountTable, first: int, last: int, alpha: float | None,
               neighbours: Mapping[str, Sequence[str]], min_count: int, simulations: int,
               baseline: Baseline | None = None) -> list[Alert]:
        flagged, found, methods = self.flag(table, alpha, min_count, baseline, since=first)
        counts, days = table.counts, table.days
        alerts: list[Alert] = []
        for cell, day in zip(*np.nonzero(flagged[:, first : last + 1]), strict=True):
            t = first + day
            area, category = table.cells[cell]
            p = found.p[cell, t]
            alerts.append(Alert(days[t], area, category, int(counts[cell, t]),
                                float(np.nan_to_num(found.expected[cell, t])), float(found.score[cell, t]),
                                str(methods[cell, t]), None if np.isnan(p) else float(p)))
        return sorted(alerts, key=lambda a: (a.date, -a.score, a.area, a.category))


class NegativeBinomial(CellDetector):
    """The default: 1–3-day upper-tail tests on the negative-binomial baseline, and CUSUM for slow rises.

    ``windows``: the runs of days whose sums are tested (the day itself is always tested); ``slow``: whether
    the CUSUM watches for slow rises (it has no p-value, so not with ``fdr``); ``fdr``: flag by
    Benjamini–Hochberg over each day's cells at this rate (``alpha`` then overrides it) instead of a
    per-cell level. The benchmark builds variants with other values to choose these.
    """

    def __init__(self, name: str = "nb", windows: Sequence[int] = tuple(range(2, WINDOW_DAYS + 1)),
                 slow: bool = True, cusum_k: float = CUSUM_K, cusum_h: float = CUSUM_H,
                 fdr: float | None = None) -> None:
        self.name, self.windows, self.slow = name, tuple(windows), slow
        self.cusum_k, self.cusum_h = cusum_k, cusum_h
        self.fdr = fdr

    def scores(self, table: CountTable, baseline: Baseline | None = None) -> Scores:
        counts = table.counts
        return self._scored(counts, *self._predictive(counts, baseline or fit(counts, *table.calendar())))

    def _scored(self, counts: np.ndarray, mu: np.ndarray, size: np.ndarray, level: np.ndarray | float) -> Scores:
        """The tail tests of the day and of the runs of days, on the predictive :meth:`_predictive` gives."""
        runs = len(self.windows)
        p = upper_tail(counts, mu, _combined(size, level)) / (DAY_WEIGHT if runs else 1.0)
        for width in self.windows:  # the last ``width`` days together: an outbreak spread thin
            total, expected = counts.astype(float).copy(), mu.copy()
            for back in range(1, width):
                total[:, back:] += counts[:, :-back]
                expected[:, back:] += mu[:, :-back]
                expected[:, :back] = np.nan
            pw = upper_tail(total, expected, _combined(size * width, level))  # a sum of days is less over-dispersed
            p = np.fmin(p, np.where(counts > mu, pw * runs / (1 - DAY_WEIGHT), np.nan))
        p = np.minimum(p, 1.0)
        with np.errstate(divide="ignore"):
            score = -np.log10(np.maximum(p, 1e-300))
        return Scores(score, mu, p, -math.log10(ALPHA))

    def _predictive(self, counts: np.ndarray, base: Baseline) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """(mean, dispersion size, calls the level rests on) of each cell-day's count.

        Across cells (``fdr``), the gamma–Poisson predictive: half a call per window more than the fit, and the
        spread of a level estimated from few calls (:func:`_combined`). Per cell, the plug-in fit as it is (the
        benchmark's figures were measured so)."""
        if self.fdr is None:
            return base.mu, base.size[None, :], np.inf
        return base.mu + 0.5 / base.window, base.size[None, :], window_calls(counts, base.window, base.guard) + 0.5

    def eligible(self, counts: np.ndarray, min_count: int = MIN_COUNT) -> np.ndarray:
        """``min_count`` calls over the day and the one before: a single call is nobody's hotspot."""
        two = counts.copy()
        two[:, 1:] += counts[:, :-1]
        return (counts >= 1) & (two >= min_count)

    def flag(self, table: CountTable, alpha: float | None, min_count: int,
             baseline: Baseline | None = None, since: int = 0) -> tuple[np.ndarray, Scores, np.ndarray]:
        counts = table.counts
        base = baseline or fit_view(table, table.day(since))
        mu, size, level = self._predictive(counts, base)
        found = self._scored(counts, mu, size, level)
        if self.fdr is not None:
            # Only cells with a call today are tested, each p-value conditioned on that call (divided by the chance
            # of any call, a bound that holds for the multi-day sums too): a street with no call is no hypothesis,
            # and a quiet day's four thousand silent streets would otherwise dilute every real one.
            any_call = upper_tail(np.ones_like(counts), mu, _combined(size, level))
            conditional = np.where(counts >= 1, np.minimum(found.p / np.maximum(any_call, 1e-300), 1.0), np.nan)
            flagged = benjamini_hochberg(conditional, alpha if alpha is not None else self.fdr)
        else:
            flagged = found.score >= (-math.log10(alpha) if alpha is not None else found.threshold)
        flagged &= self.eligible(counts, min_count)
        methods = np.full(counts.shape, self.name, dtype=object)
        if not self.slow or self.fdr is not None:
            return flagged, found, methods
        cs, rising = self.slow_rises(counts, base, min_count)
        slow = rising & ~flagged
        methods[slow] = "nb-cusum"
        return flagged | slow, found._replace(score=np.where(slow, cs, found.score)), methods

    def slow_rises(self, counts: np.ndarray, base: Baseline, min_count: int = MIN_COUNT) -> tuple[np.ndarray, np.ndarray]:
        """(the CUSUM per cell-day, where it crossed its bound on a day :meth:`slow_eligible` allows)."""
        cs = cusum(counts.astype(float), base.mu, base.size, self.cusum_k, self.cusum_h)
        return cs, (cs > self.cusum_h) & self.slow_eligible(counts, min_count)

    @staticmethod
    def slow_eligible(counts: np.ndarray, min_count: int = MIN_COUNT) -> np.ndarray:
        """A call on the day and ``min_count`` over the last three: a slow rise still needs a few calls."""
        recent = counts.copy()
        recent[:, 1:] += counts[:, :-1]
        recent[:, 2:] += counts[:, :-2]
        return (counts >= 1) & (recent >= min_count)


def window_calls(counts: np.ndarray, window: int, guard: int) -> np.ndarray:
    """Calls in the baseline's window of each cell-day (the ``window`` days ending ``guard`` days before it)."""
    cum = np.concatenate([np.zeros((counts.shape[0], 1)), np.cumsum(counts, axis=1, dtype=float)], axis=1)
    days = np.arange(counts.shape[1])
    end = np.maximum(days - guard, 0)
    return cum[:, end] - cum[:, np.maximum(end - window, 0)]


def _combined(size: np.ndarray | float, level: np.ndarray | float) -> np.ndarray:
    """The size of a count whose level is itself estimated from ``level`` calls (gamma–Poisson predictive).

    A street without a call in six weeks has a fitted rate near zero, and the plug-in p-value of its next
    call is below one in a million: across thousands of streets that is dozens of false alarms a day that
    no false-discovery procedure can hold back. Its rate is not known to be zero, only to be small."""
    return 1.0 / (1.0 / np.asarray(size, dtype=float) + 1.0 / np.asarray(level, dtype=float))


def benjamini_hochberg(p: np.ndarray, q: float) -> np.ndarray:
    """Each day (column), the cells whose p-values Benjamini–Hochberg rejects at rate ``q`` (NaN: not tested).

    Holds under the positive dependence of counts that rise together; the tests' discreteness (a quiet cell
    cannot reach a tiny p-value with one call) only makes it more conservative.
    """
    rejected = np.zeros(p.shape, dtype=bool)
    for t in range(p.shape[1]):
        tested = np.flatnonzero(np.isfinite(p[:, t]))
        if not tested.size:
            continue
        values = p[tested, t]
        order = np.argsort(values, kind="stable")
        passing = np.flatnonzero(values[order] <= q * np.arange(1, tested.size + 1) / tested.size)
        if passing.size:
            rejected[tested[order[: passing[-1] + 1]], t] = True
    return rejected


class Ears(CellDetector):
    """The CDC's EARS C1, C2 or C3, as the CDC defines them: the baseline to beat."""

    def __init__(self, variant: str) -> None:
        self.name = f"ears-{variant}"

    def scores(self, table: CountTable, baseline: Baseline | None = None) -> Scores:
        stat, expected = ears_module.ears(table.counts, self.name)
        return Scores(stat, expected, np.full(table.counts.shape, np.nan), ears_module.THRESHOLDS[self.name])


class SpaceTimeScan:
    """Kulldorff's space-time permutation scan per category: clusters across neighbouring areas."""

    name = "scan"
    per_cell = False

    def detect(self, table: CountTable, first: int, last: int, alpha: float | None,
               neighbours: Mapping[str, Sequence[str]], min_count: int, simulations: int,
               baseline: Baseline | None = None) -> list[Alert]:
        return _scan_alerts(table, first, last, neighbours, min_count, simulations)


#: Every detector by name: add one by registering it here (or from a plugin), nothing else changes.
DETECTORS: dict[str, Detector] = {}


def register(detector: Detector) -> Detector:
    DETECTORS[detector.name] = detector
    return detector


for _detector in (NegativeBinomial(), NegativeBinomial("nb-fdr", slow=False, fdr=FDR), Ears("c1"), Ears("c2"),
                  Ears("c3"), SpaceTimeScan()):
    register(_detector)


def detector(name: str) -> Detector:
    try:
        return DETECTORS[name]
    except KeyError:
        raise InvalidInput(f"unknown method {name!r}; use one of {', '.join(DETECTORS)}") from None


def method_for(level: str, method: str | None = None) -> str:
    """``method`` (checked against the registry), else the default of the cells' level: street cells number in
    the thousands and need false alarms controlled across them."""
    chosen = method or (STREET_METHOD if level == "street" else DEFAULT_METHOD)
    detector(chosen)  # a name the registry does not hold is an error naming those it does
    return chosen


def scores(table: CountTable, method: str = DEFAULT_METHOD, baseline: Baseline | None = None) -> Scores:
    """(score, expected, p-value or NaN, threshold) per cell and day of a per-cell detector."""
    found = detector(method)
    if not isinstance(found, CellDetector):
        raise InvalidInput(f"method {method!r} does not score single cells")
    return found.scores(table, baseline)


def eligible(counts: np.ndarray, method: str, min_count: int = MIN_COUNT) -> np.ndarray:
    """Cell-days a method may flag (the default needs ``min_count`` calls over the day and the one before)."""
    found = detector(method)
    return found.eligible(counts, min_count) if isinstance(found, CellDetector) else np.ones(counts.shape, dtype=bool)


def detect(table: CountTable, start: date, end: date, method: str = DEFAULT_METHOD, alpha: float | None = None,
           neighbours: Mapping[str, Sequence[str]] | None = None, min_count: int = MIN_COUNT,
           simulations: int = 99, baseline: Baseline | None = None) -> list[Alert]:
    """Alerts for each day from ``start`` to ``end``; each uses only counts up to the end of its day.

    ``baseline`` is the table's :func:`~hotline.analytics.hotspots.baseline.fit` where the caller has it already (the
    report fits once for its hotspots and its forecasts)."""
    return detector(method).detect(table, table.day_index(start), table.day_index(end), alpha, neighbours or {},
                                   min_count, simulations, baseline)


def _scan_alerts(table: CountTable, first: int, last: int, neighbours: Mapping[str, Sequence[str]],
                 min_count: int, simulations: int, study: int = 28) -> list[Alert]:
    alerts: list[Alert] = []
    days = table.days
    rng = np.random.default_rng(0)
    for category, rows in table.by_category().items():
        areas = [table.cells[r][0] for r in rows]
        position = {a: i for i, a in enumerate(areas)}
        near = [[position[n] for n in neighbours.get(a, ()) if n in position] for a in areas]
        sub = table.counts[rows]
        for t in range(first, last + 1):
            window = sub[:, max(0, t - study + 1) : t + 1]
            if window[:, -1].sum() < min_count:
                continue
            for cluster in scan(window, near, simulations=simulations, rng=rng):
                if cluster.observed < min_count:
                    continue
                score = -math.log10(cluster.p_value)
                for z in cluster.zones:
                    alerts.append(Alert(days[t], areas[z], category, int(window[z, -cluster.days:].sum()),
                                        cluster.expected * window[z].sum() / max(window[list(cluster.zones)].sum(), 1),
                                        score, "scan", cluster.p_value))
    return sorted(alerts, key=lambda a: (a.date, -a.score, a.area, a.category))


METHODS = tuple(DETECTORS)
