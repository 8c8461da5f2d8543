"""Import of case files (CSV, JSONL, XLSX; UTF-8 or GB18030) into the store.

Government exports are messy: GB18030 next to UTF-8, a broken byte in one
row, dates in four formats, empty cells. A good row is always kept; a bad
one goes to a reject file with its row number and reason, masked like
everything else, and never stops the import. Case ids come from the file
or, failing that, from the content, so importing the same file twice adds
nothing.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from hotline.case import Area, Case, Category, Channel, LabelKind, LabelSource, Location, Status, check_id
from hotline.errors import HotlineError, InvalidInput, TooLarge
from hotline.places import Gazetteer
from hotline.spreadsheet import SafeWriter
from hotline.store.rules import Writer
from hotline.taxonomy import Taxonomy
from hotline.text import pii, transcript
from hotline.text.clean import normalize, replace_unencodable, unencodable
from hotline.times import DEFAULT_ZONE, TimeWindow, city_now, to_local

log = logging.getLogger(__name__)

ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "case_id", "工单号", "工单编号", "编号", "留言编号"),
    "transcript": ("transcript", "通话记录", "通话文本", "录音文本", "asr"),
    "text": ("text", "content", "message", "留言详情", "内容", "诉求内容", "来电内容", "问题描述"),
    "title": ("title", "留言主题", "主题", "标题"),
    "time": ("received_at", "time", "date", "datetime", "留言时间", "来电时间", "受理时间", "created_at"),
    "channel": ("channel", "来源", "渠道", "受理渠道"),
    "caller": ("caller_phone", "caller", "phone", "来电号码", "联系电话"),
    "district": ("district", "区县", "所属区域", "区域"),
    "street": ("street", "街道", "镇街", "街道乡镇"),
    "address": ("address", "地址", "事发地址", "详细地址"),
    "lat": ("lat", "latitude", "纬度"),
    "lon": ("lon", "lng", "longitude", "经度"),
    "category": ("category", "label", "分类", "诉求分类"),
    "category_l1": ("category_l1", "一级分类"),
    "category_l2": ("category_l2", "二级分类"),
    "category_l3": ("category_l3", "三级分类"),
    "department": ("department", "departments", "承办单位", "处理部门"),
    "status": ("status", "状态", "办理状态"),
    "media_url": ("media_url", "图片链接", "附件链接"),
}
_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M",
    "%Y-%m-%d", "%Y/%m/%d", "%Y%m%d%H%M%S", "%Y%m%d", "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日",
)
_DEPARTMENT_SPLIT = re.compile(r"[|,，;；、/]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_SNIFF_BYTES = 1 << 22
_REASON_KIND = re.compile(r"[^:'\"(\d]*")


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which input column holds which field; ``None`` means: find it by its usual names."""

    id: str | None = None
    transcript: str | None = None
    text: str | None = None
    title: str | None = None
    time: str | None = None
    channel: str | None = None
    caller: str | None = None
    district: str | None = None
    street: str | None = None
    address: str | None = None
    lat: str | None = None
    lon: str | None = None
    category: str | None = None
    category_l1: str | None = None
    category_l2: str | None = None
    category_l3: str | None = None
    department: str | None = None
    status: str | None = None
    media_url: str | None = None

    def resolve(self, header: list[str]) -> dict[str, str]:
        """Field -> column for this header; a named column that is missing is an error."""
        present = {h.strip(): h for h in header}
        lowered = {h.strip().lower(): h for h in header}
        resolved: dict[str, str] = {}
        for f in fields(self):
            wanted = getattr(self, f.name)
            if wanted is not None:
                if wanted not in present:
                    raise InvalidInput(f"column {wanted!r} (for {f.name}) is not in the file; columns: {list(present)}")
                resolved[f.name] = present[wanted]
                continue
            for alias in ALIASES[f.name]:
                if alias.lower() in lowered:
                    resolved[f.name] = lowered[alias.lower()]
                    break
        if "text" not in resolved and "transcript" not in resolved:
            raise InvalidInput(f"no text column found (use --text-col or --transcript-col); columns: {list(present)}")
        return resolved


@dataclass(frozen=True, slots=True)
class Record:
    """One input row: its 1-based row number (the header is row 1) and its cells."""

    row: int
    values: dict[str, Any]
    error: str | None = None


@dataclass(slots=True)
class Reject:
    row: int
    reason: str
    content: str


@dataclass(slots=True)
class IngestReport:
    source: str
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    encoding: str = ""
    rejects_path: str | None = None
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- readers
def detect_encoding(head: bytes) -> str:
    """'utf-8-sig' when the start decodes as UTF-8, else 'gb18030' when that decodes, else 'utf-8'."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(head, final=False)
            return encoding
        except UnicodeDecodeError:
            continue
    return "utf-8-sig"


def read_records(path: Path) -> tuple[list[str], Iterator[Record], str]:
    """(header, records, encoding) of a CSV, JSONL or XLSX file, chosen by its suffix."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    if suffix in (".csv", ".tsv", ".txt"):
        return _read_csv(path, "\t" if suffix == ".tsv" else ",")
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path)
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    raise InvalidInput(f"cannot import {path.name}: use .csv, .tsv, .jsonl or .xlsx")


def _open_text(path: Path) -> tuple[io.TextIOWrapper, str]:
    raw: BinaryIO = path.open("rb")
    encoding = detect_encoding(raw.read(_SNIFF_BYTES))
    raw.seek(0)
    return io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline=""), encoding


def _read_csv(path: Path, delimiter: str) -> tuple[list[str], Iterator[Record], str]:
    fh, encoding = _open_text(path)
    csv.field_size_limit(1 << 24)
    reader = csv.reader(fh, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        fh.close()
        raise InvalidInput(f"{path.name} is empty") from None
    except csv.Error as exc:
        fh.close()
        raise InvalidInput(f"{path.name} is not a readable CSV file: {exc}") from None
    header = [h.lstrip("\ufeff") for h in header]

    def records() -> Iterator[Record]:
        with fh:
            number = 1
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    number += 1
                    yield Record(number, {}, f"unreadable CSV row: {exc}")
                    continue
                number += 1
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    yield Record(number, dict(zip(header, cells, strict=False)), f"has {len(cells)} cells, the header has {len(header)}")
                    continue
                yield Record(number, dict(zip(header, cells, strict=True)))

    return header, records(), encoding


def _read_jsonl(path: Path) -> tuple[list[str], Iterator[Record], str]:
    fh, encoding = _open_text(path)
    lines = list(_numbered_lines(fh))
    header: list[str] = []
    for _, line in lines[:1000]:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            header.extend(k for k in obj if k not in header)

    def records() -> Iterator[Record]:
        for number, line in lines:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Record(number, {"line": line}, f"not JSON: {exc.msg}")
                continue
            if not isinstance(obj, dict):
                yield Record(number, {"line": line}, "not a JSON object")
                continue
            yield Record(number, {k: ("" if v is None else v) for k, v in obj.items()})

    return header, records(), encoding


def _numbered_lines(fh: io.TextIOWrapper) -> Iterator[tuple[int, str]]:
    with fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield number, line.strip()


def _read_xlsx(path: Path) -> tuple[list[str], Iterator[Record], str]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 (openpyxl raises many kinds for a broken file)
        raise InvalidInput(f"{path.name} is not a readable XLSX file: {exc}") from None
    rows = book.worksheets[0].iter_rows(values_only=True)
    try:
        header = ["" if h is None else str(h).strip() for h in next(rows)]
    except StopIteration:
        book.close()
        raise InvalidInput(f"{path.name} has an empty first sheet") from None

    def records() -> Iterator[Record]:
        try:
            for number, cells in enumerate(rows, start=2):
                if all(c is None or str(c).strip() == "" for c in cells):
                    continue
                yield Record(number, {h: ("" if c is None else c) for h, c in zip(header, cells, strict=False)})
        finally:
            book.close()

    return header, records(), "xlsx"


# ---------------------------------------------------------------- fields
def parse_time(value: Any, city: ZoneInfo | None = None) -> datetime:
    """A timestamp from the usual export formats (or an Excel date cell), in the city's local time.

    An offset (``+08:00``, ``Z``) is converted into ``city`` (Asia/Shanghai by
    default), never dropped; a time without one is taken as local already.
    """
    city = city or ZoneInfo(DEFAULT_ZONE)
    if isinstance(value, datetime):
        return to_local(value, city)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = str(value).strip()
    if not text:
        raise InvalidInput("no date")
    try:
        return to_local(datetime.fromisoformat(text.replace("z", "Z")), city)
    except ValueError:
        pass
    if "." in text[-7:]:
        text = text.rsplit(".", 1)[0]
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise InvalidInput(f"bad date {str(value)[:40]!r}")


def _cell(values: dict[str, Any], columns: dict[str, str], name: str) -> str:
    column = columns.get(name)
    if column is None:
        return ""
    value = values.get(column, "")
    return "" if value is None else str(value).strip()


def split_departments(cell: str) -> tuple[str, ...]:
    """The departments in one cell of an export: ``城管局|住建局``, ``城管局，住建局``, ``城管局、住建局`` …"""
    return tuple(name for name in (part.strip() for part in _DEPARTMENT_SPLIT.split(cell)) if name)


def _media_url(value: str) -> str:
    """A caller's photo or document: an http(s) address, or nothing."""
    if value and not re.fullmatch(r"https?://\S{1,490}", value):
        raise InvalidInput(f"media_url {value[:60]!r} is not an http(s) address")
    return value


def mask_caller(value: str) -> str:
    """Phone numbers masked by :func:`pii.mask` (3+4 of a mobile stay, for the callback); everything else
    hidden entirely: a name beside the number, a QQ or WeChat id, a number the masker does not know."""
    masked = re.sub(r"[^\W\d_]", "*", pii.mask(normalize(value)))  # every letter and Han character
    return " ".join(token if "*" in token else re.sub(r"\d", "*", token) for token in masked.split(" "))


class CaseBuilder:
    """Turns an input record into a masked, placed :class:`Case`.

    Shared by file import and the API, so a case looks the same however it
    arrived.
    """

    def __init__(self, gazetteer: Gazetteer, taxonomy: Taxonomy, max_chars: int = 20_000, source: str = "",
                 window: TimeWindow | None = None) -> None:
        self.gazetteer = gazetteer
        self.taxonomy = taxonomy
        self.max_chars = max_chars
        self.source = source
        self.window = window or TimeWindow()

    def build(self, values: dict[str, Any], columns: dict[str, str], now: datetime | None = None) -> Case:
        cell = lambda name: _cell(values, columns, name)  # noqa: E731
        raw_transcript, raw_text, raw_title = cell("transcript"), cell("text"), cell("title")
        for name, raw in (("transcript", raw_transcript), ("text", raw_text), ("title", raw_title)):
            if len(raw) > self.max_chars:
                raise TooLarge(f"oversize {name}: {len(raw)} characters, the limit is {self.max_chars}")
        for name in columns:
            if unencodable(cell(name)):
                raise InvalidInput(f"wrong encoding in {name}: bytes that are neither UTF-8 nor GB18030")
        # Masked first, on the raw text and the whole dialogue, then cleaned (and masked again: the clean-up
        # may join what was apart).
        masked_transcript = ""
        if raw_transcript:
            parsed, masked_transcript = transcript.masked(raw_transcript, pii.mask)
        if raw_text:
            text = normalize(pii.mask(raw_text))
        elif raw_transcript:
            text = parsed.caller_account()
        else:
            text = ""
        if not text.strip():
            raise InvalidInput("no text" if not raw_transcript else "no caller text in the transcript")
        text, title = pii.mask(text), pii.mask(normalize(pii.mask(raw_title)))
        address = pii.mask(normalize(pii.mask(cell("address"))))
        if "time" in columns:
            received = self.window.check(parse_time(values.get(columns["time"], ""), self.window.city))
            stamp = f"{received:%Y%m%d%H%M%S}"
        else:
            received, stamp = now or city_now(self.window.city), ""
        if cell("id"):
            case_id = check_id(cell("id"))
        else:
            # Everything that makes a report distinct: three citizens sending the same words from three addresses in
            # one second were given one id, and two of the addresses were overwritten. A retry of the same report
            # (every field the same) keeps its id, so a resent report is not a second case.
            distinct = (stamp, text, title, address, cell("caller"), cell("district"), cell("street"), cell("lat"),
                        cell("lon"), cell("category"), cell("category_l1"), cell("category_l2"), cell("department"),
                        cell("channel"), cell("media_url"), self.source)
            case_id = "H" + hashlib.blake2b("\x1f".join(distinct).encode(), digest_size=10).hexdigest()
        area = Area(cell("district"), cell("street"))
        if not area.district:
            found = self.gazetteer.extract(" ".join((address, title, text)))
            area = Area(found.district, area.street or found.street)
        return Case(
            id=case_id,
            received_at=received,
            text=text,
            channel=Channel.parse(cell("channel")),
            transcript=masked_transcript,
            title=title,
            caller=mask_caller(cell("caller")),
            area=area,
            address=address,
            location=self._location(cell("lat"), cell("lon")),
            category=(category := self._category(cell)),
            category_source=LabelSource(LabelKind.IMPORTED, self.source, received) if category else None,
            departments=(departments := self._departments(cell("department"))),
            departments_source=LabelSource(LabelKind.IMPORTED, self.source, received) if departments else None,
            status=Status.parse(cell("status")),
            media_url=_media_url(cell("media_url")),
        )

    @staticmethod
    def _location(lat: str, lon: str) -> Location | None:
        if not lat and not lon:
            return None
        try:
            return Location(float(lat), float(lon))
        except ValueError:
            raise InvalidInput(f"bad coordinates {lat!r}, {lon!r}") from None

    def _category(self, cell: Any) -> Category | None:
        path = cell("category")
        l1, l2, l3 = cell("category_l1"), cell("category_l2"), cell("category_l3")
        if path:
            category = Category.parse(path)
        elif l1 or l2:
            if not l1 and l2 in self.taxonomy.categories:
                l1 = self.taxonomy.categories[l2].l1
            category = Category(l1, l2, l3 if l2 else "")
        else:
            return None
        if category.l1 in self.taxonomy.categories and not category.l2:
            category = Category(self.taxonomy.categories[category.l1].l1, category.l1)
        return category

    def _departments(self, value: str) -> tuple[str, ...]:
        out: list[str] = []
        for name in split_departments(value):
            try:
                name = self.taxonomy.department_id(name)
            except HotlineError:
                pass
            if name not in out:
                out.append(name)
        return tuple(out)


# ---------------------------------------------------------------- import
def ingest(
    path: Path,
    store: Any,
    builder: CaseBuilder,
    columns: ColumnMap = ColumnMap(),
    rejects_path: Path | None = None,
    progress: bool = False,
    writer: Writer | None = None,
) -> IngestReport:
    """Import one file into ``store``; bad rows go to ``rejects_path`` (written only if any).

    The file's cases belong to ``import:NAME``; the operator's import may update
    cases of any source (``writer`` says otherwise), and every change is in the
    store's content log.
    """
    writer = writer or Writer(f"import:{path.name}", privileged=True)
    started = time.perf_counter()
    header, records, encoding = read_records(path)
    mapping = columns.resolve(header)
    report = IngestReport(source=str(path), encoding=encoding)
    if "time" not in mapping:
        log.warning("%s has no time column: cases get the import time", path.name)
    rejects: list[Reject] = []
    now = city_now(builder.window.city)

    def good_cases() -> Iterator[Case]:
        for record in _progress(records, progress, path.name):
            report.read += 1
            try:
                if record.error:
                    raise InvalidInput(record.error)
                case = builder.build(record.values, mapping, now)
            except InvalidInput as exc:
                reason = str(exc)
                rejects.append(Reject(record.row, reason, _masked_content(record.values)))
                key = _REASON_KIND.match(reason).group().strip() or reason[:40]  # type: ignore[union-attr]
                report.reasons[key] = report.reasons.get(key, 0) + 1
                continue
            report.accepted += 1
            yield case

    result = store.upsert(good_cases(), writer=writer)
    report.inserted, report.updated, report.unchanged = result.inserted, result.updated, result.unchanged
    report.rejected = len(rejects)
    if rejects:
        target = rejects_path or Path("var/rejects") / f"{path.stem}.rejects.csv"
        write_rejects(rejects, target)
        report.rejects_path = str(target)
    report.seconds = time.perf_counter() - started
    log.info("imported %s: %d read, %d accepted, %d rejected", path.name, report.read, report.accepted, report.rejected)
    return report


def _progress(records: Iterable[Record], enabled: bool, name: str) -> Iterable[Record]:
    if not enabled:
        return records
    from tqdm import tqdm

    return tqdm(records, desc=f"导入 {name}", unit=" 行", disable=None)


def _masked_content(values: dict[str, Any]) -> str:
    cleaned = {str(k): replace_unencodable(str(v)) for k, v in values.items()}
    return pii.mask(json.dumps(cleaned, ensure_ascii=False))


def write_rejects(rejects: list[Reject], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = SafeWriter(fh)
        writer.writerow(["row", "reason", "content"])
        for r in rejects:
            writer.writerow([r.row, r.reason, r.content])
