"""The service when its database dies: a real PostgreSQL killed with SIGKILL under a running service.

Routing needs no database (its similar cases come from the model), so agents
keep routing; what needs the store answers 503 within a second (a short pool
wait, then a circuit that answers at once) instead of freezing everything for
15 s; /health says what is degraded; nothing acknowledged is lost, and the
store answers again once PostgreSQL is back (the pool checks its connections).
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from api.services import Services
from hotline.case import Case
from hotline.settings import Settings
from hotline.store.pgserver import Server as PgServer
from tests.api_support import AGENT, KEYS_SETTING, LiveServer
from tests.servers import drop_es_index, free_port

pytestmark = pytest.mark.slow


@pytest.fixture()
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL of this test's own: it is killed, which the session's shared server must not be."""
    home = Path(tempfile.mkdtemp(prefix="hotline-pg-outage-"))
    server = PgServer(home, port=free_port()).start()
    yield server
    server.remove()


def _kill(server: PgServer) -> None:
    pid = int((server.data / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def test_a_killed_postgresql_leaves_routing_up_and_loses_nothing_acknowledged(
        own_pg: PgServer, es_node, demo_cases: list[Case], tmp_path: Path) -> None:
    url = own_pg.database("outage")
    alias = f"test-{uuid.uuid4().hex[:10]}"
    settings = Settings(store=url, index=f"{es_node.url}/{alias}", models=tmp_path / "models", api_keys=KEYS_SETTING)
    services = Services(settings, sync_interval=0.2)
    try:
        services.store.upsert(demo_cases[:1500])
        services.train("test")
        services.start()
        with LiveServer(services) as live, httpx.Client(base_url=live.url, headers=AGENT, timeout=30) as client:
            stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            written = client.post("/v1/cases", json=[{"id": "ACK-1", "received_at": stamp, "channel": "phone",
                                                      "text": "凤凰路的路灯坏了一个星期了，晚上很黑"}])
            assert written.status_code == 200, written.text
            call = {"text": "小区门口的路灯坏了，晚上很黑，走路不安全"}
            assert client.post("/v1/route", json=call).json()["similar"][0].get("text")

            _kill(own_pg)
            for _ in range(5):  # the first calls meet the dead connections; then the circuit answers at once
                started = time.monotonic()
                routed = client.post("/v1/route", json=call)
                assert routed.status_code == 200, routed.text
                assert routed.json()["category"] and routed.json()["similar"], routed.json()
                assert client.get("/v1/departments").status_code == 200
                read = client.get("/v1/cases/ACK-1")
                assert read.status_code == 503 and read.headers["content-type"] == "application/problem+json"
                assert time.monotonic() - started < 5  # was 15 s for each, and every other request waited too
            refused = client.post("/v1/cases", json=[{"id": "NOT-ACK", "received_at": stamp, "channel": "phone",
                                                      "text": "楼下的垃圾三天没人清理了"}])
            assert refused.status_code == 503  # not acknowledged, so not lost
            health = httpx.get(f"{live.url}/health", timeout=10)
            assert health.status_code == 200 and health.json()["status"] == "degraded"
            assert "store" in health.json()["degraded"]

            own_pg.start()
            deadline = time.monotonic() + 20
            while client.get("/v1/cases/ACK-1").status_code != 200:
                assert time.monotonic() < deadline, "the store did not answer again after PostgreSQL came back"
                time.sleep(0.3)
            assert client.get("/v1/cases/ACK-1").json()["text"].startswith("凤凰路")
            assert httpx.get(f"{live.url}/health", timeout=10).json()["status"] == "ok"
    finally:
        services.close()
        from search.elastic import ElasticsearchIndex

        drop_es_index(ElasticsearchIndex(f"{es_node.url}/{alias}", timeout=30))


def test_an_outage_is_one_log_line_and_its_end_another(caplog: pytest.LogCaptureFixture) -> None:
    """Elasticsearch away: a full traceback every few seconds made 300 MB of log a day."""
    import logging

    from hotline.outage import OutageLog

    outages = OutageLog(logging.getLogger("hotline.test.outage"))
    with caplog.at_level(logging.WARNING, logger="hotline.test.outage"):
        for _ in range(50):
            outages.failed("the search index", ConnectionError("connection refused\nwith a second line"))
        assert "the search index" in outages.away()
        outages.succeeded("the search index")
        outages.succeeded("the search index")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "is away" in lines[0] and "is back" in lines[1] and "50 failed tries" in lines[1]
    assert all(r.exc_info is None for r in caplog.records) and "\n" not in lines[0]
