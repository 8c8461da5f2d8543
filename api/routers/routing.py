"""Routing for agents: category, departments, reasons and similar cases for a transcript."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api import schemas
from api.deps import AnyRole, RouterDep, ServicesDep
from hotline.case import Area
from hotline.errors import TooLarge

router = APIRouter(tags=["agents"])

#: Texts longer than this are routed in the thread pool (a 200-character call takes ~2 ms on the loop).
LONG_TEXT = 2000


@router.post("/v1/route", response_model=schemas.Routing,
             summary="Category, departments, reasons and similar cases for a transcript")
async def route(principal: AnyRole, body: schemas.RouteRequest, services: ServicesDep,
                model: RouterDep) -> JSONResponse:
    # On the event loop, not the thread pool: routing is ~2 ms of CPU with nothing to wait for (the similar
    # cases live in the model), so a thread hop would only add latency and GIL hand-offs. Except where the
    # model asks an encoder: onnxruntime lets go of the GIL, so the loop serves other agents meanwhile.
    if len(body.text) > services.settings.max_text_chars:
        raise TooLarge(f"text of {len(body.text)} characters; the limit is {services.settings.max_text_chars}")
    at = services.window.check(body.received_at) if body.received_at else None
    started = time.perf_counter()
    area = Area(body.district) if body.district else None
    if len(body.text) > LONG_TEXT or model.runs_encoder:  # tens of ms of parsing or encoder: off the loop
        routing = await run_in_threadpool(model.route, body.text, area=area, at=at)
    else:
        routing = model.route(body.text, area=area, at=at)
    services.metrics.routed.labels(str(routing.auto_dispatch).lower()).inc()
    similar = await services.similar_with_texts(routing.similar)
    # Built by us, so returned as is: the schema stays documented without validating every answer again.
    return JSONResponse({**routing.to_dict(), "similar": similar,
                         "event": services.recent_event(routing, at),
                         "elapsed_ms": round((time.perf_counter() - started) * 1000, 2)})


@router.get("/v1/departments", response_model=list[schemas.DepartmentName],
            summary="Every department of the taxonomy (and the district offices): what an agent may pick")
async def departments(principal: AnyRole, services: ServicesDep) -> list[schemas.DepartmentName]:
    return [schemas.DepartmentName(id=d.id, name=d.name) for d in services.taxonomy.departments.values()]
