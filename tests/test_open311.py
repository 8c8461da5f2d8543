"""Open311 GeoReport v2 as real clients use it: a client library from PyPI (georeport) reads every endpoint in
JSON and in XML; requests are filed with the form POST in both formats; errors come in the specification's form."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime

import pytest
import requests
from georeport import GeoReport

from api.services import Services
from hotline.store.base import CaseQuery
from tests.api_support import AGENT_KEY, SUPERVISOR_KEY, LiveServer

DEMO_WINDOW = {"start_date": "2025-06-01T00:00:00+08:00", "end_date": "2025-06-30T23:59:59+08:00"}


@pytest.fixture(scope="module")
def live(service: Services) -> Iterator[str]:
    with LiveServer(service) as server:
        yield server.url + "/open311/v2"


@pytest.fixture()
def public(service: Services) -> Iterator[None]:
    """HOTLINE_OPEN311_PUBLIC=1 for one test: the library reads without a key, as it was written to."""
    settings = service.settings
    service.settings = settings.model_copy(update={"open311_public": True})
    yield
    service.settings = settings


def _water(base: str) -> str:
    listed = requests.get(f"{base}/services.json", headers={"X-API-Key": AGENT_KEY}, timeout=10).json()
    return next(s["service_code"] for s in listed if s["service_name"] == "供水")


def _file(base: str, fmt: str, **extra: str) -> str:
    """A citizen's report through the form POST, as a client sends it; the new id from the answer."""
    fields = {"api_key": AGENT_KEY, "service_code": _water(base), "description": "海陵区梅兰新村没水了，电话13912345678",
              "lat": "32.455", "long": "119.923", "attribute[district]": "海陵区",
              "address_string": "梅兰新村3栋", "media_url": "https://example.org/photo.jpg", **extra}
    answer = requests.post(f"{base}/requests.{fmt}", data=fields, timeout=10)
    assert answer.status_code == 201, answer.text
    if fmt == "json":
        return answer.json()[0]["service_request_id"]
    return ET.fromstring(answer.content).find("request/service_request_id").text  # type: ignore[union-attr]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_real_client_reads_every_endpoint(live: str, public: None, service: Services, fmt: str) -> None:
    case_id = _file(live, fmt)
    client = GeoReport(live, jurisdiction="taizhou", output_format=fmt)
    listed = client.get_service_list()
    assert len(listed) == len(service.taxonomy.categories)
    water = next(s for s in listed if s["service_name"] == "供水")
    assert re.fullmatch(r"svc-[0-9a-f]{8}", water["service_code"]) and water["group"] == "城乡建设"
    assert str(water["metadata"]).lower() == "true"
    definition = client.get_service_definition(water["service_code"])
    attributes = definition["attributes"] if fmt == "json" else definition["attributes"]["attribute"]
    codes = {a["code"] for a in attributes}
    assert {"district", "address"} <= codes
    district = next(a for a in attributes if a["code"] == "district")
    values = district["values"] if fmt == "json" else district["values"]["value"]
    assert "海陵区" in {v["key"] for v in values}
    one = client.get_service_request(case_id)
    assert one["service_request_id"] == case_id and one["service_code"] == water["service_code"]
    assert one["media_url"] == "https://example.org/photo.jpg" and one["requested_datetime"].endswith("+08:00")
    assert one["updated_datetime"] and one["status"] == "open" and "13912345678" not in str(one)
    assert "phone" not in one and "caller" not in one
    recent = client.get_service_requests(service_code=water["service_code"], status="open")
    recent = recent if isinstance(recent, list) else [recent]
    assert case_id in {r["service_request_id"] for r in recent}


def test_filters_run_in_the_query_not_after_a_page(live: str, public: None, service: Services) -> None:
    client = GeoReport(live)
    closed = client.get_service_requests(status="closed", **DEMO_WINDOW)
    start, end = (datetime.fromisoformat(DEMO_WINDOW[k]).replace(tzinfo=None) for k in ("start_date", "end_date"))
    total = service.store.search(CaseQuery(start=start, end=end, statuses=("resolved", "closed"), limit=1)).total
    assert total > 0 and len(closed) == min(1000, total) and {r["status"] for r in closed} == {"closed"}
    both = client.get_service_requests(status="open,closed", **DEMO_WINDOW)
    assert len(both) == min(1000, service.store.search(CaseQuery(start=start, end=end, limit=1)).total)
    too_long = requests.get(f"{live}/requests.json", params={"start_date": "2025-01-01T00:00:00Z",
                                                             "end_date": "2025-08-01T00:00:00Z"}, timeout=10)
    assert too_long.status_code == 400 and "90 days" in too_long.json()[0]["description"]


def test_errors_keys_and_discovery_follow_the_specification(live: str, service: Services) -> None:
    missing = requests.get(f"{live}/services/nope.json", headers={"X-API-Key": AGENT_KEY}, timeout=10)
    assert missing.status_code == 404 and missing.json()[0]["code"] == 404 and missing.json()[0]["description"]
    as_xml = requests.get(f"{live}/services/nope.xml", timeout=10)
    assert as_xml.status_code == 404 and ET.fromstring(as_xml.content).find("error/code").text == "404"  # type: ignore[union-attr]
    assert requests.get(f"{live}/requests.json", timeout=10).status_code == 401  # reads need a key by default
    assert requests.get(f"{live}/requests.json", headers={"X-API-Key": SUPERVISOR_KEY}, timeout=10).status_code == 200
    unkeyed = requests.post(f"{live}/requests.json", data={"service_code": _water(live), "description": "没水"},
                            timeout=10)
    assert unkeyed.status_code == 401 and unkeyed.json()[0]["code"] == 401
    bad_format = requests.get(f"{live}/services.yaml", timeout=10)
    assert bad_format.status_code in (400, 404) and bad_format.json()[0]["code"] == bad_format.status_code
    for fmt in ("json", "xml"):
        found = requests.get(live.replace("/v2", f"/discovery.{fmt}"), timeout=10)
        assert found.status_code == 200
        if fmt == "json":
            endpoint = found.json()["endpoints"][0]
            assert endpoint["url"] == live and "application/json" in endpoint["formats"]
        else:
            assert ET.fromstring(found.content).find("endpoints/endpoint/specification").text.startswith("http")  # type: ignore[union-attr]
    # The Chinese name still works as a code, for clients written before the codes.
    assert _file(live, "json", service_code="供水")
