"""Search: bulk indexing and similar-case queries at 100,000 cases on both backends; routing with similar cases.

Starts its own Elasticsearch node (127.0.0.1, free port, 1 GiB heap) and
stops it at the end. Baselines from the same run: tokenising alone (the
work every backend does first) and a raw ``streaming_bulk`` of the same,
already tokenised documents (Elasticsearch's own ceiling here).

    python bench/search.py [--cases 100000]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import peak_rss_mib, report
from elasticsearch import helpers

from classifiers.dataset import prepare_text
from classifiers.model import CaseModel
from classifiers.router import Router
from hotline.demo.generator import DemoGenerator
from hotline.ingest import CaseBuilder, ColumnMap
from hotline.places import default_gazetteer
from hotline.settings import Settings, get_settings
from hotline.taxonomy import default_taxonomy
from hotline.text.segment import default_segmenter
from search.elastic import ElasticsearchIndex
from search.embedded import EmbeddedIndex
from search.node import Node


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(latencies: list[float]) -> tuple[float, float]:
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 95))


def query_latencies(index, texts: list[str], districts: list[str]) -> dict[str, tuple[float, float]]:
    for text in texts[:30]:
        index.similar(text, k=10)
    plain, filtered = [], []
    for text, district in zip(texts, districts, strict=False):
        started = time.perf_counter()
        index.similar(text, k=10)
        plain.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        index.similar(text, k=10, district=district)
        filtered.append((time.perf_counter() - started) * 1000)
    return {"all": percentiles(plain), "district": percentiles(filtered)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()
    gazetteer, taxonomy = default_gazetteer(), default_taxonomy()
    days = 180
    rows, _ = DemoGenerator(gazetteer, taxonomy, seed=11, rate=args.cases / days * 1.1).generate(days, date(2025, 1, 1))
    rows = rows[: args.cases]
    builder = CaseBuilder(gazetteer, taxonomy, max_chars=4000, source="bench.csv")
    columns = ColumnMap().resolve(list(rows[0]))
    cases = [builder.build(row, columns) for row in rows]
    figures: dict[str, object] = {"cases": len(cases)}

    tokens = default_segmenter(get_settings().segmenter).tokens
    started = time.perf_counter()
    token_strings = [" ".join(tokens(f"{c.title} {c.text}")) for c in cases]
    figures["baseline: tokenising alone, cases/s"] = len(cases) / (time.perf_counter() - started)

    work = Path(tempfile.mkdtemp(prefix="hotline-bench-search-"))
    work.chmod(0o755)
    node = Node(work / "es", port=free_port(), heap="1g", cache=Settings().cache).start()
    try:
        embedded = EmbeddedIndex(f"sqlite:///{work}/index.db")
        started = time.perf_counter()
        for start in range(0, len(cases), 5000):
            embedded.index(cases[start : start + 5000])
        figures["embedded: bulk index cases/s"] = len(cases) / (time.perf_counter() - started)

        raw = ElasticsearchIndex(f"{node.url}/bench-raw", timeout=60)
        raw.ensure()
        started = time.perf_counter()
        store_only = ("media_url", "updated_at")  # not in the index's mapping
        prepared = [{"_id": c.id, "_source": {**{k: v for k, v in c.to_dict().items() if k not in store_only},
                                               "cell_category": "", "tokens": t,
                                               "category_l1": None, "category_l2": None, "category_l3": None}}
                    for c, t in zip(cases, token_strings, strict=False)]
        for _ok, _item in helpers.streaming_bulk(raw.client, prepared, index=raw.alias, chunk_size=1000):
            pass
        figures["baseline: raw streaming_bulk of tokenised documents, cases/s"] = len(cases) / (time.perf_counter() - started)

        elastic = ElasticsearchIndex(f"{node.url}/bench", timeout=60)
        elastic.ensure()
        started = time.perf_counter()
        elastic.index(cases)
        elastic.refresh()
        figures["elasticsearch: bulk index cases/s (tokenising included)"] = len(cases) / (time.perf_counter() - started)
        figures["elasticsearch: indexed"] = elastic.count()

        rng = np.random.default_rng(0)
        picks = rng.choice(len(cases), 300, replace=False)
        texts = [cases[i].text for i in picks]
        districts = [cases[i].area.district or "海陵区" for i in picks]
        for name, index in (("embedded", embedded), ("elasticsearch", elastic)):
            lat = query_latencies(index, texts, districts)
            figures[f"{name}: similar p50 ms"], figures[f"{name}: similar p95 ms"] = lat["all"]
            figures[f"{name}: similar in district p50 ms"], figures[f"{name}: similar in district p95 ms"] = lat["district"]

        # Routing with and without similar cases: train on the first 150 days, route the last 30.
        cut = cases[0].received_at + timedelta(days=150)
        train = [(c, r) for c, r in zip(cases, rows, strict=False) if c.received_at < cut][:30_000]
        test = [(c, r) for c, r in zip(cases, rows, strict=False) if c.received_at >= cut][:3000]
        offices = list(gazetteer.offices().values())
        model = CaseModel(similar=False).fit(
            [prepare_text(r["transcript"]) for _, r in train], [f"{r['category_l1']}/{r['category_l2']}" for _, r in train],
            departments=[c.departments for c, _ in train], district_offices=offices,
        )
        history = ElasticsearchIndex(f"{node.url}/bench-history", timeout=60)
        history.index(c for c, _ in train)
        history.refresh()
        for name, finder, weight in (("model only", None, 0.0), ("with similar cases (elasticsearch)", history, 0.3)):
            router = Router(model, taxonomy, gazetteer, similar=finder, similar_weight=weight)
            hits1 = hits3 = 0
            for case, row in test:
                routing = router.route(row["transcript"], at=case.received_at)
                suggested = [d.department for d in routing.departments]
                truth = case.departments[0]
                hits1 += suggested[:1] == [truth]
                hits3 += truth in suggested[:3]
            figures[f"routing {name}: top-1 department accuracy"] = hits1 / len(test)
            figures[f"routing {name}: top-3 department accuracy"] = hits3 / len(test)
        figures["peak RSS MiB (this process)"] = peak_rss_mib()
    finally:
        node.stop()
        shutil.rmtree(work, ignore_errors=True)
    report("search", figures)


if __name__ == "__main__":
    main()
