"""What both SQL backends do the same way, above their drivers and placeholders: writes under the rules,
label changes, the reads, the audit logs, the aggregates and the tokens."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from datetime import date, datetime
from typing import Any, TypeVar

from hotline.case import Case, Category, LabelKind, LabelSource
from hotline.errors import InvalidInput, NotFound
from hotline.store.base import CaseQuery, CellCount, ContentChange, LabelChange, Summary, UpsertResult
from hotline.store.rows import (
    CASE_COLUMNS, LABEL_COLUMNS, READ_COLUMNS, as_time, case_from_row, plan_upsert, relabel, split_departments,
)
from hotline.store.rules import SYSTEM, Writer
from hotline.times import format_time

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Cases written in one transaction.
UPSERT_BATCH = 500
_LABEL_LOG_COLUMNS = ("case_id", "at", "kind", "by", "category", "departments", "previous_category",
                      "previous_departments")

#: A case's columns as :func:`~hotline.store.rows.case_from_row` reads them, from ``cases c``.
SELECT_CASES = "SELECT " + ", ".join(f"c.{col}" for col in READ_COLUMNS) + " FROM cases c"


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

    _tokenize: Callable[[str], list[str]] | None = None

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

    def _ids_clause(self, ids: list[str]) -> tuple[str, list[Any]]:
        """(condition, params) matching ``c.id`` against ``ids``."""
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
        rows = db.execute(SELECT_CASES.replace("SELECT ", "SELECT c.owner, c.content_hash, ", 1)
                          + f" WHERE {condition} ORDER BY c.id{self.row_lock}", params).fetchall()
        existing = {row[2]: (row[0], row[1], case_from_row(row[2:])) for row in rows}
        plan = plan_upsert(batch, existing, writer, self.tokenize)
        self._order_inserts(plan.inserts)
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
            after, fields, entry = relabel(case_from_row(row), source, category, departments)
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
                source=LabelSource(LabelKind(r[1]), r[2], as_time(r[3])),  # type: ignore[arg-type]
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

    def counts(self, query: CaseQuery | None = None) -> list[CellCount]:
        """Daily counts per district and level-2 category, from ``daily_cells`` (kept by triggers on ``cases``)."""
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
        rows = self._read(f"SELECT day, district, category, n FROM daily_cells WHERE {' AND '.join(clauses)} "
                          "ORDER BY 1, 2, 3", params)
        days: dict[Any, date] = {}  # a few hundred rows share each day: parse it once
        return [CellCount(days.get(d) or days.setdefault(d, d if isinstance(d, date) else date.fromisoformat(d)),
                          district, category, int(n)) for d, district, category, n in rows]

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
            return db.execute("SELECT count(*) FROM daily_counts").fetchone()[0]

        return self._transaction(rebuild)

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
