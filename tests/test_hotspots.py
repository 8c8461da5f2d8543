"""Surge detectors, the scan, emerging terms and forecasts: correctness, prospectiveness, the CLI."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from hotline.analytics.hotspots import baseline
from hotline.analytics.hotspots.detect import detect
from hotline.analytics.hotspots.ears import MIN_SD, ears
from hotline.analytics.hotspots.forecast import backtest, forecast, rising
from hotline.analytics.hotspots.scan import scan
from hotline.analytics.hotspots.series import CountTable
from hotline.analytics.hotspots.terms import TermHistory
from hotline.demo.generator import Truth, write_csv
from hotline.errors import InvalidInput
from tests.test_cli import run

START = date(2025, 3, 3)  # a Monday


def poisson_table(rate: np.ndarray, days: int = 200, seed: int = 0, start: date = START) -> CountTable:
    """Cells with the given daily rates, a working week (weekends at 60%) and Chinese holidays at 70%."""
    rng = np.random.default_rng(seed)
    dates = [start + timedelta(days=i) for i in range(days)]
    from hotline.calendar import day_features

    dow, holiday = day_features(dates)
    factor = np.where(dow >= 5, 0.6, 1.0) * np.where(holiday, 0.7, 1.0)
    counts = rng.poisson(np.outer(rate, factor))
    cells = [(f"区{i}", "类") for i in range(len(rate))]
    return CountTable(cells, start, counts)


def test_ears_follows_the_cdc_definitions() -> None:
    series = np.array([[2, 4, 2, 4, 2, 4, 2, 4, 2, 4, 12, 3]], dtype=float)
    c1, mean1 = ears(series, "ears-c1")
    assert np.isnan(c1[0, 6]) and not np.isnan(c1[0, 7])
    base = series[0, 3:10]
    assert mean1[0, 10] == pytest.approx(base.mean())
    assert c1[0, 10] == pytest.approx((12 - base.mean()) / base.std(ddof=1))
    c2, mean2 = ears(series, "ears-c2")
    assert np.isnan(c2[0, 8]) and mean2[0, 10] == pytest.approx(series[0, 1:8].mean())
    c3, _ = ears(series, "ears-c3")
    assert c3[0, 11] == pytest.approx(sum(max(0.0, c2[0, t] - 1) for t in (9, 10, 11)))
    flat, _ = ears(np.zeros((1, 12)), "ears-c2")
    assert flat[0, 11] == 0.0 and MIN_SD > 0  # no division by a zero deviation


def test_baseline_learns_level_week_and_holidays() -> None:
    table = poisson_table(np.array([20.0, 5.0, 0.5]), days=300)
    dow, holiday = table.calendar()
    fitted = baseline.fit(table.counts, dow, holiday)
    last = fitted.weekday[-1]
    assert last[5] / last[0] == pytest.approx(0.6, abs=0.08)
    assert fitted.holiday[-1] == pytest.approx(0.7, abs=0.12)
    normal = ~holiday[-100:] & (dow[-100:] < 5)
    level = np.nanmean(fitted.mu[:, -100:][:, normal], axis=1)
    assert level[:2] == pytest.approx([20.0, 5.0], rel=0.2)
    assert level[2] == pytest.approx(0.5, rel=0.3)  # six weeks of a quiet cell hold about twenty calls


def test_pure_noise_gives_about_one_false_alarm_per_hundred_cell_days_or_less() -> None:
    table = poisson_table(np.array([0.3, 1, 3, 8, 20, 50] * 5), days=250, seed=3)
    alerts = detect(table, table.days[60], table.days[-1])
    cell_days = len(table.cells) * (len(table.days) - 60)
    assert len(alerts) / cell_days <= 0.012


def test_benjamini_hochberg_rejects_by_rank_each_day() -> None:
    from hotline.analytics.hotspots.detect import benjamini_hochberg

    p = np.array([[0.001, 0.5], [0.008, np.nan], [0.039, 0.02], [0.041, 0.9], [0.9, 0.01]])
    # day 0: 5 tests at q=0.05, bounds 0.01, 0.02, 0.03, 0.04, 0.05: the largest passing rank is 2 (0.008 <= 0.02);
    # 0.039 > 0.03 and 0.041 > 0.04 fail. Day 1: 4 tests, bounds .0125 .025 .0375 .05: 0.01 and 0.02 pass.
    assert benjamini_hochberg(p, 0.05).tolist() == [[True, False], [True, False], [False, True], [False, False],
                                                     [False, True]]
    assert not benjamini_hochberg(np.full((3, 2), np.nan), 0.05).any()


def test_street_cells_keep_false_alarms_across_cells_and_still_find_a_surge() -> None:
    """2,000 quiet street cells of pure noise: the per-cell level raises false alarms every few days,
    Benjamini–Hochberg across the day's cells almost never; a planted street surge is found by both."""
    rates = np.random.default_rng(1).gamma(0.6, 0.25, size=2000)  # most streets see a call a week or less
    table = poisson_table(rates, days=150, seed=11)
    first = table.days[80]
    per_cell = detect(table, first, table.days[-1], method="nb")
    across = detect(table, first, table.days[-1], method="nb-fdr")
    assert len(per_cell) > 20 and len({a.date for a in across}) <= 0.1 * 70
    counts = table.counts.copy()
    counts[7, 120] += 6
    surged = CountTable(table.cells, table.start, counts)
    found = detect(surged, surged.days[120], surged.days[120], method="nb-fdr")
    assert [(a.area, a.method) for a in found if a.area == "区7"] == [("区7", "nb-fdr")]
    assert detect(surged, surged.days[120], surged.days[120], method="nb-fdr", alpha=1e-12) == []


def test_an_injected_surge_is_flagged_on_its_first_day() -> None:
    table = poisson_table(np.array([2.0, 2.0, 6.0]), days=120, seed=5)
    counts = table.counts.copy()
    counts[1, 100] += 9
    counts[1, 101] += 9
    surged = CountTable(table.cells, table.start, counts)
    alerts = detect(surged, surged.days[90], surged.days[-1])
    hit = [a for a in alerts if a.area == "区1"]
    assert hit and hit[0].date == surged.days[100] and hit[0].observed == counts[1, 100]
    assert hit[0].expected < 3 and hit[0].p_value is not None and hit[0].p_value < 0.002


@pytest.mark.parametrize("method", ["nb", "ears-c2", "scan"])
def test_detection_on_a_day_uses_only_what_was_known_that_day(method: str) -> None:
    table = poisson_table(np.array([1.0, 3.0, 6.0, 2.0]), days=110, seed=8)
    cells = [("海陵区", "供水"), ("高港区", "供水"), ("姜堰区", "供水"), ("海陵区", "噪声扰民")]
    table = CountTable(cells, table.start, table.counts)
    neighbours = {"海陵区": ["高港区", "姜堰区"], "高港区": ["海陵区"], "姜堰区": ["海陵区"]}
    days = table.days
    full = detect(table, days[80], days[-1], method=method, neighbours=neighbours, simulations=19)
    for cut in (85, 95, 105):
        truncated = CountTable(cells, table.start, table.counts[:, : cut + 1])
        seen = detect(truncated, days[cut], days[cut], method=method, neighbours=neighbours, simulations=19)
        assert seen == [a for a in full if a.date == days[cut]]


def test_the_scan_finds_a_cluster_across_neighbouring_areas() -> None:
    rng = np.random.default_rng(1)
    table = rng.poisson(3.0, size=(6, 28))
    table[[1, 2], -2:] += 6  # two neighbours, the last two days: small in each, clear together
    neighbours = [[1], [0, 2], [1, 3], [2, 4], [3, 5], [4]]
    clusters = scan(table, neighbours, simulations=199, rng=np.random.default_rng(0))
    assert clusters and set(clusters[0].zones) >= {1, 2} and clusters[0].days <= 3
    assert clusters[0].p_value <= 0.01 and clusters[0].observed > clusters[0].expected
    null = scan(rng.poisson(3.0, size=(6, 28)), neighbours, simulations=99, rng=np.random.default_rng(0))
    assert len(null) <= 1


def test_emerging_terms_burst_against_their_history() -> None:
    history = TermHistory()
    day = date(2025, 7, 1)
    for back in range(1, 29):
        for i in range(20):
            history.add(day - timedelta(days=back), f"old{back}-{i}", ["小区", "停水", "物业"])
    for i in range(20):
        words = ["小区", "停水"] + (["充电桩", "收费"] if i < 6 else [])
        history.add(day, f"new{i}", words)
    found = history.emerging(day)
    terms = [t.term for t in found]
    assert "充电桩收费" in terms and "停水" not in terms and "小区" not in terms
    top = found[0]
    assert top.observed == 6 and top.ratio >= 3 and top.case_ids[:2] == ["new0", "new1"]
    assert "充电桩" not in terms  # the phrase explains its words



def test_emerging_terms_say_what_not_where_nor_the_callers_frame() -> None:
    from hotline.text.words import is_place, is_topic

    assert is_place("生祠镇") and is_place("羌溪新村") and is_place("江平公路") and not is_place("马路")
    assert is_topic("充电桩") and not is_topic("一下") and not is_topic("这边") and not is_topic("12")
    assert not any(is_topic(w) for w in ("东西", "平时", "回来", "不了"))  # filler seen in event titles
    history = TermHistory()
    day = date(2025, 7, 1)
    for back in range(1, 29):
        for i in range(20):
            history.add(day - timedelta(days=back), f"old{back}-{i}", ["小区", "停水", "物业"])
    for i in range(20):  # a new place, a new frame word and a new topic, each in six calls
        words = ["小区", "停水"] + (["生祠镇", "这边", "充电桩", "收费"] if i < 6 else [])
        history.add(day, f"new{i}", words)
    terms = [t.term for t in history.emerging(day)]
    assert "充电桩收费" in terms
    assert not [t for t in terms if "生祠镇" in t or "这边" in t], terms  # nor glued to a topic word


def test_forecasts_beat_seasonal_naive_with_calibrated_intervals(demo: tuple[list, Truth]) -> None:
    rows, _ = demo
    table = CountTable.from_records((date.fromisoformat(r["received_at"][:10]), r["district"] or "未知", r["category_l1"])
                                    for r in rows)
    result = backtest(table, horizon=14, step=7, first=56)
    assert result.origins >= 2
    assert result.mase < result.mase_seasonal_naive
    assert 0.7 <= result.coverage <= 0.9


def test_a_fit_of_the_last_days_is_the_full_fit_there(demo: tuple[list, Truth]) -> None:
    """What a forecast reads of the baseline (the last day's dispersion) is the same from a fit of its last
    days as from the full fit, and the report's shared fit gives the same forecasts as their own."""
    from hotline.analytics.hotspots.baseline import DISPERSION_DAYS, fit

    rows, _ = demo
    table = CountTable.from_records((date.fromisoformat(r["received_at"][:10]), r["district"] or "未知", r["category_l1"])
                                    for r in rows)
    full = fit(table.counts, *table.calendar())
    since = table.counts.shape[1] - 1 - DISPERSION_DAYS
    part = fit(table.counts, *table.calendar(), since=since)
    np.testing.assert_allclose(part.mu[:, since:], full.mu[:, since:])
    np.testing.assert_allclose(part.size[since + DISPERSION_DAYS :], full.size[since + DISPERSION_DAYS :])
    assert np.isnan(part.mu[:, : since - 1]).all()
    own, shared = forecast(table, horizon=7), forecast(table, horizon=7, baseline=full)
    for a, b in zip(own, shared, strict=True):
        np.testing.assert_allclose(a.low, b.low) and np.testing.assert_allclose(a.high, b.high)


def test_a_views_fit_covers_its_days_and_the_lead_before_them_only() -> None:
    """A view fits its own days and VIEW_LEAD_DAYS before them, whatever the history: the same alerts as the
    full fit (bursts and a slow rise the CUSUM finds), and the same forecast."""
    from hotline.analytics.hotspots.baseline import VIEW_LEAD_DAYS, fit, fit_view

    table = poisson_table(np.array([2.0, 5.0, 8.0, 0.5] * 5), days=500, seed=3)
    counts = table.counts.copy()
    counts[1, 470:478] += np.arange(1, 9)      # a rise over eight days
    counts[2, 485] += 12                      # a burst
    counts[3, 490:492] += 4
    table = CountTable(table.cells, table.start, counts)
    start = table.day(470)
    view, full = fit_view(table, start), fit(table.counts, *table.calendar())
    since = 470 - VIEW_LEAD_DAYS
    assert np.isnan(view.mu[:, : since - 1]).all() and not np.isnan(view.mu[:, since:]).any()
    ends = table.day(499)
    alerts = detect(table, start, ends, baseline=view)
    assert {(a.date, a.area, a.method) for a in alerts} == \
        {(a.date, a.area, a.method) for a in detect(table, start, ends, baseline=full)}
    assert {(a.area, a.method) for a in alerts} >= {("区1", "nb-cusum"), ("区2", "nb"), ("区3", "nb")}
    assert [(f.area, f.mean.round(6).tolist()) for f in forecast(table, horizon=7, baseline=view)] == \
        [(f.area, f.mean.round(6).tolist()) for f in forecast(table, horizon=7, baseline=full)]


def test_last_years_season_raises_the_forecast() -> None:
    days = 720
    rate = np.full((2, days), 2.0)
    season = [i for i in range(days) if 330 <= i % 364 <= 350]
    rate[0, season] = 12.0  # cell 0 surges in the same weeks every year
    rng = np.random.default_rng(2)
    table = CountTable([("区0", "供暖"), ("区1", "其他")], START, rng.poisson(rate))
    found = forecast(table, horizon=14, origin=364 + 320)
    assert found[0].season.max() > 2 and found[1].season.max() < 1.5
    assert [f.area for f in rising(found)] == ["区0"]
    assert np.all(found[0].low <= found[0].mean) and np.all(found[0].mean <= found[0].high + 1e-9)
    with pytest.raises(InvalidInput):
        forecast(table, horizon=0)


@pytest.mark.slow
def test_hotspots_cli_writes_the_prospective_alert_file(tmp_path: Path, demo: tuple[list, Truth]) -> None:
    rows, _ = demo
    data = tmp_path / "calls.csv"
    write_csv(rows, data)
    out = tmp_path / "alerts.csv"
    result = run(["hotspots", "--data", str(data), "--time-col", "received_at", "--area-col", "district",
                  "--category-col", "category_l2", "--start", "2025-07-15", "--end", "2025-08-15", "--out", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["date", "area", "category", "observed", "expected", "score", "method"]
        alerts = list(reader)
    assert alerts and all("2025-07-15" <= a["date"] <= "2025-08-15" for a in alerts)
    assert {a["method"] for a in alerts} <= {"nb", "nb-cusum"}
    baseline_run = run(["hotspots", "--data", str(data), "--start", "2025-07-15", "--end", "2025-07-20",
                        "--method", "ears-c2"], tmp_path)
    assert baseline_run.returncode == 0 and ",ears-c2" in baseline_run.stdout
    bad = run(["hotspots", "--data", str(data), "--time-col", "nope", "--start", "2025-07-15", "--end", "2025-07-20"], tmp_path)
    assert bad.returncode == 2 and "nope" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    backwards = run(["hotspots", "--data", str(data), "--start", "2025-07-20", "--end", "2025-07-15"], tmp_path)
    assert backwards.returncode == 2
    streets = run(["hotspots", "--data", str(data), "--start", "2025-07-15", "--end", "2025-08-15", "--level", "street"],
                  tmp_path)
    assert streets.returncode == 0, streets.stderr
    street_alerts = list(csv.DictReader(streets.stdout.splitlines()))
    assert "(nb-fdr)" in streets.stderr and all(a["method"] == "nb-fdr" for a in street_alerts)
    assert any("·" in a["area"] for a in street_alerts)  # district·street (a call without a street: its district)


def test_a_new_detector_is_one_registered_object(demo: tuple[list, Truth]) -> None:
    """Registering a detector is all it takes: ``detect``, the CLI's choices and the API's check read the registry."""
    from hotline.analytics.hotspots import detect as detectors

    class EveryBusyDay(detectors.CellDetector):
        name = "busy-days"

        def scores(self, table: CountTable, baseline: object = None) -> detectors.Scores:
            counts = table.counts.astype(float)
            return detectors.Scores(counts, np.ones_like(counts), np.full(counts.shape, np.nan), 10.0)

    detectors.register(EveryBusyDay())
    try:
        table = CountTable([("海陵区", "供水"), ("高港区", "供水")], date(2025, 6, 1), np.array([[1, 12, 3], [0, 1, 2]]))
        alerts = detect(table, date(2025, 6, 1), date(2025, 6, 3), method="busy-days")
        assert [(a.area, a.date, a.method) for a in alerts] == [("海陵区", date(2025, 6, 2), "busy-days")]
        from hotline.cli import build_parser

        assert build_parser().parse_args(["hotspots", "--start", "2025-06-01", "--end", "2025-06-03",
                                          "--method", "busy-days"]).method == "busy-days"
    finally:
        del detectors.DETECTORS["busy-days"]
    with pytest.raises(InvalidInput, match="use one of nb, nb-fdr, ears-c1"):
        detect(table, date(2025, 6, 1), date(2025, 6, 3), method="busy-days")
