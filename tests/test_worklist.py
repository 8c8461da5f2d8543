"""The work list (未诉先办) and the weekly brief: items from the kept counts, decisions kept and audited,
exports safe to open, the brief drawn from the same items."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest

from hotline.analytics import brief, worklist
from hotline.analytics.events import EventAssigner
from hotline.demo.generator import DemoGenerator, Truth
from hotline.errors import Implausible, InvalidInput, NotFound
from hotline.ingest import CaseBuilder, ColumnMap
from hotline.places import default_gazetteer
from hotline.store import open_store
from hotline.store.base import CaseStore, WorkState
from hotline.taxonomy import default_taxonomy
from hotline.text.segment import default_segmenter

pytestmark = pytest.mark.slow  # 120 planted days in a store: 25 s to build


END = date(2025, 8, 31)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CaseStore, Truth]]:
    """120 generated days (surges and events planted) in a store, events kept as they would be on write."""
    gazetteer, taxonomy = default_gazetteer(), default_taxonomy()
    rows, truth = DemoGenerator(gazetteer, taxonomy, seed=7).generate(120, END - timedelta(days=119))
    builder = CaseBuilder(gazetteer, taxonomy, max_chars=4000, source="demo.csv")
    columns = ColumnMap().resolve(list(rows[0]))
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('worklist')}/store.db")
    store.upsert([builder.build(r, columns) for r in rows])
    EventAssigner(store, default_segmenter().tokens, gazetteer.landmarks).run()
    yield store, truth
    store.close()


def test_items_are_the_surges_with_what_a_supervisor_needs(planted: tuple[CaseStore, Truth]) -> None:
    store, truth = planted
    start = END - timedelta(days=27)
    items = worklist.build(store, start, END, default_taxonomy())
    surges = [i for i in items if i.kind == "surge"]
    assert len(surges) >= 5 and [i.excess for i in surges] == sorted((i.excess for i in surges), reverse=True)
    planted_cells = {(s.district, s.category_l2) for s in truth.surges if s.start >= start.isoformat()}
    assert planted_cells & {(i.area, i.category) for i in surges[:10]}  # planted surges lead the list
    top = surges[0]
    assert top.departments and top.calls and top.forecast and len(top.forecast) == worklist.FORECAST_DAYS
    assert all(c["id"] for c in top.calls) and top.state == "new" and top.decision is None
    taxonomy = default_taxonomy()
    assert top.departments[0] == taxonomy.departments[taxonomy.spec(top.category).departments[0]].name
    assert any(i.events for i in surges) and any(i.terms for i in surges)
    assert not {"一下", "这边", "那边"} & {t for i in items for t in i.terms}  # words of every call are not terms
    assert [i.id for i in worklist.build(store, start, END, taxonomy)] == [i.id for i in items]  # stable ids
    from hotline.analytics.hotspots.series import period_table

    for by_street in (False, True):  # the terms' background: the view's table counts the calls the store does
        table = period_table(store, start, END, by_street=by_street)
        for first, last in ((start - timedelta(days=28), start - timedelta(days=1)), (date(2020, 1, 1), END)):
            assert table.total(first, last) == store.documents(first, last) > 0
    with pytest.raises(InvalidInput, match="at most 92 days"):
        worklist.build(store, END - timedelta(days=100), END, taxonomy)


def test_a_decision_is_kept_audited_and_follows_the_surge_as_it_grows(planted: tuple[CaseStore, Truth]) -> None:
    store, _ = planted
    taxonomy = default_taxonomy()
    start = END - timedelta(days=27)
    items = worklist.build(store, start, END, taxonomy)
    target = items[0]
    with pytest.raises(InvalidInput, match="department"):
        worklist.set_state(store, items, target.id, "assigned", "zhang", taxonomy=taxonomy)
    with pytest.raises(Implausible, match="not in the taxonomy"):
        worklist.set_state(store, items, target.id, "assigned", "zhang", "不存在的局", taxonomy=taxonomy)
    with pytest.raises(NotFound):
        worklist.set_state(store, items, "Wnothing", "resolved", "zhang")
    worklist.set_state(store, items, target.id, "acknowledged", "zhang")
    entry = worklist.set_state(store, items, target.id, "assigned", "li", "城管局", "请本周内处理", taxonomy)
    assert entry.previous == "acknowledged" and entry.department == "泰州市城市管理局"
    again = {i.id: i for i in worklist.build(store, start, END, taxonomy)}
    assert again[target.id].state == "assigned" and again[target.id].decision.by == "li"
    assert [h.state for h in store.work_history(target.id)] == ["acknowledged", "assigned"]
    # The same surge seen from a later list that starts it a day earlier: the decision (and its id) follow.
    moved = worklist.WorkItem(worklist.item_id("surge", target.area, target.category, target.start - timedelta(days=1)),
                              "surge", target.area, target.category, target.start - timedelta(days=1),
                              target.end + timedelta(days=1), target.observed, target.expected, "", [])
    other = worklist.WorkItem("Wother", "surge", "别的区", target.category, target.start, target.end, 5, 1.0, "", [])
    worklist.decide([moved, other], store.work_states(start))
    assert moved.id == target.id and moved.state == "assigned" and other.state == "new"


def test_exports_open_in_a_spreadsheet_and_neutralise_formulas(planted: tuple[CaseStore, Truth]) -> None:
    store, _ = planted
    items = worklist.build(store, END - timedelta(days=13), END, default_taxonomy())
    assert items
    items[0].decision = WorkState(items[0].id, items[0].kind, items[0].area, items[0].category, items[0].start,
                                  items[0].end, "dismissed", "", '=HYPERLINK("http://x","点此")', "zhang",
                                  datetime(2025, 8, 31, 9))
    text = worklist.to_csv(items)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert tuple(rows[0]) == worklist.EXPORT_COLUMNS and len(rows) == len(items) + 1
    assert rows[1][2] == "已排除" and rows[1][-1].startswith("'=")
    book = openpyxl.load_workbook(io.BytesIO(worklist.to_xlsx(items)))
    sheet = book.active
    assert [c.value for c in sheet[1]] == list(worklist.EXPORT_COLUMNS) and sheet.max_row == len(items) + 1
    assert sheet.cell(row=2, column=len(worklist.EXPORT_COLUMNS)).value.startswith("'=")
    with pytest.raises(InvalidInput, match="csv or xlsx"):
        worklist.exporter("ods")


def test_the_weekly_brief_is_drawn_from_the_work_list(planted: tuple[CaseStore, Truth]) -> None:
    store, _ = planted
    start, end = brief.week_of(END)
    items = worklist.build(store, start, end, default_taxonomy())
    built = brief.build(items, END)
    page = brief.render_html(built)
    assert "未诉先办周报" in page and all(i.area in page and i.category in page for i in items)
    pdf = brief.render_pdf(built)
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    if Path(brief.FONT_FILES[0]).is_file():  # the CJK font make test installs is embedded, not named only
        assert b"FontFile2" in pdf or b"/FontFile" in pdf


def test_cli_exports_the_work_list_and_writes_the_brief(tmp_path: Path, planted: tuple[CaseStore, Truth]) -> None:
    from tests.test_cli import run

    store, _ = planted
    env = {"HOTLINE_STORE": store.url}
    out = tmp_path / "w.xlsx"
    done = run(["worklist", "--from", "2025-08-18", "--to", "2025-08-31", "--out", str(out)], tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "items" in done.stderr and openpyxl.load_workbook(out).active.max_row >= 2
    pdf = tmp_path / "brief.pdf"
    done = run(["brief", "--to", "2025-08-31", "--out", str(pdf)], tmp_path, env=env)
    assert done.returncode == 0 and pdf.read_bytes().startswith(b"%PDF") and "2025-08-25" in done.stdout
    bad = run(["brief", "--to", "2025-08-31", "--out", str(tmp_path / "brief.doc")], tmp_path, env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "brief.doc").exists()


def test_a_decision_made_meanwhile_is_a_conflict_and_notes_are_cleaned(planted: tuple[CaseStore, Truth]) -> None:
    """Two supervisors deciding one item: the one who saw an older state gets a Conflict (the page sends what it
    showed). A control character in a note once made the XLSX export fail for everyone until overwritten."""
    from hotline.errors import Conflict

    store, _ = planted
    taxonomy = default_taxonomy()
    start = END - timedelta(days=27)
    items = worklist.build(store, start, END, taxonomy)
    target = items[-1]
    seen = target.state
    worklist.set_state(store, items, target.id, "resolved", "zhang", note="已联系\x0b\x1f物业\u202e", expected=seen)
    with pytest.raises(Conflict, match="resolved"):
        worklist.set_state(store, items, target.id, "dismissed", "li", expected=seen)
    assert store.work_history(target.id)[-1].note == "已联系物业"
    assert worklist.to_xlsx(worklist.build(store, start, END, taxonomy))[:2] == b"PK"
