"""Episodes: the consecutive alert days of one cell, as one thing to act on, ranked by the calls in excess.

A detector answers per cell and day, so one surge of a week fills a
supervisor's list with the same cell seven times, while a single unexpected
call (1 observed against 0.0 expected) scores higher than eleven against
0.9. An episode joins the alert days of a cell that follow each other (a
quiet day in between does not end it: a surge over a weekend dips), takes in
the raised days around them, and is ranked first by its excess calls
(observed − expected over its days),
then by its strongest day's evidence. Episodes with fewer than
``min_calls`` calls are left out: two calls are nobody's hotspot, whatever
their p-value.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from hotline.analytics.hotspots.detect import Alert
from hotline.analytics.hotspots.series import CountTable

#: Alert days of one cell at most this many days apart belong to one episode.
GAP_DAYS = 2
#: An episode needs at least this many calls over its alert days.
MIN_CALLS = 5


@dataclass
class Episode:
    area: str
    category: str
    start: date
    end: date
    alert_days: int
    observed: int
    expected: float
    peak_day: date
    peak_score: float
    peak_method: str
    methods: tuple[str, ...]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def excess(self) -> float:
        """Calls beyond what the cell's own history expected, over the alert days."""
        return self.observed - self.expected

    @property
    def explanation(self) -> str:
        """The ranking in a supervisor's words: how many times the usual, and how rare (not a log-probability:
        "10^-7.3（分数 7.3）" told a supervisor nothing)."""
        span = f"{self.start:%m-%d}" if self.start == self.end else f"{self.start:%m-%d} 至 {self.end:%m-%d}"
        if self.expected >= 0.5:
            usual = f"是往常同期（约 {self.expected:.1f} 件）的 {self.observed / self.expected:.1f} 倍"
        else:
            usual = "往常同期几乎没有"
        if self.peak_method == "nb-cusum":
            evidence = "持续缓慢上升：连续几天都比往常多一些，累积起来已明显超出常态"
        elif self.peak_method == "nb":
            evidence = f"按以往规律，最反常的一天（{self.peak_day:%m-%d}）{_once_in(self.peak_score)}"
        else:
            evidence = f"{self.peak_method} 检测报警（分数 {self.peak_score:.1f}）"
        return f"{span} 共 {self.observed} 件，{usual}，多出 {self.excess:.0f} 件；{self.alert_days} 天异常；{evidence}"

    def to_dict(self) -> dict[str, Any]:
        return {"area": self.area, "category": self.category, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "alert_days": self.alert_days, "observed": self.observed,
                "expected": round(self.expected, 2), "excess": round(self.excess, 1),
                "peak_day": self.peak_day.isoformat(), "peak_score": round(self.peak_score, 2), "peak_method": self.peak_method, "methods": list(self.methods),
                "explanation": self.explanation, "events": self.events}


def episodes(alerts: Iterable[Alert], gap: int = GAP_DAYS, min_calls: int = MIN_CALLS,
             table: CountTable | None = None, expected: np.ndarray | None = None) -> list[Episode]:
    """The alerts' episodes, most excess calls first.

    With the count ``table`` and its ``expected`` counts (the baseline's mu),
    an episode also takes in the raised days around and between its alert
    days (a surge the baseline starts to absorb is flagged on one of its
    five days), and its calls are counted over all of them.
    """
    by_cell: dict[tuple[str, str], list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_cell[(alert.area, alert.category)].append(alert)
    rows = {cell: i for i, cell in enumerate(table.cells)} if table is not None and expected is not None else {}
    found: list[Episode] = []
    for (area, category), cell in by_cell.items():
        cell.sort(key=lambda a: a.date)
        runs: list[list[Alert]] = []
        for alert in cell:
            if runs and (alert.date - runs[-1][-1].date).days <= gap:
                runs[-1].append(alert)
            else:
                runs.append([alert])
        if (area, category) not in rows:
            found.extend(_episode(area, category, run) for run in runs)
            continue
        counts, mu = table.counts[rows[(area, category)]], expected[rows[(area, category)]]  # type: ignore[union-attr,index]
        spans: list[tuple[int, int, list[Alert]]] = []
        for run in runs:
            first, last = _widened(counts, mu, table.day_index(run[0].date), table.day_index(run[-1].date))  # type: ignore[union-attr]
            if spans and first <= spans[-1][1] + 1:  # grown into the one before: one surge
                spans[-1] = (spans[-1][0], max(last, spans[-1][1]), spans[-1][2] + run)
            else:
                spans.append((first, last, run))
        for first, last, run in spans:
            episode = _episode(area, category, run)
            episode.start, episode.end = table.day(first), table.day(last)  # type: ignore[union-attr]
            episode.observed = int(counts[first : last + 1].sum())
            episode.expected = float(np.nansum(mu[first : last + 1]))
            found.append(episode)
    kept = [e for e in found if e.observed >= min_calls]
    return sorted(kept, key=lambda e: (-e.excess, -e.peak_score, e.start, e.area, e.category))


def _raised(observed: float, expected: float) -> bool:
    """A day above what was expected by more than chance would usually give (about two standard deviations)."""
    return not math.isnan(expected) and observed - expected >= max(2.0, 2.0 * math.sqrt(max(expected, 0.0)))


def _widened(counts: np.ndarray, mu: np.ndarray, first: int, last: int) -> tuple[int, int]:
    """The run of alert days ``first``–``last`` with the raised days just before and after it."""
    while first > 0 and _raised(counts[first - 1], mu[first - 1]):
        first -= 1
    while last + 1 < len(counts) and _raised(counts[last + 1], mu[last + 1]):
        last += 1
    return first, last


def _episode(area: str, category: str, run: Sequence[Alert]) -> Episode:
    peak = max(run, key=lambda a: a.score)
    return Episode(area, category, run[0].date, run[-1].date, len(run), sum(a.observed for a in run),
                   float(sum(a.expected for a in run)), peak.date, peak.score, peak.method,
                   tuple(sorted({a.method for a in run})))


def _once_in(score: float) -> str:
    """How rare a day of tail probability ``10^-score`` is, as "about once in N days" in Chinese units."""
    days = 10 ** score
    if days < 10:
        return "并不罕见"
    if days >= 1e12:
        return "几乎不可能偶然出现"
    unit, size = next((u, s) for u, s in (("亿", 1e8), ("万", 1e4), ("", 1.0)) if days >= s)
    amount = days / size
    step = 10 ** (len(str(int(amount))) - 1)  # one significant figure: the rarity is an order, not a count
    return f"约 {round(amount / step) * step:.0f} {unit}天才出现一次" if unit else f"约 {round(amount / step) * step:.0f} 天才出现一次"
