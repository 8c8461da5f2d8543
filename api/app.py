"""The FastAPI service: routing for agents, hotspots for supervisors, the model registry for maintainers.

``create_app(settings)`` opens the store, the search index and the active
model once; a background thread keeps the index in step with the store
(outbox). All errors leave as ``application/problem+json``; bodies over the
limit get 413. Versioned JSON API under ``/v1``; Open311 GeoReport v2 under
``/open311/v2``; the web pages at ``/``, ``/supervisor`` and ``/models``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from api import open311, pages, problems, schemas
from api.auth import Principal, require
from api.services import Services
from hotline.case import Area, Category, LabelKind, LabelSource, format_time
from hotline.errors import InvalidInput, NotFound, TooLarge
from hotline.ingest import CaseBuilder
from hotline.settings import Settings, get_settings
from hotline.store.base import MAX_PAGE, CaseQuery

log = logging.getLogger("hotline.api")

#: Request bodies over this many bytes are refused (a batch of cases, not a data dump).
BODY_LIMIT = 2 * 1024 * 1024
MAX_BATCH = 500
MAX_REPORT_DAYS = 92
#: Texts longer than this are routed in the thread pool (a 200-character call takes ~2 ms on the loop).
LONG_TEXT = 2000

ANY = require()
AGENTS = require("agent", "admin")
SUPERVISORS = require("supervisor", "admin")
ADMIN = require("admin")


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

    _routes(app)
    open311.install(app)
    pages.install(app)
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


def svc(request: Request) -> Services:
    return request.app.state.services


def _case_out(case: Any, principal: Principal) -> dict[str, Any]:
    return case.to_dict(caller=principal.sees_caller)


def _builder(services: Services, source: str) -> CaseBuilder:
    return CaseBuilder(services.gazetteer, services.taxonomy, services.settings.max_text_chars, source=source,
                       window=services.window)


def build_case(services: Services, item: schemas.CaseIn, source: str) -> Any:
    """A case from an API body, through the same builder (cleaning, masking, area) as a file import.

    Labels sent with it must name the taxonomy's categories and departments (422 with the closest ones).
    """
    values = item.model_dump(exclude_none=True)
    # A case without a time came in now; the time is part of a derived id, so two callers reporting the
    # same words at different times make two cases, not one overwritten by the other.
    values.setdefault("received_at", datetime.now(services.window.city).replace(tzinfo=None, microsecond=0))
    if "category" in values:
        values["category"] = services.taxonomy.checked_category(Category.parse(values["category"])).path
    if "departments" in values:
        values["departments"] = "|".join(services.taxonomy.checked_departments(values["departments"]))
    names = {"id": "id", "time": "received_at", "text": "text", "transcript": "transcript", "title": "title",
             "channel": "channel", "caller": "caller", "district": "district", "street": "street",
             "address": "address", "lat": "lat", "lon": "lon", "category": "category",
             "department": "departments", "status": "status"}
    columns = {field: key for field, key in names.items() if key in values}
    if "text" not in columns and "transcript" not in columns:
        raise InvalidInput("a case needs text or a transcript")
    return _builder(services, source).build({k: ("" if v is None else str(v)) if not isinstance(v, datetime) else v
                                             for k, v in values.items()}, columns)


def _day_range(services: Services, start: date | None, end: date | None, default_days: int) -> tuple[date, date]:
    """The requested days, ending no later than the last case (nothing is known about later days).

    Only cases up to the window's end (tomorrow) count: a stray row from 2040 stored by an older
    version must not move every default view to 2040.
    """
    first, last = services.store.span(until=services.window.latest())
    if first is None or last is None:
        raise NotFound("the store holds no cases yet")
    end = min(end or last.date(), last.date())
    start = start or end - timedelta(days=default_days - 1)
    if end < first.date():
        raise NotFound(f"no cases up to {end}")
    if start > end:
        raise InvalidInput(f"start {start} is after end {end}")
    return start, end


def _table(services: Services, start: date, end: date) -> Any:
    """Daily counts from ``HISTORY_DAYS`` before ``start`` to ``end`` (never from the first case ever)."""
    from hotline.hotspots.series import HISTORY_DAYS, CountTable

    rows = services.index.counts(CaseQuery.days(start - timedelta(days=HISTORY_DAYS), end))
    if not rows:
        raise NotFound(f"no cases up to {end}")
    return CountTable.from_counts(((r.day, r.district or "未知区域", r.category or "未分类", r.count) for r in rows),
                                  end=end)


def _links(case_id: str, *operations: str) -> dict[str, Any]:
    """OpenAPI links from a response to the operations on the case it names (clients and stateful tests follow them)."""
    return {operation: {"operationId": operation, "parameters": {"case_id": case_id}} for operation in operations}


def _routes(app: FastAPI) -> None:  # noqa: C901 (one place lists every route)
    # ------------------------------------------------------------ routing
    @app.post("/v1/route", response_model=schemas.Routing, tags=["agents"],
              summary="Category, departments, reasons and similar cases for a transcript")
    async def route(body: schemas.RouteRequest, request: Request, principal: Principal = Depends(ANY)) -> JSONResponse:
        # On the event loop, not the thread pool: routing is ~2 ms of CPU with nothing to wait for (the similar
        # cases live in the model), so a thread hop would only add latency and GIL hand-offs.
        services = svc(request)
        if len(body.text) > services.settings.max_text_chars:
            raise TooLarge(f"text of {len(body.text)} characters; the limit is {services.settings.max_text_chars}")
        at = services.window.check(body.received_at) if body.received_at else None
        started = time.perf_counter()
        router = services.models.get()
        area = Area(body.district) if body.district else None
        if len(body.text) > LONG_TEXT:  # tens of milliseconds of parsing: off the loop the other agents need
            routing = await run_in_threadpool(router.route, body.text, area=area, at=at)
        else:
            routing = router.route(body.text, area=area, at=at)
        services.metrics.routed.labels(str(routing.auto_dispatch).lower()).inc()
        # Built by us, so returned as is: the schema stays documented without validating every answer again.
        return JSONResponse({**routing.to_dict(), "elapsed_ms": round((time.perf_counter() - started) * 1000, 2)})

    # ------------------------------------------------------------ cases
    @app.post("/v1/cases", response_model=schemas.UpsertOut, tags=["cases"], operation_id="addCases",
              responses={200: {"links": _links("$response.body#/ids/0", "getCase", "labelCase", "similarCases",
                                               "labelHistory", "caseChanges")}},
              summary="Add or update cases (one or many), idempotent by id")
    def add_cases(request: Request, body: Annotated[schemas.CaseIn | list[schemas.CaseIn], Body()],
                  principal: Principal = Depends(AGENTS)) -> dict[str, Any]:
        services = svc(request)
        items = body if isinstance(body, list) else [body]
        if not items:
            raise InvalidInput("no cases in the request")
        if len(items) > MAX_BATCH:
            raise TooLarge(f"{len(items)} cases in one request; send at most {MAX_BATCH}")
        cases = [build_case(services, item, f"api:{principal.name}") for item in items]
        result = services.store.upsert(cases, writer=principal.writer("api"))
        services.syncer.poke()
        return {"inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged,
                "ids": [c.id for c in cases]}

    @app.get("/v1/cases", response_model=schemas.CasePage, tags=["cases"], summary="Search cases")
    def search_cases(
        request: Request,
        text: Annotated[str, Query(max_length=200)] = "",
        district: Annotated[str, Query(max_length=50)] = "",
        street: Annotated[str, Query(max_length=50)] = "",
        category: Annotated[str, Query(max_length=200)] = "",
        department: Annotated[str, Query(max_length=100)] = "",
        status: Annotated[str, Query(max_length=20)] = "",
        channel: Annotated[str, Query(max_length=20)] = "",
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
        principal: Principal = Depends(ANY),
    ) -> dict[str, Any]:
        query = CaseQuery(text=text, district=district, street=street, category=category, department=department,
                          status=status, channel=channel, limit=limit, offset=offset,
                          start=start.replace(tzinfo=None) if start else None,
                          end=end.replace(tzinfo=None) if end else None)
        page = svc(request).index.search(query)
        return {"items": [_case_out(c, principal) for c in page.items], "total": page.total, "limit": limit,
                "offset": offset}

    @app.get("/v1/cases/{case_id}", response_model=schemas.CaseOut, tags=["cases"], summary="One case",
             operation_id="getCase")
    def get_case(case_id: str, request: Request, principal: Principal = Depends(ANY)) -> dict[str, Any]:
        return _case_out(svc(request).store.get(case_id), principal)

    @app.get("/v1/cases/{case_id}/similar", response_model=list[schemas.Similar], tags=["cases"],
             operation_id="similarCases",
             summary="Past cases most like this one")
    def similar_cases(case_id: str, request: Request, k: Annotated[int, Query(ge=1, le=50)] = 10,
                      same_district: bool = False, principal: Principal = Depends(ANY)) -> list[dict[str, Any]]:
        services = svc(request)
        case = services.store.get(case_id)
        found = services.index.similar(case.text, k=k, exclude=case.id,
                                       district=case.area.district if same_district else "")
        return [{"case_id": n.case_id, "similarity": round(n.similarity, 4), "departments": list(n.departments),
                 "category": n.category, "received_at": n.received_at.isoformat(sep=" ") if n.received_at else None}
                for n in found]

    @app.post("/v1/cases/{case_id}/label", response_model=schemas.CaseOut, tags=["agents"], operation_id="labelCase",
              responses={200: {"links": _links("$response.body#/id", "getCase", "labelHistory", "caseChanges")}},
              summary="An agent confirms the category and departments (a training label, audited)")
    def label_case(case_id: str, body: schemas.LabelIn, request: Request,
                   principal: Principal = Depends(AGENTS)) -> dict[str, Any]:
        if body.category is None and body.departments is None:
            raise InvalidInput("give a category, departments or both")
        services = svc(request)
        category = services.taxonomy.checked_category(Category.parse(body.category)) if body.category else None
        departments = tuple(d.strip() for d in body.departments if d.strip()) if body.departments else None
        if body.departments is not None and not departments:
            raise InvalidInput("departments must not be blank")
        if departments:
            departments = services.taxonomy.checked_departments(departments)
        source = LabelSource(LabelKind.CONFIRMED, principal.name, datetime.now().replace(microsecond=0))
        case = services.store.set_label(case_id, source, category=category, departments=departments)
        services.syncer.poke()
        return _case_out(case, principal)

    @app.get("/v1/cases/{case_id}/labels", tags=["cases"], summary="The audit log of a case's labels",
             operation_id="labelHistory")
    def label_history(case_id: str, request: Request, principal: Principal = Depends(ANY)) -> list[dict[str, Any]]:
        services = svc(request)
        services.store.get(case_id)
        return [{"kind": h.source.kind.value, "by": h.source.by, "at": str(h.source.at),
                 "category": h.category.path if h.category else None, "departments": list(h.departments),
                 "previous_category": h.previous_category.path if h.previous_category else None}
                for h in services.store.label_history(case_id)]

    @app.get("/v1/cases/{case_id}/changes", tags=["cases"], operation_id="caseChanges",
             summary="The audit log of a case's content: who changed which fields, before and after")
    def content_history(case_id: str, request: Request, principal: Principal = Depends(ANY)) -> list[dict[str, Any]]:
        services = svc(request)
        services.store.get(case_id)
        hidden = set() if principal.sees_caller else {"caller"}
        return [{"at": format_time(c.at), "by": c.by,
                 "changes": {k: v for k, v in c.changes.items() if k not in hidden}}
                for c in services.store.case_history(case_id)]

    # ------------------------------------------------------------ supervisors
    @app.get("/v1/hotspots", response_model=list[schemas.AlertOut], tags=["supervisors"],
             summary="Surging (area, category) cells per day, prospectively")
    def hotspots(request: Request, start: date | None = None, end: date | None = None,
                 method: Annotated[str, Query(pattern="^(nb|ears-c1|ears-c2|ears-c3)$")] = "nb",
                 principal: Principal = Depends(SUPERVISORS)) -> list[dict[str, Any]]:
        from hotline.hotspots.detect import detect

        services = svc(request)
        start, end = _day_range(services, start, end, 7)

        def compute() -> list[dict[str, Any]]:
            table = _table(services, start, end)
            alerts = detect(table, max(start, table.start), end, method=method)
            return [a.row() for a in sorted(alerts, key=lambda a: (a.date, -a.score))]

        return services.views.get(("hotspots", start, end, method), compute)

    @app.get("/v1/events", response_model=list[schemas.EventOut], tags=["supervisors"],
             summary="Incidents many callers report (clustered cases)")
    def events(request: Request, start: date | None = None, end: date | None = None,
               min_size: Annotated[int, Query(ge=2, le=1000)] = 3, top: Annotated[int, Query(ge=1, le=200)] = 20,
               principal: Principal = Depends(SUPERVISORS)) -> list[dict[str, Any]]:
        from hotline.events import cluster_period
        from hotline.text.segment import default_segmenter

        services = svc(request)
        start, end = _day_range(services, start, end, 3)
        if (end - start).days > 31:
            raise InvalidInput("events are clustered over at most 31 days at a time")
        cases = services.store.iter_cases(CaseQuery.days(start - timedelta(days=28), end))
        clusterer = cluster_period(cases, start, default_segmenter(services.settings.segmenter).tokens,
                                   services.gazetteer.landmarks)
        return [e.to_dict() for e in clusterer.largest(min_size=min_size)[:top]]

    @app.get("/v1/forecast", response_model=list[schemas.ForecastOut], tags=["supervisors"],
             summary="Daily counts per cell for the coming days, with 80% intervals")
    def forecast(request: Request, end: date | None = None, horizon: Annotated[int, Query(ge=1, le=60)] = 14,
                 rising: bool = True, top: Annotated[int, Query(ge=1, le=500)] = 20,
                 principal: Principal = Depends(SUPERVISORS)) -> list[dict[str, Any]]:
        from hotline.hotspots import forecast as fc

        services = svc(request)
        _, end = _day_range(services, None, end, 1)

        def compute() -> list[dict[str, Any]]:
            found = fc.forecast(_table(services, end, end), horizon=horizon)
            chosen = fc.rising(found, top=top) if rising else sorted(found, key=lambda f: -f.rise)[:top]
            return [f.to_dict() for f in chosen]

        return services.views.get(("forecast", end, horizon, rising, top), compute)

    @app.get("/v1/reports/hotspots", response_class=HTMLResponse, tags=["supervisors"],
             summary="The hotspot report as a self-contained HTML page")
    def report(request: Request, start: date | None = None, end: date | None = None,
               principal: Principal = Depends(SUPERVISORS)) -> HTMLResponse:
        from hotline import reports
        from hotline.text.segment import default_segmenter

        services = svc(request)
        start, end = _day_range(services, start, end, 7)
        if (end - start).days >= MAX_REPORT_DAYS:
            raise InvalidInput(f"a report covers at most {MAX_REPORT_DAYS} days")
        cases = services.store.iter_cases(CaseQuery.days(start - timedelta(days=reports.HISTORY_DAYS), end))
        built = reports.build(cases, start, end, default_segmenter(services.settings.segmenter).tokens,
                              services.gazetteer.landmarks)
        return HTMLResponse(reports.render(built),
                            headers={"Content-Security-Policy": pages.REPORT_POLICY, **pages.SECURITY_HEADERS})

    # ------------------------------------------------------------ models
    @app.get("/v1/models", response_model=list[schemas.ModelOut], tags=["models"], summary="Every model version")
    def models(request: Request, principal: Principal = Depends(SUPERVISORS)) -> list[dict[str, Any]]:
        return [e.to_dict() for e in svc(request).registry.entries()]

    @app.post("/v1/models/train", response_model=schemas.JobOut, status_code=202, tags=["models"],
              summary="Retrain from the store's labels in the background (a candidate; the first model is activated)")
    def train(request: Request, body: schemas.TrainIn | None = None,
              principal: Principal = Depends(ADMIN)) -> dict[str, Any]:
        services = svc(request)
        since = body.since.replace(tzinfo=None) if body and body.since else None
        job = services.jobs.start("train", lambda: services.train(principal.name, since),
                                  {"since": since.isoformat() if since else None, "by": principal.name})
        return job.to_dict()

    @app.get("/v1/models/jobs/{job_id}", response_model=schemas.JobOut, tags=["models"], summary="A training job")
    def job(job_id: str, request: Request, principal: Principal = Depends(ADMIN)) -> dict[str, Any]:
        return svc(request).jobs.get(job_id).to_dict()

    @app.post("/v1/models/{version}/promote", response_model=schemas.ModelOut, tags=["models"],
              summary="Activate a version (refused if it scored worse than the active one, unless forced)")
    def promote(version: str, request: Request, force: bool = False,
                principal: Principal = Depends(ADMIN)) -> dict[str, Any]:
        services = svc(request)
        entry = services.registry.promote(version, by=principal.name, force=force)
        services.reload_model()
        return entry.to_dict()

    @app.post("/v1/models/rollback", response_model=schemas.ModelOut, tags=["models"],
              summary="Return to the previously active version")
    def rollback(request: Request, principal: Principal = Depends(ADMIN)) -> dict[str, Any]:
        services = svc(request)
        entry = services.registry.rollback(by=principal.name)
        services.reload_model()
        return entry.to_dict()

    # ------------------------------------------------------------ operations
    @app.get("/health", response_model=schemas.Health, tags=["operations"], summary="Liveness and what is loaded")
    def health(request: Request) -> dict[str, Any]:
        services = svc(request)
        return {"status": "ok" if services.models.router is not None else "no-model",
                "model_version": services.models.version, "cases": services.index.count(),
                "index_outbox": services.store.pending_count(), "index": services.index.url.split("@")[-1]}

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"], summary="Prometheus metrics")
    def metrics(request: Request) -> Response:
        services = svc(request)
        services.metrics.outbox.set(services.store.pending_count())
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

