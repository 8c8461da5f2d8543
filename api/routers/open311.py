"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) over our categories and cases.

Services are the taxonomy's second-level categories (``service_code`` is the
category name, ``group`` its first level); a service request is a case. So
civic tools that speak Open311 can list what the hotline handles, file a
request and follow it. POST takes the spec's form fields (or JSON) and the
API key as ``api_key`` or ``X-API-Key``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import APIKeyHeader, APIKeyQuery
from pydantic import ValidationError

from api.auth import Principal, authorise
from hotline.settings import ROLES
from api.intake import build_case
from api.schemas import CaseIn
from hotline.case import Case, Status
from hotline.errors import InvalidInput
from hotline.store.base import CaseQuery
from hotline.text.clean import unencodable

WRITERS = frozenset({"agent", "admin"})
OPEN = {Status.RECEIVED, Status.DISPATCHED, Status.IN_PROGRESS}


def _request(case: Case) -> dict[str, Any]:
    category = case.category
    return {
        "service_request_id": case.id,
        "status": "open" if case.status in OPEN else "closed",
        "status_notes": case.status.value,
        "service_name": (category.l2 or category.l1) if category else None,
        "service_code": (category.l2 or category.l1) if category else None,
        "description": case.text,
        "agency_responsible": case.departments[0] if case.departments else None,
        "service_notice": None,
        "requested_datetime": case.received_at.isoformat(),
        "updated_datetime": None,
        "expected_datetime": None,
        "address": case.address or str(case.area) or None,
        "address_id": None,
        "zipcode": None,
        "lat": case.location.lat if case.location else None,
        "long": case.location.lon if case.location else None,
        "media_url": None,
    }


async def _fields(request: Request) -> dict[str, Any]:
    """The POST's fields, from a form or a JSON object; what cannot be read is a 400, never a 500."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            fields = json.loads((await request.body()).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidInput("the request body is not a JSON object in UTF-8") from None
        if not isinstance(fields, dict):
            raise InvalidInput("the request body must be a JSON object")
    else:
        try:
            form = await request.form()
        except (UnicodeDecodeError, ValueError, KeyError) as exc:
            raise InvalidInput(f"the form cannot be read: {type(exc).__name__}") from None
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    for name, value in fields.items():
        if (isinstance(value, str) and unencodable(value)) or unencodable(str(name)):
            raise InvalidInput(f"field {str(name)[:40]!r} holds characters that are not valid Unicode")
    return fields


def _coordinate(fields: dict[str, Any], name: str) -> float | None:
    """A number, as text (a form) or a JSON number; ``true`` is no coordinate (it once became 1.0)."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInput(f"{name} must be a number")
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise InvalidInput(f"{name} must be a finite number")
    return number


router = APIRouter(tags=["open311"])
query_key = APIKeyQuery(name="api_key", auto_error=False)
header_key = APIKeyHeader(name="X-API-Key", auto_error=False)


if True:  # the routes, indented as they were inside install(); rewritten for conformance next

    async def agent(request: Request, key: str | None = Depends(query_key),
                    header: str | None = Depends(header_key)) -> Principal:
        return authorise(request, header or key, WRITERS)

    async def reader(request: Request, key: str | None = Depends(query_key),
                     header: str | None = Depends(header_key)) -> Principal:
        return authorise(request, header or key, frozenset(ROLES))

    @router.get("/open311/v2/services.json", tags=["open311"], summary="Open311: the services (categories) offered")
    def services(request: Request) -> list[dict[str, Any]]:
        taxonomy = request.app.state.services.taxonomy
        return [
            {"service_code": spec.l2, "service_name": spec.l2, "description": f"{spec.l1} · {spec.l2}：" + "、".join(spec.l3),
             "metadata": False, "type": "realtime", "keywords": ",".join(spec.l3), "group": spec.l1}
            for spec in taxonomy.categories.values()
        ]

    @router.get("/open311/v2/requests.json", tags=["open311"], summary="Open311: service requests (cases)")
    def requests(request: Request, service_request_id: str = "", service_code: str = "", status: str = "",
                 start_date: datetime | None = None, end_date: datetime | None = None,
                 principal: Principal = Depends(reader)) -> list[dict[str, Any]]:
        store = request.app.state.services.store
        if service_request_id:
            found = []
            for case_id in service_request_id.split(",")[:50]:
                try:
                    found.append(_request(store.get(case_id.strip())))
                except LookupError:
                    continue
            return found
        if status and status not in ("open", "closed"):
            raise InvalidInput("status must be 'open' or 'closed'")
        page = store.search(CaseQuery(category=service_code, limit=1000,
                                      start=start_date.replace(tzinfo=None) if start_date else None,
                                      end=end_date.replace(tzinfo=None) if end_date else None))
        items = [_request(c) for c in page.items]
        return [r for r in items if not status or r["status"] == status]

    @router.get("/open311/v2/requests/{request_id}.json", tags=["open311"], summary="Open311: one service request")
    def one_request(request_id: str, request: Request, principal: Principal = Depends(reader)) -> list[dict[str, Any]]:
        return [_request(request.app.state.services.store.get(request_id))]

    @router.post("/open311/v2/requests.json", tags=["open311"], status_code=201,
              summary="Open311: file a service request (form fields or JSON)")
    async def create(request: Request) -> list[dict[str, Any]]:
        fields = await _fields(request)
        principal = await agent(request, fields.get("api_key"), request.headers.get("X-API-Key"))
        services = request.app.state.services
        code = str(fields.get("service_code") or "")
        if code not in services.taxonomy.categories:
            raise InvalidInput(f"unknown service_code {code!r}; see services.json")
        description = str(fields.get("description") or "").strip()
        if not description:
            raise InvalidInput("description is required")
        spec = services.taxonomy.categories[code]
        lat, lon = _coordinate(fields, "lat"), _coordinate(fields, "long")
        try:
            item = CaseIn(text=description, channel="app", address=str(fields.get("address_string") or "")[:500] or None,
                          lat=lat, lon=lon, category=f"{spec.l1}/{spec.l2}",
                          caller=str(fields.get("phone") or "")[:100] or None)
        except ValidationError as exc:
            raise InvalidInput(f"invalid request: {exc.errors()[0].get('msg', exc)}") from None
        case = build_case(services, item, f"open311:{principal.name}")
        services.store.upsert([case], writer=principal.writer("open311"))
        services.syncer.poke()
        return [{"service_request_id": case.id, "service_notice": "已受理", "account_id": None}]
