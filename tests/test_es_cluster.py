"""An Elasticsearch cluster of three nodes on 127.0.0.1 losing one in the middle of an import, and getting it back.

The nodes come from the same cached zip as the single test node (small
heaps); the client knows all three nodes by the URL; the index has three
shards, each with one replica. One node is killed (SIGKILL) while the outbox
is being drained: nothing the store acknowledged is lost, searches keep
answering, the outbox catches up, and the cluster's counts equal the
store's. The node is then started again on its own data: it rejoins, every
shard has its replica again (green) and the returned node holds copies, and
cases written after it came back are there once.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.case import Case
from hotline.settings import Settings
from hotline.store.base import CaseQuery
from hotline.store.sqlite import SQLiteStore
from search.elastic import ElasticsearchIndex
from search.node import Node, NodeError, start_cluster
from search.sync import sync
from tests.servers import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[Node]]:
    root = Path(tempfile.mkdtemp(prefix="hotline-es-cluster-"))
    root.chmod(0o755)
    left = set(Path(tempfile.gettempdir()).glob("final-flags*"))  # what the launchers leave in the shared folder
    try:
        nodes = start_cluster(root, [free_port() for _ in range(3)], [free_port() for _ in range(3)], heap="256m",
                              name=f"hotline-test-{os.getpid()}", cache=Settings().cache)
    except NodeError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"cannot start the Elasticsearch cluster: {exc}")
    yield nodes
    for node in nodes:
        node.stop()
    shutil.rmtree(root, ignore_errors=True)
    assert set(Path(tempfile.gettempdir()).glob("final-flags*")) <= left  # three nodes started, nothing left behind


def test_a_node_killed_during_an_import_loses_nothing_and_rejoins(cluster: list[Node], demo_cases: list[Case],
                                                                  tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/store.db")
    hosts = ",".join(node.url.removeprefix("http://") for node in cluster)
    index = ElasticsearchIndex(f"http://{hosts}/cluster-test?shards=3&replicas=1", timeout=20, chunk_size=200)
    cases = demo_cases[:3000]
    store.upsert(cases)
    victim = cluster[2]
    reports, answers = [], []

    def drain() -> None:
        """The service's syncer: small batches, again after a failure, until the outbox is empty."""
        deadline = time.monotonic() + 180
        while store.pending_count() and time.monotonic() < deadline:
            reports.append(sync(store, index, batch=200))
            if reports[-1].error:
                time.sleep(0.5)

    try:
        index.ensure()
        settings = index.client.indices.get_settings(index=index.alias)
        assert {s["settings"]["index"]["number_of_replicas"] for s in settings.body.values()} == {"1"}
        worker = threading.Thread(target=drain)
        worker.start()
        while store.pending_count() > 2000 and worker.is_alive():
            time.sleep(0.05)
        os.kill(int(victim.pid_file.read_text()), signal.SIGKILL)  # in the middle of the import
        left_at_kill = store.pending_count()
        for _ in range(5):  # searches keep answering from the nodes left
            answers.append(index.search(CaseQuery(text="停水", limit=5)).total)
            time.sleep(0.2)
        worker.join()
        index.refresh()
        assert 0 < left_at_kill < len(cases) and store.pending_count() == 0
        assert index.count() == len(cases)  # every acknowledged case is there, once
        assert all(isinstance(n, int) for n in answers) and answers[-1] > 0
        store_cells = {(c.day, c.district, c.category): c.count for c in store.counts()}
        index_cells = {(c.day, c.district, c.category): c.count for c in index.counts()}
        assert index_cells == store_cells
        health = index.client.cluster.health(index=index.alias).body
        assert health["number_of_nodes"] == 2 and health["status"] in ("green", "yellow")

        victim.start()  # the same home: its data directory and its place in the cluster
        health = index.client.cluster.health(index=index.alias, wait_for_nodes="3", wait_for_status="green",
                                             wait_for_no_relocating_shards=True, timeout="120s").body
        assert not health["timed_out"] and health["number_of_nodes"] == 3 and health["unassigned_shards"] == 0
        later = demo_cases[3000:3500]
        store.upsert(later)
        drain()
        index.refresh()
        assert store.pending_count() == 0 and index.count() == len(cases) + len(later)
        shards = index.client.cat.shards(index=index.alias, format="json").body
        assert {s["state"] for s in shards} == {"STARTED"}
        assert victim.name in {s["node"] for s in shards}  # the returned node holds copies again
        assert {(c.day, c.district, c.category): c.count for c in index.counts()} == \
            {(c.day, c.district, c.category): c.count for c in store.counts()}
    finally:
        store.close()
        index.close()


def test_nodes_starting_at_once_unpack_the_distribution_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three nodes on a fresh machine each unpacked the zip and renamed into the live home: "Directory not
    empty". Unpacking now happens once, under a file lock; the others wait and find it done."""
    from search import node

    monkeypatch.setattr(node.tempfile, "gettempdir", lambda: str(tmp_path))  # a fresh unpack, the cached zip
    homes: list[Path] = []
    errors: list[BaseException] = []

    def unpack() -> None:
        try:
            homes.append(node.distribution(cache=Settings().cache))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=unpack) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(homes)) == 1
    assert (homes[0] / ".unpacked").exists() and (homes[0] / "bin" / "elasticsearch").exists()
    assert [p.name for p in homes[0].parent.iterdir() if p.is_dir()] == [homes[0].name]  # no staging left
