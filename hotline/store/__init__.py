"""Case stores, chosen by URL: the embedded SQLite file, or PostgreSQL for a city."""

from __future__ import annotations

from collections.abc import Callable

from hotline.errors import InvalidInput
from hotline.store.base import CaseQuery, CaseStore, ContentChange, LabelChange, Page, Summary, UpsertResult
from hotline.store.rules import SYSTEM, Writer
from hotline.times import DEFAULT_ZONE
from hotline.times import zone as city_zone

__all__ = ["SYSTEM", "CaseQuery", "CaseStore", "ContentChange", "LabelChange", "Page", "Summary", "UpsertResult",
           "Writer", "open_store"]


def open_store(url: str, tokenize: Callable[[str], list[str]] | None = None, zone: str = DEFAULT_ZONE) -> CaseStore:
    """Open the store a URL names: ``sqlite:///path`` (the embedded default) or ``postgresql://user@host:port/db``.

    ``zone`` is the city's: the times the store stamps are the city's, as ``received_at`` is.
    """
    store: CaseStore
    if url.startswith("sqlite:///"):
        from hotline.store.sqlite import SQLiteStore

        store = SQLiteStore(url, tokenize=tokenize)
    elif url.startswith(("postgresql://", "postgres://")):
        from hotline.store.postgres import PostgreSQLStore

        store = PostgreSQLStore(url, tokenize=tokenize)
    else:
        scheme = url.split(":", 1)[0] if ":" in url else url
        raise InvalidInput(f"no store backend for {scheme!r} URLs ({url!r}); "
                           "use sqlite:///path or postgresql://user@host:port/db")
    store.zone = city_zone(zone)
    return store
