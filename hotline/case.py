"""The 12345 case (工单) and the small value types it is made of.

A :class:`Case` holds only masked text: personal data is removed before a case
is built (see :mod:`hotline.text.pii`), so whatever stores, indexes or logs a
case cannot leak it. Every label carries its :class:`LabelSource`, so a model
trained later can tell an agent's confirmed choice from a model's guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from hotline.errors import InvalidInput
from hotline.text import pii
from hotline.times import format_time, parse_time


def _parse_named(kind: type[Any], value: str | None, default: Any, aliases: dict[str, Any]) -> Any:
    """A member of ``kind`` from its value or an alias (case and spaces ignored); empty is ``default``."""
    if value is None or not str(value).strip():
        return default
    text = str(value).strip().lower()
    if text in aliases:
        return aliases[text]
    try:
        return kind(text)
    except ValueError:
        raise InvalidInput(f"unknown {kind.__name__.lower()} {value!r}; use one of {[m.value for m in kind]}") from None


class Channel(StrEnum):
    """How the citizen reached the hotline."""

    PHONE = "phone"
    WEB = "web"
    APP = "app"
    WECHAT = "wechat"

    @classmethod
    def parse(cls, value: str | None) -> Channel:
        """Accept our names and the usual Chinese ones; empty means phone, the hotline's default."""
        return _parse_named(cls, value, cls.PHONE, {
            "电话": cls.PHONE, "热线": cls.PHONE, "来电": cls.PHONE, "tel": cls.PHONE,
            "网站": cls.WEB, "网络": cls.WEB, "留言": cls.WEB, "网上": cls.WEB, "web": cls.WEB,
            "app": cls.APP, "客户端": cls.APP, "手机app": cls.APP,
            "微信": cls.WECHAT, "公众号": cls.WECHAT, "小程序": cls.WECHAT, "wechat": cls.WECHAT,
        })


class Status(StrEnum):
    """Life cycle of a case, in the order a case normally moves through it."""

    RECEIVED = "received"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"

    @classmethod
    def parse(cls, value: str | None) -> Status:
        """Our names and the usual Chinese ones; empty means received."""
        return _parse_named(cls, value, cls.RECEIVED, {
            "已受理": cls.RECEIVED, "受理": cls.RECEIVED, "待派单": cls.RECEIVED,
            "已派单": cls.DISPATCHED, "派单": cls.DISPATCHED,
            "办理中": cls.IN_PROGRESS, "处理中": cls.IN_PROGRESS,
            "已办结": cls.RESOLVED, "办结": cls.RESOLVED, "已解决": cls.RESOLVED,
            "已归档": cls.CLOSED, "关闭": cls.CLOSED, "已回访": cls.CLOSED,
        })


class LabelKind(StrEnum):
    """Where a label came from; only ``confirmed`` and ``imported`` are ground truth for training."""

    PREDICTED = "predicted"
    CONFIRMED = "confirmed"
    IMPORTED = "imported"


@dataclass(frozen=True, slots=True)
class LabelSource:
    """Provenance of a label: a model version, an agent, or an import file."""

    kind: LabelKind
    by: str = ""
    at: datetime | None = None

    @property
    def is_truth(self) -> bool:
        return self.kind is not LabelKind.PREDICTED


@dataclass(frozen=True, slots=True)
class Category:
    """A category path of up to three levels (一级/二级/三级分类)."""

    l1: str
    l2: str = ""
    l3: str = ""

    def __post_init__(self) -> None:
        if not self.l1 or (self.l3 and not self.l2):
            raise InvalidInput(f"category levels must be filled from the top: {self.path!r}")

    @property
    def path(self) -> str:
        return "/".join(part for part in (self.l1, self.l2, self.l3) if part)

    @classmethod
    def parse(cls, path: str) -> Category:
        """Parse ``一级/二级/三级`` (also ``>`` or ``-`` separated)."""
        text = path.strip()
        for sep in (">", "-", "｜", "|", "／"):
            text = text.replace(sep, "/")
        parts = [part.strip() for part in text.split("/") if part.strip()]
        if not parts or len(parts) > 3:
            raise InvalidInput(f"category {path!r} must have one to three levels")
        return cls(*parts)

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class Area:
    """Where the problem is: district (区/县级市) and street or town (街道/镇)."""

    district: str = ""
    street: str = ""

    def __bool__(self) -> bool:
        return bool(self.district or self.street)

    def __str__(self) -> str:
        return "".join((self.district, self.street))


@dataclass(frozen=True, slots=True)
class Location:
    """WGS-84 coordinates."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise InvalidInput(f"coordinates out of range: {self.lat}, {self.lon}")


#: Ids appear in URLs (/v1/cases/{id}) and logs: no control characters (NUL was accepted), no path characters.
MAX_ID_CHARS = 100
_BAD_ID = re.compile(r"[\x00-\x20\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff/\\?#%\s]")


def check_id(case_id: str) -> str:
    """``case_id`` if it can be a new case's id; checked where cases come in (stored ones are read as they are)."""
    if not case_id or len(case_id) > MAX_ID_CHARS or _BAD_ID.search(case_id):
        raise InvalidInput(f"case id {case_id[:40]!r} must be 1 to {MAX_ID_CHARS} characters without spaces, "
                           "control characters or / \\ ? # %")
    if pii.holds_personal_number(case_id):  # ids are published in the public Open311 feed
        raise InvalidInput("case id holds a phone, ID or card number: choose an id without personal data")
    return case_id


@dataclass(frozen=True, slots=True)
class Case:
    """One 12345 work order; all text fields are already PII-masked."""

    id: str
    received_at: datetime
    text: str
    channel: Channel = Channel.PHONE
    transcript: str = ""
    title: str = ""
    caller: str = ""
    area: Area = field(default_factory=Area)
    address: str = ""
    location: Location | None = None
    category: Category | None = None
    category_source: LabelSource | None = None
    departments: tuple[str, ...] = ()
    departments_source: LabelSource | None = None
    status: Status = Status.RECEIVED
    event_id: str | None = None
    media_url: str = ""
    updated_at: datetime | None = field(default=None, compare=False)  # when the store last changed it

    def __post_init__(self) -> None:
        if not self.id or not self.id.strip():
            raise InvalidInput("case id must not be empty")

        if not self.text.strip():
            raise InvalidInput(f"case {self.id}: text must not be empty")
        if self.category is not None and self.category_source is None:
            raise InvalidInput(f"case {self.id}: a category needs its label source")
        if self.departments and self.departments_source is None:
            raise InvalidInput(f"case {self.id}: departments need their label source")

    def with_label(
        self,
        source: LabelSource,
        category: Category | None = None,
        departments: tuple[str, ...] | None = None,
    ) -> Case:
        """A copy with a new category and/or departments from ``source``."""
        changes: dict[str, Any] = {}
        if category is not None:
            changes.update(category=category, category_source=source)
        if departments is not None:
            changes.update(departments=tuple(departments), departments_source=source)
        return replace(self, **changes)

    def to_dict(self, caller: bool = True) -> dict[str, Any]:
        """Plain JSON-ready fields (times as ``YYYY-MM-DD HH:MM:SS``); ``caller=False`` leaves the caller out."""
        def source(s: LabelSource | None) -> dict[str, Any] | None:
            return None if s is None else {"kind": s.kind.value, "by": s.by, "at": format_time(s.at)}

        return {
            "id": self.id,
            "received_at": format_time(self.received_at),
            "channel": self.channel.value,
            "title": self.title,
            "text": self.text,
            "transcript": self.transcript,
            **({"caller": self.caller} if caller else {}),
            "district": self.area.district,
            "street": self.area.street,
            "address": self.address,
            "location": None if self.location is None else {"lat": self.location.lat, "lon": self.location.lon},
            "category": self.category.path if self.category else None,
            "category_source": source(self.category_source),
            "departments": list(self.departments),
            "departments_source": source(self.departments_source),
            "status": self.status.value,
            "event_id": self.event_id,
            "media_url": self.media_url,
            "updated_at": format_time(self.updated_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        """The inverse of :meth:`to_dict`; malformed fields raise :class:`InvalidInput`."""
        def source(raw: dict[str, Any] | None) -> LabelSource | None:
            if not raw:
                return None
            return LabelSource(LabelKind(raw["kind"]), raw.get("by") or "", parse_time(raw.get("at")))

        try:
            location = data.get("location")
            return cls(
                id=str(data["id"]),
                received_at=parse_time(data["received_at"]),  # type: ignore[arg-type]
                text=data["text"],
                channel=Channel(data.get("channel") or Channel.PHONE.value),
                transcript=data.get("transcript") or "",
                title=data.get("title") or "",
                caller=data.get("caller") or "",
                area=Area(data.get("district") or "", data.get("street") or ""),
                address=data.get("address") or "",
                location=Location(float(location["lat"]), float(location["lon"])) if location else None,
                category=Category.parse(data["category"]) if data.get("category") else None,
                category_source=source(data.get("category_source")),
                departments=tuple(data.get("departments") or ()),
                departments_source=source(data.get("departments_source")),
                status=Status(data.get("status") or Status.RECEIVED.value),
                event_id=data.get("event_id"),
                media_url=data.get("media_url") or "",
                updated_at=parse_time(data.get("updated_at")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed case {data.get('id', '?')!r}: {exc}") from None


#: Characters of a similar case's text shown to agents (the search index's and the model's neighbours alike).
SNIPPET_CHARS = 120


def snippet(text: str) -> str:
    """The start of a (masked) case text, as agents see a similar case."""
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A similar past case and what it was routed to."""

    case_id: str
    similarity: float
    departments: tuple[str, ...]
    category: str
    received_at: datetime | None
    district: str
    meaning: float | None = None   # cosine of the sentence vectors, where the index has them
    text: str = ""                 # the start of the case's (masked) text, for the agent to compare
    event_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """What agents see of a neighbour (the same in routing answers and ``/similar``)."""
        return {"case_id": self.case_id, "similarity": round(self.similarity, 4),
                "meaning": None if self.meaning is None else round(self.meaning, 4),
                "departments": list(self.departments), "category": self.category,
                "received_at": format_time(self.received_at), "district": self.district, "text": self.text,
                "event_id": self.event_id}
