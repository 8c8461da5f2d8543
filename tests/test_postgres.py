"""What the PostgreSQL store adds to the conformance suite (tests/test_store.py): several processes at once.

Every test runs against a real PostgreSQL server the tests start themselves
(``pg_server`` in conftest: initdb and pg_ctl on a free 127.0.0.1 port).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from hotline.case import Area, Case, Category, Channel, LabelKind, LabelSource
from hotline.errors import InvalidInput, Unavailable
from hotline.settings import Settings
from hotline.store import CaseQuery, open_store
from hotline.store.postgres import MIGRATIONS, PostgreSQLStore
from search import open_index
from search.elastic import ElasticsearchIndex
from search.sync import sync
from tests.servers import drop_es_index, free_port

pytestmark = pytest.mark.server  # every test here talks to a real PostgreSQL (and some to Elasticsearch)


def case(n: int, text: str = "小区停水了三天") -> Case:
    return Case(id=f"C{n}", received_at=datetime(2025, 7, 1 + n % 28, 9, n % 60), text=text, channel=Channel.PHONE,
                area=Area("海陵区", "城东街道"), category=Category("城乡建设", "供水"),
                category_source=LabelSource(LabelKind.IMPORTED, "import.csv"))


@pytest.fixture()
def two(pg_url: str) -> Iterator[tuple[PostgreSQLStore, PostgreSQLStore]]:
    """Two stores on one database, as two service processes on two hosts see it."""
    a, b = PostgreSQLStore(pg_url, lease=30), PostgreSQLStore(pg_url, lease=30)
    yield a, b
    a.close()
    b.close()


def test_workers_claim_disjoint_entries_and_never_the_same_case(two: tuple[PostgreSQLStore, PostgreSQLStore]) -> None:
    a, b = two
    a.upsert(case(i) for i in range(5))
    first = a.pending(limit=3)
    a.upsert([case(0, "小区停水第四天了")])  # C0 again, while worker a holds its first entry
    second = b.pending()
    assert {cid for _, cid, _ in first} == {"C0", "C1", "C2"}
    assert {cid for _, cid, _ in second} == {"C3", "C4"}  # not C0's new entry: a holds C0
    assert b.pending() == []
    a.acknowledge([seq for seq, _, _ in first])
    assert [cid for _, cid, _ in b.pending()] == ["C0"]  # now free
    b.release([seq for seq, _, _ in second])  # b failed to index: given back at once
    assert {cid for _, cid, _ in a.pending()} == {"C3", "C4"}
    assert a.pending_count() == 3


def test_an_expired_lease_is_taken_over(pg_url: str) -> None:
    a, b = PostgreSQLStore(pg_url, lease=0.5), PostgreSQLStore(pg_url, lease=0.5)
    try:
        a.upsert([case(1)])
        assert len(a.pending()) == 1 and b.pending() == []  # a died holding it …
        time.sleep(0.7)
        assert [cid for _, cid, _ in b.pending()] == ["C1"]  # … so b takes it after the lease
    finally:
        a.close()
        b.close()


def test_concurrent_writers_of_the_same_new_cases_insert_each_once(pg_url: str) -> None:
    """Four processes import overlapping batches of new ids at once: no error, each case once, one outbox entry."""
    stores = [PostgreSQLStore(pg_url) for _ in range(4)]
    results, errors = [], []

    def write(store: PostgreSQLStore, offset: int) -> None:
        try:
            results.append(store.upsert(case(i) for i in range(offset, offset + 300)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, k * 100)) for k, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert sum(r.inserted for r in results) == 600 and stores[0].search(CaseQuery(limit=1)).total == 600
        assert sum(r.unchanged for r in results) == 600
        assert stores[0].pending_count() == 600
        assert sum(c.count for c in stores[0].counts()) == 600  # the aggregates add up under concurrent writers
    finally:
        for s in stores:
            s.close()


def test_concurrent_writers_and_assigners_keep_word_counts_and_events_whole(pg_url: str) -> None:
    """Three processes write cases about the same days at once while three assigners run: the daily word
    counts equal a recount, and every case has exactly one event (one assigner works at a time)."""
    from collections import Counter
    from datetime import date

    from hotline.analytics.events import EventAssigner

    stores = [PostgreSQLStore(pg_url) for _ in range(3)]
    texts = ["幸福路自来水管爆裂了", "小区门口路灯不亮", "楼上装修噪音太大", "充电桩收费太贵"]
    errors: list[Exception] = []
    writing = threading.Event()

    def write(store: PostgreSQLStore, k: int) -> None:
        try:
            for first in range(k * 400, k * 400 + 400, 50):
                store.upsert(case(i, texts[i % 4] + f"，第{i}次反映") for i in range(first, first + 50))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def assign(store: PostgreSQLStore) -> None:
        assigner = EventAssigner(store, store.tokenize, batch=40)
        try:
            while writing.is_set() or store.event_backlog():
                assigner.run()
                time.sleep(0.01)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writing.set()
    writers = [threading.Thread(target=write, args=(s, k)) for k, s in enumerate(stores)]
    assigners = [threading.Thread(target=assign, args=(s,)) for s in stores]
    for t in (*writers, *assigners):
        t.start()
    for t in writers:
        t.join()
    writing.clear()
    for t in assigners:
        t.join()
    try:
        assert errors == []
        recount: Counter[str] = Counter()
        for c in stores[0].iter_cases():
            recount.update(set(stores[0].tokenize(f"{c.title} {c.text}")))
        assert stores[0].term_counts(date(2025, 1, 1), date(2025, 12, 31)) == dict(recount)
        assigned = stores[0]._read("SELECT count(*), count(DISTINCT case_id) FROM case_events")[0]
        sizes = stores[0]._read("SELECT sum(size) FROM events")[0][0]
        assert assigned == (1200, 1200) and sizes == 1200 and stores[0].event_backlog() == 0
    finally:
        for s in stores:
            s.close()


def test_several_workers_drain_the_outbox_into_elasticsearch_without_double_work(pg_url: str, es_node) -> None:
    index = ElasticsearchIndex(f"{es_node.url}/test-{uuid.uuid4().hex[:10]}", timeout=30)
    writer = PostgreSQLStore(pg_url)
    writer.upsert(case(i, f"第{i}号小区停水了") for i in range(1500))
    writer.delete([f"C{i}" for i in range(0, 1500, 10)])
    workers = [PostgreSQLStore(pg_url) for _ in range(3)]
    reports = []
    threads = [threading.Thread(target=lambda w=w: reports.append(sync(w, index, batch=100))) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        index.refresh()
        assert all(r.error == "" for r in reports)
        # Every entry went to exactly one worker: 1,350 cases indexed (the deleted ones are skipped), 150 deletes.
        assert sum(r.indexed for r in reports) == 1350 and sum(r.deleted for r in reports) == 150
        assert writer.pending_count() == 0 and index.count() == 1350 == writer.search(CaseQuery(limit=1)).total
    finally:
        for s in (writer, *workers):
            s.close()
        drop_es_index(index)


def test_newer_schema_is_refused(pg_url: str) -> None:
    PostgreSQLStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS) + 1,))
    with pytest.raises(Unavailable, match="newer than this software"):
        PostgreSQLStore(pg_url)


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    url = f"postgresql://hotline:s3cret-pw@127.0.0.1:{free_port()}/hotline"
    with pytest.raises(Unavailable) as caught:
        PostgreSQLStore(url)
    assert "s3cret-pw" not in str(caught.value) and "127.0.0.1" in str(caught.value)


def test_an_embedded_index_is_refused_for_a_shared_store(pg_url: str, tmp_path: Path) -> None:
    """At start, with what to do, never at the first query."""
    from api.services import Services

    store = PostgreSQLStore(pg_url)
    try:
        with pytest.raises(InvalidInput, match="HOTLINE_INDEX"):
            open_index(pg_url, store)
        with pytest.raises(InvalidInput, match="several processes share"):
            open_index(f"sqlite:///{tmp_path}/index.db", store)
    finally:
        store.close()
    with pytest.raises(InvalidInput, match="HOTLINE_INDEX"):
        Services(Settings(store=pg_url, models=tmp_path / "models"))


def test_make_pg_up_prints_the_url_that_every_command_then_uses(tmp_path: Path) -> None:
    """`python -m hotline.store.pgserver up` (make pg-up) ends with the URL; HOTLINE_STORE=URL makes the CLI use it."""
    home, port = Path(tempfile.mkdtemp(prefix="hotline-pg-up-")), free_port()  # open to the server's user
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path,
                              env={**env, **extra}, timeout=120)

    up = run("-m", "hotline.store.pgserver", "up", "--home", str(home), "--port", str(port))
    try:
        assert up.returncode == 0, up.stderr
        url = up.stdout.strip().splitlines()[-1]
        assert url == f"postgresql://hotline@127.0.0.1:{port}/hotline"
        gen = run("-m", "hotline.cli", "generate", "--days", "3", "--seed", "2", "--out", "calls.csv")
        assert gen.returncode == 0, gen.stderr
        ingest = run("-m", "hotline.cli", "ingest", "calls.csv", HOTLINE_STORE=url)
        assert ingest.returncode == 0, ingest.stderr
        summary = run("-m", "hotline.cli", "summary", HOTLINE_STORE=url)
        assert summary.returncode == 0 and summary.stdout.startswith(f"store {url}: "), summary.stderr
        stored = open_store(url)
        try:
            assert f"{stored.summary().total} cases" in summary.stdout and stored.summary().total > 0
        finally:
            stored.close()
    finally:
        down = run("-m", "hotline.store.pgserver", "down", "--home", str(home))
        shutil.rmtree(home, ignore_errors=True)
        assert down.returncode == 0, down.stderr


class Serve:
    """One `hotline serve` process, as a city runs several behind a reverse proxy."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (cwd / f"serve-{self.port}.log").open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "hotline.cli", "serve", "--host", "127.0.0.1",
                                         "--port", str(self.port)], env=env, cwd=cwd, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 180.0) -> Serve:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, Path(self.log.name).read_text()
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"hotline serve on {self.url} did not start: {Path(self.log.name).read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _eventually(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False


@pytest.mark.slow
def test_two_service_processes_share_one_postgresql_elasticsearch_and_registry(
        pg_url: str, es_node, demo_cases: list[Case], tmp_path: Path) -> None:
    """A case written through one process is read, searched and relabelled through the other; a model
    promoted from the command line is served by both within seconds."""
    from tests.api_support import ADMIN, AGENT, KEYS_SETTING, SUPERVISOR

    alias = f"test-{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(HOTLINE_STORE=pg_url, HOTLINE_INDEX=f"{es_node.url}/{alias}", HOTLINE_MODELS=str(tmp_path / "models"),
               HOTLINE_API_KEYS=KEYS_SETTING)
    seeded = open_store(pg_url)
    seeded.upsert(demo_cases[:1500])
    seeded.close()
    first = Serve(env, tmp_path).wait()  # trains the first model from the store's labels
    second = Serve(env, tmp_path).wait()
    index = ElasticsearchIndex(f"{es_node.url}/{alias}", timeout=30)
    try:
        one, two = httpx.Client(base_url=first.url, timeout=30), httpx.Client(base_url=second.url, timeout=30)
        written = one.post("/v1/cases", headers=AGENT, json=[{
            "id": "TWO-1", "received_at": datetime.now().strftime("%Y-%m-%d %H:%M:%S"), "channel": "phone",
            "text": "海陵区城东街道凤凰路的路灯坏了一个星期了，晚上很黑，走路不安全"}])
        assert written.status_code == 200, written.text
        assert two.get("/v1/cases/TWO-1", headers=AGENT).json()["text"].startswith("海陵区城东街道凤凰路")
        # Both processes drain the shared outbox into the shared index; the case is found through the other one.
        assert _eventually(lambda: any(c["id"] == "TWO-1" for c in two.get(
            "/v1/cases", headers=SUPERVISOR, params={"text": "凤凰路 路灯", "limit": 50}).json()["items"]))
        assert _eventually(lambda: index.count() == 1501)
        label = two.post("/v1/cases/TWO-1/label", headers=AGENT,
                         json={"category": "城乡建设/道路设施", "departments": ["城管局"]})
        assert label.status_code == 200, label.text
        history = one.get("/v1/cases/TWO-1/labels", headers=AGENT).json()
        assert history[-1]["category"] == "城乡建设/道路设施" and history[-1]["by"] == "agent-1"
        assert _eventually(lambda: one.get("/health").json()["cases"] == two.get("/health").json()["cases"] == 1501)
        # A model trained and promoted from the command line (another host sharing HOTLINE_MODELS) …
        retrained = subprocess.run([sys.executable, "-m", "hotline.cli", "retrain"], env=env, cwd=tmp_path,
                                   capture_output=True, text=True, timeout=300)
        assert retrained.returncode == 0, retrained.stderr
        version = json.loads(retrained.stdout)["version"]
        promoted = subprocess.run([sys.executable, "-m", "hotline.cli", "models", "promote", version, "--force"],
                                  env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert promoted.returncode == 0, promoted.stderr
        # … is what both processes route with, within seconds.
        assert _eventually(lambda: all(c.get("/health").json()["model_version"] == version for c in (one, two)))
        routed = two.post("/v1/route", headers=AGENT, json={"text": "凤凰路的路灯坏了，晚上很黑"}).json()
        assert routed["model_version"] == version
        assert one.get("/v1/models", headers=ADMIN).status_code == 200
    finally:
        first.stop()
        second.stop()
        drop_es_index(index)


def test_backup_and_restore_of_the_store_and_the_index(pg_server, pg_url: str, es_node, demo_cases: list[Case],
                                                      tmp_path: Path) -> None:
    """What README's "Running for a city" prescribes, done once: pg_dump and pg_restore give back every case,
    label and audit entry (and the outbox); an Elasticsearch snapshot gives back the index."""
    store = PostgreSQLStore(pg_url)
    index = ElasticsearchIndex(f"{es_node.url}/test-{uuid.uuid4().hex[:10]}", timeout=30)
    restored_name = f"restored_{uuid.uuid4().hex[:8]}"
    try:
        store.upsert(demo_cases[:400])
        sync(store, index)
        store.set_label(demo_cases[0].id, LabelSource(LabelKind.CONFIRMED, "agent-1", datetime(2025, 8, 1, 9)),
                        category=Category("城乡建设", "道路设施"), departments=("城管局",))
        dump = pg_server.dump(pg_url.rsplit("/", 1)[1], tmp_path / "hotline.dump")
        restored = PostgreSQLStore(pg_server.restore(dump, restored_name))
        try:
            assert restored.summary() == store.summary() and restored.pending_count() == store.pending_count() == 1
            assert restored.get(demo_cases[0].id) == store.get(demo_cases[0].id)
            assert restored.label_history(demo_cases[0].id) == store.label_history(demo_cases[0].id)
            assert restored.search(CaseQuery(text="停水")).total == store.search(CaseQuery(text="停水")).total > 0
        finally:
            restored.close()
        # The index: a snapshot into an `fs` repository under the node's path.repo, the index lost, restored.
        index.refresh()
        client, repo = index.client, f"backup-{uuid.uuid4().hex[:6]}"
        client.snapshot.create_repository(name=repo, body={"type": "fs", "settings": {
            "location": str(es_node.home / "snapshots" / repo)}})
        client.snapshot.create(repository=repo, snapshot="nightly", indices=index.alias, wait_for_completion=True)
        counted = index.count()
        for name in index.versions():
            client.indices.delete(index=name)
        client.snapshot.restore(repository=repo, snapshot="nightly", wait_for_completion=True)
        assert index.count() == counted == 400
        client.snapshot.delete(repository=repo, snapshot="nightly")
        client.snapshot.delete_repository(name=repo)
    finally:
        store.close()
        pg_server.drop(restored_name)
        drop_es_index(index)
