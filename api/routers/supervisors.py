"""Supervisors' views: hotspots, episodes, events, forecasts, the work list, the report and the brief.

Each handler translates HTTP to one call of :class:`api.views.SupervisorViews`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, Response

from api import schemas
from api.auth import require
from api.deps import Supervisor, SupervisorViewsDep
from api.routers.pages import REPORT_POLICY, SECURITY_HEADERS
from hotline.analytics import brief, worklist

router = APIRouter(prefix="/v1", dependencies=[Depends(require("supervisor", "admin"))], tags=["supervisors"])

Level = Annotated[Literal["district", "street"],
                  Query(description="cells by district, or by district and street (false alarms then "
                                    "controlled across all street cells each day: method nb-fdr)")]
ItemId = Annotated[str, Path(max_length=40)]
PAGE_HEADERS = {"Content-Security-Policy": REPORT_POLICY, **SECURITY_HEADERS}


@router.get("/period", response_model=schemas.PeriodOut,
            summary="The period the supervisors' page shows when none is asked: the last `days` days the store holds")
def period(views: SupervisorViewsDep, days: Annotated[int, Query(ge=1, le=92)] = 7) -> dict[str, Any]:
    start, end = views.period(None, None, days)
    return {"start": start.isoformat(), "end": end.isoformat(), "days": (end - start).days + 1}


@router.get("/hotspots", response_model=list[schemas.AlertOut],
            summary="Surging (area, category) cells per day, prospectively")
def hotspots(views: SupervisorViewsDep, start: date | None = None, end: date | None = None,
             method: Annotated[str | None, Query(max_length=40, description="a detector's name (nb, nb-fdr, "
                                                 "ears-c2, scan …; default nb, at street level nb-fdr)")] = None,
             level: Level = "district") -> list[dict[str, Any]]:
    start, end = views.period(start, end, 7, "hotspots")
    return views.hotspots(start, end, method, level)


@router.get("/episodes", response_model=list[schemas.EpisodeOut],
            summary="Surges to act on: each cell's consecutive alert days as one episode, most excess calls first")
def episodes(views: SupervisorViewsDep, start: date | None = None, end: date | None = None,
             min_calls: Annotated[int, Query(ge=1, le=10_000)] = 5,
             top: Annotated[int, Query(ge=1, le=200)] = 20, level: Level = "district") -> list[dict[str, Any]]:
    start, end = views.period(start, end, 30, "episodes")
    return views.episodes(start, end, min_calls, top, level)


@router.get("/events", response_model=list[schemas.EventOut], summary="Incidents many callers report (clustered cases)")
def events(views: SupervisorViewsDep, start: date | None = None, end: date | None = None,
           min_size: Annotated[int, Query(ge=2, le=1000)] = 3,
           top: Annotated[int, Query(ge=1, le=200)] = 20) -> list[dict[str, Any]]:
    start, end = views.period(start, end, 3, "events")
    return views.events(start, end, min_size, top)


@router.get("/forecast", response_model=list[schemas.ForecastOut],
            summary="Daily counts per cell for the coming days, with 80% intervals")
def forecast(views: SupervisorViewsDep, end: date | None = None,
             horizon: Annotated[int, Query(ge=1, le=60)] = 14, rising: bool = True,
             top: Annotated[int, Query(ge=1, le=500)] = 20) -> list[dict[str, Any]]:
    _, end = views.period(None, end, 1)
    return views.forecast(end, horizon, rising, top)


@router.get("/reports/hotspots", response_class=HTMLResponse,
            summary="The hotspot report as a self-contained HTML page")
def report(views: SupervisorViewsDep, start: date | None = None, end: date | None = None) -> HTMLResponse:
    start, end = views.period(start, end, 7, "reports")
    return HTMLResponse(views.report_html(start, end), headers=PAGE_HEADERS)


@router.get("/worklist", response_model=list[schemas.WorkItemOut],
            summary="未诉先办: surges and cells forecast to rise, with departments, events, calls, forecast and state",
            responses={200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument."
                                                                 "spreadsheetml.sheet": {}}}})
def worklist_view(views: SupervisorViewsDep, start: date | None = None, end: date | None = None,
                  level: Level = "district",
                  format: Annotated[Literal["json", "csv", "xlsx"], Query(description="json, or a file to download")] = "json",
                  ) -> Any:
    start, end = views.period(start, end, 7)
    items = views.worklist(start, end, level)
    if format == "json":
        return [i.to_dict() for i in items]
    export, media, suffix = worklist.exporter(format)
    name = f"worklist-{start}-{end}.{suffix}"
    return Response(export(items), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/worklist/{item_id}/state", response_model=schemas.WorkStateOut,
             summary="Set an item's state (acknowledged, assigned to a department, resolved, dismissed); audited")
def worklist_state(item_id: ItemId, body: schemas.WorkStateIn, principal: Supervisor, views: SupervisorViewsDep,
                   start: date | None = None, end: date | None = None, level: Level = "district") -> dict[str, Any]:
    start, end = views.period(start, end, 7)
    return views.set_state(start, end, level, item_id, body.state, principal.name, body.department, body.note,
                           body.expected).to_dict()


@router.get("/worklist/{item_id}/history", response_model=list[schemas.WorkStateOut],
            summary="Every decision on one work-list item, oldest first")
def worklist_history(item_id: ItemId, views: SupervisorViewsDep) -> list[dict[str, Any]]:
    return [s.to_dict() for s in views.history(item_id)]


@router.get("/reports/weekly", summary="The weekly brief (未诉先办周报) of the seven days ending `end`, HTML or PDF",
            responses={200: {"content": {"text/html": {}, "application/pdf": {}}}})
def weekly_brief(views: SupervisorViewsDep, end: date | None = None, level: Level = "district",
                 format: Annotated[Literal["html", "pdf"], Query()] = "html") -> Response:
    _, end = views.period(None, end, 1)
    built = views.brief(end, level)
    if format == "pdf":
        return Response(brief.render_pdf(built), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="brief-{built.start}-{built.end}.pdf"'})
    return HTMLResponse(brief.render_html(built), headers=PAGE_HEADERS)
