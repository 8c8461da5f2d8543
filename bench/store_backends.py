"""The two stores side by side on the same generated cases, and the cost curve of a city's year.

For each size in ``--cases`` (default 100,000, about 200 days of a city of
five million; ``--cases 100000,500000,2000000`` draws the cost curve) and
each backend, in a child process of its own (so each has its own peak
memory): SQLite (one file) and PostgreSQL (a real server started here with
initdb and pg_ctl on a free 127.0.0.1 port, removed at the end), the same
generated year of calls:

- ingest: upsert in batches of 1,000 with segmentation, audit rules, the
  aggregates (daily counts, word counts) and the outbox; with ``--index es``
  the PostgreSQL run also starts an Elasticsearch node and drains the outbox
  into it *while* the cases are written, and the rate counts until the index
  has them all;
- every case's event assigned (as the service does while calls arrive);
- the reads the service makes (a case by id, a district's page, a word
  search, 30 days in time order, the summary), and the counts the hotspot
  view reads from the aggregates beside the same counts grouped from the
  cases (the baseline);
- the supervisors' views (hotspots, forecast, events, report, work list)
  over 7, 30 and 92 days, the slowest of several runs, beside two baselines: the old
  events view (clustering every case of the range) and the report with a fit over
  every day its table holds (before views fitted only their own days and the lead);
- a year of prospective detection at street × level-2 category: time and
  the memory it allocates (tracemalloc);
- the store's size and the process's peak RSS (the generated rows included).

Ratios are PostgreSQL over SQLite. With several sizes the figures are also
drawn as ``bench/store_backends.svg``.

    python bench/store_backends.py [--cases 100000[,500000,…]] [--index es] [--resume]
    python bench/store_backends.py --views sqlite:///path/to/store.db   # the views of a filled store
    python bench/store_backends.py --cases 2000000 --backends postgresql --index es --keep /tmp/city
        # keeps the filled store (PostgreSQL stopped, not removed): ``python -m hotline.store.pgserver up
        # --home /tmp/city/2000000_postgresql/pg`` and ``--views`` on the URL it prints time the views again
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import OUT, ROOT, peak_rss_mib, report, timed

BACKENDS = ("sqlite", "postgresql")
CHART = ROOT / "bench" / "store_backends.svg"


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


def _worst_of(fn: Callable[[], Any], repeat: int = 5) -> float:
    """The slowest of ``repeat`` runs (an upper bound of the p95 a supervisor sees)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return max(times)


def _cases(n: int) -> list[Any]:
    from hotline.demo.generator import DemoGenerator
    from hotline.ingest import CaseBuilder, ColumnMap
    from hotline.places import default_gazetteer
    from hotline.taxonomy import default_taxonomy

    days = 365
    rows, _ = DemoGenerator(default_gazetteer(), default_taxonomy(), seed=1, rate=n / days * 1.02).generate(
        days, date(2025, 1, 1))
    rows = rows[:n]
    builder = CaseBuilder(default_gazetteer(), default_taxonomy(), max_chars=4000, source="bench.csv")
    columns = ColumnMap().resolve(list(rows[0]))
    return [builder.build(row, columns) for row in rows]


def ingest(store: Any, cases: list[Any], index: Any = None) -> dict[str, float]:
    """Write the cases in batches of 1,000; with an index, drain the outbox into it meanwhile, until it is empty."""
    from search.sync import sync

    store.tokenize("预热")  # the dictionary loads outside the timing
    done = threading.Event()
    drained: list[float] = []

    def drain() -> None:
        while True:
            finished = done.is_set()
            if not sync(store, index, batch=2000).indexed:
                if finished:
                    drained.append(time.perf_counter())
                    return
                time.sleep(0.2)  # caught up with the writer: wait for more

    worker = threading.Thread(target=drain, daemon=True) if index is not None else None
    started = time.perf_counter()
    if worker:
        worker.start()
    for first in range(0, len(cases), 1000):
        store.upsert(cases[first : first + 1000])
    written = time.perf_counter()
    figures = {"ingest_cases_per_s": len(cases) / (written - started)}
    if worker:
        done.set()
        worker.join()
        figures["ingest_with_index_cases_per_s"] = len(cases) / (drained[0] - started)
        index.refresh()  # what a search sees a second later
        figures["index_count"] = index.count()
    return figures


def reads(store: Any, cases: list[Any], last: date) -> dict[str, float]:
    from hotline.analytics.hotspots.series import HISTORY_DAYS
    from hotline.store.base import CaseQuery, CellCount

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
    # the same run: the same counts grouped from every case of the range (what they read before aggregates).
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


def views(store: Any, last: date, baseline_days: tuple[int, ...]) -> dict[str, float]:
    """Every case's event assigned, then the supervisors' four views from what the store keeps; the old
    events view (clustering every case of the range and the 28 days before it) as baseline."""
    from hotline.analytics import reports, worklist
    from hotline.analytics.events import EventAssigner, cluster_period, kept_events
    from hotline.analytics.hotspots import forecast as fc
    from hotline.analytics.hotspots.detect import detect
    from hotline.analytics.hotspots.series import period_table
    from hotline.places import default_gazetteer
    from hotline.store.base import CaseQuery
    from hotline.taxonomy import default_taxonomy

    taxonomy = default_taxonomy()
    landmarks, level1 = default_gazetteer().landmarks, taxonomy.level1_of
    waiting = store.event_backlog()
    started = time.perf_counter()
    EventAssigner(store, store.tokenize, landmarks).run()
    figures: dict[str, float] = {"events_assigned_per_s": waiting / (time.perf_counter() - started)} if waiting else {}
    for days in (7, 30, 92):
        start = last - timedelta(days=days - 1)
        figures[f"view_{days}d_hotspots_s"] = _worst_of(
            lambda: detect(period_table(store, start, last), start, last))
        figures[f"view_{days}d_forecast_s"] = _worst_of(
            lambda: fc.rising(fc.forecast(period_table(store, last, last), horizon=14), top=20))
        figures[f"view_{days}d_events_s"] = _worst_of(lambda: kept_events(store, start, last, 3, 20))
        figures[f"view_{days}d_report_s"] = _worst_of(lambda: reports.build(store, start, last, level1), repeat=3)
        figures[f"view_{days}d_worklist_s"] = _worst_of(lambda: worklist.build(store, start, last, taxonomy), repeat=3)
        with _whole_history_fit():  # baseline: the fit over every day the view's table holds, as before
            figures[f"view_{days}d_report_whole_history_fit_s"] = _worst_of(
                lambda: reports.build(store, start, last, level1), repeat=3)
        if days in baseline_days:
            figures[f"view_{days}d_events_baseline_clustering_s"] = _worst_of(lambda: cluster_period(
                store.iter_cases(CaseQuery.days(start - timedelta(days=28), last)), start, store.tokenize,
                landmarks).largest(3)[:20], repeat=1)
    return figures


@contextlib.contextmanager
def _whole_history_fit() -> Iterator[None]:
    """Views fit their own days and ``VIEW_LEAD_DAYS`` before them; inside this, every day of the table."""
    from hotline.analytics.hotspots import baseline

    kept = baseline.VIEW_LEAD_DAYS
    baseline.VIEW_LEAD_DAYS = 10**6
    try:
        yield
    finally:
        baseline.VIEW_LEAD_DAYS = kept


def stored_views(url: str) -> dict[str, Any]:
    """The views (and their baselines) of a store an earlier run or the service filled (``--views URL``)."""
    from hotline.store import open_store
    from hotline.text.segment import default_segmenter

    store = open_store(url, tokenize=default_segmenter().tokens)
    try:
        last = store.span()[1]
        if last is None:
            sys.exit(f"bench: {url} holds no cases")
        figures: dict[str, Any] = {"store": url, "cases": store.summary().total}
        figures.update(views(store, last.date(), ()))
    finally:
        store.close()
    return figures


def street_year(store: Any, last: date) -> dict[str, float]:
    """A year of prospective detection at street × level-2 category (every day against its own past)."""
    from hotline.analytics.hotspots.detect import detect
    from hotline.analytics.hotspots.series import CountTable
    from hotline.store.base import CaseQuery

    first = last - timedelta(days=364)
    tracemalloc.start()
    started = time.perf_counter()
    table = CountTable.from_series(store.count_series(CaseQuery.days(first, last), by_street=True), by_street=True,
                                   end=last)
    alerts = detect(table, table.days[0] + timedelta(days=28), last)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"street_year_cells": len(table.cells), "street_year_detection_s": elapsed,
            "street_year_memory_mib": peak / 2**20, "street_year_alerts": len(alerts)}


def one(n: int, backend: str, index: str, keep: Path | None = None) -> dict[str, Any]:
    """Everything for one size on one backend (run in a child process); with ``keep`` the filled store stays
    there (a 2,000,000-case store takes over an hour to fill, its views a minute to time again)."""
    from hotline.store.pgserver import Server
    from hotline.store.postgres import PostgreSQLStore
    from hotline.store.sqlite import SQLiteStore
    from hotline.text.segment import default_segmenter

    cases = _cases(n)
    last = max(c.received_at for c in cases).date()
    tokens = default_segmenter().tokens
    work = keep or Path(tempfile.mkdtemp(prefix="hotline-bench-stores-"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    stop: list[Callable[[], Any]] = []
    figures: dict[str, Any] = {"cases": len(cases)}
    try:
        if backend == "sqlite":
            store = SQLiteStore(f"sqlite:///{work}/store.db", tokenize=tokens)
            size = lambda: sum(p.stat().st_size for p in work.glob("store.db*"))  # noqa: E731
            search = None
        else:
            server = Server(work / "pg", port=_free_port()).start()
            stop.append(server.stop if keep else server.remove)
            store = PostgreSQLStore(server.url, tokenize=tokens)
            size = lambda: store._read("SELECT pg_database_size(current_database())")[0][0]  # noqa: E731
            search = None
            if index == "es":
                from hotline.settings import Settings
                from search import open_index
                from search.node import Node

                node = Node(work / "es", port=_free_port(), heap="1g", cache=Settings().cache).start()
                stop.append(node.stop)
                search = open_index(f"{node.url}/hotline", store, tokenize=tokens)
                stop.append(search.close)
        stop.append(store.close)
        figures.update(ingest(store, cases, search))
        figures["size_mib"] = size() / 2**20
        figures.update(views(store, last, (7, 30) if n <= 100_000 else (7,)))
        figures.update(reads(store, cases, last))
        figures.update(street_year(store, last))
    finally:
        for action in reversed(stop):
            try:
                action()
            except Exception as exc:  # noqa: BLE001 (the figures are still worth reporting)
                print(f"cleanup: {exc}", file=sys.stderr)
        if keep:
            figures["kept"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    figures["peak_rss_mib"] = peak_rss_mib()
    return figures


def chart(runs: dict[str, dict[str, Any]], sizes: list[int]) -> str:
    """Four small panels (ingest rate, the 92-day report, store size, peak memory) against the number of
    cases, one line per backend: the cost curve BENCHMARKS.md shows."""
    panels = [("ingest_cases_per_s", "写入速度（工单/秒）"), ("view_92d_report_s", "92 天报告（秒）"),
              ("size_mib", "存储大小（MiB）"), ("peak_rss_mib", "峰值内存（MiB）")]
    colours = {"sqlite": "#1f77b4", "postgresql": "#d62728"}
    w, h, pad = 330, 220, 48
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w}" height="{2 * h + 30}" '
             'font-family="Noto Sans CJK SC, sans-serif" font-size="11">',
             f'<text x="{w}" y="18" text-anchor="middle" font-size="14">SQLite 与 PostgreSQL：随工单量增长的代价</text>']
    for i, (key, title) in enumerate(panels):
        ox, oy = (i % 2) * w, 30 + (i // 2) * h
        values = [v for n in sizes for b in BACKENDS for k, v in runs.get(f"{n}_{b}", {}).items()
                  if k == key or (key == "ingest_cases_per_s" and k == "ingest_with_index_cases_per_s")]
        peak = max(values + [1e-9])
        top = peak * 1.5  # room above the lines for the legend
        x = lambda k: ox + pad + (w - 2 * pad) * (k / max(1, len(sizes) - 1))  # noqa: E731
        y = lambda v: oy + h - 30 - (h - 60) * v / top  # noqa: E731
        parts.append(f'<text x="{ox + w / 2}" y="{oy + 16}" text-anchor="middle" font-size="12">{title}</text>')
        parts.append(f'<line x1="{ox + pad}" y1="{oy + h - 30}" x2="{ox + w - pad}" y2="{oy + h - 30}" stroke="#999"/>')
        parts.append(f'<line x1="{ox + pad}" y1="{oy + 24}" x2="{ox + pad}" y2="{oy + h - 30}" stroke="#999"/>')
        for tick in (peak / 2, peak):
            parts.append(f'<text x="{ox + pad - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                         + (f"{tick:,.0f}" if peak > 10 else f"{tick:.2f}") + "</text>")
        for k, n in enumerate(sizes):
            parts.append(f'<text x="{x(k):.1f}" y="{oy + h - 14}" text-anchor="middle">{n:,}</text>')
        parts.append(f'<text x="{ox + w / 2}" y="{oy + h - 1}" text-anchor="middle" fill="#777">一年的工单数</text>')
        lines = [(b, key, "SQLite" if b == "sqlite" else "PostgreSQL", "") for b in BACKENDS]
        if key == "ingest_cases_per_s":  # with the outbox drained into Elasticsearch meanwhile
            lines.append(("postgresql", "ingest_with_index_cases_per_s", "PostgreSQL + Elasticsearch", "5,4"))
        for j, (b, k, label, dash) in enumerate(lines):
            points = [(x(i), y(runs[f"{n}_{b}"][k])) for i, n in enumerate(sizes) if k in runs.get(f"{n}_{b}", {})]
            if not points:
                continue
            parts.append(f'<polyline fill="none" stroke="{colours[b]}" stroke-width="2" stroke-dasharray="{dash}" '
                         'points="' + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + '"/>')
            parts.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colours[b]}"/>' for px, py in points)
            parts.append(f'<text x="{ox + w - pad}" y="{oy + 34 + 14 * j}" text-anchor="end" fill="{colours[b]}">'
                         f'{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="100000", help="one size, or several separated by commas")
    parser.add_argument("--index", choices=("none", "es"), default="none",
                        help="es: the PostgreSQL runs drain their outbox into Elasticsearch while writing")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--resume", action="store_true", help="keep the runs a previous bench finished")
    parser.add_argument("--one", nargs=2, metavar=("CASES", "BACKEND"), help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each filled store in DIR/<cases>_<backend> (PostgreSQL stopped, not removed)")
    parser.add_argument("--views", metavar="STORE_URL",
                        help="only the views, on a store already filled (e.g. sqlite:///path/to/store.db)")
    args = parser.parse_args()
    if args.views:
        report("store_backends-views", stored_views(args.views))
        return
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1], args.index, args.keep)))
        return

    sizes = [int(s) for s in args.cases.split(",")]
    backends = [b for b in args.backends.split(",") if b]
    # Each run's figures are kept as it ends (a 2,000,000-case run takes most of an hour): a failed or
    # interrupted bench started again with --resume does only the runs still missing.
    partial = OUT / "store_backends.runs.json"
    runs: dict[str, dict[str, Any]] = json.loads(partial.read_text()) if args.resume and partial.exists() else {}
    for n in sizes:
        for backend in backends:
            if f"{n}_{backend}" in runs:
                continue
            print(f"{n:,} cases on {backend} …", file=sys.stderr, flush=True)
            kept = ["--keep", str(args.keep.resolve() / f"{n}_{backend}")] if args.keep else []
            child = subprocess.run([sys.executable, __file__, "--one", str(n), backend, "--index", args.index, *kept],
                                   capture_output=True, text=True, check=False)
            if child.returncode != 0:
                sys.exit(f"bench: {n} on {backend} failed:\n{child.stderr[-3000:]}")
            runs[f"{n}_{backend}"] = json.loads(child.stdout.strip().splitlines()[-1])
            OUT.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(runs, indent=1))
    figures: dict[str, Any] = {"index": args.index}
    for name, values in runs.items():
        figures.update({f"{name}_{key}": value for key, value in values.items()})
    for n in sizes:
        if all(f"{n}_{b}" in runs for b in BACKENDS):
            for key in ("ingest_cases_per_s", "get_p50_ms", "word_search_p50_ms", "size_mib", "view_92d_report_s"):
                figures[f"{n}_ratio_postgresql_over_sqlite_{key}"] = runs[f"{n}_postgresql"][key] / runs[f"{n}_sqlite"][key]
    if len(sizes) > 1:
        CHART.write_text(chart(runs, sizes), encoding="utf-8")
        figures["chart"] = str(CHART.relative_to(ROOT))
    report("store_backends", figures)


if __name__ == "__main__":
    main()
