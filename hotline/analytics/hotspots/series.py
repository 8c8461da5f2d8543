"""Daily counts per cell (area × category): the table every detector and forecast reads."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from hotline.analytics.hotspots.cells import cell_area, cell_category
from hotline.calendar import day_features
from hotline.errors import InvalidInput, NotFound
from hotline.store.base import CaseQuery, CaseStore, CellSeries

#: The longest span a table may cover (ten years of days).
MAX_DAYS = 3660
#: History a view reads before its first day: two years of whole weeks hold the forecast's
#: last-year season and the detectors' six-week baseline. Bounding it keeps one old case
#: (2017) from stretching every table to its year (9.5 s per hotspot query before).
HISTORY_DAYS = 728


@dataclass(frozen=True)
class CountTable:
    """``counts[cell, day]`` for consecutive days; cells are (area, category) pairs."""

    cells: list[tuple[str, str]]
    start: date
    counts: np.ndarray

    @classmethod
    def from_records(cls, records: Iterable[tuple[date, str, str]], start: date | None = None,
                     end: date | None = None) -> CountTable:
        """Count (day, area, category) records; days without records count zero."""
        return cls.from_counts(((day, area, category, 1) for day, area, category in records), start, end)

    @classmethod
    def from_counts(cls, rows: Iterable[tuple[date, str, str, int]], start: date | None = None,
                    end: date | None = None) -> CountTable:
        """A table from already counted (day, area, category, count) rows (a file's or a search index's; a
        store answers :meth:`from_series`'s columns); cells in order of first appearance.

        One pass in Python, the rest in numpy.
        """
        index: dict[tuple[str, str], int] = {}
        ordinals: dict[date, int] = {}  # a few hundred rows share each day
        cells, days, ns = array("q"), array("q"), array("q")
        for day, area, category, n in rows:
            cells.append(index.setdefault((area, category), len(index)))
            ordinal = ordinals.get(day)
            if ordinal is None:
                ordinal = ordinals[day] = day.toordinal()
            days.append(ordinal)
            ns.append(n)
        cell_arr, day_arr, n_arr = (np.frombuffer(a, dtype=np.int64) for a in (cells, days, ns))
        return cls._laid_out(index, cell_arr, day_arr, n_arr, start, end)

    @classmethod
    def from_series(cls, series: Iterable[CellSeries], by_street: bool = False, start: date | None = None,
                    end: date | None = None) -> CountTable:
        """A table from the store's :class:`~hotline.store.base.CellSeries`: one step per cell, not per day
        (areas ``district·street`` when ``by_street``)."""
        index: dict[tuple[str, str], int] = {}
        cells, days, ns = [], [], []
        for s in series:
            cell = (cell_area(s.district, s.street if by_street else None), cell_category(s.category))
            cells.append(np.full(len(s.days), index.setdefault(cell, len(index)), dtype=np.int64))
            days.append(s.days)
            ns.append(s.counts)
        if not index:
            raise InvalidInput("no cases to count")
        return cls._laid_out(index, np.concatenate(cells), np.concatenate(days), np.concatenate(ns), start, end)

    @classmethod
    def _laid_out(cls, index: dict[tuple[str, str], int], cell_arr: np.ndarray, day_arr: np.ndarray,
                  n_arr: np.ndarray, start: date | None, end: date | None) -> CountTable:
        """The table of (cell, day ordinal, count) columns, from ``start`` (else the first day) to ``end``."""
        if not index:
            raise InvalidInput("no cases to count")
        lo = start.toordinal() if start else int(day_arr.min())
        hi = end.toordinal() if end else int(day_arr.max())
        if hi < lo:
            raise InvalidInput(f"end {date.fromordinal(hi)} is before start {date.fromordinal(lo)}")
        if hi - lo >= MAX_DAYS:
            raise InvalidInput(f"{hi - lo + 1} days from {date.fromordinal(lo)} to {date.fromordinal(hi)}: "
                               f"counts span at most {MAX_DAYS} days")
        width = hi - lo + 1
        keep = (day_arr >= lo) & (day_arr <= hi)
        flat = cell_arr[keep] * width + (day_arr[keep] - lo)
        counts = np.bincount(flat, weights=n_arr[keep], minlength=len(index) * width)
        return cls(list(index), date.fromordinal(lo), counts.round().astype(np.int64).reshape(len(index), width))

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.counts.shape[1])]

    def day(self, i: int) -> date:
        """The date of column ``i`` (without building :attr:`days`)."""
        return self.start + timedelta(days=i)

    def day_index(self, day: date) -> int:
        i = (day - self.start).days
        if not 0 <= i < self.counts.shape[1]:
            raise InvalidInput(f"{day} is outside the data ({self.start} to {self.days[-1]})")
        return i

    def total(self, first: date, last: date) -> int:
        """Calls counted from ``first`` to ``last`` (days outside the table count none): what the store's
        ``documents`` answers, without asking it again for each of a view's items."""
        lo, hi = max(0, (first - self.start).days), min(self.counts.shape[1] - 1, (last - self.start).days)
        return int(self.counts[:, lo : hi + 1].sum()) if lo <= hi else 0

    def calendar(self) -> tuple[np.ndarray, np.ndarray]:
        """Effective weekday and public-holiday flag per day."""
        return day_features(self.days)

    def by_category(self) -> dict[str, list[int]]:
        """Rows of each category (for detectors that look across areas)."""
        groups: dict[str, list[int]] = {}
        for row, (_, category) in enumerate(self.cells):
            groups.setdefault(category, []).append(row)
        return groups


def day_range(span: tuple[datetime | None, datetime | None], start: date | None, end: date | None,
              default_days: int) -> tuple[date, date]:
    """The days a view covers: ``start``/``end`` as asked, ending no later than the last case ``span`` knows.

    ``span`` is the store's (first, last) up to the time window's end, so a
    stray row dated 2040 does not move every default view to 2040.
    """
    first, last = span
    if first is None or last is None:
        raise NotFound("the store holds no cases yet")
    end = min(end or last.date(), last.date())
    if end < first.date():  # before any arithmetic: 0001-01-01 minus a week is no date
        raise NotFound(f"no cases up to {end}")
    start = start or end - timedelta(days=default_days - 1)
    if start > end:
        raise InvalidInput(f"start {start} is after end {end}")
    return start, end


def cell_rows(rows: Iterable[Any], by_street: bool = False) -> list[tuple[date, str, str, int]]:
    """(day, area, category, count) of daily counts (``CellCount`` rows), areas ``district·street`` when
    ``by_street``."""
    cells: dict[tuple[str, str, str], tuple[str, str]] = {}  # each cell named once, not once per day
    named = []
    for r in rows:
        street = r.street if by_street else ""
        cell = cells.get((r.district, street, r.category))
        if cell is None:
            cell = cells[(r.district, street, r.category)] = (cell_area(r.district, street), cell_category(r.category))
        named.append((r.day, cell[0], cell[1], r.count))
    return named


def period_table(store: CaseStore, start: date, end: date, by_street: bool = False) -> CountTable:
    """Daily counts per cell from ``HISTORY_DAYS`` before ``start`` to ``end``, from the store's aggregates
    (:meth:`~hotline.store.base.CaseStore.count_series`); ``by_street``: street-level cells."""
    series = store.count_series(CaseQuery.days(start - timedelta(days=HISTORY_DAYS), end), by_street=by_street)
    if not series:
        raise NotFound(f"no cases up to {end}")
    return CountTable.from_series(series, by_street, end=end)
