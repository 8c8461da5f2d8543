"""Every endpoint with every role and with no key: what a role may not do is refused, and logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from tests.api_support import KEYS

ALL = {"agent", "supervisor", "admin"}
ENDPOINTS = [
    ("POST", "/v1/route", {"text": "市民：海陵区梅兰新村停水了"}, ALL),
    ("POST", "/v1/cases", {"id": "ACCESS-1", "text": "小区门口垃圾没人清"}, {"agent", "admin"}),
    ("GET", "/v1/cases", None, ALL),
    ("GET", "/v1/cases/ACCESS-1", None, ALL),
    ("GET", "/v1/cases/ACCESS-1/similar", None, ALL),
    ("GET", "/v1/cases/ACCESS-1/labels", None, ALL),
    ("POST", "/v1/cases/ACCESS-1/label", {"category": "城乡建设/环境卫生"}, {"agent", "admin"}),
    ("GET", "/v1/hotspots", None, {"supervisor", "admin"}),
    ("GET", "/v1/events", None, {"supervisor", "admin"}),
    ("GET", "/v1/episodes", None, {"supervisor", "admin"}),
    ("GET", "/v1/forecast", None, {"supervisor", "admin"}),
    ("GET", "/v1/reports/hotspots", None, {"supervisor", "admin"}),
    ("GET", "/v1/models", None, {"supervisor", "admin"}),
    ("POST", "/v1/models/rollback", None, {"admin"}),
    ("POST", "/v1/models/no-such-version/promote", None, {"admin"}),
    ("GET", "/v1/models/jobs/no-such-job", None, {"admin"}),
    ("GET", "/open311/v2/requests.json", None, ALL),
    ("GET", "/v1/cases/ACCESS-1/changes", None, ALL),
]


@pytest.fixture(scope="module")
def client(service: Services) -> Iterator[TestClient]:
    with TestClient(create_app(service.settings, service)) as c:
        c.post("/v1/cases", json={"id": "ACCESS-1", "text": "小区门口垃圾没人清"}, headers={"X-API-Key": "admin-key-1-0123456789abcdef"})
        yield c


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_each_role_gets_what_it_may_and_nothing_else(client: TestClient, caplog: pytest.LogCaptureFixture,
                                                     method: str, path: str, body: dict | None, allowed: set[str]) -> None:
    for key, role in [*((k, r) for k, (_, r) in KEYS.items()), (None, None)]:
        headers = {"X-API-Key": key} if key else {}
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hotline.access"):
            response = client.request(method, path, json=body, headers=headers)
        assert response.status_code < 500, (role, response.text)
        if role in allowed:
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == (401 if role is None else 403), (role, response.text)
            if path.startswith("/open311/"):  # the specification's own error form there
                assert response.json()[0]["code"] == response.status_code
            else:
                assert response.headers["content-type"].startswith("application/problem+json")
            assert any("refused" in r.getMessage() and path in r.getMessage() for r in caplog.records)
            assert not any(k in r.getMessage() for r in caplog.records for k in KEYS)  # keys never reach the log


def test_operations_endpoints_need_no_key(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/open311/v2/services.json").status_code == 200
    assert client.get("/").status_code == 200 and "坐席" in client.get("/").text
