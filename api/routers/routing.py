"""Routing for agents: category, departments, reasons and similar cases for a transcript."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api import schemas
from api.auth import require
from api.deps import AnswersDep, RouterDep, SettingsDep, TaxonomyDep, WindowDep
from hotline.errors import TooLarge

#: Every caller with a key may route and list departments (Open311 clients and supervisors too).
router = APIRouter(prefix="/v1", tags=["agents"], dependencies=[Depends(require())])


@router.post("/route", response_model=schemas.Routing,
             summary="Category, departments, reasons and similar cases for a transcript")
async def route(body: schemas.RouteRequest, model: RouterDep, answers: AnswersDep, settings: SettingsDep,
                window: WindowDep) -> JSONResponse:
    if len(body.text) > settings.max_text_chars:
        raise TooLarge(f"text of {len(body.text)} characters; the limit is {settings.max_text_chars}")
    at = window.check(body.received_at) if body.received_at else None
    # Built by us, so returned as is: the schema stays documented without validating every answer again.
    return JSONResponse(await answers.route(model, body.text, body.district or "", at))


@router.get("/departments", response_model=list[schemas.DepartmentName],
            summary="Every department of the taxonomy (and the district offices): what an agent may pick")
async def departments(taxonomy: TaxonomyDep) -> list[schemas.DepartmentName]:
    return [schemas.DepartmentName(id=d.id, name=d.name) for d in taxonomy.departments.values()]
