"""The city-scale store: PostgreSQL, shared by several service processes on several hosts.

The columns, the write rules and the audit entries are the embedded store's
(:mod:`hotline.store.rows`, :mod:`hotline.store.rules`); what differs is
here. Text search matches the same jieba tokens through a ``tsvector``
built from them as they are (no parser, no dictionary) under a GIN index.
Writers serialise on the rows they touch (``SELECT … FOR UPDATE``), so two
processes writing the same case apply the rules one after the other. The
search outbox is drained by several workers at once: each claims a batch
with ``FOR UPDATE SKIP LOCKED`` and a lease, and no two workers hold entries
of the same case, so a later delete cannot be overtaken by an earlier index.
The schema version is a row in ``schema_version``; processes that start
together migrate under one advisory lock.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hotline.errors import InvalidInput, ReadOnly, Unavailable
from hotline.store.base import CaseQuery, Page, redacted
from hotline.store.circuit import Circuit
from hotline.store.rows import case_from_row, field_filters
from hotline.store.sql import SELECT_CASES, SQLStore, T

log = logging.getLogger(__name__)

#: Seconds an outbox entry stays with the worker that claimed it; after that another may take it.
LEASE_SECONDS = 60.0
#: Seconds a call waits for a pooled connection before its 503 (was 15: a database that was down froze the
#: service); after three failures in a row the circuit answers at once (:mod:`hotline.store.circuit`).
POOL_WAIT = 0.8
#: Attempts at a batch that lost a race (two writers inserting one new id, a deadlock).
RETRIES = 8
_MIGRATION_LOCK = 74_120_001
_CLAIM_LOCK = 74_120_002

_EVENTS_LOCK = 74_120_003
#: The daily term counts from every case's tokens: one row per distinct word of each case.
_REBUILD_TERMS = """
    INSERT INTO daily_terms (day, term, n)
    SELECT c.received_at::date, w.term, count(*)
    FROM cases c CROSS JOIN LATERAL (SELECT DISTINCT unnest(string_to_array(c.tokens, ' ')) AS term) w
    WHERE w.term <> '' GROUP BY 1, 2;
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: the embedded store's schema 1-4 at once: cases with their tokens, the two audit logs, the outbox.
    """
    CREATE TABLE cases (
        id text PRIMARY KEY,
        received_at timestamp(0) NOT NULL,
        channel text NOT NULL,
        title text NOT NULL DEFAULT '',
        text text NOT NULL,
        transcript text NOT NULL DEFAULT '',
        caller text NOT NULL DEFAULT '',
        district text NOT NULL DEFAULT '',
        street text NOT NULL DEFAULT '',
        address text NOT NULL DEFAULT '',
        lat double precision,
        lon double precision,
        category_l1 text,
        category_l2 text,
        category_l3 text,
        category_kind text,
        category_by text,
        category_at timestamp(0),
        departments text NOT NULL DEFAULT '',
        departments_kind text,
        departments_by text,
        departments_at timestamp(0),
        status text NOT NULL,
        event_id text,
        media_url text NOT NULL DEFAULT '',
        tokens text NOT NULL DEFAULT '',
        words tsvector GENERATED ALWAYS AS (array_to_tsvector(array_remove(string_to_array(tokens, ' '), ''))) STORED,
        content_hash text NOT NULL,
        owner text NOT NULL DEFAULT '',
        updated_at timestamp(0) NOT NULL
    );
    CREATE INDEX cases_received ON cases (received_at, id);
    CREATE INDEX cases_district ON cases (district, received_at);
    CREATE INDEX cases_category ON cases (category_l2, received_at);
    CREATE INDEX cases_category_l1 ON cases (category_l1, received_at);
    CREATE INDEX cases_status ON cases (status);
    CREATE INDEX cases_event ON cases (event_id) WHERE event_id IS NOT NULL;
    CREATE INDEX cases_words ON cases USING gin (words);
    CREATE TABLE label_log (
        seq bigserial PRIMARY KEY,
        case_id text NOT NULL,
        "at" timestamp(0) NOT NULL,
        kind text NOT NULL,
        "by" text NOT NULL,
        category text,
        departments text,
        previous_category text,
        previous_departments text
    );
    CREATE INDEX label_log_case ON label_log (case_id, seq);
    CREATE TABLE case_log (
        seq bigserial PRIMARY KEY,
        case_id text NOT NULL,
        "at" timestamp(0) NOT NULL,
        "by" text NOT NULL,
        changes jsonb NOT NULL
    );
    CREATE INDEX case_log_case ON case_log (case_id, seq);
    CREATE TABLE index_outbox (
        seq bigserial PRIMARY KEY,
        case_id text NOT NULL,
        op text NOT NULL DEFAULT 'index',
        claimed_until timestamptz
    );
    CREATE INDEX index_outbox_case ON index_outbox (case_id);
    CREATE FUNCTION cases_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO index_outbox (case_id, op) VALUES (OLD.id, 'delete');
            RETURN OLD;
        END IF;
        INSERT INTO index_outbox (case_id, op) VALUES (NEW.id, 'index');
        RETURN NEW;
    END $$;
    CREATE TRIGGER cases_outbox_ai AFTER INSERT ON cases FOR EACH ROW EXECUTE FUNCTION cases_outbox();
    CREATE TRIGGER cases_outbox_au AFTER UPDATE OF content_hash ON cases FOR EACH ROW EXECUTE FUNCTION cases_outbox();
    CREATE TRIGGER cases_outbox_ad AFTER DELETE ON cases FOR EACH ROW EXECUTE FUNCTION cases_outbox();
    """,
    # 2: daily counts per (day, district, street, level-2 category), kept by every write in its transaction
    # (an upsert, so concurrent writers of one cell add up rather than overwrite each other).
    """
    CREATE TABLE daily_counts (
        day date NOT NULL,
        district text NOT NULL,
        street text NOT NULL,
        category text NOT NULL,
        n integer NOT NULL,
        PRIMARY KEY (day, district, street, category)
    );
    CREATE FUNCTION cases_counts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            UPDATE daily_counts SET n = n - 1
            WHERE day = OLD.received_at::date AND district = OLD.district AND street = OLD.street
              AND category = coalesce(OLD.category_l2, OLD.category_l1, '');
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO daily_counts AS d (day, district, street, category, n)
            VALUES (NEW.received_at::date, NEW.district, NEW.street, coalesce(NEW.category_l2, NEW.category_l1, ''), 1)
            ON CONFLICT (day, district, street, category) DO UPDATE SET n = d.n + 1;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER cases_counts_aid AFTER INSERT OR DELETE ON cases FOR EACH ROW EXECUTE FUNCTION cases_counts();
    CREATE TRIGGER cases_counts_au AFTER UPDATE OF received_at, district, street, category_l1, category_l2 ON cases
    FOR EACH ROW WHEN (OLD.received_at::date IS DISTINCT FROM NEW.received_at::date
                       OR OLD.district IS DISTINCT FROM NEW.district OR OLD.street IS DISTINCT FROM NEW.street
                       OR coalesce(OLD.category_l2, OLD.category_l1, '')
                          IS DISTINCT FROM coalesce(NEW.category_l2, NEW.category_l1, ''))
    EXECUTE FUNCTION cases_counts();
    INSERT INTO daily_counts (day, district, street, category, n)
    SELECT received_at::date, district, street, coalesce(category_l2, category_l1, ''), count(*)
    FROM cases GROUP BY 1, 2, 3, 4;
    """,    # 3: the same per (day, district, category) without the street: what the district views read.
    """
    CREATE TABLE daily_cells (
        day date NOT NULL,
        district text NOT NULL,
        category text NOT NULL,
        n integer NOT NULL,
        PRIMARY KEY (day, district, category)
    );
    CREATE OR REPLACE FUNCTION cases_counts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            UPDATE daily_counts SET n = n - 1
            WHERE day = OLD.received_at::date AND district = OLD.district AND street = OLD.street
              AND category = coalesce(OLD.category_l2, OLD.category_l1, '');
            UPDATE daily_cells SET n = n - 1
            WHERE day = OLD.received_at::date AND district = OLD.district
              AND category = coalesce(OLD.category_l2, OLD.category_l1, '');
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO daily_counts AS d (day, district, street, category, n)
            VALUES (NEW.received_at::date, NEW.district, NEW.street, coalesce(NEW.category_l2, NEW.category_l1, ''), 1)
            ON CONFLICT (day, district, street, category) DO UPDATE SET n = d.n + 1;
            INSERT INTO daily_cells AS d (day, district, category, n)
            VALUES (NEW.received_at::date, NEW.district, coalesce(NEW.category_l2, NEW.category_l1, ''), 1)
            ON CONFLICT (day, district, category) DO UPDATE SET n = d.n + 1;
        END IF;
        RETURN NULL;
    END $$;
    INSERT INTO daily_cells (day, district, category, n)
    SELECT received_at::date, district, coalesce(category_l2, category_l1, ''), count(*)
    FROM cases GROUP BY 1, 2, 3;
    """,
    # 4: daily term counts (emerging terms, the events' word weights; kept by the writes in their transactions),
    # the events kept as cases arrive, and the queue of cases waiting for theirs.
    """
    CREATE TABLE daily_terms (
        day date NOT NULL,
        term text NOT NULL,
        n integer NOT NULL,
        PRIMARY KEY (day, term)
    );
    CREATE TABLE events (
        id text PRIMARY KEY,
        district text NOT NULL,
        street text NOT NULL,
        first_seen timestamp(0) NOT NULL,
        last_seen timestamp(0) NOT NULL,
        size integer NOT NULL,
        category text NOT NULL,
        place text NOT NULL,
        title text NOT NULL,
        state text NOT NULL
    );
    CREATE INDEX events_active ON events (last_seen, first_seen);
    CREATE INDEX events_sized ON events (last_seen) WHERE size >= 2;
    CREATE TABLE case_events (
        case_id text PRIMARY KEY,
        event_id text NOT NULL
    );
    CREATE INDEX case_events_event ON case_events (event_id);
    CREATE TABLE event_queue (
        case_id text PRIMARY KEY,
        received_at timestamp(0) NOT NULL
    );
    CREATE INDEX event_queue_time ON event_queue (received_at, case_id);
    CREATE FUNCTION cases_events() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO event_queue (case_id, received_at) VALUES (NEW.id, NEW.received_at) ON CONFLICT DO NOTHING;
        ELSIF TG_OP = 'UPDATE' THEN
            UPDATE event_queue SET received_at = NEW.received_at WHERE case_id = NEW.id;
        ELSE
            DELETE FROM event_queue WHERE case_id = OLD.id;
            UPDATE events SET size = size - 1 WHERE id = (SELECT event_id FROM case_events WHERE case_id = OLD.id);
            DELETE FROM case_events WHERE case_id = OLD.id;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER cases_events_aid AFTER INSERT OR DELETE ON cases FOR EACH ROW EXECUTE FUNCTION cases_events();
    CREATE TRIGGER cases_events_au AFTER UPDATE OF received_at ON cases FOR EACH ROW
    WHEN (OLD.received_at IS DISTINCT FROM NEW.received_at) EXECUTE FUNCTION cases_events();
    INSERT INTO event_queue (case_id, received_at) SELECT id, received_at FROM cases;
    """ + _REBUILD_TERMS,
    # 5: the work list's decisions (the items are recomputed from the counts) and their audit log.
    """
    CREATE TABLE work_items (
        item_id text PRIMARY KEY,
        kind text NOT NULL,
        area text NOT NULL,
        category text NOT NULL,
        first_day date NOT NULL,
        last_day date NOT NULL,
        state text NOT NULL,
        department text NOT NULL,
        note text NOT NULL,
        "by" text NOT NULL,
        "at" timestamp(0) NOT NULL
    );
    CREATE INDEX work_items_days ON work_items (last_day);
    CREATE TABLE work_log (
        seq bigserial PRIMARY KEY,
        item_id text NOT NULL,
        state text NOT NULL,
        department text NOT NULL,
        note text NOT NULL,
        "by" text NOT NULL,
        "at" timestamp(0) NOT NULL,
        previous text NOT NULL
    );
    CREATE INDEX work_log_item ON work_log (item_id, seq);
    """,
    # 6: the daily term counts found by word as well as by day (a few words over 28 days: see SQLite's 10).
    """
    CREATE INDEX daily_terms_term ON daily_terms (term, day);
    """,
    # 7: the calls of one cell by time (see SQLite's 11).
    """
    CREATE INDEX cases_cell ON cases (district, (COALESCE(category_l2, category_l1)), received_at);
    """,
    # 8: the kept events of one cell by time (see SQLite's 12).
    """
    CREATE INDEX events_cell ON events (district, category, last_seen) WHERE size >= 2;
    """,
)

_SELECT = SELECT_CASES
def _tsquery(tokens: Sequence[str]) -> str:
    """Every token as a quoted lexeme, all required (the embedded store's FTS5 query means the same)."""
    return " & ".join("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in tokens)


class PostgreSQLStore(SQLStore):
    """A :class:`~hotline.store.base.CaseStore` on a PostgreSQL server (``postgresql://user@host:port/db``)."""

    placeholder = "%s"
    row_lock = " FOR UPDATE"
    json_cast = "::jsonb"
    day_of_case = "received_at::date"
    day_ordinal = "(day - DATE '0001-01-01' + 1)"
    joined = "string_agg(({})::text, ',')"
    #: Writers wait while the aggregates are rebuilt, so that none of their counts is lost in between.
    rebuild_lock = "LOCK TABLE cases IN SHARE MODE"
    events_lock = f"SELECT pg_try_advisory_xact_lock({_EVENTS_LOCK})"
    write_mark_sql = "SELECT last_value FROM index_outbox_seq_seq"

    def __init__(self, url: str, tokenize: Callable[[str], list[str]] | None = None,
                 pool_size: int = 8, lease: float = LEASE_SECONDS, wait: float = POOL_WAIT) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.url = url
        self.lease = lease
        self._tokenize = tokenize
        self._psycopg = psycopg
        self.circuit = Circuit(f"store {redacted(url)}")
        try:
            # A short wait for a connection (a database that is down answers 503 within a second), and each
            # connection checked as it leaves the pool (after an outage the pool held dead ones: two more 503s).
            self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True, timeout=wait,
                                        kwargs={"connect_timeout": 2}, name="hotline-store",
                                        check=ConnectionPool.check_connection)
            self._pool.wait(timeout=15.0)
        except (PoolTimeout, psycopg.Error) as exc:
            raise Unavailable(f"cannot open store {redacted(url)}: {exc}".splitlines()[0]) from None
        except Exception as exc:  # noqa: BLE001 (a malformed URL is psycopg's ProgrammingError or a ValueError)
            raise InvalidInput(f"cannot open store {redacted(url)}: {exc}") from None
        self._migrate()

    # ------------------------------------------------------------ plumbing
    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection; server and network failures become :class:`ReadOnly` or :class:`Unavailable`."""
        errors = self._psycopg.errors
        self.circuit.before()
        try:
            with self._pool.connection() as conn:
                yield conn
            self.circuit.succeeded()
        except (errors.TransactionRollback, errors.DeadlockDetected, errors.SerializationFailure,
                errors.UniqueViolation):
            self.circuit.succeeded()  # the server answered
            raise  # a lost race (deadlock, serialization, two inserts of one id): _retrying runs it again
        except (errors.ReadOnlySqlTransaction, errors.DiskFull, errors.InsufficientResources) as exc:
            self.circuit.succeeded()
            raise ReadOnly(f"store {redacted(self.url)} cannot take writes: {exc}".splitlines()[0]) from None
        except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
            self.circuit.failed(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise Unavailable(f"store {redacted(self.url)}: {exc}".splitlines()[0]) from None
        except Exception as exc:
            if type(exc).__name__ == "PoolTimeout":
                if not self._pool.get_stats().get("pool_size", 0):  # none left: the server is away, not busy
                    self.circuit.failed("no connection can be made")
                else:
                    self.circuit.inconclusive()
                raise Unavailable(f"store {redacted(self.url)}: no connection free ({exc})") from None
            self.circuit.succeeded()  # the server answered; the error is the caller's (a missing case …)
            raise

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """One transaction on one connection."""
        with self._connection() as conn, conn.transaction():
            yield conn

    def _retrying(self, work: Callable[[Any], T]) -> T:
        """Run ``work(conn)`` in a transaction, again when it lost a race with another writer."""
        errors = self._psycopg.errors
        for attempt in range(RETRIES):
            try:
                with self._write() as conn:
                    return work(conn)
            except (errors.UniqueViolation, errors.TransactionRollback, errors.DeadlockDetected,
                    errors.SerializationFailure) as exc:
                if attempt == RETRIES - 1:
                    raise Unavailable(f"store {redacted(self.url)}: too many concurrent writes to the same cases "
                                      f"({exc})".splitlines()[0]) from None
                log.info("write lost a race with another writer (%s); retrying (%d)", type(exc).__name__, attempt + 1)
                time.sleep(random.uniform(0.0, 0.05 * 2**attempt))  # apart, so they do not collide again
        raise AssertionError("unreachable")

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise Unavailable(f"store {redacted(self.url)} has schema version {version}, "
                                  f"newer than this software ({len(MIGRATIONS)})")
            for number in range(version + 1, len(MIGRATIONS) + 1):
                log.info("migrating store %s to schema version %d", redacted(self.url), number)
                conn.execute(MIGRATIONS[number - 1])
            if version < len(MIGRATIONS):
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS),))

    @property
    def schema_version(self) -> int:
        return self._read("SELECT version FROM schema_version")[0][0]

    def close(self) -> None:
        self._pool.close()

    # ------------------------------------------------------------ writes
    def _transaction(self, work: Callable[[Any], T]) -> T:
        return self._retrying(work)

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(%s)", [values]

    def _add_terms(self, db: Any, deltas: dict[tuple[str, str], int]) -> None:
        """One statement for the whole batch (an executemany of thousands of rows is as many round trips)."""
        if deltas:
            db.execute("INSERT INTO daily_terms AS d (day, term, n) "
                       "SELECT * FROM unnest(%s::date[], %s::text[], %s::integer[]) "
                       "ON CONFLICT (day, term) DO UPDATE SET n = d.n + excluded.n",
                       ([day for day, _ in deltas], [word for _, word in deltas], list(deltas.values())))

    def _rebuild_terms(self, db: Any) -> None:
        db.execute(_REBUILD_TERMS)

    def _order_inserts(self, inserts: list[dict[str, Any]]) -> None:
        """By daily-count cell: every writer then locks those rows (their triggers upsert them) in one order,
        so concurrent imports wait for each other there instead of deadlocking."""
        inserts.sort(key=lambda r: (r["received_at"][:10], r["district"], r["street"],
                                    r["category_l2"] or r["category_l1"] or "", r["id"]))

    # ------------------------------------------------------------ outbox
    def pending(self, limit: int = 1000) -> list[tuple[int, str, str]]:
        """Claim up to ``limit`` entries for this worker, oldest first, for :attr:`lease` seconds.

        Claims are taken one worker at a time (a transaction-scoped advisory
        lock, held for the few milliseconds of the claim), rows another
        transaction holds are skipped, and an entry whose case another worker
        holds is left for later: each case is in one worker's hands at a time.
        """
        with self._write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CLAIM_LOCK,))
            rows = conn.execute(
                """
                UPDATE index_outbox SET claimed_until = now() + make_interval(secs => %s)
                WHERE seq IN (
                    SELECT o.seq FROM index_outbox o
                    WHERE (o.claimed_until IS NULL OR o.claimed_until < now())
                      AND NOT EXISTS (SELECT 1 FROM index_outbox p
                                      WHERE p.case_id = o.case_id AND p.claimed_until >= now())
                    ORDER BY o.seq LIMIT %s FOR UPDATE SKIP LOCKED)
                RETURNING seq, case_id, op
                """,
                (self.lease, limit),
            ).fetchall()
        return sorted((int(seq), case_id, op) for seq, case_id, op in rows)

    def release(self, seqs: Sequence[int]) -> None:
        """Hand claimed entries back at once (the index failed), rather than when their lease runs out."""
        with self._write() as conn:
            conn.execute("UPDATE index_outbox SET claimed_until = NULL WHERE seq = ANY(%s)", (list(seqs),))

    def pending_count(self) -> int:
        return self._read("SELECT count(*) FROM index_outbox")[0][0]

    def acknowledge(self, seqs: Sequence[int]) -> None:
        """Forget outbox entries the index has taken."""
        with self._write() as conn:
            conn.execute("DELETE FROM index_outbox WHERE seq = ANY(%s)", (list(seqs),))

    # ------------------------------------------------------------ reads
    def where(self, query: CaseQuery) -> tuple[str, str, list[Any]]:
        """(FROM clause, WHERE clause, params) for a query."""
        clauses: list[str] = []
        params: list[Any] = []
        if query.text.strip():
            tokens = self.tokenize(query.text)
            if not tokens:
                raise InvalidInput(f"search text {query.text!r} has no words to look for")
            clauses.append("c.words @@ %s::tsquery")
            params.append(_tsquery(tokens))
        for clause, values in field_filters(query):
            clauses.append(clause.replace("?", "%s"))
            params.extend(values)
        if query.department:
            clauses.append("strpos(c.departments, %s) > 0")
            params.append(f"|{query.department}|")
        return "cases c", (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def search(self, query: CaseQuery) -> Page:
        _, where, params = self.where(query)
        if query.text.strip():
            order, order_params = "ts_rank(c.words, %s::tsquery) DESC, c.received_at DESC, c.id", [params[0]]
        else:
            order, order_params = "c.received_at DESC, c.id", []
        rows = self._read(f"{_SELECT}{where} ORDER BY {order} LIMIT %s OFFSET %s",
                          [*params, *order_params, query.limit, query.offset])
        total = self._read(f"SELECT count(*) FROM cases c{where}", params)[0][0]
        return Page([case_from_row(r) for r in rows], total)

