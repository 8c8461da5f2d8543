"""What the API tests share besides fixtures: the keys of each role, a service over generated calls with a trained,
active model (``make_services``; the ``service`` fixture in conftest.py holds one for the run), and the app on a port."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn

from api.app import create_app
from api.services import Services
from hotline.case import Case
from hotline.settings import Settings
from tests.servers import free_port

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


class LiveServer:
    """The app on a free 127.0.0.1 port in a thread (for the browser and load tests)."""

    def __init__(self, services: Services) -> None:
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
