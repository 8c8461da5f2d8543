"""Nothing lost: Elasticsearch stops in the middle of a bulk ingest, comes back, and the outbox catches up."""

from __future__ import annotations

import threading
import time
import uuid

from hotline.case import Case
from hotline.store.sqlite import SQLiteStore
from search.elastic import ElasticsearchIndex
from search.node import Node
from search.sync import sync


def test_every_case_is_indexed_exactly_once_after_an_outage(es_node: Node, store: SQLiteStore,
                                                           demo_cases: list[Case]) -> None:
    cases = demo_cases[:6000]
    index = ElasticsearchIndex(f"{es_node.url}/outage-{uuid.uuid4().hex[:8]}", timeout=5, chunk_size=200)
    index.ensure()
    errors: list[str] = []
    done = threading.Event()

    def ingest() -> None:
        """Import in batches and sync after each, as the service does; keep going while the index is down."""
        for start in range(0, len(cases), 200):
            store.upsert(cases[start : start + 200])
            report = sync(store, index, batch=200)
            if report.error:
                errors.append(report.error)
        done.set()

    worker = threading.Thread(target=ingest)
    worker.start()
    while index.count() < 1000:  # some cases are in before the node goes away
        time.sleep(0.05)
    es_node.stop()
    worker.join(timeout=300)
    assert done.is_set() and errors, "the outage was noticed and the import still finished"
    assert store.pending_count() > 0
    assert store.summary().total == len(cases)

    es_node.start()
    report = sync(store, index)
    index.refresh()
    assert report.error == "" and report.pending == 0
    ids = list(index.iter_ids())
    assert len(ids) == len(set(ids)) == len(cases)
    assert set(ids) == {c.id for c in cases}
    for name in index.versions():
        index.client.indices.delete(index=name)
