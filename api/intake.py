"""Request bodies into cases: one way for ``/v1/cases`` and Open311, the same builder as a file import."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.schemas import CaseIn
from api.services import Services
from hotline.case import Case, Category
from hotline.errors import InvalidInput, NotFound
from hotline.ingest import CaseBuilder
from hotline.times import city_now

#: Body field -> the builder's column name.
_COLUMNS = {"id": "id", "time": "received_at", "text": "text", "transcript": "transcript", "title": "title",
            "channel": "channel", "caller": "caller", "district": "district", "street": "street",
            "address": "address", "lat": "lat", "lon": "lon", "category": "category",
            "department": "departments", "status": "status", "media_url": "media_url"}


def build_case(services: Services, item: CaseIn, source: str) -> Case:
    """A case from an API body: cleaned, masked and placed like an imported row.

    Labels sent with it must name the taxonomy's categories and departments
    (422 with the closest ones). A case without a time came in now; the time
    is part of a derived id, so two callers reporting the same words at
    different times make two cases, not one overwritten by the other; a
    re-post of a stored case without a time keeps the stored time.
    """
    values: dict[str, Any] = item.model_dump(exclude_none=True)
    if "received_at" not in values and "id" in values:  # a re-post that leaves out the time keeps the stored one
        try:
            values["received_at"] = services.store.get(values["id"]).received_at
        except NotFound:
            pass
    values.setdefault("received_at", city_now(services.window.city))
    if "category" in values:
        values["category"] = services.taxonomy.checked_category(Category.parse(values["category"])).path
    if "departments" in values:
        values["departments"] = "|".join(services.taxonomy.checked_departments(values["departments"]))
    columns = {field: key for field, key in _COLUMNS.items() if key in values}
    if "text" not in columns and "transcript" not in columns:
        raise InvalidInput("a case needs text or a transcript")
    builder = CaseBuilder(services.gazetteer, services.taxonomy, services.settings.max_text_chars, source=source,
                          window=services.window)
    return builder.build({k: v if isinstance(v, datetime) else str(v) for k, v in values.items()}, columns)
