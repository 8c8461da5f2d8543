"""What both SQL backends do the same way, above their drivers and placeholders: writes under the rules,
label changes, the reads, the audit logs, the aggregates and the tokens."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np

from hotline.case import Case, Category, LabelKind, LabelSource
from hotline.errors import Conflict, InvalidInput, NotFound
from hotline.store.base import (
    WORK_STATES,
    CaseQuery,
    CellCount,
    CellSeries,
    ContentChange,
    LabelChange,
    Summary,
    UpsertResult,
    WorkState,
)
from hotline.store.rows import (
    CASE_COLUMNS,
    EVENT_COLUMNS,
    LABEL_COLUMNS,
    READ_COLUMNS,
    as_time,
    case_from_row,
    plan_upsert,
    relabel,
    split_departments,
    term_deltas,
)
from hotline.store.rules import SYSTEM, Writer
from hotline.times import DEFAULT_ZONE, city_now, format_time, shifted

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Cases written in one transaction.
UPSERT_BATCH = 500
_LABEL_LOG_COLUMNS = ("case_id", "at", "kind", "by", "category", "departments", "previous_category",
                      "previous_departments")

#: A case's columns as :func:`~hotline.store.rows.case_from_row` reads them, from ``cases c``.
SELECT_CASES = "SELECT " + ", ".join(f"c.{col}" for col in READ_COLUMNS) + " FROM cases c"


def day_bounds(first: date, last: date) -> tuple[str, str]:
    """The start of ``first`` and of the day after ``last``, as the stores keep times: ``>=`` and ``<``."""
    after = shifted(last, timedelta(days=1))
    return datetime.combine(first, time()).isoformat(sep=" "), datetime.combine(after, time()).isoformat(sep=" ")


class SQLStore:
    """Writes under the rules, reads, audit logs and aggregates, over a backend's ``_transaction``, ``_read``,
    ``_ids_clause`` and ``where``."""

    #: The driver's parameter placeholder: ``?`` (sqlite3) or ``%s`` (psycopg); named ones follow it.
    placeholder = "?"
    #: What locks the rows a write reads first (PostgreSQL: other writers wait; SQLite's writer is alone).
    row_lock = ""
    #: How the content log's JSON text becomes the column's type.
    json_cast = ""
    #: The day a case was received, in SQL over ``cases``.
    day_of_case = "substr(received_at, 1, 10)"
    #: What keeps writers out while the aggregates are rebuilt (SQLite's write transaction already does).
    rebuild_lock = ""
    #: An aggregate's ``day`` as ``date.toordinal`` (SQLite keeps ISO text: Julian day 1721424.5 is ordinal 0).
    day_ordinal = "CAST(julianday(day) - 1721424.5 AS INTEGER)"
    #: The values of a group joined by commas, ``{}`` the value.
    joined = "group_concat({}, ',')"

    _tokenize: Callable[[str], list[str]] | None = None
    #: The city's zone: every time the store stamps (updated_at, the audits, decisions) is the city's, as
    #: ``received_at`` is, whatever the host's zone; the entry points set it from the settings.
    zone: ZoneInfo = ZoneInfo(DEFAULT_ZONE)

    def now(self) -> datetime:
        return city_now(self.zone)

    @property
    def tokenize(self) -> Callable[[str], list[str]]:
        """The words of a text as the store keeps and matches them."""
        if self._tokenize is None:  # whoever opened the store gave none: the served city's default segmenter
            from hotline.text.segment import default_segmenter

            self._tokenize = default_segmenter().tokens
        return self._tokenize

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _transaction(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` in one write transaction (run again where the backend loses races)."""
        raise NotImplementedError

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        """(condition, params) matching ``column`` against ``values``."""
        raise NotImplementedError

    def _ids_clause(self, ids: list[str]) -> tuple[str, list[Any]]:
        return self._in("c.id", ids)

    def _add_terms(self, db: Any, deltas: dict[tuple[str, str], int]) -> None:
        """Add ``{(day, word): change}`` to the daily term counts (in the key order given, for the row locks)."""
        if deltas:
            with closing(db.cursor()) as cur:
                cur.executemany("INSERT INTO daily_terms (day, term, n) VALUES (?, ?, ?) "
                                "ON CONFLICT (day, term) DO UPDATE SET n = n + excluded.n",
                                [(day, word, n) for (day, word), n in deltas.items()])

    def _rebuild_terms(self, db: Any) -> None:
        """Fill the emptied daily term counts from every case's stored tokens."""
        raise NotImplementedError

    def _order_inserts(self, inserts: list[dict[str, Any]]) -> None:
        """Put a batch's new rows in the order the backend wants them written (as given, here)."""

    def _named(self, name: str) -> str:
        return f":{name}" if self.placeholder == "?" else f"%({name})s"

    # ------------------------------------------------------------ writes
    def upsert(self, cases: Iterable[Case], writer: Writer = SYSTEM) -> UpsertResult:
        result = UpsertResult()
        batch: list[Case] = []
        for case in cases:
            batch.append(case)
            if len(batch) >= UPSERT_BATCH:
                result += self._transaction(lambda db, b=batch: self._upsert_batch(db, b, writer))  # type: ignore[misc]
                batch = []
        if batch:
            result += self._transaction(lambda db: self._upsert_batch(db, batch, writer))
        return result

    def _upsert_batch(self, db: Any, batch: list[Case], writer: Writer) -> UpsertResult:
        ids = sorted({case.id for case in batch})  # locked in one order, so two writers cannot deadlock
        condition, params = self._ids_clause(ids)
        rows = db.execute(SELECT_CASES.replace("SELECT ", "SELECT c.owner, c.content_hash, c.tokens, ", 1)
                          + f" WHERE {condition} ORDER BY c.id{self.row_lock}", params).fetchall()
        existing = {row[3]: (row[0], row[1], case_from_row(row[3:])) for row in rows}
        plan = plan_upsert(batch, existing, writer, self.tokenize, now=format_time(self.now()))
        self._order_inserts(plan.inserts)
        stored = {row[3]: (existing[row[3]][2].received_at.date().isoformat(), row[2]) for row in rows}
        deltas = term_deltas((stored[r["id"]] for r in plan.updates),
                             ((r["received_at"][:10], r["tokens"]) for r in (*plan.inserts, *plan.updates)))
        n = self._named
        with closing(db.cursor()) as cur:
            if plan.inserts:
                cur.executemany(f"INSERT INTO cases ({', '.join(CASE_COLUMNS)}, owner) "
                                f"VALUES ({', '.join(n(c) for c in CASE_COLUMNS)}, {n('owner')})", plan.inserts)
            if plan.updates:
                cur.executemany(f"UPDATE cases SET {', '.join(f'{c} = {n(c)}' for c in CASE_COLUMNS if c != 'id')} "
                                f"WHERE id = {n('id')}", plan.updates)
            if plan.case_log:
                cur.executemany('INSERT INTO case_log (case_id, "at", "by", changes) '
                                f"VALUES ({n('case_id')}, {n('at')}, {n('by')}, {n('changes')}{self.json_cast})",
                                plan.case_log)
            if plan.label_log:
                cur.executemany(self._insert_label_log, plan.label_log)
        self._add_terms(db, deltas)
        return UpsertResult(inserted=len(plan.inserts), updated=len(plan.updates), unchanged=plan.unchanged)

    @property
    def _insert_label_log(self) -> str:
        quoted = ", ".join(f'"{c}"' for c in _LABEL_LOG_COLUMNS)  # "at" and "by" are keywords in PostgreSQL
        return f"INSERT INTO label_log ({quoted}) VALUES ({', '.join(self._named(c) for c in _LABEL_LOG_COLUMNS)})"

    def set_label(
        self,
        case_id: str,
        source: LabelSource,
        category: Category | None = None,
        departments: tuple[str, ...] | None = None,
    ) -> Case:
        if category is None and departments is None:
            raise InvalidInput("a label change needs a category or departments")

        def change(db: Any) -> Case:
            row = db.execute(f"{SELECT_CASES} WHERE c.id = {self.placeholder}{self.row_lock}", (case_id,)).fetchone()
            if row is None:
                raise NotFound(f"no case with id {case_id!r}")
            after, fields, entry = relabel(case_from_row(row), source, category, departments, self.now())
            db.execute(f"UPDATE cases SET {', '.join(f'{c} = {self._named(c)}' for c in LABEL_COLUMNS)} "
                       f"WHERE id = {self._named('id')}", fields)
            db.execute(self._insert_label_log, entry)
            return after

        after = self._transaction(change)
        log.info("label of case %s set by %s (%s)", case_id, source.by, source.kind.value)
        return after

    def where(self, query: CaseQuery) -> tuple[str, str, list[Any]]:
        """(FROM clause, WHERE clause, params) for a query."""
        raise NotImplementedError

    def get(self, case_id: str) -> Case:
        rows = self._read(f"{SELECT_CASES} WHERE c.id = {self.placeholder}", (case_id,))
        if not rows:
            raise NotFound(f"no case with id {case_id!r}")
        return case_from_row(rows[0])

    def case_history(self, case_id: str) -> list[ContentChange]:
        rows = self._read(f'SELECT case_id, "at", "by", changes FROM case_log WHERE case_id = {self.placeholder} '
                          "ORDER BY seq", (case_id,))
        return [ContentChange(r[0], as_time(r[1]), r[2], r[3] if isinstance(r[3], dict) else json.loads(r[3]))  # type: ignore[arg-type]
                for r in rows]

    def label_history(self, case_id: str) -> list[LabelChange]:
        rows = self._read(
            'SELECT case_id, kind, "by", "at", category, departments, previous_category, previous_departments '
            f"FROM label_log WHERE case_id = {self.placeholder} ORDER BY seq",
            (case_id,),
        )
        return [
            LabelChange(
                case_id=r[0],
                source=LabelSource(LabelKind(r[1]), r[2], as_time(r[3])),
                category=Category.parse(r[4]) if r[4] else None,
                departments=split_departments(r[5] or ""),
                previous_category=Category.parse(r[6]) if r[6] else None,
                previous_departments=split_departments(r[7] or ""),
            )
            for r in rows
        ]

    def iter_cases(self, query: CaseQuery | None = None, batch: int = 1000) -> Iterator[Case]:
        """Every matching case in time order, a keyset page at a time (no OFFSET that grows with the range)."""
        source, where, params = self.where(query or CaseQuery())
        select = SELECT_CASES.replace("FROM cases c", f"FROM {source}")
        p = self.placeholder
        last: tuple[Any, Any] = (format_time(datetime.min), "")
        while True:
            keyset = f"(c.received_at, c.id) > ({p}, {p})"
            clause = f"{where} AND {keyset}" if where else f" WHERE {keyset}"
            rows = self._read(f"{select}{clause} ORDER BY c.received_at, c.id LIMIT {p}", [*params, *last, batch])
            if not rows:
                return
            yield from (case_from_row(r) for r in rows)
            last = (rows[-1][1], rows[-1][0])

    def span(self, until: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        """When the first and the last case came in (two index lookups)."""
        where, params = ("", []) if until is None else (f" WHERE received_at <= {self.placeholder}", [format_time(until)])
        first, last = self._read(f"SELECT min(received_at), max(received_at) FROM cases{where}", params)[0]
        return as_time(first), as_time(last)

    #: The last number the outbox handed out: every insert, update, relabel and delete takes the next one.
    write_mark_sql = ""

    def write_mark(self) -> int:
        """A number that changes whenever any process writes a case (the outbox's sequence): what a cache of a
        view compares to know whether the store changed since."""
        rows = self._read(self.write_mark_sql)
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def get_many(self, case_ids: Sequence[str]) -> list[Case]:
        """The stored cases among ``case_ids``, in one query (those not stored are left out)."""
        if not case_ids:
            return []
        condition, params = self._ids_clause(sorted(set(case_ids)))
        return [case_from_row(r) for r in self._read(f"{SELECT_CASES} WHERE {condition}", params)]

    def case_tokens(self, case_ids: Sequence[str]) -> dict[str, list[str]]:
        """The words stored with each case among ``case_ids`` (segmented once, when it was written)."""
        if not case_ids:
            return {}
        condition, params = self._ids_clause(sorted(set(case_ids)))
        return {case_id: tokens.split() for case_id, tokens in
                self._read(f"SELECT c.id, c.tokens FROM cases c WHERE {condition}", params)}

    def counts(self, query: CaseQuery | None = None, by_street: bool = False) -> list[CellCount]:
        """Daily counts per district (and street) and level-2 category, from ``daily_cells`` (``daily_counts``),
        kept by triggers on ``cases``."""
        table, street, where, params = self._count_rows(query, by_street)
        rows = self._read(f"SELECT day, district, category, n, {street} FROM {table} WHERE {where} ORDER BY 1, 2, 5, 3",
                          params)
        days: dict[Any, date] = {}  # a few hundred rows share each day: parse it once
        return [CellCount(days.get(d) or days.setdefault(d, d if isinstance(d, date) else date.fromisoformat(d)),
                          district, category, int(n), s) for d, district, category, n, s in rows]

    def count_series(self, query: CaseQuery | None = None, by_street: bool = False) -> list[CellSeries]:
        """The same rows grouped by the database into one row per cell, each cell's days and counts joined
        into text that numpy parses: a thousand rows to fetch instead of a hundred thousand. Both
        aggregates of a group read its rows in the same order, so the two columns stay paired."""
        table, street, where, params = self._count_rows(query, by_street)
        rows = self._read(f"SELECT district, category, {street}, {self.joined.format(self.day_ordinal)}, "
                          f"{self.joined.format('n')} FROM {table} WHERE {where} GROUP BY 1, 2, 3 ORDER BY 1, 3, 2",
                          params)
        return [CellSeries(district, category, s, np.fromstring(days, dtype=np.int64, sep=","),
                           np.fromstring(ns, dtype=np.int64, sep=",")) for district, category, s, days, ns in rows]

    def _count_rows(self, query: CaseQuery | None, by_street: bool) -> tuple[str, str, str, list[Any]]:
        """The aggregate table, its street column, the filter and its parameters of a counts read."""
        query = query or CaseQuery()
        p = self.placeholder
        clauses, params = [], []
        if query.start:
            clauses.append(f"day >= {p}")
            params.append(query.start.date().isoformat())
        if query.end:
            clauses.append(f"day <= {p}")
            params.append(query.end.date().isoformat())
        if query.district:
            clauses.append(f"district = {p}")
            params.append(query.district)
        clauses.append("n > 0")
        table, street = ("daily_counts", "street") if by_street else ("daily_cells", "''")
        return table, street, " AND ".join(clauses), params

    def rebuild_aggregates(self) -> int:
        def rebuild(db: Any) -> int:
            if self.rebuild_lock:
                db.execute(self.rebuild_lock)
            db.execute("DELETE FROM daily_counts")
            db.execute(f"INSERT INTO daily_counts (day, district, street, category, n) "
                       f"SELECT {self.day_of_case}, district, street, coalesce(category_l2, category_l1, ''), count(*) "
                       "FROM cases GROUP BY 1, 2, 3, 4")
            db.execute("DELETE FROM daily_cells")
            db.execute("INSERT INTO daily_cells (day, district, category, n) "
                       "SELECT day, district, category, sum(n) FROM daily_counts GROUP BY 1, 2, 3")
            db.execute("DELETE FROM daily_terms")
            self._rebuild_terms(db)
            for table in ("events", "case_events", "event_queue"):  # every case waits for its event again
                db.execute(f"DELETE FROM {table}")
            db.execute("INSERT INTO event_queue (case_id, received_at) SELECT id, received_at FROM cases")
            return db.execute("SELECT count(*) FROM daily_counts").fetchone()[0]

        return self._transaction(rebuild)

    def delete(self, case_ids: Sequence[str]) -> int:
        """Remove cases (their removal from the index is queued by the outbox trigger); returns how many existed."""
        ids = sorted(set(case_ids))
        if not ids:
            return 0

        def remove(db: Any) -> int:
            condition, params = self._ids_clause(ids)
            rows = db.execute(f"SELECT c.id, c.received_at, c.tokens FROM cases c WHERE {condition} "
                              f"ORDER BY c.id{self.row_lock}", params).fetchall()
            if rows:
                with closing(db.cursor()) as cur:
                    cur.executemany(f"DELETE FROM cases WHERE id = {self.placeholder}", [(r[0],) for r in rows])
                self._add_terms(db, term_deltas(((as_time(r[1]).date().isoformat(), r[2]) for r in rows), ()))  # type: ignore[union-attr]
            return len(rows)

        return self._transaction(remove)

    # ------------------------------------------------------------ terms
    def documents(self, start: date, end: date) -> int:
        """How many cases came in from ``start`` to ``end`` (from the daily counts)."""
        p = self.placeholder
        return int(self._read(f"SELECT coalesce(sum(n), 0) FROM daily_cells WHERE day >= {p} AND day <= {p}",
                              (start.isoformat(), end.isoformat()))[0][0])

    def term_counts(self, start: date, end: date, terms: Sequence[str] | None = None) -> dict[str, int]:
        """How many cases from ``start`` to ``end`` use each word (of ``terms``, or every word), from the daily
        term counts kept on write."""
        p = self.placeholder
        clause, params = "", list[Any]()
        if terms is not None:
            if not terms:
                return {}
            clause, params = self._in("term", sorted(set(terms)))
            clause = f" AND {clause}"
        rows = self._read(f"SELECT term, sum(n) FROM daily_terms WHERE day >= {p} AND day <= {p}{clause} "
                          "GROUP BY term HAVING sum(n) > 0", [start.isoformat(), end.isoformat(), *params])
        return {term: int(n) for term, n in rows}

    def day_tokens(self, day: date) -> list[tuple[str, list[str]]]:
        """(case id, tokens) of the cases of one day, in time order: a day's worth, whatever the store holds."""
        p = self.placeholder
        rows = self._read(f"SELECT id, tokens FROM cases WHERE received_at >= {p} AND received_at < {p} "
                          "ORDER BY received_at, id",
                          day_bounds(day, day))
        return [(case_id, tokens.split()) for case_id, tokens in rows]

    # ------------------------------------------------------------ events
    #: What keeps a second event assigner out while one works (PostgreSQL: an advisory lock it tries for).
    events_lock = ""

    def assign_events(self, work: Callable[[list[Case], Callable[[datetime, datetime], list[dict[str, Any]]]],
                                           tuple[list[dict[str, Any]], dict[str, str]]],
                      limit: int = 1000) -> int:
        """Give the oldest ``limit`` cases waiting for an event theirs, in one transaction.

        ``work(cases, load)`` decides: ``load(since, until)`` reads the events
        active in that time range (rows of :data:`EVENT_COLUMNS`), and it
        returns the events it changed or created and ``{case id: event id}``.
        One assigner works at a time (the others find nothing to do), so events
        grow in the order their cases came in. Returns how many cases were taken.
        """
        p = self.placeholder

        def run(db: Any) -> int:
            if self.events_lock and not db.execute(self.events_lock).fetchone()[0]:
                return 0
            queued = [r[0] for r in db.execute(f"SELECT case_id FROM event_queue ORDER BY received_at, case_id "
                                               f"LIMIT {p}", (limit,)).fetchall()]
            if not queued:
                return 0
            condition, params = self._ids_clause(sorted(queued))
            cases = [case_from_row(r) for r in db.execute(f"{SELECT_CASES} WHERE {condition}", params).fetchall()]

            def load(since: datetime, until: datetime) -> list[dict[str, Any]]:
                rows = db.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE last_seen >= {p} "
                                  f"AND first_seen <= {p}", (format_time(since), format_time(until))).fetchall()
                return [self._event_row(r) for r in rows]

            events, assigned = work(cases, load)
            n = self._named
            cur = db.cursor()
            if events:
                cur.executemany(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                               f"VALUES ({', '.join(n(c) for c in EVENT_COLUMNS)}) ON CONFLICT (id) DO UPDATE SET "
                               + ", ".join(f"{c} = excluded.{c}" for c in EVENT_COLUMNS[1:]),
                               [{**e, "first_seen": format_time(e["first_seen"]), "last_seen": format_time(e["last_seen"])}
                                for e in sorted(events, key=lambda e: e["id"])])
            if assigned:
                cur.executemany(f"INSERT INTO case_events (case_id, event_id) VALUES ({p}, {p}) "
                               "ON CONFLICT (case_id) DO UPDATE SET event_id = excluded.event_id",
                               sorted(assigned.items()))
            cur.close()
            condition, params = self._in("case_id", sorted(queued))
            db.execute(f"DELETE FROM event_queue WHERE {condition}", params)
            return len(queued)

        return self._transaction(run)

    @staticmethod
    def _event_row(row: Sequence[Any]) -> dict[str, Any]:
        event = dict(zip(EVENT_COLUMNS, row, strict=True))
        event["first_seen"], event["last_seen"] = as_time(event["first_seen"]), as_time(event["last_seen"])
        return event

    def event_backlog(self) -> int:
        """Cases still waiting for their event."""
        return int(self._read("SELECT count(*) FROM event_queue")[0][0])

    def events(self, start: date, end: date, min_size: int = 3,
               limit: int = 20) -> list[tuple[dict[str, Any], list[str]]]:
        """The largest events active from ``start`` to ``end`` (rows of :data:`EVENT_COLUMNS`), each with its
        cases' ids in time order: the events kept on write, not a clustering of the period. Surges are linked
        to the events of their own cells (:meth:`cell_events`), not to these."""
        p = self.placeholder
        sized = " AND size >= 2" if min_size >= 2 else ""  # the partial index of events that are more than one call
        rows = self._read(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE last_seen >= {p} AND first_seen < {p} "
                          f"AND size >= {p}{sized} ORDER BY size DESC, first_seen, id LIMIT {p}",
                          (*day_bounds(start, end), min_size, limit))
        events = [self._event_row(r) for r in rows]
        if not events:
            return []
        condition, params = self._in("ce.event_id", [e["id"] for e in events])
        ids_of: dict[str, list[str]] = {e["id"]: [] for e in events}
        for event_id, case_id in self._read(f"SELECT ce.event_id, c.id FROM case_events ce JOIN cases c ON c.id = ce.case_id "
                                            f"WHERE {condition} ORDER BY c.received_at, c.id", params):
            ids_of[event_id].append(case_id)
        return [(e, ids_of[e["id"]]) for e in events]

    def cell_events(self, district: str, category: str, start: date, end: date,
                    min_size: int = 3) -> list[dict[str, Any]]:
        """Read through ``events_cell``: a surge's events, however small beside the city's largest (at
        2,000,000 cases a year 92 days hold 40,761 events of 3 calls or more; the thousand largest, what
        surges were linked to before, have 6 or more)."""
        p = self.placeholder
        sized = " AND size >= 2" if min_size >= 2 else ""  # the partial index's condition
        rows = self._read(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE district = {p} AND category = {p} "
                          f"AND last_seen >= {p} AND first_seen < {p} AND size >= {p}{sized} "
                          f"ORDER BY size DESC, first_seen, id",
                          (district, category, *day_bounds(start, end), min_size))
        return [self._event_row(r) for r in rows]

    # ------------------------------------------------------------ the work list's decisions
    _WORK_COLUMNS = ("item_id", "kind", "area", "category", "first_day", "last_day", "state", "department", "note",
                     '"by"', '"at"')

    def set_work_state(self, change: WorkState, expected: str | None = None) -> WorkState:
        if change.state not in WORK_STATES:
            raise InvalidInput(f"unknown state {change.state!r}; use one of {', '.join(WORK_STATES)}")
        p = self.placeholder
        values = (change.item_id, change.kind, change.area, change.category, change.first_day.isoformat(),
                  change.last_day.isoformat(), change.state, change.department, change.note, change.by,
                  format_time(change.at))
        columns = ", ".join(self._WORK_COLUMNS)
        marks = ", ".join([p] * len(values))
        updates = ", ".join(f"{c} = excluded.{c}" for c in self._WORK_COLUMNS[1:])

        def keep(db: Any) -> WorkState:
            row = db.execute(f"SELECT state FROM work_items WHERE item_id = {p}{self.row_lock}", (change.item_id,)).fetchone()
            previous = row[0] if row else "new"
            if expected is not None and previous != expected:  # another supervisor decided since this one looked
                raise Conflict(f"work-list item {change.item_id} is now {previous!r}, not {expected!r}: "
                               "another decision was made meanwhile; reload and decide again")
            db.execute(f"INSERT INTO work_items ({columns}) VALUES ({marks}) ON CONFLICT (item_id) DO UPDATE SET {updates}",
                       values)
            db.execute(f'INSERT INTO work_log (item_id, state, department, note, "by", "at", previous) '
                       f"VALUES ({', '.join([p] * 7)})", (values[0], *values[6:], previous))
            return WorkState(change.item_id, change.kind, change.area, change.category, change.first_day,
                             change.last_day, change.state, change.department, change.note, change.by,
                             as_time(values[-1]), previous)  # type: ignore[arg-type]

        entry = self._transaction(keep)
        log.info("work item %s set to %s by %s", change.item_id, change.state, change.by)
        return entry

    @staticmethod
    def _work_state(row: Sequence[Any]) -> WorkState:
        day = lambda v: v if isinstance(v, date) else date.fromisoformat(str(v))  # noqa: E731  # PostgreSQL: a date
        return WorkState(row[0], row[1], row[2], row[3], day(row[4]), day(row[5]), row[6], row[7], row[8], row[9],
                         as_time(row[10]), row[11] if len(row) > 11 else "")  # type: ignore[arg-type]

    def work_states(self, since: date) -> list[WorkState]:
        rows = self._read(f"SELECT {', '.join(self._WORK_COLUMNS)} FROM work_items WHERE last_day >= {self.placeholder} "
                          'ORDER BY "at"', (since.isoformat(),))
        return [self._work_state(r) for r in rows]

    def work_history(self, item_id: str) -> list[WorkState]:
        item = ", ".join(f"i.{c}" for c in self._WORK_COLUMNS[:6])  # what the item is now, beside each decision
        rows = self._read(f'SELECT {item}, l.state, l.department, l.note, l."by", l."at", l.previous FROM work_log l '
                          f"JOIN work_items i ON i.item_id = l.item_id WHERE l.item_id = {self.placeholder} "
                          "ORDER BY l.seq", (item_id,))
        return [self._work_state(r) for r in rows]

    def summary(self) -> Summary:
        summary = Summary()
        total, first, last = self._read("SELECT count(*), min(received_at), max(received_at) FROM cases")[0]
        summary.total, summary.first, summary.last = total, as_time(first), as_time(last)
        for attr, column in (("by_category", "coalesce(category_l1, '(未分类)')"), ("by_district", "district"),
                             ("by_channel", "channel"), ("by_status", "status")):
            rows = self._read(f"SELECT {column}, count(*) FROM cases GROUP BY 1 ORDER BY 2 DESC")
            setattr(summary, attr, {(k or "(未知)"): n for k, n in rows})
        summary.labeled, summary.confirmed = self._read(
            "SELECT count(category_kind), count(*) FILTER (WHERE category_kind = 'confirmed') FROM cases"
        )[0]
        return summary
