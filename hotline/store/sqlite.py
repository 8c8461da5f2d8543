"""The embedded store: one SQLite file in WAL mode, with FTS5 over jieba tokens.

WAL lets the service read while an import writes. Text search uses an FTS5
table over the same jieba tokens the models see (space-joined, split again by
FTS5's ``unicode61`` tokenizer), so a query word matches a case word exactly.
The schema is versioned with ``PRAGMA user_version`` and migrated forward on
open; a file from a newer version is refused rather than damaged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from hotline.case import (
    Area, Case, Category, Channel, LabelKind, LabelSource, Location, Status, format_time, parse_time,
)
from hotline.errors import InvalidInput, NotFound, ReadOnly, Unavailable
from hotline.store.base import CaseQuery, ContentChange, LabelChange, Page, Summary, UpsertResult
from hotline.store.rules import SYSTEM, Writer, check_owner, content_changes, merge_labels

log = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    # 1: cases, their full-text index and the label audit log.
    """
    CREATE TABLE cases (
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        received_at TEXT NOT NULL,
        channel TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL,
        transcript TEXT NOT NULL DEFAULT '',
        caller TEXT NOT NULL DEFAULT '',
        district TEXT NOT NULL DEFAULT '',
        street TEXT NOT NULL DEFAULT '',
        address TEXT NOT NULL DEFAULT '',
        lat REAL,
        lon REAL,
        category_l1 TEXT,
        category_l2 TEXT,
        category_l3 TEXT,
        category_kind TEXT,
        category_by TEXT,
        category_at TEXT,
        departments TEXT NOT NULL DEFAULT '',
        departments_kind TEXT,
        departments_by TEXT,
        departments_at TEXT,
        status TEXT NOT NULL,
        event_id TEXT,
        tokens TEXT NOT NULL DEFAULT '',
        content_hash TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX cases_received ON cases(received_at);
    CREATE INDEX cases_district ON cases(district, received_at);
    CREATE INDEX cases_category ON cases(category_l2, received_at);
    CREATE INDEX cases_category_l1 ON cases(category_l1, received_at);
    CREATE INDEX cases_status ON cases(status);
    CREATE INDEX cases_event ON cases(event_id) WHERE event_id IS NOT NULL;
    CREATE VIRTUAL TABLE cases_fts USING fts5(tokens, content='cases', content_rowid='rowid', tokenize='unicode61');
    CREATE TRIGGER cases_ai AFTER INSERT ON cases BEGIN
        INSERT INTO cases_fts(rowid, tokens) VALUES (new.rowid, new.tokens);
    END;
    CREATE TRIGGER cases_ad AFTER DELETE ON cases BEGIN
        INSERT INTO cases_fts(cases_fts, rowid, tokens) VALUES ('delete', old.rowid, old.tokens);
    END;
    CREATE TRIGGER cases_au AFTER UPDATE OF tokens ON cases BEGIN
        INSERT INTO cases_fts(cases_fts, rowid, tokens) VALUES ('delete', old.rowid, old.tokens);
        INSERT INTO cases_fts(rowid, tokens) VALUES (new.rowid, new.tokens);
    END;
    CREATE TABLE label_log (
        seq INTEGER PRIMARY KEY,
        case_id TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        by TEXT NOT NULL,
        category TEXT,
        departments TEXT,
        previous_category TEXT,
        previous_departments TEXT
    );
    CREATE INDEX label_log_case ON label_log(case_id, seq);
    """,
    # 2: the transactional outbox of the search index. Every write of a case
    # queues its id in the same transaction, so an index that was down catches
    # up from here and nothing the store acknowledged is missing from search.
    """
    CREATE TABLE index_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id TEXT NOT NULL,
        op TEXT NOT NULL DEFAULT 'index'
    );
    CREATE TRIGGER cases_outbox_ai AFTER INSERT ON cases BEGIN
        INSERT INTO index_outbox(case_id, op) VALUES (new.id, 'index');
    END;
    CREATE TRIGGER cases_outbox_au AFTER UPDATE OF content_hash ON cases BEGIN
        INSERT INTO index_outbox(case_id, op) VALUES (new.id, 'index');
    END;
    CREATE TRIGGER cases_outbox_ad AFTER DELETE ON cases BEGIN
        INSERT INTO index_outbox(case_id, op) VALUES (old.id, 'delete');
    END;
    INSERT INTO index_outbox(case_id, op) SELECT id, 'index' FROM cases ORDER BY rowid;
    CREATE VIRTUAL TABLE cases_vocab USING fts5vocab('cases_fts', 'row');
    """,
    # 3: each case's owner (the source that created it; '' for cases stored before) and the content audit log.
    """
    ALTER TABLE cases ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    CREATE TABLE case_log (
        seq INTEGER PRIMARY KEY,
        case_id TEXT NOT NULL,
        at TEXT NOT NULL,
        by TEXT NOT NULL,
        changes TEXT NOT NULL
    );
    CREATE INDEX case_log_case ON case_log(case_id, seq);
    """,
    # 4: a photo or document the caller sent (Open311 media_url).
    """
    ALTER TABLE cases ADD COLUMN media_url TEXT NOT NULL DEFAULT '';
    """,
    # 5: each case's sentence vector for similar cases by meaning (the embedded index's; a case's delete drops it).
    """
    CREATE TABLE case_vectors (
        seq INTEGER PRIMARY KEY,
        case_id TEXT NOT NULL UNIQUE,
        model TEXT NOT NULL,
        vector BLOB NOT NULL
    );
    CREATE TRIGGER case_vectors_gone AFTER DELETE ON cases BEGIN
        DELETE FROM case_vectors WHERE case_id = old.id;
    END;
    """,
)

_CASE_COLUMNS = (
    "id", "received_at", "channel", "title", "text", "transcript", "caller", "district", "street",
    "address", "lat", "lon", "category_l1", "category_l2", "category_l3", "category_kind", "category_by",
    "category_at", "departments", "departments_kind", "departments_by", "departments_at", "status",
    "event_id", "media_url", "tokens", "content_hash", "updated_at",
)
#: What a Case is read from: every case column but the tokens and the hash, the update time last.
_SELECT = "SELECT " + ", ".join(f"c.{col}" for col in (*_CASE_COLUMNS[:-3], "updated_at")) + " FROM cases c"


def path_from_url(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs.db`` or ``sqlite:///:memory:`` to a path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise InvalidInput(f"not a SQLite URL: {url!r} (expected sqlite:///path)")
    path = url[len(prefix) :]
    if not path:
        raise InvalidInput(f"SQLite URL {url!r} names no file")
    return path


def _source(kind: str | None, by: str | None, at: str | None) -> LabelSource | None:
    return LabelSource(LabelKind(kind), by or "", parse_time(at)) if kind else None


def _join(departments: Sequence[str]) -> str:
    return "|" + "|".join(departments) + "|" if departments else ""


def _split(departments: str) -> tuple[str, ...]:
    return tuple(d for d in departments.split("|") if d)


class SQLiteStore:
    """The embedded :class:`~hotline.store.base.CaseStore`; safe to share between threads."""

    def __init__(self, url: str, tokenize: Callable[[str], list[str]] | None = None) -> None:
        self.url = url
        path = path_from_url(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._tokenize = tokenize
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open store {url}: {exc}") from None
        self._db.execute("PRAGMA busy_timeout = 10000")
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    # ------------------------------------------------------------ plumbing
    @property
    def tokenize(self) -> Callable[[str], list[str]]:
        if self._tokenize is None:  # whoever opened the store gave none: the served city's default segmenter
            from hotline.text.segment import default_segmenter

            self._tokenize = default_segmenter().tokens
        return self._tokenize

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; storage failures become :class:`ReadOnly` or :class:`Unavailable`."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                message = str(exc)
                if "readonly" in message or "full" in message or "disk I/O" in message:
                    raise ReadOnly(f"store {self.url} cannot take writes: {message}") from None
                raise Unavailable(f"store {self.url}: {message}") from None

    def transaction(self) -> Any:
        """One write transaction, for the embedded search index's own tables in this file (the vectors)."""
        return self._write()

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query; for the embedded search index, which shares this file's schema."""
        return self._read(sql, params)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "fts5" in str(exc) or "syntax" in str(exc):
                    raise InvalidInput(f"cannot search for that text: {exc}") from None
                raise Unavailable(f"store {self.url}: {exc}") from None

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > len(MIGRATIONS):
            raise Unavailable(
                f"store {self.url} has schema version {version}, newer than this software ({len(MIGRATIONS)})"
            )
        for number in range(version + 1, len(MIGRATIONS) + 1):
            log.info("migrating store %s to schema version %d", self.url, number)
            with self._write() as db:
                for statement in _statements(MIGRATIONS[number - 1]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ rows
    def _row(self, case: Case, now: str) -> dict[str, Any]:
        cat, dep = case.category, case.departments_source
        row: dict[str, Any] = {
            "id": case.id,
            "received_at": format_time(case.received_at),
            "channel": case.channel.value,
            "title": case.title,
            "text": case.text,
            "transcript": case.transcript,
            "caller": case.caller,
            "district": case.area.district,
            "street": case.area.street,
            "address": case.address,
            "lat": case.location.lat if case.location else None,
            "lon": case.location.lon if case.location else None,
            "category_l1": cat.l1 if cat else None,
            "category_l2": (cat.l2 or None) if cat else None,
            "category_l3": (cat.l3 or None) if cat else None,
            "category_kind": case.category_source.kind.value if case.category_source else None,
            "category_by": case.category_source.by if case.category_source else None,
            "category_at": format_time(case.category_source.at) if case.category_source else None,
            "departments": _join(case.departments),
            "departments_kind": dep.kind.value if dep else None,
            "departments_by": dep.by if dep else None,
            "departments_at": format_time(dep.at) if dep else None,
            "status": case.status.value,
            "event_id": case.event_id,
            "media_url": case.media_url,
        }
        # Without an empty media_url, so that cases stored before it existed keep their hash.
        hashed = {k: v for k, v in row.items() if k != "media_url" or v}
        row["content_hash"] = hashlib.blake2b(repr(sorted(hashed.items())).encode(), digest_size=16).hexdigest()
        row["tokens"] = ""
        row["updated_at"] = now
        return row

    @staticmethod
    def _case(r: Sequence[Any]) -> Case:
        (id_, received, channel, title, text, transcript, caller, district, street, address, lat, lon,
         l1, l2, l3, c_kind, c_by, c_at, departments, d_kind, d_by, d_at, status, event_id, media_url, updated) = r
        return Case(
            id=id_,
            received_at=parse_time(received),  # type: ignore[arg-type]
            text=text,
            channel=Channel(channel),
            transcript=transcript,
            title=title,
            caller=caller,
            area=Area(district, street),
            address=address,
            location=Location(lat, lon) if lat is not None and lon is not None else None,
            category=Category(l1, l2 or "", l3 or "") if l1 else None,
            category_source=_source(c_kind, c_by, c_at),
            departments=_split(departments),
            departments_source=_source(d_kind, d_by, d_at),
            status=Status(status),
            event_id=event_id,
            media_url=media_url or "",
            updated_at=parse_time(updated),
        )

    # ------------------------------------------------------------ writes
    def upsert(self, cases: Iterable[Case], writer: Writer = SYSTEM) -> UpsertResult:
        result = UpsertResult()
        batch: list[Case] = []
        for case in cases:
            batch.append(case)
            if len(batch) >= 500:
                result += self._upsert_batch(batch, writer)
                batch = []
        if batch:
            result += self._upsert_batch(batch, writer)
        return result

    def _upsert_batch(self, batch: list[Case], writer: Writer) -> UpsertResult:
        latest: dict[str, Case] = {case.id: case for case in batch}
        ids = list(latest)
        now = format_time(datetime.now())
        result = UpsertResult(unchanged=len(batch) - len(latest))
        with self._write() as db:
            placeholders = ",".join("?" * len(ids))
            existing = {row[2]: row for row in db.execute(
                _SELECT.replace("SELECT ", "SELECT c.owner, c.content_hash, ", 1) + f" WHERE c.id IN ({placeholders})", ids)}
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for case_id, case in latest.items():
                old = existing.get(case_id)
                if old is None:
                    row = self._row(case, now)  # type: ignore[arg-type]
                    row["owner"] = writer.source
                    inserts.append(row)
                    continue
                check_owner(case_id, old[0], writer)
                before = self._case(old[2:])
                case = merge_labels(case, before)
                row = self._row(case, now)  # type: ignore[arg-type]
                if old[1] == row["content_hash"]:
                    result.unchanged += 1
                    continue
                updates.append(row)
                changes = content_changes(self._row(before, now), row)  # type: ignore[arg-type]
                if changes:
                    db.execute("INSERT INTO case_log (case_id, at, by, changes) VALUES (?, ?, ?, ?)",
                               (case_id, now, writer.source, json.dumps(changes, ensure_ascii=False)))
                if (case.category, case.departments) != (before.category, before.departments):
                    source = case.category_source if case.category != before.category else case.departments_source
                    _log_label(db, before, source, case.category if case.category != before.category else None,  # type: ignore[arg-type]
                               case.departments if case.departments != before.departments else None)
            for row in (*inserts, *updates):
                row["tokens"] = " ".join(self.tokenize(f"{row['title']} {row['text']}"))
            columns = ", ".join(_CASE_COLUMNS)
            values = ", ".join(f":{c}" for c in _CASE_COLUMNS)
            if inserts:
                db.executemany(f"INSERT INTO cases ({columns}, owner) VALUES ({values}, :owner)", inserts)
            if updates:
                assignments = ", ".join(f"{c} = :{c}" for c in _CASE_COLUMNS if c != "id")
                db.executemany(f"UPDATE cases SET {assignments} WHERE id = :id", updates)
        result.inserted += len(inserts)
        result.updated += len(updates)
        return result

    def set_label(
        self,
        case_id: str,
        source: LabelSource,
        category: Category | None = None,
        departments: tuple[str, ...] | None = None,
    ) -> Case:
        if category is None and departments is None:
            raise InvalidInput("a label change needs a category or departments")
        with self._write() as db:
            row = db.execute(f"{_SELECT} WHERE c.id = ?", (case_id,)).fetchone()
            if row is None:
                raise NotFound(f"no case with id {case_id!r}")
            before = self._case(row)
            after = before.with_label(source, category=category, departments=departments)
            fresh = self._row(after, format_time(datetime.now()))  # type: ignore[arg-type]
            fields = [c for c in _CASE_COLUMNS if c.startswith(("category_", "departments"))] + ["content_hash", "updated_at"]
            db.execute(
                f"UPDATE cases SET {', '.join(f'{c} = :{c}' for c in fields)} WHERE id = :id",
                {c: fresh[c] for c in (*fields, "id")},
            )
            _log_label(db, before, source, category, departments)
        log.info("label of case %s set by %s (%s)", case_id, source.by, source.kind.value)
        return after

    def case_history(self, case_id: str) -> list[ContentChange]:
        rows = self._read("SELECT case_id, at, by, changes FROM case_log WHERE case_id = ? ORDER BY seq", (case_id,))
        return [ContentChange(r[0], parse_time(r[1]), r[2], json.loads(r[3])) for r in rows]  # type: ignore[arg-type]

    def label_history(self, case_id: str) -> list[LabelChange]:
        rows = self._read(
            "SELECT case_id, kind, by, at, category, departments, previous_category, previous_departments "
            "FROM label_log WHERE case_id = ? ORDER BY seq",
            (case_id,),
        )
        return [
            LabelChange(
                case_id=r[0],
                source=LabelSource(LabelKind(r[1]), r[2], parse_time(r[3])),
                category=Category.parse(r[4]) if r[4] else None,
                departments=_split(r[5] or ""),
                previous_category=Category.parse(r[6]) if r[6] else None,
                previous_departments=_split(r[7] or ""),
            )
            for r in rows
        ]

    # ------------------------------------------------------------ outbox
    def pending(self, limit: int = 1000) -> list[tuple[int, str, str]]:
        """The oldest ``limit`` outbox entries: (sequence, case id, 'index' or 'delete')."""
        return [tuple(r) for r in self._read("SELECT seq, case_id, op FROM index_outbox ORDER BY seq LIMIT ?", (limit,))]  # type: ignore[misc]

    def pending_count(self) -> int:
        return self._read("SELECT count(*) FROM index_outbox")[0][0]

    def acknowledge(self, seqs: Sequence[int]) -> None:
        """Forget outbox entries the index has taken."""
        with self._write() as db:
            for start in range(0, len(seqs), 500):
                chunk = list(seqs[start : start + 500])
                db.execute(f"DELETE FROM index_outbox WHERE seq IN ({','.join('?' * len(chunk))})", chunk)

    def delete(self, case_ids: Sequence[str]) -> int:
        """Remove cases (and queue their removal from the index); returns how many existed."""
        removed = 0
        with self._write() as db:
            for case_id in case_ids:
                removed += db.execute("DELETE FROM cases WHERE id = ?", (case_id,)).rowcount
        return removed

    # ------------------------------------------------------------ reads
    def get(self, case_id: str) -> Case:
        rows = self._read(f"{_SELECT} WHERE c.id = ?", (case_id,))
        if not rows:
            raise NotFound(f"no case with id {case_id!r}")
        return self._case(rows[0])

    def where(self, query: CaseQuery) -> tuple[str, str, list[Any]]:
        """(FROM clause, WHERE clause, params) for a query."""
        clauses: list[str] = []
        params: list[Any] = []
        source = "cases c"
        if query.text.strip():
            tokens = self.tokenize(query.text)
            if not tokens:
                raise InvalidInput(f"search text {query.text!r} has no words to look for")
            source = "cases_fts f JOIN cases c ON c.rowid = f.rowid"
            clauses.append("cases_fts MATCH ?")
            params.append(" ".join('"' + tok.replace('"', '""') + '"' for tok in tokens))
        if query.start:
            clauses.append("c.received_at >= ?")
            params.append(format_time(query.start))
        if query.end:
            clauses.append("c.received_at <= ?")
            params.append(format_time(query.end))
        for column, value in (("district", query.district), ("street", query.street), ("status", query.status),
                              ("channel", query.channel), ("event_id", query.event_id)):
            if value:
                clauses.append(f"c.{column} = ?")
                params.append(value)
        if query.statuses:
            clauses.append(f"c.status IN ({','.join('?' * len(query.statuses))})")
            params.extend(query.statuses)
        if query.category:
            parts = Category.parse(query.category).path.split("/")
            if len(parts) == 1:
                clauses.append("? IN (c.category_l1, c.category_l2, c.category_l3)")
                params.append(parts[0])
            else:
                for column, part in zip(("category_l1", "category_l2", "category_l3"), parts):
                    clauses.append(f"c.{column} = ?")
                    params.append(part)
        if query.department:
            clauses.append("instr(c.departments, ?) > 0")
            params.append(f"|{query.department}|")
        return source, (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def search(self, query: CaseQuery) -> Page:
        source, where, params = self.where(query)
        order = "bm25(cases_fts), c.received_at DESC" if query.text.strip() else "c.received_at DESC, c.id"
        select = _SELECT.replace("FROM cases c", f"FROM {source}")
        rows = self._read(f"{select}{where} ORDER BY {order} LIMIT ? OFFSET ?", [*params, query.limit, query.offset])
        total = self._read(f"SELECT count(*) FROM {source}{where}", params)[0][0]
        return Page([self._case(r) for r in rows], total)

    def iter_cases(self, query: CaseQuery | None = None, batch: int = 1000) -> Iterator[Case]:
        source, where, params = self.where(query or CaseQuery())
        select = _SELECT.replace("FROM cases c", f"FROM {source}")
        last = ("", "")
        while True:
            keyset = "(c.received_at, c.id) > (?, ?)"
            clause = f"{where} AND {keyset}" if where else f" WHERE {keyset}"
            rows = self._read(f"{select}{clause} ORDER BY c.received_at, c.id LIMIT ?", [*params, *last, batch])
            if not rows:
                return
            yield from (self._case(r) for r in rows)
            last = (rows[-1][1], rows[-1][0])

    def span(self, until: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        """When the first and the last case came in (two index lookups)."""
        where, params = ("", ()) if until is None else (" WHERE received_at <= ?", (format_time(until),))
        first, last = self._read(f"SELECT min(received_at), max(received_at) FROM cases{where}", params)[0]
        return parse_time(first), parse_time(last)

    def summary(self) -> Summary:
        summary = Summary()
        total, first, last = self._read("SELECT count(*), min(received_at), max(received_at) FROM cases")[0]
        summary.total, summary.first, summary.last = total, parse_time(first), parse_time(last)
        for attr, column in (("by_category", "coalesce(category_l1, '(未分类)')"), ("by_district", "district"),
                             ("by_channel", "channel"), ("by_status", "status")):
            rows = self._read(f"SELECT {column}, count(*) FROM cases GROUP BY 1 ORDER BY 2 DESC")
            setattr(summary, attr, {(k or "(未知)"): n for k, n in rows})
        summary.labeled, summary.confirmed = self._read(
            "SELECT count(category_kind), coalesce(sum(category_kind = 'confirmed'), 0) FROM cases"
        )[0]
        return summary


def _log_label(db: sqlite3.Connection, before: Case, source: LabelSource, category: Category | None,
               departments: Sequence[str] | None) -> None:
    """One entry of the label audit log: the new labels beside the ones they replace."""
    db.execute(
        "INSERT INTO label_log (case_id, at, kind, by, category, departments, previous_category, previous_departments) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (before.id, format_time(source.at or datetime.now()), source.kind.value, source.by,
         category.path if category else None, _join(departments) if departments is not None else None,
         before.category.path if before.category else None, _join(before.departments)),
    )


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers contain semicolons)."""
    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            statements.append(text)
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current))
    return statements
