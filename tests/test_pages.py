"""The web pages in headless Chromium: an agent types a transcript, sees suggestions, confirms; the label is stored."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import pytest

from api.services import Services
from tests.api_support import LiveServer
from tests.browser import chromium

TRANSCRIPT = "坐席：您好，12345热线。市民：我们姜堰区罗塘街道天目山路上的路灯晚上一直不亮，走路很危险。"


@pytest.fixture(scope="module")
def live(service: Services):
    with LiveServer(service) as server:
        yield server


def _key(driver, url: str, key: str) -> None:
    driver.get(url)
    driver.execute_script("sessionStorage.setItem('hotline-key', arguments[0])", key)
    driver.get(url)


def test_agent_types_sees_suggestions_and_confirms(live: LiveServer, service: Services) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as driver:
        _key(driver, live.url + "/", "agent-key-1-0123456789abcdef")
        driver.find_element(By.ID, "transcript").send_keys(TRANSCRIPT)
        wait = WebDriverWait(driver, 20)
        wait.until(ec.element_to_be_clickable((By.ID, "confirm")))
        suggestion = driver.find_element(By.ID, "suggestion").text
        assert "城乡建设" in suggestion and "姜堰区" in suggestion
        timing = driver.find_element(By.ID, "timing").text
        assert "ms" in timing
        # Similar cases with their text and time; one click shows a case in full.
        links = driver.find_elements(By.CSS_SELECTOR, "#similar a.case-link")
        assert links and "路灯" in driver.find_element(By.ID, "similar").text
        links[0].click()
        wait.until(lambda d: "工单" in d.find_element(By.ID, "case-view").text)
        assert "承办" in driver.find_element(By.ID, "case-view").text
        driver.save_screenshot(str(Path(tempfile.gettempdir()) / "hotline-agent-console.png"))
        radios = driver.find_elements(By.CSS_SELECTOR, "input[name=department]")
        assert radios and radios[0].is_selected()
        chosen = radios[0].get_attribute("value")
        driver.find_element(By.ID, "confirm").click()
        confirmed = wait.until(ec.presence_of_element_located((By.ID, "confirmed-id")))
        case_id = confirmed.get_attribute("data-id")
    case = service.store.get(case_id)
    assert case.category_source is not None and case.category_source.kind.value == "confirmed"
    assert case.departments == (chosen,) and case.category_source.by == "agent-1"
    assert service.store.label_history(case_id)[-1].source.by == "agent-1"
    # Posted as a transcript with the call's time: the agent's lines stay out, the time is the call's.
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    assert "12345" not in case.text and "请讲" not in case.text
    city_now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)  # the browser's time, in the city's zone
    assert abs(case.received_at - city_now) < timedelta(minutes=10)


def test_supervisor_dashboard_and_models_page(live: LiveServer) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as driver:
        _key(driver, live.url + "/supervisor", "supervisor-key-1-0123456789ab")
        # A panel re-renders while a condition reads it (the work list after a save): look again, not fail.
        wait = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: d.find_element(By.ID, "status").text not in ("", "加载中…"))
        assert "热点" in driver.find_element(By.ID, "status").text
        # One period for the page, the last seven days the store holds, filled in and shown on every panel.
        start, end = (driver.find_element(By.ID, i).get_attribute("value") for i in ("start", "end"))
        assert start and end and (date.fromisoformat(end) - date.fromisoformat(start)).days == 6
        periods = [p.text for p in driver.find_elements(By.CSS_SELECTOR, "h3 .period")]
        assert len(periods) == 5 and sum(f"{start} 至 {end}" in p for p in periods) == 4 and end in periods[3]
        assert driver.find_elements(By.CSS_SELECTOR, "#events table, #events p")
        surges = driver.find_element(By.ID, "hotspots").text  # surges ranked by excess calls, explained (if any)
        said = ("多出" in surges and "往常同期" in surges
                and any(w in surges for w in ("最反常的一天", "缓慢上升", "检测报警")))
        assert said or surges == "（无）", surges
        assert "10^" not in surges and "分数" not in surges  # plain terms, not a log-probability
        driver.switch_to.frame(driver.find_element(By.ID, "report"))
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert charts and all(c.size["width"] > 100 for c in charts)
        driver.switch_to.default_content()
        driver.save_screenshot(str(Path(tempfile.gettempdir()) / "hotline-supervisor.png"))
        # A range the views refuse: each panel says so in Chinese; the forecast (which needs no range) still shows.
        driver.execute_script("document.getElementById('start').value = '2025-01-01';"
                              "document.getElementById('end').value = '2025-08-31';")
        driver.find_element(By.ID, "load").click()
        wait.until(lambda d: "未能加载" in d.find_element(By.ID, "status").text)
        assert "查询条件有误" in driver.find_element(By.ID, "hotspots").text
        assert "查询条件有误" in driver.find_element(By.ID, "events").text
        assert driver.find_elements(By.CSS_SELECTOR, "#forecast table, #forecast p.muted")
        assert not driver.find_elements(By.CSS_SELECTOR, "#forecast .err")
        driver.save_screenshot(str(Path(tempfile.gettempdir()) / "hotline-supervisor-refused.png"))
        # The work list: a supervisor acknowledges the first item; the list shows it with who did it.
        driver.execute_script("document.getElementById('start').value = '2025-06-01';"
                              "document.getElementById('end').value = '2025-06-30';")
        driver.find_element(By.ID, "load").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#worklist select"))
        assert "责任单位" in driver.find_element(By.ID, "worklist").text
        first = driver.find_element(By.CSS_SELECTOR, "#worklist select")
        driver.execute_script("arguments[0].value = 'acknowledged'", first)
        driver.find_element(By.CSS_SELECTOR, "#worklist button[data-save]").click()
        wait.until(lambda d: "已知悉" in d.find_element(By.CSS_SELECTOR, "#worklist .state").text)
        assert "supervisor" in driver.find_element(By.ID, "worklist").text.split("已知悉", 1)[1][:80]
        driver.save_screenshot(str(Path(tempfile.gettempdir()) / "hotline-worklist.png"))
        # Drill-down: the calls behind the first surge, then behind the largest event.
        driver.find_element(By.CSS_SELECTOR, "#hotspots button[data-drill]").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#cases table"))
        assert "工单明细" in driver.find_element(By.ID, "cases-title").text
        assert "共" in driver.find_element(By.ID, "cases").text and "TZ" in driver.find_element(By.ID, "cases").text
        listed = driver.find_element(By.ID, "cases").text  # statuses in Chinese, as a supervisor says them
        assert any(s in listed for s in ("已受理", "已派单", "办理中", "已办结", "已归档"))
        assert not any(s in listed.split() for s in ("received", "dispatched", "in_progress", "resolved", "closed"))
        driver.save_screenshot(str(Path(tempfile.gettempdir()) / "hotline-drilldown.png"))
        driver.find_element(By.CSS_SELECTOR, "#events button[data-drill]").click()
        wait.until(lambda d: "事件「" in d.find_element(By.ID, "cases-title").text
                   and d.find_elements(By.CSS_SELECTOR, "#cases table"))
        # By street: the surges and the work list name district·street cells (false alarms held across them).
        driver.execute_script("document.getElementById('level').value = 'street'")
        driver.find_element(By.ID, "load").click()
        wait.until(lambda d: d.find_element(By.ID, "status").text not in ("", "加载中…")
                   and d.find_elements(By.CSS_SELECTOR, "#hotspots table, #hotspots p"))
        surges = driver.find_element(By.ID, "hotspots").text
        assert "·" in surges or (surges.startswith("（无）") and "按街道只列出" in surges), surges  # empty: says why
        driver.save_screenshot(str(Path(tempfile.gettempdir()) / "hotline-streets.png"))
        assert not driver.find_elements(By.CSS_SELECTOR, "#hotspots .err, #worklist .err")

        _key(driver, live.url + "/models", "admin-key-1-0123456789abcdef")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#models table"))
        text = driver.find_element(By.ID, "models").text
        assert "在用" in text and "macro-F1" in text
        # What a linear retraining takes, from the last one's time (not "几十秒"); the heading no longer claims
        # that each version's own metrics were measured on the same cases.
        assert "上次用时约" in driver.find_element(By.CSS_SELECTOR, "#kind option[value=linear]").text
        assert "各自的留出工单" in driver.find_element(By.TAG_NAME, "main").text
        driver.find_element(By.CSS_SELECTOR, "button.evaluate").click()  # a version's evaluation on the page
        wait.until(lambda d: "疑似标错" in d.find_element(By.ID, "evaluation-body").text)
        driver.save_screenshot(str(Path(tempfile.gettempdir()) / "hotline-models.png"))


def test_a_page_without_a_key_says_where_to_find_one(live: LiveServer) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as driver:
        driver.get(live.url + "/supervisor")
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: d.find_element(By.ID, "key-hint").is_displayed())
        assert "API Key" in driver.find_element(By.ID, "key-hint").text
        driver.find_element(By.ID, "load").click()  # refreshed without a key: each panel says where to find one
        wait.until(lambda d: "请先" in d.find_element(By.ID, "events").text)
        driver.save_screenshot(str(Path(tempfile.gettempdir()) / "hotline-no-key.png"))
        driver.find_element(By.ID, "api-key").send_keys("supervisor-key-1-0123456789ab")
        assert not driver.find_element(By.ID, "key-hint").is_displayed()


def test_a_chinese_font_is_installed_for_the_pages() -> None:
    """make test installs one (scripts/install-browser): without it every page's screenshot shows boxes."""
    import subprocess

    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=60)
    assert found.returncode == 0 and found.stdout.strip(), "no font with Chinese glyphs: run scripts/install-browser"
