"""Labeled examples from a file, prepared exactly as routing prepares a live case.

A model sees at training time what it will see in service: the caller's
account (transcripts parsed, greetings and fillers dropped), masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hotline.errors import InvalidInput
from hotline.ingest import ColumnMap, parse_time, read_records, split_departments
from hotline.places import Gazetteer
from hotline.text import pii, transcript

#: ``department_col`` meaning: the file's department column by its usual names, if it has one.
USUAL = "*"


def prepare_text(raw: str) -> str:
    """Transcript or message → the masked caller's account (what models read).

    Masked first, on the whole dialogue, then cleaned (:func:`transcript.masked`);
    masked again after, since the clean-up may join what was apart.
    """
    parsed, _ = transcript.masked(raw, pii.mask)
    return pii.mask(parsed.caller_account())


@dataclass
class Examples:
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    times: list[datetime | None] = field(default_factory=list)
    districts: list[str] = field(default_factory=list)
    departments: list[tuple[str, ...]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    skipped: int = 0


def load_examples(
    path: Path,
    text_col: str,
    label_col: str | None,
    department_col: str | None = None,
    gazetteer: Gazetteer | None = None,
) -> Examples:
    """Read ``path``; ``label_col`` may name several columns (``a,b``) that form a path ``a/b``.

    Rows without text or label are skipped and counted; id, time and
    district columns are found by their usual names when present, and so is
    the department column when ``department_col`` is :data:`USUAL`.
    """
    header, records, _ = read_records(Path(path))
    if department_col == USUAL:
        department_col = ColumnMap(text=text_col).resolve(header).get("department")
    label_cols = [c.strip() for c in label_col.split(",")] if label_col else []
    for column in (text_col, *label_cols, *([department_col] if department_col else [])):
        if column not in header:
            raise InvalidInput(f"column {column!r} is not in {Path(path).name}; columns: {header}")
    optional = ColumnMap(text=text_col).resolve(header)
    out = Examples()
    for record in records:
        values = record.values
        raw = str(values.get(text_col, "") or "")
        label = "/".join(str(values.get(c, "") or "").strip() for c in label_cols)
        if record.error or not raw.strip() or (label_cols and not all(part for part in label.split("/"))):
            out.skipped += 1
            continue
        try:
            text = prepare_text(raw)
        except InvalidInput:
            out.skipped += 1
            continue
        if not text.strip():
            out.skipped += 1
            continue
        out.texts.append(text)
        out.labels.append(label)
        out.rows.append(record.row)
        out.ids.append(str(values.get(optional["id"], "")) if "id" in optional else f"row{record.row}")
        try:
            out.times.append(parse_time(values[optional["time"]]) if "time" in optional else None)
        except InvalidInput:
            out.times.append(None)
        district = str(values.get(optional["district"], "") or "") if "district" in optional else ""
        if not district and gazetteer is not None:
            district = gazetteer.extract(text).district
        out.districts.append(district)
        if department_col:
            out.departments.append(split_departments(str(values.get(department_col, "") or "")))
    if not out.texts:
        raise InvalidInput(f"{Path(path).name} has no rows with both text and label")
    return out
