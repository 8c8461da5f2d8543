"""Operations: liveness with what is loaded, and Prometheus metrics (no key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api import schemas
from api.deps import ServicesDep
from hotline.errors import Unavailable

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=schemas.Health, summary="Liveness and what is loaded")
def health(services: ServicesDep) -> dict[str, Any]:
    """200 while the service can route; ``degraded`` names each backend that is away and why, so that a load
    balancer keeps agents' routing (which needs neither) and an operator reads what to mend."""
    degraded: dict[str, str] = {}
    cases = outbox = None
    try:
        cases = services.case_count()
    except Unavailable as exc:
        degraded["index"] = str(exc)[:200]
    try:
        outbox = services.store.pending_count()
    except Unavailable as exc:
        degraded["store"] = str(exc)[:200]
    status = "no-model" if services.models.router is None else "degraded" if degraded else "ok"
    return {"status": status, "model_version": services.models.version, "cases": cases,
            "index_outbox": outbox, "index": services.index.url.split("@")[-1], "degraded": degraded}


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(services: ServicesDep) -> Response:
    try:
        services.metrics.outbox.set(services.store.pending_count())
    except Unavailable:  # the store is away: the other metrics still answer
        pass
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
