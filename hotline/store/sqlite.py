"""The embedded store: one SQLite file in WAL mode, with FTS5 over jieba tokens.

WAL lets the service read while an import writes. Text search uses an FTS5
table over the same jieba tokens the models see (space-joined, split again by
FTS5's ``unicode61`` tokenizer), so a query word matches a case word exactly.
The schema is versioned with ``PRAGMA user_version`` and migrated forward on
open; a file from a newer version is refused rather than damaged.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hotline.errors import InvalidInput, ReadOnly, Unavailable
from hotline.store.base import CaseQuery, Page
from hotline.store.rows import case_from_row, field_filters, term_deltas
from hotline.store.sql import SELECT_CASES, SQLStore, T

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
    # 6: daily counts per (day, district, street, level-2 category), kept by every write in its transaction,
    # so the supervisors' views read these rows rather than every case of their range.
    """
    CREATE TABLE daily_counts (
        day TEXT NOT NULL,
        district TEXT NOT NULL,
        street TEXT NOT NULL,
        category TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (day, district, street, category)
    ) WITHOUT ROWID;
    CREATE TRIGGER cases_counts_ai AFTER INSERT ON cases BEGIN
        INSERT INTO daily_counts (day, district, street, category, n)
        VALUES (substr(new.received_at, 1, 10), new.district, new.street, coalesce(new.category_l2, new.category_l1, ''), 1)
        ON CONFLICT (day, district, street, category) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER cases_counts_ad AFTER DELETE ON cases BEGIN
        UPDATE daily_counts SET n = n - 1
        WHERE day = substr(old.received_at, 1, 10) AND district = old.district AND street = old.street
          AND category = coalesce(old.category_l2, old.category_l1, '');
    END;
    CREATE TRIGGER cases_counts_au AFTER UPDATE OF received_at, district, street, category_l1, category_l2 ON cases
    WHEN substr(old.received_at, 1, 10) IS NOT substr(new.received_at, 1, 10) OR old.district IS NOT new.district
      OR old.street IS NOT new.street
      OR coalesce(old.category_l2, old.category_l1, '') IS NOT coalesce(new.category_l2, new.category_l1, '')
    BEGIN
        UPDATE daily_counts SET n = n - 1
        WHERE day = substr(old.received_at, 1, 10) AND district = old.district AND street = old.street
          AND category = coalesce(old.category_l2, old.category_l1, '');
        INSERT INTO daily_counts (day, district, street, category, n)
        VALUES (substr(new.received_at, 1, 10), new.district, new.street, coalesce(new.category_l2, new.category_l1, ''), 1)
        ON CONFLICT (day, district, street, category) DO UPDATE SET n = n + 1;
    END;
    INSERT INTO daily_counts (day, district, street, category, n)
    SELECT substr(received_at, 1, 10), district, street, coalesce(category_l2, category_l1, ''), count(*)
    FROM cases GROUP BY 1, 2, 3, 4;
    """,    # 7: the same per (day, district, category) without the street: what the district views read, a few
    # hundred rows a day however many calls come in.
    """
    CREATE TABLE daily_cells (
        day TEXT NOT NULL,
        district TEXT NOT NULL,
        category TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (day, district, category)
    ) WITHOUT ROWID;
    CREATE TRIGGER cases_cells_ai AFTER INSERT ON cases BEGIN
        INSERT INTO daily_cells (day, district, category, n)
        VALUES (substr(new.received_at, 1, 10), new.district, coalesce(new.category_l2, new.category_l1, ''), 1)
        ON CONFLICT (day, district, category) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER cases_cells_ad AFTER DELETE ON cases BEGIN
        UPDATE daily_cells SET n = n - 1
        WHERE day = substr(old.received_at, 1, 10) AND district = old.district
          AND category = coalesce(old.category_l2, old.category_l1, '');
    END;
    CREATE TRIGGER cases_cells_au AFTER UPDATE OF received_at, district, category_l1, category_l2 ON cases
    WHEN substr(old.received_at, 1, 10) IS NOT substr(new.received_at, 1, 10) OR old.district IS NOT new.district
      OR coalesce(old.category_l2, old.category_l1, '') IS NOT coalesce(new.category_l2, new.category_l1, '')
    BEGIN
        UPDATE daily_cells SET n = n - 1
        WHERE day = substr(old.received_at, 1, 10) AND district = old.district
          AND category = coalesce(old.category_l2, old.category_l1, '');
        INSERT INTO daily_cells (day, district, category, n)
        VALUES (substr(new.received_at, 1, 10), new.district, coalesce(new.category_l2, new.category_l1, ''), 1)
        ON CONFLICT (day, district, category) DO UPDATE SET n = n + 1;
    END;
    INSERT INTO daily_cells (day, district, category, n)
    SELECT substr(received_at, 1, 10), district, coalesce(category_l2, category_l1, ''), count(*)
    FROM cases GROUP BY 1, 2, 3;
    """,
    # 8: daily term counts (how many cases of a day use each word: emerging terms and the events' word weights,
    # kept by the writes in their transactions and filled from the stored tokens after this migration), the
    # events kept as cases arrive, and the queue of cases waiting for theirs.
    """
    CREATE TABLE daily_terms (
        day TEXT NOT NULL,
        term TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (day, term)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        district TEXT NOT NULL,
        street TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        size INTEGER NOT NULL,
        category TEXT NOT NULL,
        place TEXT NOT NULL,
        title TEXT NOT NULL,
        state TEXT NOT NULL
    );
    CREATE INDEX events_active ON events(last_seen, first_seen);
    CREATE INDEX events_sized ON events(last_seen) WHERE size >= 2;
    CREATE TABLE case_events (
        case_id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX case_events_event ON case_events(event_id);
    CREATE TABLE event_queue (
        case_id TEXT PRIMARY KEY,
        received_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX event_queue_time ON event_queue(received_at, case_id);
    CREATE TRIGGER cases_events_ai AFTER INSERT ON cases BEGIN
        INSERT OR IGNORE INTO event_queue (case_id, received_at) VALUES (new.id, new.received_at);
    END;
    CREATE TRIGGER cases_events_au AFTER UPDATE OF received_at ON cases BEGIN
        UPDATE event_queue SET received_at = new.received_at WHERE case_id = new.id;
    END;
    CREATE TRIGGER cases_events_ad AFTER DELETE ON cases BEGIN
        DELETE FROM event_queue WHERE case_id = old.id;
        UPDATE events SET size = size - 1 WHERE id = (SELECT event_id FROM case_events WHERE case_id = old.id);
        DELETE FROM case_events WHERE case_id = old.id;
    END;
    INSERT INTO event_queue (case_id, received_at) SELECT id, received_at FROM cases;
    """,
    # 9: the work list's decisions (the items are recomputed from the counts; what a supervisor decided is kept)
    # and their audit log.
    """
    CREATE TABLE work_items (
        item_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        area TEXT NOT NULL,
        category TEXT NOT NULL,
        first_day TEXT NOT NULL,
        last_day TEXT NOT NULL,
        state TEXT NOT NULL,
        department TEXT NOT NULL,
        note TEXT NOT NULL,
        "by" TEXT NOT NULL,
        "at" TEXT NOT NULL
    );
    CREATE INDEX work_items_days ON work_items(last_day);
    CREATE TABLE work_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        item_id TEXT NOT NULL,
        state TEXT NOT NULL,
        department TEXT NOT NULL,
        note TEXT NOT NULL,
        "by" TEXT NOT NULL,
        "at" TEXT NOT NULL,
        previous TEXT NOT NULL
    );
    CREATE INDEX work_log_item ON work_log(item_id, seq);
    """,
    # 10: the daily term counts found by word as well as by day. The work list and the report ask how often a
    # few words were used over 28 days; by day alone that scanned every word of those days (16 ms an item at
    # 500,000 cases a year, growing with the vocabulary), by word it reads 28 rows a word (0.1 ms).
    """
    CREATE INDEX daily_terms_term ON daily_terms(term, day);
    """,
    # 11: the calls of one cell (district × level-2 category) by time. The work list and the report read a
    # few calls under each surge; by district alone that scanned the district's calls of the range (at
    # 2,000,000 cases a year a 30-day work list read its items' calls in seconds). The expression is
    # rows.CELL_CATEGORY's, as queries write it.
    """
    CREATE INDEX cases_cell ON cases(district, COALESCE(category_l2, category_l1), received_at);
    """,
    # 12: the kept events of one cell by time. Surges were linked to the thousand largest events of their
    # range, which at a city's density left out the smaller events of most surges' cells.
    """
    CREATE INDEX events_cell ON events(district, category, last_seen) WHERE size >= 2;
    """,
)

#: The migration that adds the daily term counts, which are filled from the cases' tokens in Python.
_TERMS_MIGRATION = 8

#: What a Case is read from.
_SELECT = SELECT_CASES


def path_from_url(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs.db`` or ``sqlite:///:memory:`` to a path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise InvalidInput(f"not a SQLite URL: {url!r} (expected sqlite:///path)")
    path = url[len(prefix) :]
    if not path:
        raise InvalidInput(f"SQLite URL {url!r} names no file")
    return path


class SQLiteStore(SQLStore):
    """The embedded :class:`~hotline.store.base.CaseStore`; safe to share between threads."""

    write_mark_sql = "SELECT seq FROM sqlite_sequence WHERE name = 'index_outbox'"

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
                if number == _TERMS_MIGRATION:
                    self._rebuild_terms(db)
                db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ writes
    def _transaction(self, work: Callable[[Any], T]) -> T:
        with self._write() as db:
            return work(db)

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN ({','.join('?' * len(values))})", values

    def _rebuild_terms(self, db: Any) -> None:
        """A day at a time, in time order, so only one day's words are held."""
        day, tokens = "", list[str]()
        for received_at, text in db.execute("SELECT received_at, tokens FROM cases ORDER BY received_at"):
            if received_at[:10] != day:
                self._add_terms(db, term_deltas((), ((day, t) for t in tokens)))
                day, tokens = received_at[:10], []
            tokens.append(text)
        self._add_terms(db, term_deltas((), ((day, t) for t in tokens)))

    # ------------------------------------------------------------ outbox
    def pending(self, limit: int = 1000) -> list[tuple[int, str, str]]:
        """The oldest ``limit`` outbox entries: (sequence, case id, 'index' or 'delete')."""
        return [(r[0], r[1], r[2]) for r in self._read("SELECT seq, case_id, op FROM index_outbox ORDER BY seq LIMIT ?", (limit,))]

    def release(self, seqs: Sequence[int]) -> None:
        """Nothing to give back: one process drains this file's outbox, and :meth:`pending` only reads it."""

    def pending_count(self) -> int:
        return self._read("SELECT count(*) FROM index_outbox")[0][0]

    def acknowledge(self, seqs: Sequence[int]) -> None:
        """Forget outbox entries the index has taken."""
        with self._write() as db:
            for start in range(0, len(seqs), 500):
                chunk = list(seqs[start : start + 500])
                db.execute(f"DELETE FROM index_outbox WHERE seq IN ({','.join('?' * len(chunk))})", chunk)

    # ------------------------------------------------------------ reads
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
        for clause, values in field_filters(query):
            clauses.append(clause)
            params.extend(values)
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
        return Page([case_from_row(r) for r in rows], total)

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
