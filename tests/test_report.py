"""The supervisors' report: built from cases, self-contained, and its charts render in a real browser."""

from __future__ import annotations

import re
import tempfile
from datetime import date
from pathlib import Path

import pytest

from hotline.analytics import reports
from hotline.errors import InvalidInput
from hotline.store.sqlite import SQLiteStore
from hotline.taxonomy import Taxonomy
from hotline.text import pii
from tests.browser import chromium
from tests.test_cli import run


@pytest.fixture(scope="module")
def page(demo_store: SQLiteStore, taxonomy: Taxonomy) -> tuple[reports.Report, str]:
    from hotline.places import default_gazetteer

    report = reports.build(demo_store, date(2025, 8, 1), date(2025, 8, 28), taxonomy.level1_of,
                           centers=default_gazetteer().centers())
    return report, reports.render(report)


def test_the_report_holds_every_section(page: tuple[reports.Report, str]) -> None:
    report, html = page
    assert report.total > 3000 and report.alerts and report.events and report.trend
    for section in ("各类别趋势", "区域 × 类别", "激增热点", "地图", "最大事件", "未来两周预计上升", "新出现的词语"):
        assert section in html
    assert report.alerts[0].score >= report.alerts[-1].score
    data = report.to_dict()
    assert data["total"] == report.total and len(data["events"]) == len(report.events)


def test_the_map_draws_every_district_and_the_events(page: tuple[reports.Report, str]) -> None:
    report, html = page
    figure = html.split('<figure id="map">', 1)[1].split("</figure>", 1)[0]
    assert figure.count('class="district"') == len(report.centers) == 7
    assert figure.count('class="event"') == len(report.located) > 0
    worst = max({e.area for e in report.episodes}, key=lambda a: sum(e.excess for e in report.episodes if e.area == a))
    assert f"{worst}<tspan" in figure  # the list beside the map starts with the district of most excess calls
    assert figure.index(f"{worst}<tspan") < min(figure.index(f"{d}<tspan") for d in report.centers if d != worst)


def test_small_counts_get_whole_ticks() -> None:
    assert reports._ticks(2) == (2.0, [0.0, 1.0, 2.0])
    assert reports._ticks(0) == (1.0, [0.0, 1.0])
    assert reports._ticks(67) == (80.0, [0.0, 20.0, 40.0, 60.0, 80.0])
    chart = reports.line_chart([date(2025, 8, 1), date(2025, 8, 2)], {"x": [0, 2]})
    assert [t.split(">")[1] for t in re.findall(r'text-anchor="end" font-size="11">\d+<', chart)] == ["0<", "1<", "2<"]


def test_the_report_is_self_contained(page: tuple[reports.Report, str]) -> None:
    _, html = page
    assert "<script" not in html and "@font-face" not in html
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", html)
    # Callers stay masked: no mobile and no ID with a valid checksum anywhere in the page. (The masker's own
    # find() is no test here: it fails closed, and a chart's coordinates are long runs of digit groups.)
    digits = pii.view(html).digits
    assert not re.search(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])", digits)
    assert not [i for i in range(len(digits) - 17) if pii.id_checksum_ok(digits[i : i + 18])
                and digits[i : i + 18].isdigit() and not digits[i - 1 : i].isdigit()]


@pytest.mark.server
def test_charts_render_in_headless_chromium(page: tuple[reports.Report, str], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _, html = page
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    left = set(Path(tempfile.gettempdir()).glob("org.chromium.Chromium.*"))
    with chromium() as driver:
        driver.get(path.as_uri())
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) >= 4
        for chart in charts:
            assert chart.size["width"] > 100 and chart.size["height"] > 50
        lines = driver.find_elements(By.CSS_SELECTOR, "#trend polyline.series")
        assert len(lines) == len(page[0].trend)
        assert driver.execute_script("return document.querySelector('#trend polyline').getTotalLength()") > 100
        bars = driver.find_elements(By.CSS_SELECTOR, "#categories rect.bar")
        assert bars and all(b.size["width"] > 0 for b in bars)
        assert driver.find_elements(By.CSS_SELECTOR, "#heat td[style*='background']")
    assert set(Path(tempfile.gettempdir()).glob("org.chromium.Chromium.*")) <= left  # its socket folder went too


@pytest.mark.slow
def test_report_cli_writes_the_page_from_the_store(tmp_path: Path) -> None:
    assert run(["generate", "--days", "45", "--start", "2025-06-01", "--seed", "3", "--out", "calls.csv"], tmp_path).returncode == 0
    assert run(["ingest", "calls.csv"], tmp_path).returncode == 0
    result = run(["report", "--from", "2025-07-01", "--to", "2025-07-15", "--out", "out/report.html"], tmp_path)
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "2025-07-01 至 2025-07-15" in html and "<svg" in html
    empty = run(["report", "--from", "2030-01-01", "--to", "2030-01-02", "--out", "x.html"], tmp_path)
    assert empty.returncode == 2 and "no cases" in empty.stderr and not (tmp_path / "x.html").exists()
    events = run(["events", "--from", "2025-07-01", "--to", "2025-07-15"], tmp_path)
    assert events.returncode == 0 and '"title"' in events.stdout
    episodes = run(["episodes", "--from", "2025-07-01", "--to", "2025-07-15", "--min-calls", "2"], tmp_path)
    assert episodes.returncode == 0 and '"excess"' in episodes.stdout, episodes.stderr


def test_a_period_without_cases_is_a_clear_error(demo_store: SQLiteStore) -> None:
    with pytest.raises(InvalidInput):
        reports.build(demo_store, date(2030, 1, 1), date(2030, 1, 2))
    with pytest.raises(InvalidInput):
        reports.build(demo_store, date(2025, 8, 2), date(2025, 8, 1))
