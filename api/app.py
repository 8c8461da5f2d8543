"""The FastAPI service: routing for agents, hotspots for supervisors, the model registry for maintainers.

``create_app(settings)`` only assembles: the services (store, search index,
active model, a thread that keeps the index in step with the store's outbox),
the error mapping (every error leaves as ``application/problem+json``, bodies
over the limit get 413), the metrics, and one router per resource in
``api/routers/``: versioned JSON under ``/v1``, Open311 GeoReport v2 under
``/open311/v2``, the pages at ``/``, ``/supervisor`` and ``/models``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import problems
from api.routers import cases, models, open311, ops, pages, routing, supervisors
from api.services import Services
from hotline.settings import Settings, get_settings

log = logging.getLogger("hotline.api")

#: Request bodies over this many bytes are refused (a batch of cases, not a data dump).
BODY_LIMIT = 2 * 1024 * 1024


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:  # whoever made them starts and closes them
            yield
            return
        svc = Services(settings)
        app.state.services = svc
        svc.start()
        yield
        svc.close()

    app = FastAPI(
        title="hotline", version="1", lifespan=lifespan,
        description="12345 hotline intelligence: routing, cases, hotspots, events, forecasts, models.",
    )
    if services is not None:  # an app built around ready services also works without its lifespan (schema tests)
        app.state.services = services
    problems.install(app)
    app.add_middleware(problems.BodyLimit, limit=BODY_LIMIT)
    app.add_middleware(Measure)
    for module in (routing, cases, supervisors, models, ops, open311, pages):
        app.include_router(module.router)
    return app


class Measure:
    """Request counts and latency per route template, as a plain ASGI middleware (no extra task per request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            metrics = scope["app"].state.services.metrics
            metrics.requests.labels(scope["method"], name, str(status)).inc()
            metrics.latency.labels(name).observe(time.perf_counter() - started)
