"""A hostile or careless caller: what once broke, leaked or rewrote data, each with the behaviour that replaced it.

The service here is a small one of its own, since these tests write rows no
other test expects (a case from year 1, others' ids, made-up labels).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from hotline.case import Case
from tests.api_support import ADMIN, AGENT, SUPERVISOR, make_services

pytestmark = pytest.mark.slow  # a trained service of its own, attacked end to end


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, demo_cases: list[Case]) -> Iterator[Services]:
    services = make_services(tmp_path_factory.mktemp("hostile"), demo_cases[::6])
    yield services
    services.close()


@pytest.fixture(scope="module")
def client(service: Services) -> Iterator[TestClient]:
    with TestClient(create_app(service.settings, service), raise_server_exceptions=False) as c:
        yield c


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()


VIEWS = ["/v1/hotspots", "/v1/episodes", "/v1/forecast", "/v1/events", "/v1/reports/hotspots"]


# ---------------------------------------------------------------- 1. times
def test_implausible_times_are_refused_with_the_reason(client: TestClient) -> None:
    for when in ("0001-01-01T00:00:00", "2040-01-01T00:00:00", "1999-12-31T23:59:59"):
        body = problem(client.post("/v1/cases", json={"id": f"T-{when[:4]}", "received_at": when, "text": "路灯不亮"},
                                   headers=AGENT), 422)
        assert "received_at" in body["detail"]
        assert problem(client.post("/v1/route", json={"text": "路灯不亮", "received_at": when}, headers=AGENT),
                       422)["title"] == "Implausible"
    assert client.get("/v1/cases/T-0001", headers=AGENT).status_code == 404


def test_a_stray_row_takes_no_view_down(client: TestClient, service: Services) -> None:
    """Rows an older version let in (year 1, 2040, 2017) stay readable and move no default view."""
    _, last = service.store.span()
    strays = [Case(id=f"STRAY-{year}", received_at=datetime(year, 1, 1), text="旧系统导入的留言")
              for year in (1, 2017, 2040)]
    service.store.upsert(strays)
    asked: list[object] = []
    series = service.store.count_series  # what the views read: the daily counts kept on write
    service.store.count_series = (  # type: ignore[method-assign]
        lambda query, **kw: asked.append(query) or series(query, **kw))
    try:
        for path in VIEWS:
            response = client.get(path, headers=SUPERVISOR)
            assert response.status_code == 200, (path, response.text)
        for stray in strays:
            assert client.get(f"/v1/cases/{stray.id}", headers=AGENT).json()["received_at"].endswith("01-01 00:00:00")
        assert client.get("/v1/cases", params={"text": "旧系统"}, headers=AGENT).json()["total"] == 3
    finally:
        service.store.count_series = series  # type: ignore[method-assign]
        service.store.delete([s.id for s in strays])
    # The tables read two years of history before the view, never back to 2017 or year 1.
    assert asked and all(q.start and q.start.year >= last.year - 3 for q in asked)  # type: ignore[attr-defined]


def test_offsets_are_converted_to_the_city_time(client: TestClient) -> None:
    client.post("/v1/cases", json={"id": "TZ-1", "received_at": "2025-06-01T00:30:00Z", "text": "楼道灯坏了"},
                headers=AGENT)
    assert client.get("/v1/cases/TZ-1", headers=AGENT).json()["received_at"] == "2025-06-01 08:30:00"


# ---------------------------------------------------------------- 4. keys
def test_keys_are_known_by_name_and_no_response_or_log_shows_key_material(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    from tests.api_support import KEYS

    client.post("/v1/cases", json={"id": "KEY-1", "received_at": "2025-06-02T09:00:00", "text": "小区路灯不亮"},
                headers=AGENT)
    labeled = client.post("/v1/cases/KEY-1/label", json={"category": "城乡建设/道路设施"}, headers=AGENT).json()
    assert labeled["category_source"]["by"] == "agent-1"
    with caplog.at_level(logging.INFO):
        answers = [client.get("/v1/cases/KEY-1", headers=SUPERVISOR), client.get("/v1/cases/KEY-1/labels", headers=AGENT),
                   client.get("/v1/models", headers=ADMIN), client.get("/health"), client.get("/metrics"),
                   client.get("/v1/hotspots", headers=AGENT)]
    shown = "".join(a.text for a in answers) + "".join(r.getMessage() for r in caplog.records)
    for key in KEYS:
        assert key not in shown and key[-12:] not in shown
    assert any("agent-1" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- 3. ownership
def test_a_case_belongs_to_its_source_and_changes_are_audited(client: TestClient) -> None:
    from tests.api_support import AGENT2

    case = {"id": "OWN-1", "received_at": "2025-06-03T10:00:00", "text": "高港区永安路路灯坏了一个礼拜"}
    assert client.post("/v1/cases", json=case, headers=AGENT).json()["inserted"] == 1
    client.post("/v1/cases/OWN-1/label", json={"category": "城乡建设/道路设施", "departments": ["城管局"]}, headers=AGENT)
    # Another agent may not rewrite or erase it: 409, nothing changed, nothing logged.
    hostile = {**case, "text": "已解决，无需处理", "received_at": "2025-06-04T10:00:00"}
    assert problem(client.post("/v1/cases", json=[hostile], headers=AGENT2), 409)["title"] == "Conflict"
    kept = client.get("/v1/cases/OWN-1", headers=AGENT).json()
    assert kept["text"] == case["text"] and kept["category"] == "城乡建设/道路设施" and kept["departments"] == ["城管局"]
    assert client.get("/v1/cases/OWN-1/changes", headers=SUPERVISOR).json() == []
    # The owner's re-post changes the text, keeps the labels, and is audited like a label.
    client.post("/v1/cases", json={**case, "text": "高港区永安路路灯坏了两个礼拜"}, headers=AGENT)
    again = client.get("/v1/cases/OWN-1", headers=AGENT).json()
    assert again["text"].endswith("两个礼拜") and again["category"] == "城乡建设/道路设施" and again["departments"] == ["城管局"]
    # A re-post that leaves out the time keeps the stored one.
    client.post("/v1/cases", json={"id": "OWN-1", "text": "高港区永安路路灯坏了两个礼拜"}, headers=AGENT)
    assert client.get("/v1/cases/OWN-1", headers=AGENT).json()["received_at"] == "2025-06-03 10:00:00"
    # An admin may change any case; that is audited too.
    client.post("/v1/cases", json={**case, "received_at": "2025-06-03T11:00:00"}, headers=ADMIN)
    changes = client.get("/v1/cases/OWN-1/changes", headers=SUPERVISOR).json()
    assert [c["by"] for c in changes] == ["api:agent-1", "api:admin-1"]
    assert changes[0]["changes"]["text"] == ["高港区永安路路灯坏了一个礼拜", "高港区永安路路灯坏了两个礼拜"]
    assert changes[1]["changes"]["received_at"] == ["2025-06-03 10:00:00", "2025-06-03 11:00:00"]


# ---------------------------------------------------------------- 5. labels
def test_labels_outside_the_taxonomy_are_refused_naming_the_closest(client: TestClient) -> None:
    client.post("/v1/cases", json={"id": "LBL-1", "received_at": "2025-06-03T10:00:00", "text": "小区门口垃圾没人清"},
                headers=AGENT)
    body = problem(client.post("/v1/cases/LBL-1/label", json={"category": "城乡建设/道路设"}, headers=AGENT), 422)
    assert "城乡建设/道路设施" in body["detail"]
    body = problem(client.post("/v1/cases/LBL-1/label", json={"departments": ["城市管理处"]}, headers=AGENT), 422)
    assert "closest" in body["detail"]
    problem(client.post("/v1/cases/LBL-1/label", json={"departments": ["宇宙管理局"]}, headers=AGENT), 422)
    problem(client.post("/v1/cases", json={"id": "LBL-2", "received_at": "2025-06-03T10:00:00", "text": "垃圾没人清",
                                           "category": "虚构分类/不存在"}, headers=AGENT), 422)
    assert client.get("/v1/cases/LBL-1", headers=AGENT).json()["category"] is None
    assert client.get("/v1/cases/LBL-2", headers=AGENT).status_code == 404
    # Aliases are accepted and stored under the department's id.
    assert client.post("/v1/cases/LBL-1/label", json={"departments": ["城管局"]}, headers=AGENT).status_code == 200


def test_retraining_leaves_out_rare_classes_with_a_warning(service: Services, caplog: pytest.LogCaptureFixture) -> None:
    from hotline.case import Category, LabelKind, LabelSource

    source = LabelSource(LabelKind.CONFIRMED, "agent-1", datetime(2025, 6, 5))
    strays = [Case(id=f"RARE-{i}", received_at=datetime(2025, 6, 5, 9, i), text=text,
                   category=Category("虚构一级", "虚构二级"), category_source=source)
              for i, text in enumerate(["东边桥下有人在钓鱼", "西门广场夜里放烟花"])]
    service.store.upsert(strays)  # as an older version let them in
    try:
        with caplog.at_level(logging.WARNING):
            version = service.train("admin-1", promote_if_first=False)
        report = json.loads((service.registry.path(version) / "evaluation.json").read_text(encoding="utf-8"))
        assert report["data_quality"]["dropped_classes"] == {"虚构一级/虚构二级": 2}
        assert any("fewer than 5 examples" in r.getMessage() for r in caplog.records)
    finally:
        service.store.delete([s.id for s in strays])


# ---------------------------------------------------------------- 6. no 500s from bodies
OPEN311 = "/open311/v2/requests.json"


def test_unreadable_bodies_are_4xx_in_one_log_line(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    from tests.api_support import AGENT_KEY

    json_type = {"content-type": "application/json"}
    form_type = {"content-type": "application/x-www-form-urlencoded"}
    attempts = [
        client.post(OPEN311, content=b"{not json", headers=json_type),
        client.post(OPEN311, content=b'{"description": "\xff\xfe\xfa"}', headers=json_type),
        client.post(OPEN311, content=b"description=%FF%FE&service_code=\xff", headers=form_type),
        client.post(OPEN311, json={"api_key": [AGENT_KEY], "service_code": "供水", "description": "没水"}),
        client.post(OPEN311, json={"api_key": {"k": AGENT_KEY}, "service_code": "供水", "description": "没水"}),
        client.post(OPEN311, content=b'{"api_key": "%s", "service_code": "\\u4f9b\\u6c34", "description": "\\ud800"}'
                    % AGENT_KEY.encode(), headers=json_type),
        client.post("/v1/cases", content=b'{"id": "SUR-1", "text": "\\udc80\\u6ca1\\u6c34"}', headers={**json_type, **AGENT}),
        client.post("/v1/cases", content=b'{"id": "SUR-2", "text": "x", "departments": ["\\ud83d"]}',
                    headers={**json_type, **AGENT}),
        client.post("/v1/cases/OWN-1/label", content=b'{"category": "\\ud800"}', headers={**json_type, **AGENT}),
        client.post("/v1/route", content=b'{"text": "\\udfff\\u505c\\u6c34"}', headers={**json_type, **AGENT}),
        client.post("/v1/cases", content=b'{"id": "bad utf8 \xff"}', headers={**json_type, **AGENT}),
    ]
    with caplog.at_level(logging.INFO):
        caplog.clear()
        attempts.append(client.post(OPEN311, content=b"{not json", headers=json_type))
    for response in attempts:
        assert 400 <= response.status_code < 500, response.text
        if "/open311/" in str(response.url):  # the specification's own error form there
            assert response.json()[0]["code"] == response.status_code
        else:
            assert response.headers["content-type"].startswith("application/problem+json")
    assert all(r.exc_info is None for r in caplog.records)
    assert len([r for r in caplog.records if r.name.startswith("hotline")]) <= 1


# ---------------------------------------------------------------- 9. traps for a careless user
def test_the_service_follows_a_promotion_made_from_the_command_line(service: Services) -> None:
    from training.registry import Registry

    service.follow_interval = 0.1
    before = service.models.version
    candidate = service.train("admin-1", promote_if_first=False)
    elsewhere = Registry(service.settings.models)  # as `hotline models promote` in another process
    try:
        elsewhere.promote(candidate, by="cli", force=True)
        deadline = time.monotonic() + 10
        while service.models.version != candidate and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.models.version == candidate
    finally:
        elsewhere.rollback(by="cli")
        deadline = time.monotonic() + 10
        while service.models.version != before and time.monotonic() < deadline:
            time.sleep(0.05)
    assert service.models.version == before


def test_the_registry_recovers_from_a_killed_promotion_and_retrain(tmp_path: Path, service: Services) -> None:
    import os
    import shutil

    from training.registry import HISTORY_LIMIT, Registry

    if len(Registry(service.settings.models).entries()) < 2:  # a second version to promote, whatever ran before
        service.train("test")
    root = tmp_path / "models"
    shutil.copytree(service.settings.models, root, symlinks=True)
    registry = Registry(root)
    active = registry.active()
    other = next(e.version for e in registry.entries() if e.version != active)
    # Killed between the link swap and the state write: the link names a version the record does not.
    link = root / ".current-tmp"
    link.symlink_to(Path("versions") / other)
    os.replace(link, root / "current")
    (root / ".train-999999999-abc").mkdir()  # a retrain whose process died
    (root / ".train-999999999-abc" / "partial").write_text("x")
    notes = registry.recover()
    assert (root / "current").resolve().name == active and len(notes) == 2
    assert not (root / ".train-999999999-abc").exists()
    assert [a["action"] for a in registry.audit()][-2:] == ["recover", "recover"]
    for _ in range(HISTORY_LIMIT + 5):
        registry.promote(other if registry.active() == active else active, by="test", force=True)
    assert len(json.loads((root / "registry.json").read_text())["history"]) == HISTORY_LIMIT


def test_cli_traps(tmp_path: Path, service: Services) -> None:
    import shutil

    from tests.test_cli import run

    # The global --store is the store used.
    other = tmp_path / "other.db"
    assert run(["generate", "--days", "3", "--seed", "1", "--out", "a.csv"], tmp_path).returncode == 0
    ingested = run(["--store", f"sqlite:///{other}", "ingest", "a.csv"], tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert other.exists() and not (tmp_path / "cli.db").exists()
    # A second generated file adds its cases; it does not replace the first file's.
    assert run(["generate", "--days", "3", "--seed", "2", "--out", "b.csv"], tmp_path).returncode == 0
    second = run(["--store", f"sqlite:///{other}", "ingest", "b.csv"], tmp_path)
    assert " 0 updated" in second.stdout and "new" in second.stdout, second.stdout
    # Generated calls end today by default, never later.
    year = run(["generate", "--days", "365", "--out", "y.csv"], tmp_path)
    assert year.returncode == 0
    with (tmp_path / "y.csv").open(encoding="utf-8-sig", newline="") as fh:
        last = max(row["received_at"] for row in csv.DictReader(fh))
    assert last[:10] <= datetime.now().date().isoformat()
    future = run(["generate", "--days", "3", "--start", "2099-01-01", "--out", "f.csv"], tmp_path)
    assert future.returncode == 2 and "after tomorrow" in future.stderr and len(future.stderr.splitlines()) == 1
    # `train --out` the registry's current link is refused; the registry stays sound.
    models = tmp_path / "models"
    shutil.copytree(service.settings.models, models, symlinks=True)
    before = (models / "current").resolve()
    trained = run(["train", "--data", "a.csv", "--text-col", "transcript", "--label-col", "category_l1,category_l2",
                   "--out", str(models / "current")], tmp_path, env={"HOTLINE_MODELS": str(models)})
    assert trained.returncode == 2 and "belongs to the model registry" in trained.stderr
    assert (models / "current").is_symlink() and (models / "current").resolve() == before
    assert not list(models.glob(".current-old-*"))


# ---------------------------------------------------------------- 8. long texts
def test_a_long_text_is_read_in_part_and_says_so(client: TestClient) -> None:
    account = "我们小区的路灯已经坏了一个多月了，晚上出门非常不方便，" * 700  # about 19,000 characters
    routed = client.post("/v1/route", json={"text": account + "请尽快派人来修。"}, headers=AGENT)
    assert routed.status_code == 200, routed.text
    read = routed.json()["read"]
    assert read["chars"] == 3000 and read["of"] > 18_000 and read["truncated"] is True
    assert routed.json()["text"].endswith("请尽快派人来修") and len(routed.json()["text"]) < 3100
    short = client.post("/v1/route", json={"text": "楼道灯坏了"}, headers=AGENT).json()["read"]
    assert short == {"chars": 5, "of": 5, "truncated": False}


# ---------------------------------------------------------------- 10. lesser
def test_a_streamed_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(40):
            yield b" " * 100_000
        yield b"]"

    response = client.post("/v1/cases", content=chunks(), headers={**AGENT, "content-type": "application/json"})
    assert problem(response, 413)["title"] == "TooLarge"


def test_a_client_that_stalls_its_body_gets_408() -> None:
    import asyncio

    from api.problems import BodyLimit

    async def never_called(scope, receive, send) -> None:
        raise AssertionError("the app must not see a body that never came")

    async def stalled() -> dict:
        await asyncio.sleep(3600)
        return {}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/cases", "headers": [(b"content-length", b"100")]}
    asyncio.run(BodyLimit(never_called, limit=1000, idle=0.1)(scope, stalled, send))
    assert sent[0]["status"] == 408


def test_pages_carry_a_content_security_policy_and_the_report_frame_is_sandboxed(client: TestClient) -> None:
    import base64
    import hashlib
    import re

    for path in ("/", "/supervisor", "/models"):
        page = client.get(path)
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy and "unsafe-eval" not in policy
        for script in re.findall(r"<script>(.*?)</script>", page.text, re.S):
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
    assert re.search(r"<iframe[^>]*id=\"report\"[^>]*\bsandbox\b", client.get("/supervisor").text)
    report = client.get("/v1/reports/hotspots", headers=SUPERVISOR)
    assert "default-src 'none'" in report.headers["content-security-policy"] and "<script" not in report.text
    assert "localStorage" not in client.get("/static/app.js").text


def test_ids_with_control_or_path_characters_and_boolean_coordinates_are_refused(client: TestClient) -> None:
    from tests.api_support import AGENT_KEY

    for bad in ("A\x00B", "a/b", "a b", "x" * 101):
        response = client.post("/v1/cases", json={"id": bad, "received_at": "2025-06-03T10:00:00", "text": "路灯坏了"},
                               headers=AGENT)
        assert 400 <= response.status_code < 500 and response.headers["content-type"].startswith("application/problem")
    created = client.post(OPEN311, json={"api_key": AGENT_KEY, "service_code": "供水", "description": "没水了",
                                         "lat": True, "long": 119.9})
    assert created.status_code == 400 and created.json() == [{"code": 400, "description": "lat must be a number"}]


# ---------------------------------------------------------------- round 3
def test_deeply_nested_json_to_open311_is_a_400_in_its_own_form_and_needs_a_key_first(client: TestClient) -> None:
    from tests.api_support import AGENT_KEY

    nested = ("[" * 100_000 + "]" * 100_000).encode()
    refused = client.post("/open311/v2/requests.json", content=nested, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and refused.json()[0]["code"] == 400  # looked at, never parsed: no key in it
    keyless = client.post("/open311/v2/requests.json?api_key=not-a-key", content=nested,
                          headers={"Content-Type": "application/json"})
    assert keyless.status_code == 401  # a key given beside the body is checked before the body is read
    body = b'{"service_code": "x", "description": "' + b"a" * 10 + b'", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    deep = client.post("/open311/v2/requests.json", content=body,
                       headers={"Content-Type": "application/json", "X-API-Key": AGENT_KEY})
    assert deep.status_code == 400 and "nested" in deep.json()[0]["description"]


def test_characters_xml_forbids_never_reach_the_public_feed(client: TestClient, service: Services) -> None:
    import xml.etree.ElementTree as ET

    text = "路灯坏了\ufffe\uffff\x01\x1b 晚上很黑\u202e反向\u2066隔离\u2069"
    written = client.post("/v1/cases", json={"id": "XML-1", "text": text}, headers=AGENT)
    assert written.status_code == 200, written.text
    stored = client.get("/v1/cases/XML-1", headers=AGENT).json()["text"]
    assert not any(c in stored for c in "\ufffe\uffff\x01\x1b\u202e\u2066\u2069") and "晚上很黑" in stored
    feed = client.get("/open311/v2/requests/XML-1.xml", headers=AGENT)
    ET.fromstring(feed.content)  # parses: the whole window's feed stays valid


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
def test_extreme_dates_on_hotspots_and_open311_are_4xx_not_500(client: TestClient, day: str) -> None:
    assert client.get("/v1/hotspots", params={"start": day}, headers=SUPERVISOR).status_code in (400, 404)
    assert client.get("/v1/hotspots", params={"end": day}, headers=SUPERVISOR).status_code in (200, 400, 404)
    for moment in (f"{day}T00:00:00+14:00", f"{day}T23:59:59-12:00"):
        answer = client.get("/open311/v2/requests.json", params={"start_date": moment}, headers=AGENT)
        assert answer.status_code == 400, answer.text


def test_hotspots_over_a_long_range_are_refused_like_the_other_views(client: TestClient) -> None:
    answer = client.get("/v1/hotspots", params={"start": "2020-01-01", "method": "scan"}, headers=SUPERVISOR)
    assert answer.status_code in (400, 404)


def test_a_form_in_raw_utf8_without_a_charset_is_read_as_utf8(client: TestClient) -> None:
    from tests.api_support import AGENT_KEY

    services = client.get("/open311/v2/services.json", headers=AGENT).json()
    form = f"service_code={services[0]['service_code']}&description=小区门口路灯坏了&api_key={AGENT_KEY}".encode()
    made = client.post("/open311/v2/requests.json", content=form,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert made.status_code == 201, made.text
    case_id = made.json()[0]["service_request_id"]
    assert client.get(f"/v1/cases/{case_id}", headers=AGENT).json()["text"] == "小区门口路灯坏了"
    latin = "description=caf\xe9".encode("latin-1") + b"\xff\xfe\xfd"
    bad = client.post("/open311/v2/requests.json", content=latin,
                      headers={"Content-Type": "application/x-www-form-urlencoded", "X-API-Key": AGENT_KEY})
    assert bad.status_code == 400


def test_one_key_under_two_names_is_refused_at_start() -> None:
    from api.keys import KeyRing
    from hotline.errors import InvalidInput

    with pytest.raises(InvalidInput, match="same key"):
        KeyRing.parse("zhang:agent:same-secret-0123456789abcdef,li:admin:same-secret-0123456789abcdef")


def test_an_oversize_text_is_413_and_a_huge_open311_body_gets_open311s_error_form(client: TestClient) -> None:
    assert client.post("/v1/cases", json={"text": "路" * 20_001}, headers=AGENT).status_code == 413
    huge = client.post("/open311/v2/requests.json", content=b"x" * (10 * 1024 * 1024),
                       headers={"Content-Type": "application/json", "X-API-Key": "whatever"})
    assert huge.status_code == 413 and huge.headers["content-type"].startswith("application/json")
    assert huge.json()[0]["code"] == 413


def test_three_reports_with_the_same_words_from_three_addresses_are_three_cases(client: TestClient) -> None:
    from tests.api_support import AGENT_KEY

    code = client.get("/open311/v2/services.json", headers=AGENT).json()[0]["service_code"]
    ids = set()
    for address in ("凤凰路1号", "凤凰路2号", "凤凰路3号"):
        made = client.post("/open311/v2/requests.json", headers={"X-API-Key": AGENT_KEY},
                           data={"service_code": code, "description": "路灯坏了", "address_string": address})
        assert made.status_code == 201, made.text
        ids.add(made.json()[0]["service_request_id"])
    assert len(ids) == 3
    addresses = {client.get(f"/v1/cases/{i}", headers=AGENT).json()["address"] for i in ids}
    assert addresses == {"凤凰路1号", "凤凰路2号", "凤凰路3号"}


def test_every_stored_time_is_the_citys_on_a_host_in_another_zone(client: TestClient, monkeypatch) -> None:
    """On a UTC (or New York) host, Open311's updated_datetime came 8 hours before requested_datetime."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        written = client.post("/v1/cases", json={"id": "ZONE-1", "text": "小区停水了"}, headers=AGENT)
        assert written.status_code == 200
        labelled = client.post("/v1/cases/ZONE-1/label", json={"category": "城乡建设/供水", "departments": ["住建局"]},
                               headers=AGENT)
        assert labelled.status_code == 200, labelled.text
        one = client.get("/open311/v2/requests/ZONE-1.json", headers=AGENT).json()[0]
        requested = datetime.fromisoformat(one["requested_datetime"])
        updated = datetime.fromisoformat(one["updated_datetime"])
        assert timedelta(0) <= updated - requested < timedelta(minutes=5), one
        label_at = datetime.fromisoformat(client.get("/v1/cases/ZONE-1/labels", headers=AGENT).json()[-1]["at"])
        assert abs(label_at - requested.replace(tzinfo=None)) < timedelta(minutes=5)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_an_agent_overwriting_anothers_confirmed_label_is_told_whose_it_was(client: TestClient) -> None:
    from tests.api_support import AGENT2

    client.post("/v1/cases", json={"id": "OVR-1", "text": "楼下垃圾没人清理"}, headers=AGENT)
    first = client.post("/v1/cases/OVR-1/label", json={"category": "城乡建设/供水", "departments": ["住建局"]}, headers=AGENT)
    assert first.status_code == 200 and first.json().get("replaced_confirmation") is None
    second = client.post("/v1/cases/OVR-1/label", json={"category": "城乡建设/供水", "departments": ["城管局"]},
                         headers=AGENT2)
    assert second.status_code == 200 and second.json()["replaced_confirmation"]["by"] == "agent-1"
