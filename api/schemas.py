"""Request and response bodies of the JSON API (they make the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hotline.text.clean import unencodable


class Input(BaseModel):
    """A request body: unknown fields refused, and no text that cannot be stored.

    A lone surrogate (``"\\ud800"`` is valid JSON) once reached the store and
    answered 500 with two tracebacks; it is a 422 naming the field now.
    """

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and unencodable(text):
                raise ValueError("text holds characters that are not valid Unicode (lone surrogates)")
        return value


class RouteRequest(Input):
    text: str = Field(min_length=1, description="transcript (坐席/市民 dialogue, ASR JSON) or written message")
    received_at: datetime | None = Field(default=None, description="when the call came in (default: now)")
    district: str | None = Field(default=None, max_length=50, description="district, when known from elsewhere")


class Category(BaseModel):
    category: str
    probability: float


class Department(BaseModel):
    department: str
    probability: float
    reasons: list[str]
    role: str = Field(description="主办 (lead), 协办 (co-handles this category's cases) or 备选 (alternative)")


class DepartmentName(BaseModel):
    id: str
    name: str


class Term(BaseModel):
    term: str
    weight: float


class Similar(BaseModel):
    case_id: str
    similarity: float = Field(description="word similarity (idf-weighted cosine of the words)")
    meaning: float | None = Field(default=None, description="cosine of the sentence vectors (HOTLINE_ENCODER); "
                                                            "null without an encoder")
    departments: list[str]
    category: str
    received_at: str | None
    district: str = ""
    text: str = Field(default="", description="the start of the case's masked text")
    event_id: str = ""


class Area(BaseModel):
    district: str
    street: str


class Read(BaseModel):
    chars: int = Field(description="characters of the caller's account the model read")
    of: int = Field(description="characters in the caller's account")
    truncated: bool = Field(description="only the head and the tail of a long account were read")


class EventRef(BaseModel):
    id: str
    title: str
    size: int = Field(description="calls in the event so far")
    first_seen: str
    last_seen: str


class Routing(BaseModel):
    text: str = Field(description="the caller's account, masked")
    area: Area
    category: str = Field(description="empty when the call is unclear")
    category_probability: float
    categories: list[Category]
    departments: list[Department] = Field(description="lead (主办) first; empty when the call is unclear")
    unclear: bool = Field(description="nothing a department could act on yet: ask the caller")
    terms: list[Term]
    similar: list[Similar]
    rules: list[str]
    urgent: bool
    auto_dispatch: bool
    needs_person: list[str]
    model_version: str
    read: Read
    event: EventRef | None = Field(default=None, description="the ongoing event this call would join (others "
                                                               "reported the same incident in the last days)")
    elapsed_ms: float


class CaseIn(Input):
    # Said in the schema too, so that clients (and generated requests) know a case without either is refused.
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"anyOf": [{"required": ["text"]}, {"required": ["transcript"]}]})

    id: str | None = Field(default=None, max_length=100, description="case id; without one it is derived from time and text")
    received_at: datetime | None = None
    text: str | None = Field(default=None, description="the message or the caller's account")
    transcript: str | None = Field(default=None, description="a call transcript (the caller's account is taken from it)")
    title: str | None = Field(default=None, max_length=500)
    channel: str | None = Field(default=None, max_length=20)
    caller: str | None = Field(default=None, max_length=100, description="masked on arrival")
    district: str | None = Field(default=None, max_length=50)
    street: str | None = Field(default=None, max_length=50)
    address: str | None = Field(default=None, max_length=500)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    category: str | None = Field(default=None, max_length=200, description="一级/二级/三级")
    departments: list[str] | None = Field(default=None, max_length=10)
    status: str | None = Field(default=None, max_length=20)
    media_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://\S+$")


class LabelSourceOut(BaseModel):
    kind: str
    by: str
    at: str | None


class Location(BaseModel):
    lat: float
    lon: float


class CaseOut(BaseModel):
    id: str
    received_at: str
    channel: str
    title: str
    text: str
    transcript: str
    caller: str | None = Field(default=None, description="only for roles that may see it")
    district: str
    street: str
    address: str
    location: Location | None
    category: str | None
    category_source: LabelSourceOut | None
    departments: list[str]
    departments_source: LabelSourceOut | None
    status: str
    event_id: str | None
    media_url: str = Field(default="", description="a photo or document the caller sent (Open311 media_url)")
    updated_at: str | None = Field(default=None, description="when the case last changed")
    replaced_confirmation: LabelSourceOut | None = Field(
        default=None, description="on a label change: another agent's confirmation it replaced (agents may correct "
                                  "each other; the audit keeps both)")


class CasePage(BaseModel):
    items: list[CaseOut]
    total: int
    limit: int
    offset: int


class UpsertOut(BaseModel):
    inserted: int
    updated: int
    unchanged: int
    ids: list[str]


class LabelIn(Input):
    category: str | None = Field(default=None, min_length=1, max_length=200)
    departments: list[str] | None = Field(default=None, min_length=1, max_length=10)


class AlertOut(BaseModel):
    date: str
    area: str
    category: str
    observed: int
    expected: float
    score: float
    method: str


class EventOut(BaseModel):
    id: str
    title: str
    size: int
    district: str
    street: str
    place: str
    category: str
    key_terms: list[str]
    first_seen: str
    last_seen: str
    case_ids: list[str]


class EpisodeEvent(BaseModel):
    id: str
    title: str
    size: int


class EpisodeOut(BaseModel):
    area: str
    category: str
    start: str
    end: str
    alert_days: int
    observed: int
    expected: float
    excess: float = Field(description="calls beyond what the cell's history expected, over the alert days")
    peak_day: str
    peak_score: float
    peak_method: str
    methods: list[str]
    explanation: str = Field(description="the ranking in a supervisor's words")
    events: list[EpisodeEvent]
    ongoing: bool = Field(False, description="still going: raised on the period's last day or the day before "
                                            "(listed before the surges that are over)")


class PeriodOut(BaseModel):
    start: str
    end: str
    days: int


class ForecastDay(BaseModel):
    date: str
    mean: float
    low: int
    high: int


class ForecastOut(BaseModel):
    area: str
    category: str
    normal: float
    rise: float
    days: list[ForecastDay]


class WorkCall(BaseModel):
    id: str
    received_at: str
    title: str


class WorkItemOut(BaseModel):
    id: str = Field(description="the same item keeps its id every time the list is computed")
    kind: Literal["surge", "rising"] = Field(description="an episode of alert days, or a cell forecast to rise")
    area: str
    category: str
    start: str
    end: str
    observed: int
    expected: float
    excess: float
    explanation: str
    departments: list[str] = Field(description="responsible departments, lead first: the category's own, then "
                                               "those its calls were sent to")
    events: list[EpisodeEvent]
    calls: list[WorkCall] = Field(description="representative calls, newest first")
    terms: list[str] = Field(description="words these calls share that the weeks before used rarely")
    forecast: list[ForecastDay] = Field(description="the next seven days, with 80% intervals")
    forecast_total: float
    state: Literal["new", "acknowledged", "assigned", "resolved", "dismissed"]
    state_name: str
    assigned_to: str
    note: str
    by: str
    at: str | None


class WorkStateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["new", "acknowledged", "assigned", "resolved", "dismissed"]
    department: str = Field("", max_length=100, description="needed when assigning: a department of the taxonomy")
    note: str = Field("", max_length=2000)
    expected: Literal["new", "acknowledged", "assigned", "resolved", "dismissed"] | None = Field(
        None, description="the state the decider saw; 409 when another decision changed it since (else overwrite)")


class WorkStateOut(BaseModel):
    id: str
    kind: str
    area: str
    category: str
    start: str
    end: str
    state: str
    department: str
    note: str
    by: str
    at: str
    previous: str


class ModelOut(BaseModel):
    version: str
    state: str
    kind: str | None
    created: str | None
    data_size: int | None
    data_hash: str | None
    metrics: dict[str, Any]
    compared_with: dict[str, Any] | None
    train_seconds: float | None = Field(None, description="how long its training took (the whole retraining "
                                                         "where it was retrained): what the next one will take")
    params: dict[str, Any]
    libraries: dict[str, str]


class TrainIn(Input):
    since: datetime | None = Field(default=None, description="only labels from this time on")
    kind: Literal["linear", "ensemble"] = Field(
        default="linear", description="linear: seconds, in the service; ensemble: the encoder fine-tuned beside it "
                                      "(HOTLINE_ENCODER), in a child process, minutes to an hour on a CPU; served at "
                                      "once if it beats the active model")
    review: bool = Field(default=False, description="flag likely mislabeled cases (linear)")
    epochs: int | None = Field(default=None, ge=1, le=20, description="fine-tuning epochs (ensemble)")


class JobOut(BaseModel):
    id: str
    kind: str
    status: str
    started: str
    finished: str
    version: str | None
    error: str | None
    params: dict[str, Any]
    progress: str = Field(description="the last progress line of the work (fine-tuning: epoch, step, time left)")
    promoted: bool = Field(description="the result beat the active model and is served now")


class Health(BaseModel):
    status: str = Field(description="ok, no-model, or degraded (a backend is away; routing still answers)")
    model_version: str | None
    cases: int | None
    index_outbox: int | None
    index: str
    degraded: dict[str, str] = Field(default_factory=dict, description="each backend that is away, and why")
