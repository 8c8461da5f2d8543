"""One conformance suite over both search backends, against a real Elasticsearch node."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from hotline.case import Case
from hotline.errors import InvalidInput, NotFound, Unavailable
from hotline.store.base import CaseQuery
from hotline.store.sqlite import SQLiteStore
from search import open_index
from search.base import SearchIndex
from search.elastic import ElasticsearchIndex
from search.embedded import EmbeddedIndex
from search.node import Node
from search.sync import sync
from search.vectors import MIN_MEANING, case_text, fuse
from tests.servers import drop_es_index

N_CASES = 4000


@pytest.fixture(scope="module")
def cases(demo_cases: list[Case]) -> list[Case]:
    return demo_cases[:N_CASES]


def _elastic(node: Node) -> ElasticsearchIndex:
    return ElasticsearchIndex(f"{node.url}/test-{uuid.uuid4().hex[:10]}", timeout=30)


@pytest.fixture(scope="module", params=["embedded", "elasticsearch"])
def index(request: pytest.FixtureRequest, cases: list[Case], tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchIndex]:
    """Each backend filled from a store through the outbox, as in service."""
    store = SQLiteStore(f"sqlite:///{tmp_path_factory.mktemp('search')}/store.db")
    store.upsert(cases)
    if request.param == "embedded":
        idx: SearchIndex = open_index(store.url, store)
    else:
        idx = _elastic(request.getfixturevalue("es_node"))
    report = sync(store, idx)
    assert report.error == "" and report.pending == 0
    idx.refresh()
    yield idx
    if isinstance(idx, ElasticsearchIndex):
        drop_es_index(idx)
    store.close()


def _ids(page_items: list[Case]) -> set[str]:
    return {c.id for c in page_items}


def _all(index: SearchIndex, query: CaseQuery) -> set[str]:
    found: set[str] = set()
    offset = 0
    while True:
        page = index.search(CaseQuery(**{**_fields(query), "limit": 1000, "offset": offset}))
        found |= _ids(page.items)
        offset += 1000
        if offset >= page.total:
            assert len(found) == page.total
            return found


def _fields(query: CaseQuery) -> dict:
    return {name: getattr(query, name) for name in query.__slots__}


def test_every_case_is_indexed_and_comes_back_whole(index: SearchIndex, cases: list[Case]) -> None:
    assert index.count() == len(cases)
    for case in cases[:: len(cases) // 25]:
        assert index.get(case.id) == case
    with pytest.raises(NotFound):
        index.get("no-such-case")


@pytest.mark.parametrize("make", [
    lambda c: CaseQuery(district=c[0].area.district),
    lambda c: CaseQuery(category=c[1].category.l1),
    lambda c: CaseQuery(category=c[2].category.path),
    lambda c: CaseQuery(cell_category=c[5].category.l2 or c[5].category.l1, district=c[5].area.district),
    lambda c: CaseQuery(department=c[3].departments[0]),
    lambda c: CaseQuery(channel=c[4].channel.value, status=c[4].status.value),
    lambda c: CaseQuery(start=c[100].received_at, end=c[100].received_at + timedelta(days=2), street=c[100].area.street),
])
def test_filters_match_exactly_the_cases_they_name(index: SearchIndex, cases: list[Case], make) -> None:
    query = make(cases)
    expected = {c.id for c in cases if _matches(c, query)}
    assert expected and _all(index, query) == expected


def _matches(case: Case, q: CaseQuery) -> bool:
    cat = case.category
    return all([
        not q.district or case.area.district == q.district,
        not q.street or case.area.street == q.street,
        not q.channel or case.channel.value == q.channel,
        not q.status or case.status.value == q.status,
        not q.department or q.department in case.departments,
        not q.start or case.received_at >= q.start,
        not q.end or case.received_at <= q.end,
        not q.category or (cat is not None and (q.category in (cat.l1, cat.l2, cat.l3) if "/" not in q.category
                                                else cat.path.startswith(q.category))),
        not q.cell_category or (cat is not None and q.cell_category == (cat.l2 or cat.l1)),
    ])


@pytest.fixture(scope="module")
def reference(cases: list[Case], tmp_path_factory: pytest.TempPathFactory) -> EmbeddedIndex:
    """An embedded index in a file of its own: the answers every backend must give."""
    ref = EmbeddedIndex(f"sqlite:///{tmp_path_factory.mktemp('ref')}/ref.db")
    ref.index(cases)
    return ref


@pytest.mark.parametrize("text", ["停水", "噪音 晚上", "路灯", "燃气", "工资"])
def test_text_search_finds_the_same_cases_on_both_backends(index: SearchIndex, text: str, reference: EmbeddedIndex,
                                                          cases: list[Case]) -> None:
    expected = _all(reference, CaseQuery(text=text))
    assert expected and _all(index, CaseQuery(text=text)) == expected
    district = cases[0].area.district
    assert _all(index, CaseQuery(text=text, district=district)) == _all(reference, CaseQuery(text=text, district=district))


def test_paging_walks_every_match_once_newest_first(index: SearchIndex) -> None:
    query = CaseQuery(district="海陵区", limit=50)
    first, second = index.search(query), index.search(CaseQuery(district="海陵区", limit=50, offset=50))
    assert first.total == second.total > 100
    assert not _ids(first.items) & _ids(second.items)
    times = [c.received_at for c in first.items + second.items]
    assert times == sorted(times, reverse=True)


def test_counts_per_day_area_and_category_are_exact(index: SearchIndex, cases: list[Case]) -> None:
    start, end = cases[0].received_at, cases[0].received_at + timedelta(days=5)
    expected = Counter(
        (c.received_at.date(), c.area.district, (c.category.l2 or c.category.l1) if c.category else "")
        for c in cases if start <= c.received_at <= end
    )
    got = index.counts(CaseQuery(start=start, end=end))
    assert {(r.day, r.district, r.category): r.count for r in got} == dict(expected)
    assert got == sorted(got)


def test_similar_cases_respect_area_time_and_exclusion(index: SearchIndex, cases: list[Case]) -> None:
    case = next(c for c in cases[500:] if len(c.text) > 40)
    found = index.similar(case.text, k=5)
    assert found and found[0].case_id == case.id and found[0].similarity > 0.8
    assert [n.similarity for n in found] == sorted((n.similarity for n in found), reverse=True)
    others = index.similar(case.text, k=5, exclude=case.id, district=case.area.district,
                           since=case.received_at - timedelta(days=10))
    assert all(n.case_id != case.id and n.district == case.area.district for n in others)
    assert all(n.received_at >= case.received_at - timedelta(days=10) for n in others)
    assert all(n.similarity >= 0.2 for n in others)
    assert index.similar("的 了 呢", k=5) == []


def test_both_backends_agree_on_similar_cases(es_node: Node, cases: list[Case], tmp_path: Path) -> None:
    embedded = EmbeddedIndex(f"sqlite:///{tmp_path}/e.db")
    elastic = _elastic(es_node)
    try:
        embedded.index(cases[:1500])
        elastic.index(cases[:1500])
        elastic.refresh()
        for case in cases[1500:1530]:
            a = [(n.case_id, round(n.similarity, 6)) for n in embedded.similar(case.text, k=5)]
            b = [(n.case_id, round(n.similarity, 6)) for n in elastic.similar(case.text, k=5)]
            assert a == b
    finally:
        drop_es_index(elastic)


def test_delete_removes_from_search(es_node: Node, cases: list[Case], tmp_path: Path) -> None:
    for idx in (EmbeddedIndex(f"sqlite:///{tmp_path}/d.db"), _elastic(es_node)):
        idx.index(cases[:20])
        assert idx.delete([cases[0].id, "never-indexed"]) == 1
        idx.refresh()
        assert idx.count() == 19
        with pytest.raises(NotFound):
            idx.get(cases[0].id)
        if isinstance(idx, ElasticsearchIndex):
            drop_es_index(idx)


def test_bad_urls_and_queries_are_clear_errors(index: SearchIndex) -> None:
    with pytest.raises(InvalidInput):
        open_index("ftp://example")
    with pytest.raises(InvalidInput):
        open_index("http://127.0.0.1:9200/Bad*Alias")
    with pytest.raises(InvalidInput):
        index.search(CaseQuery(text="，。！"))


def test_an_unreachable_node_is_unavailable_at_once(store: SQLiteStore, cases: list[Case]) -> None:
    from tests.servers import free_port

    down = ElasticsearchIndex(f"http://127.0.0.1:{free_port()}/x", timeout=2)
    started = datetime.now()
    with pytest.raises(Unavailable):
        down.search(CaseQuery())
    store.upsert(cases[:10])
    report = sync(store, down)
    assert report.error and report.pending == 10 and report.indexed == 0
    assert datetime.now() - started < timedelta(seconds=20)


def test_a_stale_worker_cannot_put_an_old_version_back(es_node: Node, cases: list[Case]) -> None:
    """Two outbox workers: one took a case's old entry and stalled past its lease, another indexed the newer
    entry meanwhile. The old write (and an old delete) arriving last change nothing: the outbox sequence is
    the document's external version."""
    from dataclasses import replace

    idx = _elastic(es_node)
    try:
        old, new = cases[0], replace(cases[0], text="更新后的内容：水管已经修好了")
        assert idx.index([new], versions={new.id: 12}) == 1
        assert idx.index([old], versions={old.id: 7}) == 0  # stale: dropped, no error
        idx.delete([old.id], versions={old.id: 9})  # an older delete as well
        idx.refresh()
        assert idx.get(new.id).text == new.text
        idx.delete([new.id], versions={new.id: 13})
        idx.refresh()
        assert idx.count() == 0
    finally:
        drop_es_index(idx)


def test_rebuild_switches_the_alias_without_losing_a_case(es_node: Node, store: SQLiteStore, cases: list[Case]) -> None:
    idx = _elastic(es_node)
    try:
        store.upsert(cases[:300])
        sync(store, idx)
        assert idx.versions() == [f"{idx.alias}-v1"]
        assert idx.rebuild(store) == f"{idx.alias}-v2"
        idx.refresh()
        assert idx.versions() == [f"{idx.alias}-v2"] and idx.count() == 300
        store.upsert(cases[300:310])
        sync(store, idx)
        idx.refresh()
        assert idx.count() == 310
    finally:
        drop_es_index(idx)


def test_migration_queues_existing_cases_for_the_index(tmp_path: Path, cases: list[Case]) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/old.db")
    store.upsert(cases[:5])
    store.acknowledge([seq for seq, _, _ in store.pending()])
    store._db.execute("DROP INDEX cases_cell")  # back to schema version 1: undo 11, 10 (with daily_terms), 9, …, 2
    for table in ("work_items", "work_log"):
        store._db.execute(f"DROP TABLE {table}")
    for trigger in ("ai", "au", "ad"):
        store._db.execute(f"DROP TRIGGER cases_events_{trigger}")
    for table in ("daily_terms", "events", "case_events", "event_queue"):
        store._db.execute(f"DROP TABLE {table}")
    for table in ("cells", "counts"):
        for trigger in ("ai", "ad", "au"):
            store._db.execute(f"DROP TRIGGER cases_{table}_{trigger}")
        store._db.execute(f"DROP TABLE daily_{table}")
    store._db.execute("DROP TRIGGER case_vectors_gone")
    store._db.execute("DROP TABLE case_vectors")
    store._db.execute("ALTER TABLE cases DROP COLUMN media_url")
    store._db.execute("DROP TABLE case_log")
    store._db.execute("ALTER TABLE cases DROP COLUMN owner")
    store._db.execute("DROP TABLE index_outbox")
    store._db.execute("DROP TABLE cases_vocab")
    for trigger in ("cases_outbox_ai", "cases_outbox_au", "cases_outbox_ad"):
        store._db.execute(f"DROP TRIGGER {trigger}")
    store._db.execute("PRAGMA user_version = 1")
    store.close()
    reopened = SQLiteStore(f"sqlite:///{tmp_path}/old.db")
    assert reopened.pending_count() == 5
    reopened.close()


class CharacterVectors:
    """Hashed character bigrams as unit vectors: a stand-in sentence encoder for the backends' vector path
    (the real encoder's sense of meaning is tested in test_encoder.py)."""

    name = "char-bigrams"
    dimension = 64

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for a, b in zip(text, text[1:], strict=False):
                out[row, int(hashlib.md5((a + b).encode()).hexdigest()[:6], 16) % self.dimension] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def test_reciprocal_rank_fusion_puts_what_both_rank_high_first() -> None:
    words = [("a", 0.9), ("b", 0.5), ("c", 0.25)]
    meanings = [("b", 0.95), ("d", 0.9), ("a", 0.3)]
    fused = fuse(words, meanings, {"d": 0.05}.get, k=4, min_similarity=0.2)
    assert [c.case_id for c in fused] == ["b", "a", "d", "c"]  # b: ranks 2 and 1; a: 1 and 3; d passes by meaning
    assert fused[2].similarity == 0.05 and fused[2].meaning == 0.9 and fused[3].meaning is None
    assert [c.case_id for c in fuse(words, [("d", MIN_MEANING - 0.01)], {"d": 0.0}.get, 4, 0.2)] == ["a", "b", "c"]


def test_both_backends_find_similar_cases_by_words_and_meaning(es_node: Node, cases: list[Case], tmp_path: Path) -> None:
    """The vectors are stored with each case; both backends fuse the same two rankings under the same filters."""
    vectors = CharacterVectors()
    embedded = EmbeddedIndex(f"sqlite:///{tmp_path}/v.db", embedder=vectors)
    elastic = ElasticsearchIndex(f"{es_node.url}/test-{uuid.uuid4().hex[:10]}", timeout=30, embedder=vectors)
    try:
        embedded.index(cases[:1500])
        elastic.index(cases[:1500])
        elastic.refresh()
        overlap = []
        for case in cases[1500:1520]:
            a = embedded.similar(case.text, k=5)
            b = elastic.similar(case.text, k=5)
            assert a and b and any(n.meaning is not None for n in a) and any(n.meaning is not None for n in b)
            shared = {n.case_id for n in a} & {n.case_id for n in b}
            overlap.append(len(shared) / 5)
            for n in b:  # the same vectors give the same cosine (float HNSW in Elasticsearch)
                twin = next((m for m in a if m.case_id == n.case_id), None)
                if twin is not None and twin.meaning is not None and n.meaning is not None:
                    assert abs(twin.meaning - n.meaning) < 1e-4
                    assert twin.similarity == pytest.approx(n.similarity, abs=1e-6)
        assert np.mean(overlap) >= 0.8  # kNN in Elasticsearch is approximate (HNSW), the embedded cosine exact
        case = cases[700]
        itself = embedded.similar(case.text, k=3)
        assert itself[0].case_id == case.id and itself[0].meaning == pytest.approx(1.0, abs=1e-5)
        for idx in (embedded, elastic):
            others = idx.similar(case.text, k=5, exclude=case.id, district=case.area.district,
                                 since=case.received_at - timedelta(days=30))
            assert others and all(n.case_id != case.id and n.district == case.area.district for n in others)
            assert all(n.received_at >= case.received_at - timedelta(days=30) for n in others)
            assert all(n.similarity >= 0.2 or (n.meaning or 0) >= MIN_MEANING for n in others)
            assert all(n.text and len(n.text) <= 121 for n in others)
        assert "vector" not in elastic.client.get(index=elastic.alias, id=case.id, source_excludes=["vector"])["_source"]
        assert len(elastic.get(case.id).text) == len(case.text)
    finally:
        drop_es_index(elastic)
        embedded.close()


def test_vectors_follow_the_store_through_the_outbox(tmp_path: Path, cases: list[Case]) -> None:
    """The store's own index with an encoder: written cases get their vector at the next sync, deleted ones lose it."""
    store = SQLiteStore(f"sqlite:///{tmp_path}/s.db")
    vectors = CharacterVectors()
    idx = open_index(store.url, store, embedder=vectors)
    store.upsert(cases[:200])
    report = sync(store, idx)
    assert report.error == "" and report.pending == 0 and report.indexed == 200
    assert store.read("SELECT count(*) FROM case_vectors")[0][0] == 200
    found = idx.similar(case_text(cases[10]), k=3)
    assert found[0].case_id == cases[10].id and found[0].meaning == pytest.approx(1.0, abs=1e-5)
    store.delete([cases[10].id])
    sync(store, idx)
    assert store.read("SELECT count(*) FROM case_vectors")[0][0] == 199
    assert all(n.case_id != cases[10].id for n in idx.similar(cases[10].text, k=3))
    plain = open_index(store.url, store)  # without an encoder: words alone, and the outbox needs no cases
    assert all(n.meaning is None for n in plain.similar(cases[11].text, k=3)) and not plain.needs_cases
    store.close()


def test_elasticsearch_urls_name_several_nodes_and_the_index_settings() -> None:
    from search.elastic import split_url

    assert split_url("http://a:9200,b:9201/hot-line?replicas=1&shards=3") == (
        ["http://a:9200", "http://b:9201"], "hot-line", {"replicas": 1, "shards": 3})
    assert split_url("http://127.0.0.1:9200") == (["http://127.0.0.1:9200"], "hotline-cases", {})
    for bad in ("http://a:9200/x?replicas=one", "http://a:9200/x?size=3", "http://a:9200/x?shards=0",
                "http://a:9200/x?replicas=1&replicas=2"):
        with pytest.raises(InvalidInput):
            split_url(bad)
