from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from hotline.case import Area, Case, Category, Channel, LabelKind, LabelSource, Status
from hotline.errors import Conflict, InvalidInput, NotFound, ReadOnly, Unavailable
from hotline.store import CaseQuery, CaseStore, Writer, open_store
from hotline.store.base import CellCount, CellSeries
from hotline.store.sqlite import MIGRATIONS, SQLiteStore

IMPORTED = LabelSource(LabelKind.IMPORTED, "import.csv")
AGENT = LabelSource(LabelKind.CONFIRMED, "agent-1", datetime(2025, 7, 2, 10))


def case(n: int, text: str = "小区停水了三天", day: int = 1, **kw: object) -> Case:
    defaults: dict[str, object] = {
        "id": f"C{n}", "received_at": datetime(2025, 7, day, 9, n % 60), "text": text, "channel": Channel.PHONE,
        "area": Area("海陵区", "城东街道"), "category": Category("城乡建设", "供水", "停水"), "category_source": IMPORTED,
        "departments": ("自来水公司",), "departments_source": IMPORTED,
    }
    defaults.update(kw)
    return Case(**defaults)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CaseStore]:
    """Every backend, for the tests every store must pass (the conformance suite)."""
    url = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture()
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(f"sqlite:///{tmp_path}/store.db")
    yield s
    s.close()


def test_store_is_chosen_by_url(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/a/b.db")
    assert isinstance(store, CaseStore)
    store.close()
    assert (tmp_path / "a" / "b.db").exists()
    with pytest.raises(InvalidInput, match="no store backend"):
        open_store("mongodb://localhost")


def test_upsert_is_idempotent_by_id(store: CaseStore) -> None:
    first = store.upsert([case(1), case(2)])
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    again = store.upsert([case(1), case(2)])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    changed = store.upsert([case(1, status=Status.CLOSED)])
    assert changed.updated == 1
    assert store.get("C1").status is Status.CLOSED
    assert store.search(CaseQuery()).total == 2


def test_round_trip_keeps_every_field(store: CaseStore) -> None:
    original = case(5, title="停水", caller="138****5678", address="凤凰路1号", event_id="E1", status=Status.DISPATCHED)
    store.upsert([original])
    assert store.get("C5") == original


def test_queries_by_time_area_category_department_status_and_text(store: CaseStore) -> None:
    store.upsert([
        case(1, "小区停水了三天", day=1),
        case(2, "楼下烧烤店油烟太大", day=2, area=Area("姜堰区", "罗塘街道"),
             category=Category("环境保护", "大气污染"), departments=("生态环境局", "城管局"), status=Status.CLOSED),
        case(3, "路灯不亮，晚上很黑", day=3, category=Category("城乡建设", "道路设施"), departments=("城管局",)),
    ])
    ids = lambda q: sorted(c.id for c in store.search(q).items)  # noqa: E731
    assert ids(CaseQuery(start=datetime(2025, 7, 2), end=datetime(2025, 7, 2, 23, 59))) == ["C2"]
    assert ids(CaseQuery(district="海陵区")) == ["C1", "C3"]
    assert ids(CaseQuery(category="城乡建设")) == ["C1", "C3"]
    assert ids(CaseQuery(category="大气污染")) == ["C2"]
    assert ids(CaseQuery(category="城乡建设/道路设施")) == ["C3"]
    assert ids(CaseQuery(department="城管局")) == ["C2", "C3"]
    assert ids(CaseQuery(status="closed")) == ["C2"]
    assert ids(CaseQuery(text="油烟")) == ["C2"]
    assert ids(CaseQuery(text="停水", district="海陵区")) == ["C1"]
    assert ids(CaseQuery(text="停水", district="姜堰区")) == []


def test_a_cells_calls_are_found_by_its_category_through_an_index(store: CaseStore) -> None:
    """A cell's category is level 2, else level 1: a level-1 name finds only the calls without a level 2."""
    store.upsert([
        case(1, "小区停水了三天"),
        case(2, "楼下烧烤店油烟太大", category=Category("环境保护", "大气污染")),
        case(3, "路上有个大坑", category=Category("城乡建设")),
        case(4, "又停水了", area=Area("姜堰区", "罗塘街道")),
    ])
    ids = lambda q: sorted(c.id for c in store.search(q).items)  # noqa: E731
    assert ids(CaseQuery(cell_category="供水")) == ["C1", "C4"]
    assert ids(CaseQuery(cell_category="城乡建设")) == ["C3"]
    assert ids(CaseQuery(category="城乡建设")) == ["C1", "C3", "C4"]
    assert ids(CaseQuery(cell_category="供水", district="姜堰区")) == ["C4"]
    assert ids(CaseQuery(cell_category="停水")) == []  # level 3 is not a cell's category

    query = CaseQuery.days(date(2025, 7, 1), date(2025, 7, 7), district="海陵区", street="城东街道",
                           cell_category="供水", limit=50)
    assert "cases_cell" in _plan(store, query)  # not the district's calls of the range, scanned


def _plan(store: CaseStore, query: CaseQuery) -> str:
    """How the backend reads the cases a search asks for (its query plan, as text)."""
    from hotline.store.sql import SELECT_CASES

    _, where, params = store.where(query)  # type: ignore[attr-defined]
    sql = f"{SELECT_CASES}{where} ORDER BY c.received_at DESC, c.id LIMIT 50"
    if isinstance(store, SQLiteStore):
        return " ".join(str(row) for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    with store._connection() as conn:  # type: ignore[attr-defined]
        conn.execute("SET enable_seqscan = off")  # a test table is small enough to scan whole
        return " ".join(row[0] for row in conn.execute(f"EXPLAIN {sql}", params))


def test_paging_and_totals(store: CaseStore) -> None:
    store.upsert(case(i) for i in range(25))
    page = store.search(CaseQuery(limit=10, offset=20))
    assert page.total == 25 and len(page.items) == 5
    assert len(list(store.iter_cases(batch=7))) == 25


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": 100_000}, {"offset": -1},
                                    {"start": datetime(2025, 2, 1), "end": datetime(2025, 1, 1)}])
def test_bad_queries_are_clear_errors(kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        CaseQuery(**kwargs)


def test_search_text_with_fts_syntax_is_taken_literally(store: CaseStore) -> None:
    store.upsert([case(1)])
    assert store.search(CaseQuery(text='停水 OR "* NEAR(')).total == 0
    with pytest.raises(InvalidInput):
        store.search(CaseQuery(text="，。！"))


def test_agent_label_is_audited_and_survives_reimport(store: CaseStore) -> None:
    store.upsert([case(1)])
    store.set_label("C1", AGENT, category=Category("城乡建设", "排水防涝"), departments=("住建局",))
    history = store.label_history("C1")
    assert len(history) == 1
    assert history[0].previous_category == Category("城乡建设", "供水", "停水")
    assert history[0].category == Category("城乡建设", "排水防涝") and history[0].source.by == "agent-1"
    store.upsert([case(1, status=Status.CLOSED)])  # the same case imported again
    again = store.get("C1")
    assert again.category == Category("城乡建设", "排水防涝") and again.category_source.kind is LabelKind.CONFIRMED
    assert again.departments == ("住建局",) and again.status is Status.CLOSED
    assert store.summary().confirmed == 1


def test_label_errors(store: CaseStore) -> None:
    with pytest.raises(NotFound):
        store.set_label("nope", AGENT, category=Category("城乡建设"))
    store.upsert([case(1)])
    with pytest.raises(InvalidInput):
        store.set_label("C1", AGENT)
    with pytest.raises(NotFound):
        store.get("nope")


def test_schema_is_versioned_and_newer_files_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    store = SQLiteStore(url)
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(Unavailable, match="newer than this software"):
        SQLiteStore(url)


def test_wal_mode(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    mode = sqlite3.connect(tmp_path / "store.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_read_only_store_refuses_writes_but_serves_reads(tmp_path: Path) -> None:
    """A store whose file cannot be written reports ReadOnly and still answers reads."""
    store = SQLiteStore(f"sqlite:///{tmp_path}/ro.db")
    store.upsert([case(1)])
    store.close()
    store = SQLiteStore(f"sqlite:///{tmp_path}/ro.db")
    store._db.execute("PRAGMA query_only = ON")  # what a read-only mount looks like to SQLite
    with pytest.raises(ReadOnly):
        store.upsert([case(2)])
    assert store.get("C1").id == "C1"
    store.close()


def test_summary(store: CaseStore) -> None:
    store.upsert([case(1), case(2, area=Area("姜堰区", ""))])
    summary = store.summary()
    assert summary.total == 2 and summary.by_district == {"海陵区": 1, "姜堰区": 1}
    assert summary.by_category == {"城乡建设": 2}


def test_write_rules_hold_on_every_backend(store: CaseStore) -> None:
    """Another source cannot overwrite a case (the whole batch is refused); the owner's change is audited."""
    alice, bob = Writer("agent:alice"), Writer("agent:bob")
    store.upsert([case(1)], writer=alice)
    with pytest.raises(Conflict):
        store.upsert([case(2), case(1, text="被别人改了")], writer=bob)
    assert store.get("C1").text == "小区停水了三天" and store.search(CaseQuery()).total == 1
    store.upsert([case(1, text="小区停水第四天了", category=None, category_source=None)], writer=alice)
    kept = store.get("C1")
    assert kept.text == "小区停水第四天了" and kept.category == Category("城乡建设", "供水", "停水")  # not cleared
    [change] = store.case_history("C1")
    assert change.by == "agent:alice" and change.changes["text"] == ["小区停水了三天", "小区停水第四天了"]
    store.upsert([case(1, text="管理员更正")], writer=Writer("admin", privileged=True))
    assert store.get("C1").text == "管理员更正" and len(store.case_history("C1")) == 2


def test_outbox_queues_every_write_in_its_transaction(store: CaseStore) -> None:
    store.upsert([case(1), case(2)])
    store.upsert([case(1)])  # unchanged: nothing to index
    entries = store.pending()
    assert [(cid, op) for _, cid, op in entries] == [("C1", "index"), ("C2", "index")]
    store.acknowledge([seq for seq, _, _ in entries])
    store.set_label("C1", AGENT, category=Category("城乡建设", "排水防涝"))
    store.delete(["C2", "C9"])
    assert [(cid, op) for _, cid, op in store.pending()] == [("C1", "index"), ("C2", "delete")]
    assert store.pending_count() == 2


def test_text_with_quotes_and_backslashes_is_found_literally(store: CaseStore) -> None:
    store.upsert([case(1, text="O'Neil 说 \\x 路灯 \"坏了\""), case(2)])
    assert [c.id for c in store.search(CaseQuery(text="O'Neil")).items] == ["C1"]
    assert [c.id for c in store.search(CaseQuery(text="\\x 路灯")).items] == ["C1"]


def test_reopening_keeps_cases_and_schema(store: CaseStore) -> None:
    store.upsert([case(1)])
    again = open_store(store.url)
    try:
        assert again.get("C1") == store.get("C1")
        assert again.schema_version == store.schema_version  # type: ignore[attr-defined]
    finally:
        again.close()


def _recount(store: CaseStore) -> list[CellCount]:
    """The daily counts computed from every case, as the aggregates must hold them."""
    cells = Counter((c.received_at.date(), c.area.district, c.category.l2 or c.category.l1 if c.category else "")
                    for c in store.iter_cases())
    return [CellCount(day, district, category, n) for (day, district, category), n in sorted(cells.items())]


def test_aggregates_follow_every_write_and_can_be_rebuilt(store: CaseStore) -> None:
    """Inserts, relabels, moves, re-dated cases and deletes all keep the daily counts equal to a recount."""
    admin = Writer("admin", privileged=True)
    store.upsert([case(i, day=1 + i % 5, area=Area("海陵区" if i % 3 else "姜堰区", "城东街道" if i % 2 else ""))
                  for i in range(40)])
    store.set_label("C1", AGENT, category=Category("环境保护", "噪声污染"))
    store.upsert([case(2, area=Area("兴化市", "昭阳街道")), case(3, day=20)], writer=admin)
    store.upsert([case(4, category=Category("城乡建设"))], writer=admin)  # a level-1 category only
    store.delete(["C5", "C6"])
    counted = store.counts()
    assert counted == _recount(store) and sum(c.count for c in counted) == 38
    streets = Counter((c.received_at.date(), c.area.district, c.area.street,
                       c.category.l2 or c.category.l1 if c.category else "") for c in store.iter_cases())
    by_street = store.counts(by_street=True)
    assert {(c.day, c.district, c.street, c.category): c.count for c in by_street} == dict(streets)
    july_2 = store.counts(CaseQuery.days(date(2025, 7, 2), date(2025, 7, 2)))
    assert {c.day for c in july_2} == {date(2025, 7, 2)} and sum(c.count for c in july_2) == 7  # C6 is gone
    assert store.rebuild_aggregates() > 0 and store.counts() == counted
    for query, street in ((None, False), (None, True), (CaseQuery.days(date(2025, 7, 2), date(2025, 7, 3)), True)):
        assert _from_series(store.count_series(query, by_street=street)) == \
            sorted((c.day, c.district, c.street, c.category, c.count) for c in store.counts(query, by_street=street))


def _from_series(series: list[CellSeries]) -> list[tuple[date, str, str, str, int]]:
    """The rows a store's cell series hold, in the order :meth:`counts` rows sort by; each cell named once."""
    assert len({(s.district, s.street, s.category) for s in series}) == len(series)
    return sorted((date.fromordinal(int(d)), s.district, s.street, s.category, int(n))
                  for s in series for d, n in zip(s.days, s.counts, strict=True))


def test_the_write_mark_moves_with_every_write_from_any_connection(store: CaseStore) -> None:
    """What the views' caches compare: it moves on inserts, edits, relabels and deletes made through another
    connection (another process), and not on a write that changes nothing."""
    other = open_store(store.url)
    try:
        marks = [store.write_mark()]
        other.upsert([case(1), case(2)])
        marks.append(store.write_mark())
        other.upsert([case(1)])  # unchanged
        assert store.write_mark() == marks[-1]
        other.set_label("C1", AGENT, category=Category("环境保护", "噪声污染"))
        marks.append(store.write_mark())
        other.delete(["C2"])
        marks.append(store.write_mark())
        assert marks == sorted(set(marks))  # each write moved it forward
    finally:
        other.close()


def _recount_terms(store: CaseStore, start: date = date(2025, 1, 1), end: date = date(2025, 12, 31)) -> dict[str, int]:
    """How many cases of the days use each word, from every case's tokens, as the daily term counts must say."""
    counted: Counter[str] = Counter()
    for c in store.iter_cases(CaseQuery.days(start, end)):
        counted.update(set(store.tokenize(f"{c.title} {c.text}")))  # type: ignore[attr-defined]
    return dict(counted)


def test_term_counts_follow_every_write_and_can_be_rebuilt(store: CaseStore) -> None:
    """New words, edited texts, re-dated and deleted cases keep each day's word counts equal to a recount."""
    admin = Writer("admin", privileged=True)
    store.upsert([case(i, text="小区停水了三天" if i % 2 else "路灯不亮，晚上很黑", day=1 + i % 3) for i in range(30)])
    store.upsert([case(1, text="充电桩收费太贵了", day=1), case(3, day=9), case(5, text="小区停水了三天")],
                 writer=admin)  # an edit, a re-dated case, an unchanged one
    store.set_label("C7", AGENT, category=Category("环境保护", "噪声污染"))  # labels leave the words alone
    store.delete(["C9", "C11"])
    assert store.term_counts(date(2025, 7, 1), date(2025, 7, 31)) == _recount_terms(store)
    words = [*store.tokenize("充电桩收费太贵了")[:2], "停水", "没有的词"]  # type: ignore[attr-defined]
    recounted = _recount_terms(store, date(2025, 7, 1), date(2025, 7, 1))
    assert store.term_counts(date(2025, 7, 1), date(2025, 7, 1), words) == {w: recounted[w] for w in words[:3]}
    assert recounted[words[0]] == 1
    assert store.documents(date(2025, 7, 1), date(2025, 7, 31)) == 28
    assert [i for i, _ in store.day_tokens(date(2025, 7, 9))] == ["C3"] and store.term_counts(
        date(2025, 7, 1), date(2025, 7, 1), []) == {}
    edited = store.case_tokens(["C1", "C9", "C1", "C99"])  # the edited text's words; deleted and unknown left out
    assert edited == {"C1": store.tokenize(" 充电桩收费太贵了")}  # type: ignore[attr-defined]
    store._transaction(lambda db: db.execute("UPDATE daily_terms SET n = n + 5"))  # type: ignore[attr-defined]
    assert store.rebuild_aggregates() > 0
    assert store.term_counts(date(2025, 7, 1), date(2025, 7, 31)) == _recount_terms(store)


def test_events_are_kept_as_cases_arrive(store: CaseStore) -> None:
    """Calls about one burst main become one kept event, a late call joins it, other calls stay apart, and a
    second assigner finds nothing left to do; deletes shrink the event."""
    from hotline.analytics.events import EventAssigner, kept_events

    burst = [case(i, text=f"幸福路{i}号门口自来水管爆裂，水漫到马路上了", day=3, area=Area("海陵区", "城东街道"))
             for i in range(5)]
    others = [case(10 + i, text=text, day=3, category=Category("环境保护", "噪声污染"), area=Area("姜堰区", "三水街道"))
              for i, text in enumerate(["工地夜间施工噪音扰民", "广场舞音响太吵", "酒吧音乐很响到凌晨"])]
    history = [case(100 + i, text=f"第{i}个普通的咨询问题，关于社保缴费", day=1) for i in range(30)]
    store.upsert([*history, *burst[:4], *others])
    assert store.event_backlog() == 37
    assigner = EventAssigner(store, store.tokenize, batch=10)  # type: ignore[attr-defined]
    assert assigner.run() == 37 and store.event_backlog() == 0 and EventAssigner(store, store.tokenize).run() == 0  # type: ignore[attr-defined]
    store.upsert([burst[4]])  # comes in later, received with the others
    assert assigner.run() == 1
    found = kept_events(store, date(2025, 7, 3), date(2025, 7, 3), min_size=2)
    assert len(found) == 1 and found[0].size == 5 and found[0].case_ids == [c.id for c in burst]
    assert found[0].district == "海陵区" and "幸福" in found[0].title
    assert kept_events(store, date(2025, 7, 5), date(2025, 7, 9), min_size=2) == []
    in_cell = store.cell_events("海陵区", "供水", date(2025, 7, 3), date(2025, 7, 3))
    assert [(row["id"], row["size"], row["title"]) for row in in_cell] == [(found[0].id, 5, found[0].title)]
    assert store.cell_events("姜堰区", "供水", date(2025, 7, 3), date(2025, 7, 3)) == []
    assert store.cell_events("海陵区", "供水", date(2025, 7, 4), date(2025, 7, 9)) == []
    store.delete(["C0"])
    assert kept_events(store, date(2025, 7, 3), date(2025, 7, 3), min_size=2)[0].size == 4
    store.rebuild_aggregates()  # forgets the events and queues every case again
    assert store.event_backlog() == 37 and assigner.run() == 37
    assert kept_events(store, date(2025, 7, 3), date(2025, 7, 3), min_size=2)[0].size == 4


def test_a_store_from_before_the_aggregates_gets_them_on_open(tmp_path: Path) -> None:
    """Schema 5 → 11 fills the daily counts (by street, by district, and of words, found by day and by word)
    from the cases already there, queues every case for its event and finds a cell's calls by index."""
    url = f"sqlite:///{tmp_path}/old.db"
    store = SQLiteStore(url)
    store.upsert(case(i, day=1 + i % 3) for i in range(12))
    store.close()
    db = sqlite3.connect(tmp_path / "old.db")
    db.executescript("DROP TRIGGER cases_events_ai; DROP TRIGGER cases_events_au; DROP TRIGGER cases_events_ad; "
                     "DROP TABLE daily_terms; DROP TABLE events; DROP TABLE case_events; DROP TABLE event_queue; "
                     "DROP TRIGGER cases_cells_ai; DROP TRIGGER cases_cells_ad; DROP TRIGGER cases_cells_au; "
                     "DROP TABLE daily_cells; "
                     "DROP TRIGGER cases_counts_ai; DROP TRIGGER cases_counts_ad; DROP TRIGGER cases_counts_au; "
                     "DROP TABLE daily_counts; DROP TABLE work_items; DROP TABLE work_log; DROP INDEX cases_cell; "
                     "PRAGMA user_version = 5;")
    db.close()
    store = SQLiteStore(url)
    try:
        assert store.schema_version == len(MIGRATIONS) and store.counts() == _recount(store)
        assert [c.count for c in store.counts()] == [4, 4, 4]
        assert store.term_counts(date(2025, 1, 1), date(2025, 12, 31)) == _recount_terms(store)
        assert store.event_backlog() == 12
        assert "daily_terms_term" in {row[1] for row in store._read("PRAGMA index_list('daily_terms')")}
        assert "cases_cell" in {row[1] for row in store._read("PRAGMA index_list('cases')")}
    finally:
        store.close()


def test_work_list_decisions_are_kept_and_audited(store: CaseStore) -> None:
    from hotline.store.base import WorkState

    def decision(state: str, by: str, at: datetime, department: str = "", last: date = date(2025, 7, 3)) -> WorkState:
        return WorkState("W1", "surge", "海陵区·城东街道", "供水", date(2025, 7, 1), last, state, department,
                         "已联系 \"自来水\" 公司", by, at)

    first = store.set_work_state(decision("acknowledged", "zhang", datetime(2025, 7, 3, 9)))
    assert first.previous == "new" and first.state == "acknowledged"
    second = store.set_work_state(decision("assigned", "li", datetime(2025, 7, 3, 10), "自来水公司",
                                           last=date(2025, 7, 4)))
    assert second.previous == "acknowledged"
    kept = store.work_states(date(2025, 7, 1))
    assert [(s.item_id, s.state, s.department, s.by, s.last_day) for s in kept] == [
        ("W1", "assigned", "自来水公司", "li", date(2025, 7, 4))]
    assert store.work_states(date(2025, 7, 5)) == []  # items that ended before the period are not read
    history = store.work_history("W1")
    assert [(h.state, h.previous, h.by) for h in history] == [("acknowledged", "new", "zhang"),
                                                              ("assigned", "acknowledged", "li")]
    assert history[0].note == '已联系 "自来水" 公司' and history[0].at == datetime(2025, 7, 3, 9)
    assert store.work_history("W2") == []
    with pytest.raises(InvalidInput, match="unknown state"):
        store.set_work_state(decision("done", "li", datetime(2025, 7, 3, 11)))
    assert len(store.work_history("W1")) == 2
