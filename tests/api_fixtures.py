"""A service over a small store of generated calls with a trained, active model (shared by the API tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from api.app import create_app
from api.services import Services
from hotline.case import Case
from hotline.settings import Settings

#: key -> (name, role); keys are at least 24 characters.
KEYS = {"agent-key-1-0123456789abcdef": ("agent-1", "agent"),
        "supervisor-key-1-0123456789ab": ("supervisor-1", "supervisor"),
        "admin-key-1-0123456789abcdef": ("admin-1", "admin"),
        "agent-key-2-0123456789abcdef": ("agent-2", "agent")}
AGENT_KEY, SUPERVISOR_KEY, ADMIN_KEY, AGENT2_KEY = KEYS
AGENT, SUPERVISOR, ADMIN, AGENT2 = ({"X-API-Key": k} for k in KEYS)
KEYS_SETTING = ",".join(f"{name}:{role}:{key}" for key, (name, role) in KEYS.items())


def make_services(root: Path, cases: list[Case]) -> Services:
    settings = Settings(store=f"sqlite:///{root}/store.db", models=root / "models", api_keys=KEYS_SETTING)
    services = Services(settings, sync_interval=0.2)
    services.store.upsert(cases)
    services.train("test")
    services.start()
    return services


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, demo_cases: list[Case]) -> Iterator[Services]:
    services = make_services(tmp_path_factory.mktemp("api"), demo_cases[:3000])
    yield services
    services.close()


class LiveServer:
    """The app on a free 127.0.0.1 port in a thread (for the browser and load tests)."""

    def __init__(self, services: Services) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(services.settings, services), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
