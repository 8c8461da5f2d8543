from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

# Tests never read the developer's own settings or store (the download cache is not a setting).
for key in [k for k in os.environ if k.startswith("HOTLINE_") and k != "HOTLINE_CACHE"]:
    del os.environ[key]

from hotline.case import Case  # noqa: E402
from hotline.demo.generator import DemoGenerator, Truth  # noqa: E402
from hotline.ingest import CaseBuilder, ColumnMap  # noqa: E402
from hotline.places import Gazetteer, default_gazetteer  # noqa: E402
from hotline.settings import Settings  # noqa: E402
from hotline.store.pgserver import Server as PgServer  # noqa: E402
from hotline.store.pgserver import ServerError  # noqa: E402
from hotline.store.sqlite import SQLiteStore  # noqa: E402
from hotline.taxonomy import Taxonomy, default_taxonomy  # noqa: E402
from search.node import Node, NodeError  # noqa: E402
from tests.servers import free_port  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    return default_gazetteer()


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return default_taxonomy()


@pytest.fixture(scope="session")
def demo(gazetteer: Gazetteer, taxonomy: Taxonomy) -> tuple[list[dict[str, Any]], Truth]:
    """Ninety days of generated calls over a summer (plum rain) and the August school rush."""
    return DemoGenerator(gazetteer, taxonomy, seed=7).generate(90, date(2025, 6, 1))


@pytest.fixture()
def builder(gazetteer: Gazetteer, taxonomy: Taxonomy) -> CaseBuilder:
    return CaseBuilder(gazetteer, taxonomy, max_chars=2000, source="test.csv")


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(f"sqlite:///{tmp_path}/store.db")
    yield s
    s.close()


@pytest.fixture(scope="session")
def demo_cases(demo: tuple[list[dict[str, Any]], Truth], gazetteer: Gazetteer, taxonomy: Taxonomy) -> list[Case]:
    """The demo calls as cases, as an import builds them."""
    rows, _ = demo
    builder = CaseBuilder(gazetteer, taxonomy, max_chars=4000, source="demo.csv")
    columns = ColumnMap().resolve(list(rows[0]))
    return [builder.build(row, columns) for row in rows]


@pytest.fixture(scope="session")
def demo_store(demo_cases: list[Case], gazetteer: Gazetteer, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[SQLiteStore]:
    """The demo calls in a store, each with its event kept (as the service keeps them while calls arrive)."""
    from hotline.analytics.events import EventAssigner
    from hotline.text.segment import default_segmenter

    tokens = default_segmenter().tokens
    s = SQLiteStore(f"sqlite:///{tmp_path_factory.mktemp('demo-store')}/store.db", tokenize=tokens)
    s.upsert(demo_cases)
    EventAssigner(s, tokens, gazetteer.landmarks).run()
    yield s
    s.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server on 127.0.0.1 for the whole run, in a temporary cluster removed at the end."""
    home = Path(tempfile.mkdtemp(prefix="hotline-pg-test-"))
    server = PgServer(home, port=free_port())
    try:
        server.start()
    except ServerError as exc:
        server.remove()
        pytest.fail(f"cannot start PostgreSQL for the tests: {exc}")
    yield server
    server.remove()


@pytest.fixture()
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database of the test server."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield pg_server.database(name)
    pg_server.drop(name)


@pytest.fixture(scope="session")
def es_node() -> Iterator[Node]:
    """A real Elasticsearch node on 127.0.0.1 for the whole run (downloaded once into the cache)."""
    home = Path(tempfile.mkdtemp(prefix="hotline-es-test-"))
    home.chmod(0o755)
    node = Node(home, port=free_port(), heap="512m", cache=Settings().cache)
    try:
        node.start()
    except NodeError as exc:
        shutil.rmtree(home, ignore_errors=True)
        pytest.fail(f"cannot start Elasticsearch for the tests: {exc}")
    yield node
    node.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, demo_cases: list[Case]) -> Iterator[Any]:
    """The API's services over 3,000 generated calls with a trained, active linear model, for the whole run."""
    from tests.api_support import make_services

    services = make_services(tmp_path_factory.mktemp("api"), demo_cases[:3000])
    yield services
    services.close()


# ---------------------------------------------------------------- tiers
#: Fixtures that start a server (PostgreSQL, Elasticsearch, the app on a port for Chromium or a real client).
SERVER_FIXTURES = frozenset({"pg_server", "pg_url", "es_node", "live", "public", "cluster", "own_pg"})
#: Parameters of the backend conformance suites that stand for a real server.
SERVER_PARAMS = frozenset({"postgresql", "elasticsearch"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test gets one tier: ``slow`` (marked by hand: fine-tuning, long runs), ``server`` (it starts
    PostgreSQL, Elasticsearch or a browser: found from its fixtures and parameters, or marked by hand where a
    test starts one itself) or else ``unit``, which ``make check`` runs."""
    for item in items:
        if item.get_closest_marker("slow") or item.get_closest_marker("server"):
            continue
        params = set(map(str, getattr(getattr(item, "callspec", None), "params", {}).values()))
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())) or SERVER_PARAMS & params:
            item.add_marker(pytest.mark.server)
        else:
            item.add_marker(pytest.mark.unit)
