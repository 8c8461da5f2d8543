"""The work list (未诉先办): what a supervisor acts on before the calls come, and what was decided about it.

Items are recomputed from the counts the store keeps on write: every episode
(a surge, :mod:`hotline.analytics.hotspots.episodes`) and every cell forecast to rise
that is not already one. Each carries what a supervisor needs to hand it to
someone: the place, the department responsible (the category's own
departments in the taxonomy, then those the cell's calls were sent to), the
events inside it, a few representative calls, its distinctive words, and the
forecast of the next seven days with 80% intervals.

What a supervisor decides (acknowledged, assigned to a department, resolved,
dismissed) is the only thing stored (:meth:`~hotline.store.base.CaseStore.set_work_state`,
audited in the store's work log). An item is found again by its identity
(kind, cell and first day); an episode that has since grown, started a day
earlier or merged with its neighbour keeps the decision of the item it
overlaps in the same cell.
"""

from __future__ import annotations

import copy
import hashlib
import io
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from hotline.analytics.hotspots.cells import STREET_SEPARATOR, area_district, cell_cases
from hotline.case import Case
from hotline.errors import InvalidInput, NotFound
from hotline.store.base import CaseStore, WorkState
from hotline.taxonomy import Taxonomy
from hotline.text.clean import normalize, unencodable
from hotline.text.words import is_topic
from hotline.times import city_now

#: What each state is called on the pages, the exports and the brief.
STATE_NAMES = {"new": "待处理", "acknowledged": "已知悉", "assigned": "已交办", "resolved": "已办结",
               "dismissed": "已排除"}
KIND_NAMES = {"surge": "激增", "rising": "预计上升"}
#: Days of forecast each item shows.
FORECAST_DAYS = 7
#: Calls read per item (for its departments and words); the first few are shown.
CALLS_READ, CALLS_SHOWN = 50, 3
#: The work list covers at most this many days (like the other views: they read the daily counts).
MAX_DAYS = 92

EXPORT_COLUMNS = ("id", "类型", "状态", "区域", "类别", "开始", "结束", "实际", "预计", "多出", "责任单位", "交办单位",
                  "事件", "关键词", "未来7日预计", "未来7日逐日80%区间", "代表工单", "说明", "处理人", "处理时间", "备注")


def item_id(kind: str, area: str, category: str, first_day: date) -> str:
    """A short id that the same item gets every time it is computed."""
    key = f"{kind}|{area}|{category}|{first_day.isoformat()}".encode()
    return "W" + hashlib.sha1(key).hexdigest()[:11]


@dataclass
class WorkItem:
    id: str
    kind: str
    area: str
    category: str
    start: date
    end: date
    observed: int
    expected: float
    explanation: str
    departments: list[str]                  # responsible, lead first (names)
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    forecast: list[dict[str, Any]] = field(default_factory=list)   # the next days: date, mean, low, high
    decision: WorkState | None = None

    @property
    def excess(self) -> float:
        return self.observed - self.expected

    @property
    def state(self) -> str:
        return self.decision.state if self.decision else "new"

    @property
    def forecast_total(self) -> float:
        return float(sum(d["mean"] for d in self.forecast))

    def to_dict(self) -> dict[str, Any]:
        decision = self.decision
        return {"id": self.id, "kind": self.kind, "area": self.area, "category": self.category,
                "start": self.start.isoformat(), "end": self.end.isoformat(), "observed": self.observed,
                "expected": round(self.expected, 2), "excess": round(self.excess, 1), "explanation": self.explanation,
                "departments": self.departments, "events": self.events, "calls": self.calls, "terms": self.terms,
                "forecast": self.forecast, "forecast_total": round(self.forecast_total, 1), "state": self.state,
                "state_name": STATE_NAMES[self.state],
                "assigned_to": decision.department if decision else "", "note": decision.note if decision else "",
                "by": decision.by if decision else "",
                "at": decision.at.isoformat(timespec="seconds") if decision else None}

    def export_row(self) -> list[Any]:
        d = self.decision
        return [self.id, KIND_NAMES[self.kind], STATE_NAMES[self.state], self.area, self.category,
                self.start.isoformat(), self.end.isoformat(), self.observed, round(self.expected, 1),
                round(self.excess, 1), "、".join(self.departments), d.department if d else "",
                "；".join(f"{e['title']}（{e['size']} 件）" for e in self.events), "、".join(self.terms),
                round(self.forecast_total, 1), " ".join(f"{f['low']}–{f['high']}" for f in self.forecast),
                "；".join(f"{c['id']} {c['title']}" for c in self.calls), self.explanation,
                d.by if d else "", d.at.isoformat(sep=" ", timespec="minutes") if d else "", d.note if d else ""]


def build(store: CaseStore, start: date, end: date, taxonomy: Taxonomy, level: str = "district",
          min_calls: int = 5, top: int = 30, rising_top: int = 10) -> list[WorkItem]:
    """The work list of ``start``–``end``: its episodes, then the cells forecast to rise, each with its decision."""
    return decided(items(store, start, end, taxonomy, level, min_calls, top, rising_top), store)


def decided(found: Sequence[WorkItem], store: CaseStore) -> list[WorkItem]:
    """Copies of ``found`` with the decisions the store holds now (the items can be cached: the decisions are
    read every time, a few rows)."""
    copies = [copy.copy(i) for i in found]
    if copies:
        decide(copies, store.work_states(min(i.start for i in copies) - timedelta(days=MAX_DAYS)))
    return copies


def items(store: CaseStore, start: date, end: date, taxonomy: Taxonomy, level: str = "district",
          min_calls: int = 5, top: int = 30, rising_top: int = 10) -> list[WorkItem]:
    """The items of ``start``–``end`` without their decisions (what a view may cache until the next write)."""
    from hotline.analytics.events import link_events
    from hotline.analytics.hotspots import forecast as fc
    from hotline.analytics.hotspots.surges import find_surges, level_table

    if end < start:
        raise InvalidInput(f"end {end} is before start {start}")
    if (end - start).days >= MAX_DAYS:
        raise InvalidInput(f"the work list covers at most {MAX_DAYS} days at a time")
    found_surges = find_surges(level_table(store, start, end, level), start, end, level, min_calls=min_calls, top=top)
    table, base, surges = found_surges.table, found_surges.baseline, found_surges.episodes
    link_events(store, surges, start, end)
    ahead = {(f.area, f.category): f for f in fc.forecast(table, horizon=FORECAST_DAYS, baseline=base)} \
        if table.counts.shape[1] >= 14 else {}

    found = [WorkItem(item_id("surge", e.area, e.category, e.start), "surge", e.area, e.category, e.start, e.end,
                      e.observed, e.expected, e.explanation, [], events=e.events) for e in surges]
    listed = {(i.area, i.category) for i in found}
    week = max(start, end - timedelta(days=6))
    last = table.day_index(end)
    for f in fc.rising(list(ahead.values()), top=rising_top):
        if (f.area, f.category) in listed:
            continue
        row = table.cells.index((f.area, f.category))
        observed = int(table.counts[row, table.day_index(week) : last + 1].sum())
        explanation = (f"预计未来一周比常态（每日约 {f.normal:.1f} 件）多出约 {f.rise:.0f} 件；"
                       f"近 7 日已有 {observed} 件")
        found.append(WorkItem(item_id("rising", f.area, f.category, end), "rising", f.area, f.category, week, end,
                              observed, f.normal * ((end - week).days + 1), explanation, []))
    for item in found:
        if (item.area, item.category) in ahead:
            f = ahead[(item.area, item.category)]
            item.forecast = [{"date": d.isoformat(), "mean": round(float(m), 1), "low": int(lo), "high": int(hi)}
                             for d, m, lo, hi in zip(f.days, f.mean, f.low, f.high, strict=True)]
        _describe(store, item, taxonomy, table.total)
    return found


def _describe(store: CaseStore, item: WorkItem, taxonomy: Taxonomy, documents: Callable[[date, date], int]) -> None:
    """Departments, representative calls and distinctive words of an item, from a few of its calls."""
    cases = sorted(cell_cases(store, item.area, item.category, item.start, item.end, CALLS_READ),
                   key=lambda c: c.received_at, reverse=True)  # newest first
    names = {d.id: d.name for d in taxonomy.departments.values()}
    usual = list(taxonomy.spec(item.category).departments) if item.category in taxonomy.categories else []
    sent = Counter(d for c in cases for d in c.departments)
    ordered = usual + [d for d, _ in sent.most_common() if d not in usual]
    item.departments = [names.get(d, d) for d in ordered][:4]
    item.calls = [{"id": c.id, "received_at": c.received_at.isoformat(timespec="minutes"),
                   "title": c.title or c.text[:40]} for c in cases[:CALLS_SHOWN]]
    item.terms = distinctive_terms(store, cases, item.start, documents,
                                   exclude=(area_district(item.area), item.area, *item.area.split(STREET_SEPARATOR)))


def distinctive_terms(store: CaseStore, cases: Sequence[Case], before: date, documents: Callable[[date, date], int],
                      top: int = 5, exclude: Sequence[str] = (), min_lift: float = 4.0) -> list[str]:
    """The words a third of the calls share and that the 28 days before used at least ``min_lift`` times
    less often (against the store's daily word counts): what the calls are about ("电梯", "学区划分"), not
    what every caller says ("一下", "这边"). Most distinctive first (share × log lift). ``documents``: the
    calls of a span (``CountTable.total`` of the table the view holds, or ``store.documents``; the store's
    sum over 28 days of cells took 6 ms an item at 2,000,000 cases)."""
    if not cases:
        return []
    stored = store.case_tokens([c.id for c in cases])  # the words the background was counted from
    used = Counter(w for c in cases
                   for w in {t for t in stored.get(c.id) or store.tokenize(f"{c.title} {c.text}") if is_topic(t)})
    need = max(2, math.ceil(len(cases) / 3))
    candidates = [w for w, n in used.items() if n >= need and w not in exclude]
    if not candidates:
        return []
    first, last = before - timedelta(days=28), before - timedelta(days=1)
    calls = max(documents(first, last), 1)
    background = store.term_counts(first, last, candidates)
    lift = {w: (used[w] / len(cases)) / ((background.get(w, 0) + 1) / (calls + 1)) for w in candidates}
    kept = [w for w in candidates if lift[w] >= min_lift]
    return sorted(kept, key=lambda w: (-used[w] * math.log(lift[w]), w))[:top]


def decide(items: Sequence[WorkItem], states: Sequence[WorkState]) -> None:
    """Give each item the latest decision on it: by its id, else on an item of its kind and cell whose days
    overlap (the same surge, grown since), whose id it then takes so its history stays one."""
    latest: dict[str, WorkState] = {}
    by_cell: dict[tuple[str, str, str], list[WorkState]] = {}
    for state in sorted(states, key=lambda s: s.at):
        latest[state.item_id] = state
    for state in latest.values():
        by_cell.setdefault((state.kind, state.area, state.category), []).append(state)
    for item in items:
        found = latest.get(item.id)
        if found is None:
            overlapping = [s for s in by_cell.get((item.kind, item.area, item.category), [])
                           if s.first_day <= item.end and s.last_day >= item.start - timedelta(days=2)]
            found = max(overlapping, key=lambda s: s.at) if overlapping else None
            if found is not None:
                item.id = found.item_id
        item.decision = found


def set_state(store: CaseStore, items: Sequence[WorkItem], item_id: str, state: str, by: str,
              department: str = "", note: str = "", taxonomy: Taxonomy | None = None,
              expected: str | None = None) -> WorkState:
    """Record a supervisor's decision on one item of ``items`` (the current work list).

    With ``expected`` (the state the supervisor saw), a decision made by
    someone else in between is a :class:`Conflict` instead of being overwritten.
    """
    item = next((i for i in items if i.id == item_id), None)
    if item is None:
        raise NotFound(f"no work-list item {item_id!r} in this period")
    if state == "assigned":
        if not department.strip():
            raise InvalidInput("assigning an item needs the department it is assigned to")
        if taxonomy is not None:
            ids = taxonomy.checked_departments([department])
            department = taxonomy.departments[ids[0]].name
    if len(note) > 2000:
        raise InvalidInput("a note is at most 2,000 characters")
    if unencodable(note):
        raise InvalidInput("the note holds characters that are not valid Unicode")
    note = normalize(note)  # as every other text: controls and bidi overrides out (one broke the XLSX export)
    entry = store.set_work_state(WorkState(item.id, item.kind, item.area, item.category, item.start, item.end, state,
                                           department if state == "assigned" else "", note, by,
                                           city_now(store.zone)), expected=expected)  # the store checks the state
    item.decision = entry
    return entry


def to_csv(items: Sequence[WorkItem]) -> str:
    """The work list as CSV (text cells safe to open in a spreadsheet), with a BOM so Excel reads UTF-8."""
    from hotline.spreadsheet import SafeWriter

    out = io.StringIO()
    out.write("\ufeff")
    writer = SafeWriter(out)
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(item.export_row() for item in items)
    return out.getvalue()


def to_xlsx(items: Sequence[WorkItem], title: str = "未诉先办工作清单") -> bytes:
    """The work list as an XLSX workbook (text cells neutralised as in the CSV)."""
    import openpyxl
    from openpyxl.styles import Alignment, Font

    from hotline.spreadsheet import xlsx_cell

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title[:31]
    sheet.append(list(EXPORT_COLUMNS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for item in items:
        sheet.append([xlsx_cell(v) for v in item.export_row()])
    widths = {"id": 14, "区域": 18, "类别": 14, "责任单位": 24, "事件": 36, "关键词": 20, "代表工单": 40, "说明": 50}
    for index, name in enumerate(EXPORT_COLUMNS, start=1):
        sheet.column_dimensions[openpyxl.utils.get_column_letter(index)].width = widths.get(name, 10)
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(vertical="top", wrap_text=True)
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def exporter(fmt: str) -> tuple[Callable[[Sequence[WorkItem]], str | bytes], str, str]:
    """(export function, media type, file suffix) of ``csv`` or ``xlsx``."""
    if fmt == "csv":
        return to_csv, "text/csv; charset=utf-8", "csv"
    if fmt == "xlsx":
        return to_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"
    raise InvalidInput(f"unknown export format {fmt!r}; use csv or xlsx")
