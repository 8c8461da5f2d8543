"""The JSON API end to end (in process): routing, cases, labels, supervisors' views, models, access, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from tests.api_support import ADMIN, AGENT, SUPERVISOR

TRANSCRIPT = "坐席：您好，12345热线。市民：喂，我们海陵区城东街道梅兰新村停水两天了，一点水都没得，我手机13912345678。"


@pytest.fixture(scope="module")
def client(service: Services) -> Iterator[TestClient]:
    with TestClient(create_app(service.settings, service)) as c:
        yield c


def problem(response) -> dict:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["status"] == response.status_code and body["title"]
    return body


def test_route_answers_with_departments_reasons_and_similar_cases(client: TestClient) -> None:
    r = client.post("/v1/route", json={"text": TRANSCRIPT}, headers=AGENT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["category"].startswith("城乡建设/供水") and body["area"]["district"] == "海陵区"
    assert body["departments"][0]["probability"] >= body["departments"][-1]["probability"]
    assert all(d["reasons"] for d in body["departments"][:1]) and body["similar"] and body["terms"]
    assert "13912345678" not in r.text and isinstance(body["auto_dispatch"], bool) and body["model_version"]


def test_errors_are_problem_json(client: TestClient) -> None:
    assert problem(client.post("/v1/route", json={"text": TRANSCRIPT}))["status"] == 401
    assert problem(client.post("/v1/route", json={"text": TRANSCRIPT}, headers={"X-API-Key": "nope"}))["status"] == 401
    assert client.post("/v1/route", json={"txt": "x"}, headers=AGENT).status_code == 422
    problem(client.post("/v1/route", json={"txt": "x"}, headers=AGENT))
    assert problem(client.post("/v1/route", json={"text": "坐席：您好，12345热线。"}, headers=AGENT))["status"] == 400
    assert problem(client.post("/v1/route", json={"text": "停水" * 20_000}, headers=AGENT))["status"] == 413
    big = client.post("/v1/cases", content=b"[" + b" " * 3_000_000 + b"]", headers={**AGENT, "content-type": "application/json"})
    assert problem(big)["status"] == 413
    assert problem(client.get("/v1/cases/no-such-case", headers=AGENT))["status"] == 404
    assert problem(client.get("/v1/nothing-here", headers=AGENT))["status"] == 404


def test_route_and_similar_find_the_same_cases_with_their_text(client: TestClient, service: Services) -> None:
    """What /v1/route shows beside a call is what /v1/cases/{id}/similar finds for it: the store's cases."""
    from hotline.store.base import CaseQuery

    case = next(c for c in service.store.search(CaseQuery(limit=200)).items if not c.title and len(c.text) > 40)
    routed = client.post("/v1/route", json={"text": case.text}, headers=AGENT).json()
    similar = client.get(f"/v1/cases/{case.id}/similar", params={"k": 4}, headers=AGENT).json()
    assert routed["similar"][0]["case_id"] == case.id  # the stored case itself is the closest to its own text
    assert [s["case_id"] for s in routed["similar"][1:5]] == [s["case_id"] for s in similar]
    first = similar[0]
    assert first["text"] and first["received_at"] and first["departments"] and first["meaning"] is None


def test_a_call_about_an_ongoing_incident_names_its_event(client: TestClient, service: Services) -> None:
    from datetime import datetime, timedelta

    now = datetime.now().replace(microsecond=0)
    texts = ["姜堰区罗塘路停水了，家里一滴水都没有", "罗塘路这边停水了，一滴水都没有", "罗塘路停水了，水龙头一滴水都没有",
             "罗塘路停水了，一滴水都没有，请尽快处理"]
    cases = [{"id": f"EV-{i}", "received_at": (now - timedelta(hours=3 - i)).isoformat(), "text": text,
              "district": "姜堰区", "category": "城乡建设/供水"} for i, text in enumerate(texts[:3])]
    assert client.post("/v1/cases", json=cases, headers=AGENT).status_code == 200
    service.answers.open_events.expire()  # cluster again now rather than within the minute
    deadline = time.monotonic() + 60
    while True:
        event = client.post("/v1/route", json={"text": texts[3]}, headers=AGENT).json()["event"]
        if event or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert event and event["size"] >= 3 and "罗塘路" in event["title"]
    quiet = client.post("/v1/route", json={"text": "我想咨询一下公积金提取需要什么材料"}, headers=AGENT).json()
    assert quiet["event"] is None


def test_cases_are_idempotent_searchable_and_labels_audited(client: TestClient, service: Services) -> None:
    case = {"id": "API-1", "received_at": "2025-06-03T10:00:00", "text": "高港区口岸街道永安路路灯坏了一个礼拜",
            "caller": "13912345678", "district": "高港区"}
    first = client.post("/v1/cases", json=case, headers=AGENT).json()
    again = client.post("/v1/cases", json=[case], headers=AGENT).json()
    assert first["inserted"] == 1 and again["unchanged"] == 1 and again["ids"] == ["API-1"]
    as_agent = client.get("/v1/cases/API-1", headers=AGENT).json()
    as_supervisor = client.get("/v1/cases/API-1", headers=SUPERVISOR).json()
    assert as_agent["caller"] and "5678" in as_agent["caller"] and "13912345678" not in as_agent["caller"]
    assert as_supervisor.get("caller") is None
    found = client.get("/v1/cases", params={"text": "路灯", "district": "高港区", "limit": 5}, headers=SUPERVISOR).json()
    assert found["total"] >= 1 and all(c["district"] == "高港区" for c in found["items"])
    labeled = client.post("/v1/cases/API-1/label", json={"category": "城乡建设/道路设施", "departments": ["城管局"]},
                          headers=AGENT).json()
    assert labeled["category_source"]["kind"] == "confirmed" and labeled["category_source"]["by"] == "agent-1"
    history = client.get("/v1/cases/API-1/labels", headers=SUPERVISOR).json()
    assert history[-1]["category"] == "城乡建设/道路设施" and history[-1]["by"] == "agent-1"
    assert client.post("/v1/cases/API-1/label", json={}, headers=AGENT).status_code == 400
    assert client.post("/v1/cases/API-1/label", json={"category": "x"}, headers=SUPERVISOR).status_code == 403
    similar = client.get("/v1/cases/API-1/similar", headers=AGENT).json()
    assert all(s["case_id"] != "API-1" for s in similar)


def test_supervisor_views(client: TestClient) -> None:
    hot = client.get("/v1/hotspots", headers=SUPERVISOR)
    assert hot.status_code == 200 and isinstance(hot.json(), list)
    assert client.get("/v1/hotspots", params={"method": "ears-c2"}, headers=SUPERVISOR).status_code == 200
    streets = client.get("/v1/hotspots", params={"level": "street", "start": "2025-06-01", "end": "2025-06-30"},
                         headers=SUPERVISOR)
    assert streets.status_code == 200 and all(a["method"] == "nb-fdr" for a in streets.json())
    wrong = client.get("/v1/hotspots", params={"level": "community"}, headers=SUPERVISOR)
    assert wrong.status_code in (400, 422) and wrong.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/episodes", params={"level": "street", "min_calls": 1}, headers=SUPERVISOR).status_code == 200
    events = client.get("/v1/events", headers=SUPERVISOR).json()
    assert all(e["size"] >= 3 for e in events)
    episodes = client.get("/v1/episodes", params={"min_calls": 1}, headers=SUPERVISOR).json()
    assert episodes and all(e["observed"] >= 1 and e["explanation"] for e in episodes)
    # Those still going first (raised on the period's last day or the day before), each group by excess calls.
    assert [e["ongoing"] for e in episodes] == sorted((e["ongoing"] for e in episodes), reverse=True)
    for group in (True, False):
        excess = [e["excess"] for e in episodes if e["ongoing"] is group]
        assert excess == sorted(excess, reverse=True)
    period = client.get("/v1/period", headers=SUPERVISOR).json()
    assert period["days"] == 7 and period["end"] >= max(e["end"] for e in episodes)
    assert client.get("/v1/forecast", params={"rising": False, "top": 3}, headers=SUPERVISOR).json()
    page = client.get("/v1/reports/hotspots", headers=SUPERVISOR)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html") and "<svg" in page.text
    assert client.get("/v1/hotspots", headers=AGENT).status_code == 403
    assert client.get("/v1/events", params={"start": "2025-06-10", "end": "2025-06-01"}, headers=SUPERVISOR).status_code == 400


def test_work_list_states_exports_and_weekly_brief(client: TestClient) -> None:
    period = {"start": "2025-06-01", "end": "2025-06-30"}
    items = client.get("/v1/worklist", params=period, headers=SUPERVISOR).json()
    assert items and all(i["state"] == "new" and i["departments"] for i in items)
    first = items[0]
    path = f"/v1/worklist/{first['id']}/state"
    no_department = client.post(path, params=period, json={"state": "assigned"}, headers=SUPERVISOR)
    assert no_department.status_code == 400 and no_department.headers["content-type"].startswith("application/problem+json")
    assert client.post(path, params=period, json={"state": "done"}, headers=SUPERVISOR).status_code in (400, 422)
    assert client.post(path, params=period, json={"state": "acknowledged"}, headers=AGENT).status_code == 403
    assert client.post("/v1/worklist/Wnone/state", params=period, json={"state": "resolved"},
                       headers=SUPERVISOR).status_code == 404
    done = client.post(path, params=period, json={"state": "assigned", "department": "城管局", "note": "周五前"},
                       headers=SUPERVISOR)
    assert done.status_code == 200 and done.json()["previous"] == "new" and done.json()["department"] == "泰州市城市管理局"
    again = {i["id"]: i for i in client.get("/v1/worklist", params=period, headers=SUPERVISOR).json()}
    assert again[first["id"]]["state"] == "assigned" and again[first["id"]]["note"] == "周五前"
    # A second supervisor who saw the item as new decides after the first: 409, not a silent overwrite.
    late = client.post(path, params=period, json={"state": "dismissed", "expected": "new"}, headers=SUPERVISOR)
    assert late.status_code == 409 and "assigned" in late.json()["detail"]
    history = client.get(f"/v1/worklist/{first['id']}/history", headers=SUPERVISOR).json()
    assert [(h["state"], h["previous"]) for h in history] == [("assigned", "new")] and history[0]["by"]
    sheet = client.get("/v1/worklist", params={**period, "format": "xlsx"}, headers=SUPERVISOR)
    assert sheet.status_code == 200 and sheet.content[:2] == b"PK" and "attachment" in sheet.headers["content-disposition"]
    text = client.get("/v1/worklist", params={**period, "format": "csv"}, headers=SUPERVISOR)
    assert text.headers["content-type"].startswith("text/csv") and "已交办" in text.text
    week = {"end": first["end"]}  # the week ending on the surge's last day lists it, with its decision
    page = client.get("/v1/reports/weekly", params=week, headers=SUPERVISOR)
    assert page.status_code == 200 and "未诉先办周报" in page.text and "已交办" in page.text
    pdf = client.get("/v1/reports/weekly", params={**week, "format": "pdf"}, headers=SUPERVISOR)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client.get("/v1/worklist", headers=AGENT).status_code == 403


@pytest.mark.slow
def test_models_train_promote_rollback(client: TestClient, service: Services) -> None:
    import time

    models = client.get("/v1/models", headers=SUPERVISOR).json()
    active = [m for m in models if m["state"] == "active"]
    assert len(active) == 1 and active[0]["metrics"]["macro_f1"] > 0.5
    assert client.post("/v1/models/train", headers=SUPERVISOR).status_code == 403
    refused = client.post("/v1/models/train", json={"kind": "ensemble"}, headers=ADMIN)  # no HOTLINE_ENCODER here
    assert problem(refused)["status"] == 400 and "HOTLINE_ENCODER" in refused.json()["detail"]
    job = client.post("/v1/models/train", json={"review": True}, headers=ADMIN).json()
    while job["status"] in ("queued", "running"):
        time.sleep(0.5)
        job = client.get(f"/v1/models/jobs/{job['id']}", headers=ADMIN).json()
    assert job["status"] == "succeeded" and not job["promoted"], job
    report = client.get(f"/v1/models/{job['version']}/evaluation", headers=SUPERVISOR).json()
    suspects = report["data_quality"]["suspect_labels"]
    assert suspects and all(s["suggested"] != s["label"] for s in suspects)
    assert client.get(f"/v1/cases/{suspects[0]['id']}", headers=SUPERVISOR).status_code == 200  # a case one can open
    assert report["candidate"]["macro_f1"] > 0.5 and "active" in report
    candidate = next(m for m in client.get("/v1/models", headers=ADMIN).json() if m["version"] == job["version"])
    assert candidate["state"] == "candidate" and candidate["compared_with"]["version"] == active[0]["version"]
    promoted = client.post(f"/v1/models/{job['version']}/promote", params={"force": True}, headers=ADMIN)
    assert promoted.status_code == 200 and promoted.json()["state"] == "active"
    answer = client.post("/v1/route", json={"text": TRANSCRIPT}, headers=AGENT)
    assert answer.status_code == 200, answer.text
    assert answer.json().get("model_version") == job["version"], answer.json()
    again = client.post(f"/v1/models/{job['version']}/promote", headers=ADMIN)
    assert problem(again)["status"] == 409
    back = client.post("/v1/models/rollback", headers=ADMIN).json()
    assert back["version"] == active[0]["version"]
    after = client.post("/v1/route", json={"text": TRANSCRIPT}, headers=AGENT).json()
    assert after.get("model_version") == back["version"], after
    actions = [entry["action"] for entry in service.registry.audit()]
    assert actions[-2:] == ["promote", "rollback"]


def test_promotion_under_load_fails_no_request(client: TestClient, service: Services) -> None:
    versions = [m["version"] for m in client.get("/v1/models", headers=ADMIN).json()]
    failures: list[int] = []
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            r = client.post("/v1/route", json={"text": TRANSCRIPT}, headers=AGENT)
            if r.status_code != 200:
                failures.append(r.status_code)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    for version in versions * 2:
        if service.registry.active() != version:
            assert client.post(f"/v1/models/{version}/promote", params={"force": True}, headers=ADMIN).status_code == 200
    done.set()
    for w in workers:
        w.join()
    assert failures == []


def test_open311(client: TestClient) -> None:
    services = client.get("/open311/v2/services.json").json()
    assert {"service_code", "service_name", "group", "type"} <= set(services[0])
    created = client.post("/open311/v2/requests.json",
                          data={"api_key": "agent-key-1-0123456789abcdef", "service_code": "供水", "description": "海陵区梅兰新村没水了",
                                "lat": "32.45", "long": "119.92"})
    assert created.status_code == 201, created.text
    request_id = created.json()[0]["service_request_id"]
    one = client.get(f"/open311/v2/requests/{request_id}.json", headers=SUPERVISOR).json()[0]
    assert one["status"] == "open" and one["service_name"] == "供水" and one["lat"] == 32.45
    listed = client.get("/open311/v2/requests.json", params={"service_code": "供水", "status": "open"}, headers=SUPERVISOR)
    assert request_id in {r["service_request_id"] for r in listed.json()}
    assert client.post("/open311/v2/requests.json", data={"service_code": "供水", "description": "x"}).status_code == 401
    bad = client.post("/open311/v2/requests.json", data={"api_key": "agent-key-1-0123456789abcdef", "service_code": "无此服务", "description": "x"})
    assert bad.status_code == 404 and bad.json() == [{"code": 404, "description": bad.json()[0]["description"]}]


def test_health_and_metrics(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["cases"] >= 3000
    text = client.get("/metrics").text
    assert "hotline_requests_total" in text and 'route="/v1/route"' in text and "hotline_index_outbox" in text
    assert 'hotline_encoder_calls_total{outcome="busy"} 0.0' in text  # a linear model never asks the encoder


def test_shared_things_arrive_through_dependencies_a_test_can_override(service: Services) -> None:
    """A route reaches the model only through ``api.deps``, so a test swaps it without monkey-patching."""
    from api import deps
    from hotline.errors import Unavailable

    def in_maintenance() -> None:
        raise Unavailable("the routing model is being replaced")

    app = create_app(service.settings, service)
    app.dependency_overrides[deps.get_router] = in_maintenance
    with TestClient(app) as c:
        body = problem(c.post("/v1/route", json={"text": TRANSCRIPT}, headers=AGENT))
        assert body["status"] == 503 and "being replaced" in body["detail"]
        assert problem(c.post("/v1/route", json={"text": TRANSCRIPT}))["status"] == 401  # the key is checked first


def test_a_cached_view_is_computed_again_once_the_store_changed() -> None:
    """Within ``settle`` seconds a view is reused; after it, only while no process has written."""
    from api.views import ReadCache

    cache, calls = ReadCache(ttl=60.0, settle=0.0), []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get("v", compute, mark=1) == 1 and cache.get("v", compute, mark=1) == 1  # nothing written
    assert cache.get("v", compute, mark=2) == 2  # another process wrote
    settling = ReadCache(ttl=60.0, settle=30.0)
    assert settling.get("v", compute, mark=2) == 3 and settling.get("v", compute, mark=3) == 3  # too soon
    expired = ReadCache(ttl=0.0, settle=0.0)
    assert expired.get("v", compute, mark=3) == 4 and expired.get("v", compute, mark=3) == 5
