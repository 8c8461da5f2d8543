"""What a surge is, assembled once: count table → baseline fit → the level's detector → episodes.

The work list, the API's views, the command line and the report all ask
this module, so a surge means the same thing on every page and in every
file a supervisor receives. Linking each surge to the events of its cell
and days needs the store's events and is done by
:func:`hotline.analytics.events.link_events` on what this returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from hotline.analytics.hotspots.baseline import Baseline, fit_view
from hotline.analytics.hotspots.detect import Alert, detect, method_for
from hotline.analytics.hotspots.episodes import MIN_CALLS, Episode, episodes
from hotline.analytics.hotspots.series import CountTable, period_table
from hotline.errors import InvalidInput
from hotline.store.base import CaseStore

LEVELS = ("district", "street")


@dataclass(frozen=True)
class Surges:
    """One run of the pipeline: the table and the baseline fitted on it (the forecasts reuse both), every
    alert of the days asked, and the episodes made of them, most excess calls first."""

    table: CountTable
    baseline: Baseline
    method: str
    alerts: list[Alert]
    episodes: list[Episode]


def level_table(store: CaseStore, start: date, end: date, level: str = "district") -> CountTable:
    """The daily counts a surge of ``level`` is found in (the store's aggregates, history before ``start``)."""
    if level not in LEVELS:
        raise InvalidInput(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    return period_table(store, start, end, by_street=level == "street")


def find_surges(table: CountTable, start: date, end: date, level: str = "district", method: str | None = None,
                min_calls: int = MIN_CALLS, top: int | None = None, alpha: float | None = None,
                neighbours: Mapping[str, Sequence[str]] | None = None) -> Surges:
    """The surges of ``start``–``end`` in ``table``: the level's detector unless ``method`` names another,
    one baseline fit for the detector and the episodes, ``top`` episodes at most."""
    if end < start:
        raise InvalidInput(f"end {end} is before start {start}")
    chosen = method_for(level, method)
    baseline = fit_view(table, start)
    alerts = detect(table, max(start, table.start), end, method=chosen, alpha=alpha, neighbours=neighbours,
                    baseline=baseline)
    found = episodes(alerts, min_calls=min_calls, table=table, expected=baseline.mu)
    return Surges(table, baseline, chosen, alerts, found if top is None else found[:top])
