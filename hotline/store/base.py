"""The store protocol: the system of record for cases.

Backends are chosen by URL (:func:`hotline.store.open_store`); the embedded
SQLite store is the default on one machine. Everything else (the search
index, models, reports) is derived from what the store holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, NamedTuple, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

import numpy as np

from hotline.case import Case, Category, LabelSource
from hotline.errors import InvalidInput
from hotline.store.rules import SYSTEM, Writer

MAX_PAGE = 1000


def redacted(url: str) -> str:
    """A store or index URL without its password, for messages and logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"


@dataclass(frozen=True, slots=True)
class CaseQuery:
    """Filters over cases; empty fields do not filter. ``text`` is matched word by word."""

    text: str = ""
    start: datetime | None = None
    end: datetime | None = None
    district: str = ""
    street: str = ""
    category: str = ""
    #: A cell's category: level 2, else level 1 (see :mod:`hotline.analytics.hotspots.cells`). Where ``category`` names a
    #: level and matches it at any of the three, this names one column an index can serve: the calls under a
    #: surge or a work item are read by it, in a district of a city's year without scanning the district.
    cell_category: str = ""
    department: str = ""
    status: str = ""
    statuses: tuple[str, ...] = ()  # any of these (Open311's open and closed are several statuses)
    channel: str = ""
    event_id: str = ""
    limit: int = 20
    offset: int = 0

    @classmethod
    def days(cls, first: date | None = None, last: date | None = None, **filters: object) -> CaseQuery:
        """Cases received from the start of day ``first`` to the end of day ``last`` (either may be open)."""
        return cls(start=datetime.combine(first, time.min) if first else None,
                   end=datetime.combine(last, time.max.replace(microsecond=0)) if last else None, **filters)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, not {self.limit}")
        if self.offset < 0:
            raise InvalidInput(f"offset must not be negative, not {self.offset}")
        if self.start and self.end and self.start > self.end:
            raise InvalidInput(f"start {self.start} is after end {self.end}")


class CellCount(NamedTuple):
    """Cases received on one day in one district (and street, when asked for) about one (level-2) category.

    A named tuple: a view reads a city's two years of them (a few hundred thousand), and a tuple is made
    in half the time of a frozen dataclass.
    """

    day: date
    district: str
    category: str
    count: int  # type: ignore[assignment]  # the field hides tuple.count, which nothing here calls
    street: str = ""


class CellSeries(NamedTuple):
    """One district's (and street's) daily counts of one category over a range, as columns: the days with
    calls (``date.toordinal``) and their counts.

    What the supervisors' views read: a city's two years are about a thousand
    of these, where they are a few hundred thousand :class:`CellCount` rows
    (0.3 s to fetch and 0.25 s to lay out at 2,000,000 cases a year).
    """

    district: str
    category: str
    street: str
    days: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True, slots=True)
class Page:
    """One page of results and the number of all matches."""

    items: list[Case]
    total: int


@dataclass(slots=True)
class UpsertResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: UpsertResult) -> UpsertResult:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


@dataclass(frozen=True, slots=True)
class LabelChange:
    """One entry of the label audit log."""

    case_id: str
    source: LabelSource
    category: Category | None
    departments: tuple[str, ...]
    previous_category: Category | None
    previous_departments: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """One line of a case's label history, as the API and ``hotline cases show`` print it."""
        return {"kind": self.source.kind.value, "by": self.source.by, "at": str(self.source.at),
                "category": self.category.path if self.category else None, "departments": list(self.departments),
                "previous_category": self.previous_category.path if self.previous_category else None}


@dataclass(frozen=True, slots=True)
class ContentChange:
    """One entry of the content audit log: who changed which fields of a case, before and after."""

    case_id: str
    at: datetime
    by: str
    changes: dict[str, list[object]]


#: The states of a work-list item, in the order a supervisor usually moves it.
WORK_STATES = ("new", "acknowledged", "assigned", "resolved", "dismissed")


@dataclass(frozen=True, slots=True)
class WorkState:
    """A supervisor's decision on one work-list item (the item itself is recomputed from the counts), or one
    entry of its audit log (``previous`` is the state it replaced)."""

    item_id: str
    kind: str            # "surge" (an episode) or "rising" (a forecast)
    area: str
    category: str
    first_day: date
    last_day: date
    state: str
    department: str      # the department it was assigned to (empty unless assigned)
    note: str
    by: str
    at: datetime
    previous: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.item_id, "kind": self.kind, "area": self.area, "category": self.category,
                "start": self.first_day.isoformat(), "end": self.last_day.isoformat(), "state": self.state,
                "department": self.department, "note": self.note, "by": self.by,
                "at": self.at.isoformat(timespec="seconds"), "previous": self.previous}


@dataclass(slots=True)
class Summary:
    total: int = 0
    first: datetime | None = None
    last: datetime | None = None
    by_category: dict[str, int] = field(default_factory=dict)
    by_district: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    labeled: int = 0
    confirmed: int = 0


@runtime_checkable
class CaseStore(Protocol):
    """What every store backend offers."""

    url: str
    #: The city's zone: the times the store stamps (updated_at, audits, decisions) are the city's.
    zone: ZoneInfo
    @property
    def tokenize(self) -> Callable[[str], list[str]]:
        """The words a text is searched by (the served city's segmenter): what the store indexed its cases with."""
        ...

    def upsert(self, cases: Iterable[Case], writer: Writer = SYSTEM) -> UpsertResult:
        """Insert or update by case id; the same case twice changes nothing.

        The rules of :mod:`hotline.store.rules` hold: a case of another source
        is refused (:class:`~hotline.errors.Conflict`, the whole batch) unless
        the writer is privileged, no write clears a label, an agent's confirmed
        label survives, and content changes are logged (:meth:`case_history`).
        """
        ...

    def get(self, case_id: str) -> Case: ...

    def search(self, query: CaseQuery) -> Page: ...

    def iter_cases(self, query: CaseQuery | None = None, batch: int = 1000) -> Iterator[Case]:
        """Every matching case in time order, without paging limits."""
        ...

    def set_label(
        self,
        case_id: str,
        source: LabelSource,
        category: Category | None = None,
        departments: tuple[str, ...] | None = None,
    ) -> Case:
        """Change a case's labels and record the change in the audit log."""
        ...

    def label_history(self, case_id: str) -> list[LabelChange]: ...

    def case_history(self, case_id: str) -> list[ContentChange]:
        """Who changed the case's content, which fields, before and after, oldest first (its creator is its owner)."""
        ...

    def summary(self) -> Summary: ...

    def write_mark(self) -> int:
        """A number that changes whenever any process writes a case (for caches of views)."""
        ...

    def get_many(self, case_ids: Sequence[str]) -> list[Case]:
        """The stored cases among ``case_ids``, in one round trip (those not stored are left out)."""
        ...

    def case_tokens(self, case_ids: Sequence[str]) -> dict[str, list[str]]:
        """The words of each stored case among ``case_ids``, as segmented when it was written (what the daily
        term counts hold): a view that weighs its calls' words against those counts reads them instead of
        segmenting the calls again (0.13 s for a 92-day work list's 1,500 calls)."""
        ...

    def counts(self, query: CaseQuery | None = None, by_street: bool = False) -> list[CellCount]:
        """Daily counts per district (and street) and level-2 category over the query's days, from the
        aggregates kept on write.

        Every write changes them in its own transaction, so the supervisors'
        views read a few thousand rows, never every case of their range. Only
        the time range (and the district) of ``query`` applies.
        """
        ...

    def count_series(self, query: CaseQuery | None = None, by_street: bool = False) -> list[CellSeries]:
        """What :meth:`counts` answers, one :class:`CellSeries` per district (street) and category, in their
        order: the columns a view's table is made of, without a row object per day."""
        ...

    def rebuild_aggregates(self) -> int:
        """Recompute the aggregates from the cases (after a restore, or to check them); returns the rows kept."""
        ...

    def documents(self, start: date, end: date) -> int:
        """How many cases came in from ``start`` to ``end`` (from the daily counts)."""
        ...

    def term_counts(self, start: date, end: date, terms: Sequence[str] | None = None) -> dict[str, int]:
        """How many cases of the days use each word (of ``terms``, or all), from the daily term counts kept on write."""
        ...

    def day_tokens(self, day: date) -> list[tuple[str, list[str]]]:
        """(case id, tokens) of one day's cases in time order."""
        ...

    def assign_events(self, work: Callable[..., tuple[list[dict[str, Any]], dict[str, str]]],
                      limit: int = 1000) -> int:
        """Hand the oldest cases waiting for an event to ``work`` and keep what it decides, in one transaction
        (see :class:`hotline.analytics.events.EventAssigner`); one assigner at a time. Returns the cases taken."""
        ...

    def event_backlog(self) -> int:
        """Cases still waiting for their event."""
        ...

    def events(self, start: date, end: date, min_size: int = 3,
               limit: int = 20) -> list[tuple[dict[str, Any], list[str]]]:
        """The largest kept events active in the days, each with its cases' ids."""
        ...

    def cell_events(self, district: str, category: str, start: date, end: date,
                    min_size: int = 3) -> list[dict[str, Any]]:
        """The kept events of ``min_size`` calls or more active in the days in one district and (cell) category
        ("" for none), without their cases' ids: what a surge is linked to."""
        ...

    def span(self, until: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        """When the first and the last case came in (the last no later than ``until``, when given)."""
        ...

    def delete(self, case_ids: Sequence[str]) -> int: ...

    def set_work_state(self, change: WorkState, expected: str | None = None) -> WorkState:
        """Keep a supervisor's decision on a work-list item and log it, in one transaction; returns the log
        entry (with the state it replaced). With ``expected``, a :class:`Conflict` when the item's state is no
        longer that one (two supervisors deciding at once: the later no longer overwrites silently)."""
        ...

    def work_states(self, since: date) -> list[WorkState]:
        """The decisions on items whose days reach ``since`` or later."""
        ...

    def work_history(self, item_id: str) -> list[WorkState]:
        """Every decision on one item, oldest first."""
        ...

    def pending(self, limit: int = 1000) -> list[tuple[int, str, str]]:
        """The search index's outbox: (sequence, case id, 'index' or 'delete'), oldest first.

        Every write queues its case in the same transaction, so a search index
        that was down catches up from here and nothing is lost. A store that
        several workers drain hands each entry to one of them at a time (a
        lease), and all entries of one case to the same one.
        """
        ...

    def release(self, seqs: Sequence[int]) -> None:
        """Give entries from :meth:`pending` back unindexed (the index failed), for the next worker to take."""
        ...

    def pending_count(self) -> int: ...

    def acknowledge(self, seqs: Sequence[int]) -> None: ...

    def close(self) -> None: ...
