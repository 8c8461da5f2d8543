"""Cases: add or update, search, one case, similar cases, an agent's confirmed label, and both audit logs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from api import schemas
from api.auth import Principal, require
from api.deps import (
    Agent,
    AnswersDep,
    AnyRole,
    IndexDep,
    MaybeRouterDep,
    ServicesDep,
    StoreDep,
    SyncerDep,
    TaxonomyDep,
    WindowDep,
)
from api.intake import build_case
from hotline.case import Case, Category, LabelKind, LabelSource, format_time
from hotline.errors import InvalidInput, TooLarge
from hotline.store.base import MAX_PAGE, CaseQuery
from hotline.times import city_now
from search.vectors import case_text

#: Any key reads; adding and labelling take an agent's (or an admin's) key.
router = APIRouter(prefix="/v1", tags=["cases"], dependencies=[Depends(require())])

MAX_BATCH = 500


def _links(case_id: str, *operations: str) -> dict[str, Any]:
    """OpenAPI links from a response to the operations on the case it names (clients and stateful tests follow them)."""
    return {operation: {"operationId": operation, "parameters": {"case_id": case_id}} for operation in operations}


def _out(case: Case, principal: Principal) -> dict[str, Any]:
    return case.to_dict(caller=principal.sees_caller)


@router.post("/cases", response_model=schemas.UpsertOut, operation_id="addCases",
             responses={200: {"links": _links("$response.body#/ids/0", "getCase", "labelCase", "similarCases",
                                              "labelHistory", "caseChanges")}},
             summary="Add or update cases (one or many), idempotent by id")
def add_cases(principal: Agent, services: ServicesDep, store: StoreDep, syncer: SyncerDep,
              body: Annotated[schemas.CaseIn | list[schemas.CaseIn], Body()]) -> dict[str, Any]:
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidInput("no cases in the request")
    if len(items) > MAX_BATCH:
        raise TooLarge(f"{len(items)} cases in one request; send at most {MAX_BATCH}")
    cases = [build_case(services, item, f"api:{principal.name}") for item in items]
    result = store.upsert(cases, writer=principal.writer("api"))
    syncer.poke()
    return {"inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged,
            "ids": [c.id for c in cases]}


@router.get("/cases", response_model=schemas.CasePage, summary="Search cases")
def search_cases(
    principal: AnyRole,
    index: IndexDep,
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
) -> dict[str, Any]:
    query = CaseQuery(text=text, district=district, street=street, category=category, department=department,
                      status=status, channel=channel, limit=limit, offset=offset,
                      start=start.replace(tzinfo=None) if start else None,
                      end=end.replace(tzinfo=None) if end else None)
    page = index.search(query)
    return {"items": [_out(c, principal) for c in page.items], "total": page.total, "limit": limit, "offset": offset}


@router.get("/cases/{case_id}", response_model=schemas.CaseOut, summary="One case", operation_id="getCase")
def get_case(case_id: str, principal: AnyRole, store: StoreDep) -> dict[str, Any]:
    return _out(store.get(case_id), principal)


@router.get("/cases/{case_id}/similar", response_model=list[schemas.Similar], operation_id="similarCases",
            summary="Past cases most like this one")
def similar_cases(case_id: str, store: StoreDep, answers: AnswersDep, model: MaybeRouterDep,
                  k: Annotated[int, Query(ge=1, le=50)] = 10, same_district: bool = False) -> list[dict[str, Any]]:
    case = store.get(case_id)
    return answers.similar_cases(model, case_text(case), k, exclude=case.id,
                                 district=case.area.district if same_district else "")


@router.post("/cases/{case_id}/label", response_model=schemas.CaseOut, tags=["agents"], operation_id="labelCase",
             responses={200: {"links": _links("$response.body#/id", "getCase", "labelHistory", "caseChanges")}},
             summary="An agent confirms the category and departments (a training label, audited)")
def label_case(case_id: str, body: schemas.LabelIn, principal: Agent, store: StoreDep, taxonomy: TaxonomyDep,
               window: WindowDep, syncer: SyncerDep) -> dict[str, Any]:
    if body.category is None and body.departments is None:
        raise InvalidInput("give a category, departments or both")
    category = taxonomy.checked_category(Category.parse(body.category)) if body.category else None
    departments = tuple(d.strip() for d in body.departments if d.strip()) if body.departments else None
    if body.departments is not None and not departments:
        raise InvalidInput("departments must not be blank")
    if departments:
        departments = taxonomy.checked_departments(departments)
    source = LabelSource(LabelKind.CONFIRMED, principal.name, city_now(window.city))
    before = store.get(case_id).category_source
    case = store.set_label(case_id, source, category=category, departments=departments)
    syncer.poke()
    out = _out(case, principal)
    if before is not None and before.kind is LabelKind.CONFIRMED and before.by != principal.name:
        # Allowed (agents correct each other), but never silently: the console shows whose label this replaced.
        out["replaced_confirmation"] = {"kind": before.kind.value, "by": before.by, "at": format_time(before.at)}
    return out


@router.get("/cases/{case_id}/labels", summary="The audit log of a case's labels", operation_id="labelHistory")
def label_history(case_id: str, store: StoreDep) -> list[dict[str, Any]]:
    store.get(case_id)
    return [h.to_dict() for h in store.label_history(case_id)]


@router.get("/cases/{case_id}/changes", operation_id="caseChanges",
            summary="The audit log of a case's content: who changed which fields, before and after")
def content_history(case_id: str, principal: AnyRole, store: StoreDep) -> list[dict[str, Any]]:
    store.get(case_id)
    hidden = set() if principal.sees_caller else {"caller"}
    return [{"at": format_time(c.at), "by": c.by, "changes": {k: v for k, v in c.changes.items() if k not in hidden}}
            for c in store.case_history(case_id)]
