"""Operations: liveness with what is loaded, and Prometheus metrics (no key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api import schemas
from api.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=schemas.Health, summary="Liveness and what is loaded")
def health(services: ServicesDep) -> dict[str, Any]:
    return {"status": "ok" if services.models.router is not None else "no-model",
            "model_version": services.models.version, "cases": services.case_count(),
            "index_outbox": services.store.pending_count(), "index": services.index.url.split("@")[-1]}


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(services: ServicesDep) -> Response:
    services.metrics.outbox.set(services.store.pending_count())
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
