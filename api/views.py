"""The supervisors' views, assembled in one place: the period a view may cover, the surge pipeline, events,
forecasts, the work list with its decisions, the report and the weekly brief, cached until the store changes.

The routers of :mod:`api.routers.supervisors` only translate HTTP to these
calls; what a view is lives in :mod:`hotline` and is assembled here once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from hotline.analytics import brief, reports, worklist
from hotline.analytics.events import kept_events, link_events
from hotline.analytics.hotspots import forecast as fc
from hotline.analytics.hotspots.detect import method_for
from hotline.analytics.hotspots.series import day_range, period_table
from hotline.analytics.hotspots.surges import find_surges, level_table
from hotline.errors import InvalidInput
from hotline.places import Gazetteer
from hotline.store import CaseStore
from hotline.store.base import WorkState
from hotline.taxonomy import Taxonomy
from hotline.times import TimeWindow

#: The longest period a view lists at once: a cache-busting scan over years cost 12 s a call.
MAX_VIEW_DAYS = 92


class ReadCache:
    """Supervisors' views (hotspots, forecasts) kept until the store changes, at most ``ttl`` seconds.

    Each costs about half a second of fitting; a dashboard refreshed by many
    supervisors would otherwise hold the worker that agents' routing needs.
    A view is computed again once any process has written to the store
    since (the store's write mark, one cheap read), but not more often than
    every ``settle`` seconds: while calls keep coming in, a few seconds of
    staleness is nothing next to a daily count.
    """

    def __init__(self, ttl: float = 60.0, settle: float = 5.0, size: int = 256) -> None:
        self.ttl = ttl
        self.settle = settle
        self.size = size
        self._items: dict[Any, tuple[float, Any, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], Any], mark: Any = None) -> Any:
        """The value of ``key``, computed again when older than ``ttl``, or than ``settle`` with another ``mark``."""
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            age = now - hit[0]
            if age < self.settle or (age < self.ttl and hit[1] == mark):
                return hit[2]
        value = compute()
        with self._lock:
            if len(self._items) >= self.size:
                self._items.clear()
            self._items[key] = (now, mark, value)
        return value


class SupervisorViews:
    """Each supervisors' view over a period the store can answer for (missing days default to its last ones)."""

    def __init__(self, store: CaseStore, cache: ReadCache, window: TimeWindow, taxonomy: Taxonomy,
                 gazetteer: Gazetteer, catch_up_events: Callable[[], None]) -> None:
        self.store, self.cache, self.window = store, cache, window
        self.taxonomy, self.gazetteer, self.catch_up_events = taxonomy, gazetteer, catch_up_events

    def period(self, start: date | None, end: date | None, default_days: int, what: str = "") -> tuple[date, date]:
        """``start``–``end``, missing ends filled from the store's last ``default_days``; a ``what`` is refused
        over more than :data:`MAX_VIEW_DAYS`."""
        start, end = day_range(self.store.span(until=self.window.latest()), start, end, default_days)
        if what and (end - start).days >= MAX_VIEW_DAYS:
            raise InvalidInput(f"{what} cover at most {MAX_VIEW_DAYS} days at a time")
        return start, end

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        return self.cache.get(key, compute, self.store.write_mark())

    def hotspots(self, start: date, end: date, method: str | None, level: str) -> list[dict[str, Any]]:
        method = method_for(level, method)  # an unknown name is a 400 naming the registered ones

        def compute() -> list[dict[str, Any]]:
            alerts = find_surges(level_table(self.store, start, end, level), start, end, level, method).alerts
            return [a.row() for a in sorted(alerts, key=lambda a: (a.date, -a.score))]

        return self._cached(("hotspots", start, end, method, level), compute)

    def episodes(self, start: date, end: date, min_calls: int, top: int, level: str) -> list[dict[str, Any]]:
        """The surges of the period, those still going first (raised on its last day or the day before), each
        group by excess calls."""
        def compute() -> list[dict[str, Any]]:
            found = find_surges(level_table(self.store, start, end, level), start, end, level, min_calls=min_calls,
                                top=top).episodes
            self.catch_up_events()
            link_events(self.store, found, start, end)
            rows = [{**e.to_dict(), "ongoing": e.end >= end - timedelta(days=1)} for e in found]
            return sorted(rows, key=lambda r: not r["ongoing"])  # stable: by excess within each group

        return self._cached(("episodes", start, end, min_calls, top, level), compute)

    def events(self, start: date, end: date, min_size: int, top: int) -> list[dict[str, Any]]:
        self.catch_up_events()
        return [e.to_dict() for e in kept_events(self.store, start, end, min_size=min_size, top=top)]

    def forecast(self, end: date, horizon: int, rising: bool, top: int) -> list[dict[str, Any]]:
        def compute() -> list[dict[str, Any]]:
            found = fc.forecast(period_table(self.store, end, end), horizon=horizon)
            chosen = fc.rising(found, top=top) if rising else sorted(found, key=lambda f: -f.rise)[:top]
            return [f.to_dict() for f in chosen]

        return self._cached(("forecast", end, horizon, rising, top), compute)

    def report_html(self, start: date, end: date) -> str:
        self.catch_up_events()
        built = reports.build(self.store, start, end, self.taxonomy.level1_of, centers=self.gazetteer.centers())
        return reports.render(built)

    def worklist(self, start: date, end: date, level: str) -> list[worklist.WorkItem]:
        """The period's work list with its decisions (cached until a case or a decision is written)."""
        def compute() -> list[worklist.WorkItem]:
            self.catch_up_events()
            return worklist.items(self.store, start, end, self.taxonomy, level=level)

        return worklist.decided(self._cached(("worklist", start, end, level), compute), self.store)

    def set_state(self, start: date, end: date, level: str, item_id: str, state: str, by: str,
                  department: str, note: str, expected: str | None) -> WorkState:
        items = self.worklist(start, end, level)
        return worklist.set_state(self.store, items, item_id, state, by, department, note, self.taxonomy,
                                  expected=expected)

    def history(self, item_id: str) -> list[WorkState]:
        return list(self.store.work_history(item_id))

    def brief(self, end: date, level: str) -> brief.Brief:
        start, end = brief.week_of(end)
        return brief.build(self.worklist(start, end, level), end)
