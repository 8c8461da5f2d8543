"""Case stores, chosen by URL: the embedded SQLite file, or PostgreSQL for a city."""

from __future__ import annotations

from collections.abc import Callable

from hotline.errors import InvalidInput
from hotline.store.base import CaseQuery, CaseStore, ContentChange, LabelChange, Page, Summary, UpsertResult
from hotline.store.rules import SYSTEM, Writer

__all__ = ["SYSTEM", "CaseQuery", "CaseStore", "ContentChange", "LabelChange", "Page", "Summary", "UpsertResult",
           "Writer", "open_store"]


def open_store(url: str, tokenize: Callable[[str], list[str]] | None = None) -> CaseStore:
    """Open the store a URL names: ``sqlite:///path`` (the embedded default) or ``postgresql://user@host:port/db``."""
    if url.startswith("sqlite:///"):
        from hotline.store.sqlite import SQLiteStore

        return SQLiteStore(url, tokenize=tokenize)
    if url.startswith(("postgresql://", "postgres://")):
        from hotline.store.postgres import PostgreSQLStore

        return PostgreSQLStore(url, tokenize=tokenize)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise InvalidInput(f"no store backend for {scheme!r} URLs ({url!r}); "
                       "use sqlite:///path or postgresql://user@host:port/db")
