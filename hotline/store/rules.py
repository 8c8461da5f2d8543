"""What a write may do to a case that already exists, whatever the backend.

A case belongs to the source that created it (an agent's key, an Open311
client, an import). Before these rules, ``POST /v1/cases`` with another
agent's id replaced its text, time and labels, and a re-post without labels
erased them, with nothing in any log. Now:

- a write of an existing id from another source is refused (409), unless the
  writer is privileged (an admin, or the operator's own file import);
- a write never clears a label: what it leaves out is kept, and an agent's
  confirmed label outranks an imported or predicted one;
- every change of content is recorded (who, when, each field before and after),
  like label changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hotline.case import Case, LabelKind
from hotline.errors import Conflict


@dataclass(frozen=True, slots=True)
class Writer:
    """Who writes: ``source`` becomes the owner of the cases it creates; ``privileged`` may change others'."""

    source: str
    privileged: bool = False


#: Internal writers (tests, the search index's own copy, migrations).
SYSTEM = Writer("system", privileged=True)

#: The fields whose change is audited as content (labels have their own log).
CONTENT_FIELDS = ("received_at", "channel", "title", "text", "transcript", "caller", "district", "street", "address",
                  "lat", "lon", "status", "event_id", "media_url")


def check_owner(case_id: str, owner: str, writer: Writer) -> None:
    """Refuse a write to a case another source created, unless the writer is privileged."""
    if owner != writer.source and not writer.privileged:
        raise Conflict(f"case {case_id!r} was created by another source; only its creator or an admin may change it")


def merge_labels(new: Case, old: Case) -> Case:
    """``new`` with the labels it leaves out, or may not replace, taken from ``old``.

    A label missing from the write is kept; an agent's confirmed label
    survives anything that is not itself confirmed.
    """
    def keeps_old(new_source: Any, old_source: Any) -> bool:
        if old_source is None:
            return False
        if new_source is None:
            return True
        return old_source.kind is LabelKind.CONFIRMED and new_source.kind is not LabelKind.CONFIRMED

    if keeps_old(new.category_source, old.category_source):
        new = new.with_label(old.category_source, category=old.category)  # type: ignore[arg-type]
    if keeps_old(new.departments_source, old.departments_source):
        new = new.with_label(old.departments_source, departments=old.departments)  # type: ignore[arg-type]
    return new


def content_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` for each content field that differs between two stored rows."""
    return {f: [old.get(f), new.get(f)] for f in CONTENT_FIELDS if old.get(f) != new.get(f)}
