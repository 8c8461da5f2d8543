"""Ingest throughput into the embedded store for 100,000 generated cases.

Baseline in the same run: the same CSV rows read with ``csv`` and written raw
into a SQLite table with ``executemany`` (no parsing, masking, placing or
segmentation), i.e. the floor set by SQLite and the CSV reader themselves.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mib, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()

    from hotline.demo.generator import DemoGenerator, write_csv
    from hotline.ingest import CaseBuilder, ingest
    from hotline.places import default_gazetteer
    from hotline.store.sqlite import SQLiteStore
    from hotline.taxonomy import default_taxonomy

    work = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    days = 365
    started = time.perf_counter()
    rows, _ = DemoGenerator(default_gazetteer(), default_taxonomy(), seed=1, rate=args.cases / days * 1.02).generate(days, date(2025, 1, 1))
    rows = rows[: args.cases]
    generate_s = time.perf_counter() - started
    path = work / "calls.csv"
    write_csv(rows, path)

    started = time.perf_counter()
    raw = sqlite3.connect(work / "raw.db")
    raw.execute("PRAGMA journal_mode = WAL")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        raw.execute(f"CREATE TABLE raw ({', '.join(f'c{i}' for i in range(len(header)))})")
        raw.executemany(f"INSERT INTO raw VALUES ({', '.join('?' * len(header))})", reader)
    raw.commit()
    raw.close()
    baseline_s = time.perf_counter() - started

    store = SQLiteStore(f"sqlite:///{work}/store.db")
    builder = CaseBuilder(default_gazetteer(), default_taxonomy(), source=path.name)
    store.tokenize("预热")  # load the dictionary outside the timing
    first = ingest(path, store, builder)
    again = ingest(path, store, builder)
    store.close()
    assert first.inserted == len(rows) and again.unchanged == len(rows), (first, again)

    report("ingest", {
        "cases": len(rows),
        "generate cases/s": len(rows) / generate_s,
        "baseline raw csv->sqlite cases/s": len(rows) / baseline_s,
        "hotline ingest cases/s (parse, mask, place, segment, FTS)": len(rows) / first.seconds,
        "hotline re-ingest of the same file cases/s (all unchanged)": len(rows) / again.seconds,
        "ingest / baseline time ratio": first.seconds / baseline_s,
        "store file MiB": (work / "store.db").stat().st_size / 2**20,
        "peak RSS MiB": peak_rss_mib(),
    })


if __name__ == "__main__":
    main()
