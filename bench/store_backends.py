"""The two stores side by side on the same generated cases: SQLite (one file) and PostgreSQL (a real server).

For ``--cases`` generated cases (default 100,000, about 200 days of a city of
five million) it measures, on each backend in the same run: the ingest rate
(upsert in batches of 1,000 with segmentation, audit rules and outbox), the
store's size, and the reads the service makes: a case by id, a page of one
district's last 30 days, a word search, every case of 30 days in time order
(what the supervisors' views read today), and the summary. Ratios are
PostgreSQL over SQLite. The PostgreSQL server is started here (initdb and
pg_ctl in a temporary directory on a free 127.0.0.1 port) and removed at the end.

    python bench/store_backends.py [--cases 100000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mib, report, timed  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _p50_ms(fn: Callable[[Any], Any], args: list[Any]) -> float:
    times = []
    for arg in args:
        started = time.perf_counter()
        fn(arg)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(store: Any, cases: list[Any], size: Callable[[], int]) -> dict[str, float]:
    from hotline.store.base import CaseQuery, CellCount

    store.tokenize("预热")  # the dictionary loads outside the timing
    started = time.perf_counter()
    for start in range(0, len(cases), 1000):
        store.upsert(cases[start : start + 1000])
    ingest_s = time.perf_counter() - started
    last = max(c.received_at for c in cases).date()
    rng = random.Random(1)
    ids = [c.id for c in rng.sample(cases, 200)]
    districts = sorted({c.area.district for c in cases if c.area.district})
    month = [CaseQuery.days(last - timedelta(days=29), last, district=d) for d in districts]
    started = time.perf_counter()
    n_month = sum(1 for _ in store.iter_cases(CaseQuery.days(last - timedelta(days=29), last)))
    iter_s = time.perf_counter() - started
    started = time.perf_counter()
    store.summary()
    summary_s = time.perf_counter() - started
    # What the hotspot and forecast views read: 92 days and the baseline's history before them. Baseline in
    # the same run: the same counts grouped from every case of the range (what they read before aggregates),
    # into the same objects.
    from hotline.hotspots.series import HISTORY_DAYS

    first = last - timedelta(days=91 + HISTORY_DAYS)
    p = store.placeholder

    def scan() -> list[Any]:
        return [CellCount(d if isinstance(d, date) else date.fromisoformat(d), district, category, n)
                for d, district, category, n in store._read(
                    f"SELECT {store.day_of_case}, district, coalesce(category_l2, category_l1, ''), count(*) "
                    f"FROM cases WHERE received_at >= {p} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", [first.isoformat()])]

    aggregates_s, from_aggregates = timed(lambda: store.counts(CaseQuery.days(first, last)))
    scan_s, scanned = timed(scan)
    assert from_aggregates == scanned
    return {
        "ingest_cases_per_s": len(cases) / ingest_s,
        "size_mib": size() / 2**20,
        "get_p50_ms": _p50_ms(store.get, ids),
        "district_30_days_page_p50_ms": _p50_ms(store.search, month),
        "word_search_p50_ms": _p50_ms(store.search, [CaseQuery(text=w) for w in ("停水", "噪音", "路灯", "拖欠工资")]),
        "iter_30_days_s": iter_s,
        "iter_30_days_cases": n_month,
        "summary_s": summary_s,
        "view_counts_scan_s": scan_s,
        "view_counts_aggregates_s": aggregates_s,
        "view_counts_speedup": scan_s / aggregates_s,
        "view_counts_rows": len(from_aggregates),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()

    from hotline.demo.generator import DemoGenerator
    from hotline.ingest import CaseBuilder, ColumnMap
    from hotline.places import default_gazetteer
    from hotline.store.pgserver import Server
    from hotline.store.postgres import PostgreSQLStore
    from hotline.store.sqlite import SQLiteStore
    from hotline.taxonomy import default_taxonomy

    days = 365
    rows, _ = DemoGenerator(default_gazetteer(), default_taxonomy(), seed=1, rate=args.cases / days * 1.02).generate(
        days, date(2025, 1, 1))
    rows = rows[: args.cases]
    builder = CaseBuilder(default_gazetteer(), default_taxonomy(), max_chars=4000, source="bench.csv")
    columns = ColumnMap().resolve(list(rows[0]))
    cases = [builder.build(row, columns) for row in rows]

    work = Path(tempfile.mkdtemp(prefix="hotline-bench-stores-"))
    work.chmod(0o755)
    figures: dict[str, Any] = {"cases": len(cases)}
    try:
        sqlite = SQLiteStore(f"sqlite:///{work}/store.db")
        files = lambda: sum(p.stat().st_size for p in work.glob("store.db*"))  # noqa: E731
        for key, value in measure(sqlite, cases, files).items():
            figures[f"sqlite_{key}"] = value
        sqlite.close()

        server = Server(work / "pg", port=_free_port()).start()
        try:
            pg = PostgreSQLStore(server.url)
            size = lambda: pg._read("SELECT pg_database_size(current_database())")[0][0]  # noqa: E731
            for key, value in measure(pg, cases, size).items():
                figures[f"postgresql_{key}"] = value
            pg.close()
        finally:
            server.remove()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for key in ("ingest_cases_per_s", "get_p50_ms", "district_30_days_page_p50_ms", "word_search_p50_ms",
                "iter_30_days_s", "summary_s", "size_mib", "view_counts_aggregates_s"):
        figures[f"ratio_postgresql_over_sqlite_{key}"] = figures[f"postgresql_{key}"] / figures[f"sqlite_{key}"]
    figures["peak_rss_mib"] = peak_rss_mib()
    report("store_backends", figures)


if __name__ == "__main__":
    main()
