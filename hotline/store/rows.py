"""A case as a row of columns, whatever the backend: the one mapping every store shares.

Both backends keep the same columns, so the content hash that decides
whether a write changed anything, the tokens the text search matches, and
the label audit entries are computed here once. Backends differ only in
the SQL around them (and in how a database hands back a time: a string
from SQLite, a ``datetime`` from PostgreSQL).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hotline.case import Area, Case, Category, Channel, LabelKind, LabelSource, Location, Status
from hotline.store.base import CaseQuery
from hotline.store.rules import Writer, check_owner, content_changes, merge_labels
from hotline.times import city_now, format_time, parse_time

#: Every column a case is written to, in one order.
CASE_COLUMNS = (
    "id", "received_at", "channel", "title", "text", "transcript", "caller", "district", "street",
    "address", "lat", "lon", "category_l1", "category_l2", "category_l3", "category_kind", "category_by",
    "category_at", "departments", "departments_kind", "departments_by", "departments_at", "status",
    "event_id", "media_url", "tokens", "content_hash", "updated_at",
)
#: What a Case is read from: every case column but the tokens and the hash, the update time last.
READ_COLUMNS = (*CASE_COLUMNS[:-3], "updated_at")
#: The columns a label change writes.
LABEL_COLUMNS = (*(c for c in CASE_COLUMNS if c.startswith(("category_", "departments"))), "content_hash", "updated_at")


def join_departments(departments: Sequence[str]) -> str:
    """``|a|b|``: a department filter is then one substring test that cannot match a longer name."""
    return "|" + "|".join(departments) + "|" if departments else ""


def split_departments(departments: str) -> tuple[str, ...]:
    return tuple(d for d in departments.split("|") if d)


def as_time(value: str | datetime | None) -> datetime | None:
    """A stored time as a datetime: SQLite hands back text, PostgreSQL a datetime."""
    return value.replace(microsecond=0) if isinstance(value, datetime) else parse_time(value)


def _source(kind: str | None, by: str | None, at: str | datetime | None) -> LabelSource | None:
    return LabelSource(LabelKind(kind), by or "", as_time(at)) if kind else None


def case_row(case: Case, now: str) -> dict[str, Any]:
    """The columns of ``case`` (tokens left empty: they are computed only for rows that are written)."""
    cat, dep = case.category, case.departments_source
    row: dict[str, Any] = {
        "id": case.id,
        "received_at": format_time(case.received_at),
        "channel": case.channel.value,
        "title": case.title,
        "text": case.text,
        "transcript": case.transcript,
        "caller": case.caller,
        "district": case.area.district,
        "street": case.area.street,
        "address": case.address,
        "lat": case.location.lat if case.location else None,
        "lon": case.location.lon if case.location else None,
        "category_l1": cat.l1 if cat else None,
        "category_l2": (cat.l2 or None) if cat else None,
        "category_l3": (cat.l3 or None) if cat else None,
        "category_kind": case.category_source.kind.value if case.category_source else None,
        "category_by": case.category_source.by if case.category_source else None,
        "category_at": format_time(case.category_source.at) if case.category_source else None,
        "departments": join_departments(case.departments),
        "departments_kind": dep.kind.value if dep else None,
        "departments_by": dep.by if dep else None,
        "departments_at": format_time(dep.at) if dep else None,
        "status": case.status.value,
        "event_id": case.event_id,
        "media_url": case.media_url,
    }
    # Without an empty media_url, so that cases stored before it existed keep their hash.
    hashed = {k: v for k, v in row.items() if k != "media_url" or v}
    row["content_hash"] = hashlib.blake2b(repr(sorted(hashed.items())).encode(), digest_size=16).hexdigest()
    row["tokens"] = ""
    row["updated_at"] = now
    return row


def case_from_row(r: Sequence[Any]) -> Case:
    """The case of a row read in :data:`READ_COLUMNS` order."""
    (id_, received, channel, title, text, transcript, caller, district, street, address, lat, lon,
     l1, l2, l3, c_kind, c_by, c_at, departments, d_kind, d_by, d_at, status, event_id, media_url, updated) = r
    return Case(
        id=id_,
        received_at=as_time(received),  # type: ignore[arg-type]  # a NOT NULL column
        text=text,
        channel=Channel(channel),
        transcript=transcript,
        title=title,
        caller=caller,
        area=Area(district, street),
        address=address,
        location=Location(lat, lon) if lat is not None and lon is not None else None,
        category=Category(l1, l2 or "", l3 or "") if l1 else None,
        category_source=_source(c_kind, c_by, c_at),
        departments=split_departments(departments),
        departments_source=_source(d_kind, d_by, d_at),
        status=Status(status),
        event_id=event_id,
        media_url=media_url or "",
        updated_at=as_time(updated),
    )


#: A case's cell category in SQL, as the index ``cases_cell`` holds it (the expression must match it exactly).
CELL_CATEGORY = "COALESCE(c.category_l2, c.category_l1)"


def field_filters(query: CaseQuery) -> list[tuple[str, list[Any]]]:
    """The WHERE conditions of a query on the case's own columns (``?`` placeholders, table alias ``c``).

    Text and department matching differ between backends and are theirs to add.
    """
    filters: list[tuple[str, list[Any]]] = []
    if query.start:
        filters.append(("c.received_at >= ?", [format_time(query.start)]))
    if query.end:
        filters.append(("c.received_at <= ?", [format_time(query.end)]))
    for column, value in (("district", query.district), ("street", query.street), ("status", query.status),
                          ("channel", query.channel), ("event_id", query.event_id)):
        if value:
            filters.append((f"c.{column} = ?", [value]))
    if query.statuses:
        filters.append((f"c.status IN ({','.join('?' * len(query.statuses))})", list(query.statuses)))
    if query.category:
        parts = Category.parse(query.category).path.split("/")
        if len(parts) == 1:
            filters.append(("? IN (c.category_l1, c.category_l2, c.category_l3)", [parts[0]]))
        else:
            for column, part in zip(("category_l1", "category_l2", "category_l3"), parts, strict=False):
                filters.append((f"c.{column} = ?", [part]))
    if query.cell_category:
        filters.append((f"{CELL_CATEGORY} = ?", [query.cell_category]))
    return filters


def label_entry(before: Case, source: LabelSource, category: Category | None,
                departments: Sequence[str] | None, now: datetime) -> dict[str, Any]:
    """One entry of the label audit log: the new labels beside the ones they replace, stamped ``now`` (the
    store's clock: the city's)."""
    return {
        "case_id": before.id, "at": format_time(now), "kind": source.kind.value,
        "by": source.by, "category": category.path if category else None,
        "departments": join_departments(departments) if departments is not None else None,
        "previous_category": before.category.path if before.category else None,
        "previous_departments": join_departments(before.departments),
    }


@dataclass(slots=True)
class UpsertPlan:
    """What one batch of writes does: rows to insert and update, and the audit entries they leave."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    case_log: list[dict[str, Any]] = field(default_factory=list)
    label_log: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0


def plan_upsert(batch: Sequence[Case], existing: dict[str, tuple[str, str, Case]], writer: Writer,
                tokenize: Callable[[str], list[str]], now: str | None = None) -> UpsertPlan:
    """Apply the write rules to a batch against what is stored (``{id: (owner, content hash, case)}``).

    A case of another source is refused (the whole batch), a write keeps the
    labels it leaves out and an agent's confirmed label, an unchanged case is
    not written, and every change of content or label is logged.
    """
    now = now or format_time(city_now())
    latest: dict[str, Case] = {case.id: case for case in batch}
    plan = UpsertPlan(unchanged=len(batch) - len(latest))
    for case_id, case in latest.items():
        old = existing.get(case_id)
        if old is None:
            row = case_row(case, now)
            row["owner"] = writer.source
            plan.inserts.append(row)
            continue
        owner, stored_hash, before = old
        check_owner(case_id, owner, writer)
        case = merge_labels(case, before)
        row = case_row(case, now)
        if stored_hash == row["content_hash"]:
            plan.unchanged += 1
            continue
        plan.updates.append(row)
        changes = content_changes(case_row(before, now), row)
        if changes:
            plan.case_log.append({"case_id": case_id, "at": now, "by": writer.source,
                                  "changes": json.dumps(changes, ensure_ascii=False)})
        if (case.category, case.departments) != (before.category, before.departments):
            category_changed = case.category != before.category
            source = case.category_source if category_changed else case.departments_source
            plan.label_log.append(label_entry(before, source,  # type: ignore[arg-type]  # a changed label has its source
                                              case.category if category_changed else None,
                                              case.departments if case.departments != before.departments else None,
                                              datetime.fromisoformat(now)))
    for row in (*plan.inserts, *plan.updates):
        row["tokens"] = " ".join(tokenize(f"{row['title']} {row['text']}"))
    return plan


def relabel(before: Case, source: LabelSource, category: Category | None,
            departments: tuple[str, ...] | None, now: datetime) -> tuple[Case, dict[str, Any], dict[str, Any]]:
    """A label change: the case after it, the :data:`LABEL_COLUMNS` (and id) to write, and its audit entry."""
    after = before.with_label(source, category=category, departments=departments)
    fresh = case_row(after, format_time(now))
    return after, {c: fresh[c] for c in (*LABEL_COLUMNS, "id")}, label_entry(before, source, category, departments,
                                                                            now)


#: Columns of a persisted event, as the store keeps them (``state`` is the clusterer's JSON).
EVENT_COLUMNS = ("id", "district", "street", "first_seen", "last_seen", "size", "category", "place", "title", "state")


def term_deltas(removed: Iterable[tuple[str, str]], added: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """How the daily term counts change: each (day, tokens) removed takes one from each of its distinct words
    that day, each one added gives one; words whose count does not move are left out."""
    delta: Counter[tuple[str, str]] = Counter()
    for day, tokens in removed:
        delta.subtract((day, word) for word in set(tokens.split()))
    for day, tokens in added:
        delta.update((day, word) for word in set(tokens.split()))
    return {key: n for key, n in sorted(delta.items()) if n}

