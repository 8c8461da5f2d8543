"""Supervisors' views: hotspots, events, forecasts and the report, over a period the store can answer for."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response

from api import schemas
from api.deps import ServicesDep, Supervisor
from api.routers.pages import REPORT_POLICY, SECURITY_HEADERS
from api.services import Services
from hotline.errors import InvalidInput
from hotline.hotspots.series import day_range, period_table

router = APIRouter(tags=["supervisors"])

MAX_REPORT_DAYS = 92
MAX_EVENT_DAYS = 92  # events are kept on write: listing them costs the same for a quarter as for a day


Level = Annotated[Literal["district", "street"],
                  Query(description="cells by district, or by district and street (false alarms then "
                                    "controlled across all street cells each day: method nb-fdr)")]


def _days(services: Services, start: date | None, end: date | None, default_days: int) -> tuple[date, date]:
    return day_range(services.store.span(until=services.window.latest()), start, end, default_days)


@router.get("/v1/hotspots", response_model=list[schemas.AlertOut],
            summary="Surging (area, category) cells per day, prospectively")
def hotspots(principal: Supervisor, services: ServicesDep, start: date | None = None, end: date | None = None,
             method: Annotated[str | None, Query(max_length=40, description="a detector's name (nb, nb-fdr, "
                                                 "ears-c2, scan …; default nb, at street level nb-fdr)")] = None,
             level: Level = "district") -> list[dict[str, Any]]:
    from hotline.hotspots.detect import detect, method_for

    method = method_for(level, method)  # an unknown name is a 400 naming the registered ones
    start, end = _days(services, start, end, 7)
    if (end - start).days >= MAX_REPORT_DAYS:  # as the other views: a cache-busting scan cost 12 s a call
        raise InvalidInput(f"hotspots are computed over at most {MAX_REPORT_DAYS} days at a time")

    def compute() -> list[dict[str, Any]]:
        table = period_table(services.store, start, end, by_street=level == "street")
        alerts = detect(table, max(start, table.start), end, method=method)
        return [a.row() for a in sorted(alerts, key=lambda a: (a.date, -a.score))]

    return services.views.get(("hotspots", start, end, method, level), compute, services.store.write_mark())


@router.get("/v1/episodes", response_model=list[schemas.EpisodeOut],
            summary="Surges to act on: each cell's consecutive alert days as one episode, most excess calls first")
def episodes(principal: Supervisor, services: ServicesDep, start: date | None = None, end: date | None = None,
             min_calls: Annotated[int, Query(ge=1, le=10_000)] = 5,
             top: Annotated[int, Query(ge=1, le=200)] = 20, level: Level = "district") -> list[dict[str, Any]]:
    from hotline.events import link_events
    from hotline.hotspots.baseline import fit_view
    from hotline.hotspots.detect import detect, method_for
    from hotline.hotspots.episodes import episodes as join

    method = method_for(level)
    start, end = _days(services, start, end, 30)
    if (end - start).days >= MAX_REPORT_DAYS:
        raise InvalidInput(f"episodes are listed over at most {MAX_REPORT_DAYS} days at a time")

    def compute() -> list[dict[str, Any]]:
        table = period_table(services.store, start, end, by_street=level == "street")
        base = fit_view(table, start)
        alerts = detect(table, max(start, table.start), end, method=method, baseline=base)
        found = join(alerts, min_calls=min_calls, table=table, expected=base.mu)[:top]
        services.catch_up_events()
        link_events(services.store, found, start, end)
        return [e.to_dict() for e in found]

    return services.views.get(("episodes", start, end, min_calls, top, level), compute, services.store.write_mark())


@router.get("/v1/events", response_model=list[schemas.EventOut], summary="Incidents many callers report (clustered cases)")
def events(principal: Supervisor, services: ServicesDep, start: date | None = None, end: date | None = None,
           min_size: Annotated[int, Query(ge=2, le=1000)] = 3,
           top: Annotated[int, Query(ge=1, le=200)] = 20) -> list[dict[str, Any]]:
    from hotline.events import kept_events

    start, end = _days(services, start, end, 3)
    if (end - start).days >= MAX_EVENT_DAYS:
        raise InvalidInput(f"events are listed over at most {MAX_EVENT_DAYS} days at a time")
    services.catch_up_events()
    return [e.to_dict() for e in kept_events(services.store, start, end, min_size=min_size, top=top)]


@router.get("/v1/forecast", response_model=list[schemas.ForecastOut],
            summary="Daily counts per cell for the coming days, with 80% intervals")
def forecast(principal: Supervisor, services: ServicesDep, end: date | None = None,
             horizon: Annotated[int, Query(ge=1, le=60)] = 14, rising: bool = True,
             top: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
    from hotline.hotspots import forecast as fc

    _, end = _days(services, None, end, 1)

    def compute() -> list[dict[str, Any]]:
        found = fc.forecast(period_table(services.store, end, end), horizon=horizon)
        chosen = fc.rising(found, top=top) if rising else sorted(found, key=lambda f: -f.rise)[:top]
        return [f.to_dict() for f in chosen]

    return services.views.get(("forecast", end, horizon, rising, top), compute, services.store.write_mark())


@router.get("/v1/reports/hotspots", response_class=HTMLResponse,
            summary="The hotspot report as a self-contained HTML page")
def report(principal: Supervisor, services: ServicesDep, start: date | None = None,
           end: date | None = None) -> HTMLResponse:
    from hotline import reports

    start, end = _days(services, start, end, 7)
    if (end - start).days >= MAX_REPORT_DAYS:
        raise InvalidInput(f"a report covers at most {MAX_REPORT_DAYS} days")
    services.catch_up_events()
    built = reports.build(services.store, start, end, services.taxonomy.level1_of, centers=services.gazetteer.centers())
    return HTMLResponse(reports.render(built), headers={"Content-Security-Policy": REPORT_POLICY, **SECURITY_HEADERS})


def _worklist(services: Services, start: date, end: date, level: str) -> list[Any]:
    """The period's work list with its decisions (cached until a case or a decision is written)."""
    from hotline import worklist

    def compute() -> list[Any]:
        services.catch_up_events()
        return worklist.items(services.store, start, end, services.taxonomy, level=level)

    found = services.views.get(("worklist", start, end, level), compute, services.store.write_mark())
    return worklist.decided(found, services.store)


@router.get("/v1/worklist", response_model=list[schemas.WorkItemOut],
            summary="未诉先办: surges and cells forecast to rise, with departments, events, calls, forecast and state",
            responses={200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument."
                                                                 "spreadsheetml.sheet": {}}}})
def worklist_view(principal: Supervisor, services: ServicesDep, start: date | None = None, end: date | None = None,
                  level: Level = "district",
                  format: Annotated[Literal["json", "csv", "xlsx"], Query(description="json, or a file to download")] = "json",
                  ) -> Any:
    from hotline import worklist

    start, end = _days(services, start, end, 7)
    items = _worklist(services, start, end, level)
    if format == "json":
        return [i.to_dict() for i in items]
    export, media, suffix = worklist.exporter(format)
    name = f"worklist-{start}-{end}.{suffix}"
    return Response(export(items), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/v1/worklist/{item_id}/state", response_model=schemas.WorkStateOut,
             summary="Set an item's state (acknowledged, assigned to a department, resolved, dismissed); audited")
def worklist_state(item_id: Annotated[str, Path(max_length=40)], body: schemas.WorkStateIn, principal: Supervisor,
                   services: ServicesDep, start: date | None = None, end: date | None = None,
                   level: Level = "district") -> dict[str, Any]:
    from hotline import worklist

    start, end = _days(services, start, end, 7)
    items = _worklist(services, start, end, level)
    entry = worklist.set_state(services.store, items, item_id, body.state, principal.name, body.department,
                               body.note, services.taxonomy, expected=body.expected)
    return entry.to_dict()


@router.get("/v1/worklist/{item_id}/history", response_model=list[schemas.WorkStateOut],
            summary="Every decision on one work-list item, oldest first")
def worklist_history(item_id: Annotated[str, Path(max_length=40)], principal: Supervisor,
                     services: ServicesDep) -> list[dict[str, Any]]:
    return [s.to_dict() for s in services.store.work_history(item_id)]


@router.get("/v1/reports/weekly", summary="The weekly brief (未诉先办周报) of the seven days ending `end`, HTML or PDF",
            responses={200: {"content": {"text/html": {}, "application/pdf": {}}}})
def weekly_brief(principal: Supervisor, services: ServicesDep, end: date | None = None, level: Level = "district",
                 format: Annotated[Literal["html", "pdf"], Query()] = "html") -> Response:
    from hotline import brief

    _, end = _days(services, None, end, 1)
    start, end = brief.week_of(end)
    built = brief.build(_worklist(services, start, end, level), end)
    if format == "pdf":
        return Response(brief.render_pdf(built), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="brief-{start}-{end}.pdf"'})
    return HTMLResponse(brief.render_html(built), headers={"Content-Security-Policy": REPORT_POLICY, **SECURITY_HEADERS})
