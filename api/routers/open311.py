"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) over our categories and cases, as real clients read it.

Services are the taxonomy's second-level categories: a stable, ASCII-safe
``service_code`` derived from the category's name (Chinese names travel as
``service_name``; the name itself is still accepted as a code), ``group`` its
first level, and a service definition whose attributes are the district (a
list from the gazetteer) and the address. A service request is a case. Every
endpoint answers in JSON or XML by its extension, in the shapes of the
specification's examples, errors included (``[{code, description}]`` or
``<errors>``). Filters run in the store's query, over the specification's
default window (the last 90 days, at most 90 days at a time). Times carry the
city's offset (``+08:00``). Reads need a key unless ``HOTLINE_OPEN311_PUBLIC``
is set; writes always need one (form field ``api_key`` or ``X-API-Key``);
caller fields never appear here.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, APIKeyQuery
from pydantic import ValidationError

from api.auth import Principal, authorise
from api.deps import ServicesDep
from api.intake import build_case
from api.schemas import CaseIn
from api.services import Services
from hotline.case import Case, Status
from hotline.errors import InvalidInput, NotFound
from hotline.settings import ROLES
from hotline.store.base import MAX_PAGE, CaseQuery
from hotline.taxonomy import CategorySpec
from hotline.text.clean import unencodable
from hotline.times import to_local

router = APIRouter(prefix="/open311", tags=["open311"])

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
WRITERS = frozenset({"agent", "admin"})
OPEN = frozenset({Status.RECEIVED, Status.DISPATCHED, Status.IN_PROGRESS})
STATUSES = {"open": tuple(s.value for s in OPEN), "closed": tuple(s.value for s in Status if s not in OPEN)}
#: The specification's default and longest window for request searches.
WINDOW_DAYS = 90
Format = Annotated[str, Path(pattern="^(json|xml)$", description="json or xml")]

_query_key = APIKeyQuery(name="api_key", auto_error=False)
_header_key = APIKeyHeader(name="X-API-Key", auto_error=False)


# ---------------------------------------------------------------- formats
def _element(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, item in value.items():
            _element(child, key, item)
    elif isinstance(value, list):
        singular = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format"}
        for item in value:
            _element(child, singular.get(name, "item"), item)
    elif value is not None:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        child.text = _NOT_XML.sub("", text)  # input is cleaned of these; a stored case from before may hold one


#: Characters XML 1.0 forbids: one of them in one case made the public requests.xml invalid for its window.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def render(data: Any, fmt: str, root: str, item: str | None = None, status: int = 200) -> Response:
    """``data`` as JSON, or as XML in the specification's shape: ``<root><item>…</item>…</root>`` for a list."""
    if fmt == "json":
        return JSONResponse(data, status_code=status)
    top = ET.Element(root)
    if isinstance(data, list):
        for entry in data:
            element = ET.SubElement(top, item or "item")
            for key, value in entry.items():
                _element(element, key, value)
    else:
        for key, value in data.items():
            _element(top, key, value)
    body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="utf-8")
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")


def error_response(request: Request, status: int, description: str) -> Response:
    """An error in the specification's form, in the format the path asks for (JSON unless it ends in .xml)."""
    return error_for_path(request.url.path, status, description)


def error_for_path(path: str, status: int, description: str) -> Response:
    """:func:`error_response` where there is no request object yet (the body limit, before the app)."""
    fmt = "xml" if path.endswith(".xml") else "json"
    return render([{"code": status, "description": description}], fmt, "errors", "error", status=status)


# ---------------------------------------------------------------- services
def service_code(spec: CategorySpec) -> str:
    """A stable ASCII code for a category: the same name always gives the same code, whatever else changes."""
    return "svc-" + hashlib.blake2b(spec.l2.encode("utf-8"), digest_size=4).hexdigest()


def _spec(services: Services, code: str) -> CategorySpec:
    for spec in services.taxonomy.categories.values():
        if code in (service_code(spec), spec.l2):
            return spec
    raise NotFound(f"unknown service_code {code[:40]!r}; see services.json")


def _service(spec: CategorySpec) -> dict[str, Any]:
    return {"service_code": service_code(spec), "service_name": spec.l2,
            "description": f"{spec.l1} · {spec.l2}：" + "、".join(spec.l3), "metadata": True, "type": "realtime",
            "keywords": ",".join(spec.l3), "group": spec.l1}


def _definition(services: Services, spec: CategorySpec) -> dict[str, Any]:
    districts = [{"key": name, "name": name} for name in services.gazetteer.districts]
    return {"service_code": service_code(spec), "attributes": [
        {"variable": True, "code": "district", "datatype": "singlevaluelist", "required": False,
         "datatype_description": "区县", "order": 1, "description": "问题所在的区县", "values": districts},
        {"variable": True, "code": "address", "datatype": "string", "required": False,
         "datatype_description": "详细地址", "order": 2, "description": "问题所在的详细地址（街道、小区、门牌）",
         "values": []},
    ]}


def _jurisdiction(services: Services, jurisdiction_id: str | None) -> None:
    wanted = services.settings.open311_jurisdiction
    if jurisdiction_id and wanted and jurisdiction_id != wanted:
        raise NotFound(f"jurisdiction_id {jurisdiction_id[:40]!r} is not served here (this is {wanted!r})")


async def reader(request: Request, services: ServicesDep, key: str | None = Depends(_query_key),
                 header: str | None = Depends(_header_key)) -> Principal | None:
    """Anyone with a key; without one too when ``HOTLINE_OPEN311_PUBLIC`` is set (masked cases, no caller fields)."""
    if not (header or key) and services.settings.open311_public:
        return None
    return authorise(request, header or key, frozenset(ROLES))


Reader = Annotated[Principal | None, Depends(reader)]


@router.get("/discovery.{fmt}", summary="Open311: the discovery document")
def discovery(request: Request, fmt: Format) -> Response:
    base = str(request.base_url).rstrip("/") + "/open311/v2"
    return render({"changeset": datetime.now().astimezone().isoformat(timespec="seconds"),
                   "contact": "12345 政务服务便民热线", "key_service": "向热线管理员申请 API key",
                   "endpoints": [{"specification": SPECIFICATION, "url": base, "changeset": None, "type": "production",
                                  "formats": ["text/xml", "application/json"]}]}, fmt, "discovery")


@router.get("/v2/services.{fmt}", summary="Open311: the services (categories) offered")
def list_services(services: ServicesDep, fmt: Format, jurisdiction_id: str | None = None) -> Response:
    _jurisdiction(services, jurisdiction_id)
    return render([_service(spec) for spec in services.taxonomy.categories.values()], fmt, "services", "service")


@router.get("/v2/services/{code}.{fmt}", summary="Open311: a service definition (its attributes)")
def service_definition(services: ServicesDep, code: str, fmt: Format, jurisdiction_id: str | None = None) -> Response:
    _jurisdiction(services, jurisdiction_id)
    return render(_definition(services, _spec(services, code)), fmt, "service_definition")


# ---------------------------------------------------------------- requests
def _time(services: Services, moment: datetime | None) -> str | None:
    return moment.replace(tzinfo=services.window.city).isoformat() if moment else None


def _request(services: Services, case: Case) -> dict[str, Any]:
    category = case.category
    spec = services.taxonomy.categories.get(category.l2) if category else None
    return {
        "service_request_id": case.id,
        "status": "open" if case.status in OPEN else "closed",
        "status_notes": case.status.value,
        "service_name": (category.l2 or category.l1) if category else None,
        "service_code": service_code(spec) if spec else None,
        "description": case.text,
        "agency_responsible": case.departments[0] if case.departments else None,
        "service_notice": None,
        "requested_datetime": _time(services, case.received_at),
        "updated_datetime": _time(services, case.updated_at or case.received_at),
        "expected_datetime": None,
        "address": case.address or str(case.area) or None,
        "address_id": None,
        "zipcode": None,
        "lat": case.location.lat if case.location else None,
        "long": case.location.lon if case.location else None,
        "media_url": case.media_url or None,
    }


def _w3c(services: Services, value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = to_local(datetime.fromisoformat(value.replace("Z", "+00:00")), services.window.city)
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+14:00 has no local time
        raise InvalidInput(f"{name} must be a W3C datetime such as 2025-06-01T00:00:00+08:00") from None
    if not 1970 <= moment.year <= 2100:
        raise InvalidInput(f"{name} {value[:40]!r} is out of range (1970 to 2100)")
    return moment


@router.get("/v2/requests.{fmt}", summary="Open311: service requests (cases), newest first")
def list_requests(principal: Reader, services: ServicesDep, fmt: Format, service_request_id: str = "",
                  service_code: str = "", status: str = "", start_date: str | None = None,
                  end_date: str | None = None, jurisdiction_id: str | None = None,
                  page_size: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE) -> Response:
    _jurisdiction(services, jurisdiction_id)
    if service_request_id:  # overrides every other parameter (the specification)
        found = []
        for case_id in [c.strip() for c in service_request_id.split(",") if c.strip()][:MAX_PAGE]:
            try:
                found.append(_request(services, services.store.get(case_id)))
            except NotFound:
                continue
        return render(found, fmt, "service_requests", "request")
    wanted = [s.strip() for s in status.split(",") if s.strip()]
    if any(s not in STATUSES for s in wanted):
        raise InvalidInput("status must be open, closed or both (comma separated)")
    statuses = tuple(v for s in wanted for v in STATUSES[s]) if wanted and len(wanted) < 2 else ()
    now = datetime.now(services.window.city).replace(tzinfo=None)
    end = _w3c(services, end_date, "end_date") or now
    start = _w3c(services, start_date, "start_date") or end - timedelta(days=WINDOW_DAYS)
    if end - start > timedelta(days=WINDOW_DAYS):
        raise InvalidInput(f"start_date to end_date may span at most {WINDOW_DAYS} days")
    if start > end:
        raise InvalidInput("start_date is after end_date")
    codes = [c.strip() for c in service_code.split(",") if c.strip()][:20] or [""]
    cases: list[Case] = []
    for code in codes:
        category = _spec(services, code).category.path if code else ""
        query = CaseQuery(start=start, end=end, category=category, statuses=statuses, limit=page_size)
        cases.extend(services.store.search(query).items)
    cases = sorted(cases, key=lambda c: c.received_at, reverse=True)[:page_size]
    return render([_request(services, c) for c in cases], fmt, "service_requests", "request")


@router.get("/v2/requests/{request_id}.{fmt}", summary="Open311: one service request")
def one_request(principal: Reader, services: ServicesDep, request_id: str, fmt: Format,
                jurisdiction_id: str | None = None) -> Response:
    _jurisdiction(services, jurisdiction_id)
    return render([_request(services, services.store.get(request_id))], fmt, "service_requests", "request")


#: Deeper than any request the specification describes (its fields are flat; attribute[x] at most one level).
MAX_JSON_DEPTH = 8


def _json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw``, in one pass (strings skipped): a body nested
    100,000 deep made json.loads recurse until Python gave up, a 500 with a traceback per request."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _form(raw: bytes, content_type: str) -> dict[str, Any]:
    """A urlencoded form in the charset it declares, else UTF-8, else GB18030 (a city's older clients): raw
    UTF-8 without a charset was read as Latin-1 and stored as mojibake."""
    declared = re.search(r"charset=([\w-]+)", content_type, re.IGNORECASE)
    for charset in ([declared.group(1)] if declared else ["utf-8", "gb18030"]):
        try:
            text = raw.decode(charset)
            return dict(parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict",
                                  max_num_fields=200))
        except (UnicodeDecodeError, LookupError):
            continue
        except ValueError as exc:  # too many fields
            raise InvalidInput(f"the form cannot be read: {exc}") from None
    raise InvalidInput("the form is in neither UTF-8 nor GB18030 (or the charset it declares)")


async def _fields(request: Request) -> dict[str, Any]:
    """The POST's fields, from a form or a JSON object; what cannot be read is a 400, never a 500."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        raw = await request.body()
        if _json_depth(raw) > MAX_JSON_DEPTH:
            raise InvalidInput(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            fields = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidInput("the request body is not a JSON object in UTF-8") from None
        if not isinstance(fields, dict):
            raise InvalidInput("the request body must be a JSON object")
    elif content_type.startswith("application/x-www-form-urlencoded") or not content_type:
        fields = _form(await request.body(), content_type)
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


def _text(fields: dict[str, Any], *names: str, limit: int = 500) -> str | None:
    for name in names:
        value = fields.get(name)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:limit]
    return None


@router.post("/v2/requests.{fmt}", status_code=201, summary="Open311: file a service request (form fields or JSON)")
async def create_request(request: Request, services: ServicesDep, fmt: Format) -> Response:
    # The key before the body when it comes in the header or the query: nobody without one makes us parse.
    given = request.headers.get("X-API-Key") or request.query_params.get("api_key")
    principal = authorise(request, given, WRITERS) if given else None
    fields = await _fields(request)
    if principal is None:
        principal = authorise(request, fields.get("api_key"), WRITERS)
    _jurisdiction(services, _text(fields, "jurisdiction_id"))
    spec = _spec(services, str(fields.get("service_code") or ""))
    description = _text(fields, "description", limit=services.settings.max_text_chars)
    if not description:
        raise InvalidInput("description is required")
    lat, lon = _coordinate(fields, "lat"), _coordinate(fields, "long")
    try:
        item = CaseIn(text=description, channel="app", category=f"{spec.l1}/{spec.l2}", lat=lat, lon=lon,
                      address=_text(fields, "address_string", "attribute[address]"),
                      district=_text(fields, "attribute[district]", limit=50),
                      caller=_text(fields, "phone", limit=100), media_url=_text(fields, "media_url"))
    except ValidationError as exc:
        raise InvalidInput(f"invalid request: {exc.errors()[0].get('msg', exc)}") from None
    # Masking and the store's write off the event loop: a database that is down must not hold every request.
    case = await run_in_threadpool(build_case, services, item, f"open311:{principal.name}")
    await run_in_threadpool(services.store.upsert, [case], writer=principal.writer("open311"))
    services.syncer.poke()
    return render([{"service_request_id": case.id, "service_notice": "已受理", "account_id": None}], fmt,
                  "service_requests", "request", status=201)
