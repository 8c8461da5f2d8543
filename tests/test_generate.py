"""The demo data must look like a real hotline's: variety, rhythm, events and surges with truth."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime
from statistics import mean
from typing import Any

import pytest

from hotline.demo.generator import COLUMNS, DemoGenerator, Truth
from hotline.places import Gazetteer
from hotline.taxonomy import Taxonomy
from hotline.text.segment import default_segmenter
from hotline.text.transcript import caller_account

Rows = list[dict[str, Any]]


def test_same_seed_same_data_and_another_seed_differs(gazetteer: Gazetteer, taxonomy: Taxonomy) -> None:
    a, _ = DemoGenerator(gazetteer, taxonomy, seed=3).generate(5, date(2025, 3, 1))
    b, _ = DemoGenerator(gazetteer, taxonomy, seed=3).generate(5, date(2025, 3, 1))
    c, _ = DemoGenerator(gazetteer, taxonomy, seed=4).generate(5, date(2025, 3, 1))
    assert a == b
    assert a != c


def test_rows_have_the_standard_columns_and_known_labels(demo: tuple[Rows, Truth], taxonomy: Taxonomy) -> None:
    rows, _ = demo
    assert all(list(r) == COLUMNS for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["category_l2"] for r in rows} == set(taxonomy.categories)
    assert len(taxonomy.categories) >= 30
    assert {r["channel"] for r in rows} == {"phone", "web", "app", "wechat"}


def test_many_phrasings_per_category_not_one_template(demo: tuple[Rows, Truth]) -> None:
    rows, _ = demo
    texts: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        texts[r["category_l2"]].add(caller_account(r["transcript"]))
    for category, distinct in texts.items():
        total = sum(1 for r in rows if r["category_l2"] == category)
        assert len(distinct) > 0.8 * total, category


def test_transcripts_come_in_every_supported_form(demo: tuple[Rows, Truth]) -> None:
    phone = [r["transcript"] for r in demo[0] if r["channel"] == "phone"]
    assert any(t.startswith("坐席：") for t in phone)
    assert any(t.startswith("话务员：") for t in phone)
    assert any(t.startswith("说话人") for t in phone)
    assert any(t.startswith('{"segments"') for t in phone)


def test_spoken_texture_dialect_and_asr_slips(demo: tuple[Rows, Truth]) -> None:
    text = "\n".join(r["transcript"] for r in demo[0])
    for local in ("不晓得", "没得", "蛮"):
        assert local in text
    for slip in ("反应", "无业", "头诉"):
        assert slip in text


def test_weekly_rhythm_and_holidays(demo: tuple[Rows, Truth]) -> None:
    per_day = Counter(datetime.fromisoformat(r["received_at"]).date() for r in demo[0])
    weekdays = mean(n for d, n in per_day.items() if d.weekday() == 0)
    sundays = mean(n for d, n in per_day.items() if d.weekday() == 6)
    assert weekdays > 1.2 * sundays


def test_seasonal_categories_move_with_the_calendar(demo: tuple[Rows, Truth]) -> None:
    rows, _ = demo
    by_month = Counter((r["category_l2"], r["received_at"][5:7]) for r in rows)
    assert by_month[("排水防涝", "07")] > 1.2 * by_month[("排水防涝", "08")]  # plum rain in June–July
    assert by_month[("入学招生", "08")] > 1.15 * by_month[("入学招生", "06")]


def test_events_are_many_callers_in_their_own_words(demo: tuple[Rows, Truth]) -> None:
    rows, truth = demo
    by_id = {r["id"]: r for r in rows}
    assert len(truth.events) > 30
    for event in truth.events:
        cases = [by_id[c] for c in event.case_ids]
        assert len(cases) >= 3
        assert {c["category_l2"] for c in cases} <= {event.category_l2} | {c["category_l2"] for c in cases}
        assert all(c["address"].startswith(event.district) for c in cases)
    big = max(truth.events, key=lambda e: len(e.case_ids))
    texts = {caller_account(by_id[c]["transcript"]) for c in big.case_ids}
    assert len(texts) == len(big.case_ids)


def test_surges_raise_their_cell(demo: tuple[Rows, Truth]) -> None:
    rows, truth = demo
    assert truth.surges
    counts = Counter((r["district"], r["category_l2"], r["received_at"][:10]) for r in rows)
    for surge in truth.surges:
        inside = [n for (d, c, day), n in counts.items() if d == surge.district and c == surge.category_l2 and surge.start <= day <= surge.end]
        outside = [n for (d, c, day), n in counts.items() if d == surge.district and c == surge.category_l2 and not surge.start <= day <= surge.end]
        days_in = (date.fromisoformat(surge.end) - date.fromisoformat(surge.start)).days + 1
        assert sum(inside) / days_in > sum(outside) / 90
        assert set(surge.case_ids) <= {r["id"] for r in rows} and len(surge.case_ids) >= days_in


def test_plain_tfidf_is_well_below_perfect(demo: tuple[Rows, Truth]) -> None:
    """A generator one template per class away would score ~1.0 here."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.svm import LinearSVC

    rows = demo[0][:6000]
    seg = default_segmenter()
    docs = [" ".join(seg.tokens(caller_account(r["transcript"]))) for r in rows]
    labels = [r["category_l2"] for r in rows]
    predicted = cross_val_predict(LinearSVC(), TfidfVectorizer(token_pattern=r"\S+").fit_transform(docs), labels, cv=3)
    score = f1_score(labels, predicted, average="macro")
    assert 0.6 < score < 0.95


@pytest.mark.parametrize("days", [0, -1])
def test_days_must_be_positive(gazetteer: Gazetteer, taxonomy: Taxonomy, days: int) -> None:
    with pytest.raises(ValueError):
        DemoGenerator(gazetteer, taxonomy).generate(days, date(2025, 1, 1))


def test_public_holidays_are_quieter(gazetteer: Gazetteer, taxonomy: Taxonomy) -> None:
    """National Day week against the two ordinary weeks after it (chinese-calendar knows the dates)."""
    rows, _ = DemoGenerator(gazetteer, taxonomy, seed=2, events_per_day=0, surges_per_month=0).generate(21, date(2025, 10, 1))
    per_day = Counter(r["received_at"][:10] for r in rows)
    holiday = mean(per_day[f"2025-10-0{d}"] for d in range(1, 8))
    after = mean(n for day, n in per_day.items() if day >= "2025-10-13")
    assert holiday < 0.85 * after
