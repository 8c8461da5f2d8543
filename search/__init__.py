"""Search backends behind one protocol (:class:`~search.base.SearchIndex`), chosen by URL.

``sqlite:///path`` is the embedded index (the store's own FTS5 table when it
names the store's file); ``http://host:9200[/alias]`` is Elasticsearch. The
store stays the system of record: indexes are filled from its outbox
(:mod:`search.sync`) and can always be rebuilt from it.
"""

from __future__ import annotations

from collections.abc import Callable

from hotline.errors import InvalidInput
from hotline.store.base import CaseStore, redacted
from search.base import CellCount, SearchIndex
from search.vectors import Embedder

__all__ = ["CellCount", "SearchIndex", "check_index", "open_index"]


def check_index(url: str, store_url: str) -> None:
    """Refuse an index URL the store cannot be served with, from the URLs alone: the service checks this before
    any expensive step (it once trained a first model for five minutes and only then refused to start)."""
    scheme = url.split(":", 1)[0]
    if url == store_url and not url.startswith("sqlite:///"):
        raise InvalidInput(f"the store {redacted(url)} has no embedded search index: set HOTLINE_INDEX to an "
                           "Elasticsearch URL (http://host:9200), which every service process shares")
    if url.startswith("sqlite:///") and not store_url.startswith("sqlite:///"):
        # Each process would fill its own file from an outbox the processes share: each would miss cases.
        raise InvalidInput(f"an embedded index ({url}) cannot serve the store {redacted(store_url)}, which "
                           "several processes share: set HOTLINE_INDEX to an Elasticsearch URL (http://host:9200)")
    if not url.startswith(("sqlite:///", "http://", "https://")):
        raise InvalidInput(f"no search backend for {scheme}: URLs; use sqlite:///path or http://host:9200")


def open_index(url: str, store: CaseStore | None = None,
               tokenize: Callable[[str], list[str]] | None = None, embedder: Embedder | None = None) -> SearchIndex:
    """The index a URL names; an embedded URL equal to the store's shares the store's file (and its tokens).

    With an ``embedder`` the index also stores each case's sentence vector and
    finds similar cases by meaning as well as by words.
    """
    if store is not None:
        check_index(url, store.url)
    if url.startswith("sqlite:///"):
        from hotline.store.sqlite import SQLiteStore
        from search.embedded import EmbeddedIndex

        return EmbeddedIndex(url, store if isinstance(store, SQLiteStore) else None, embedder=embedder)
    if url.startswith(("http://", "https://")):
        from search.elastic import ElasticsearchIndex

        return ElasticsearchIndex(url, tokenize=tokenize, embedder=embedder)
    raise InvalidInput(f"no search backend for {url.split(':', 1)[0]}: URLs; use sqlite:///path or http://host:9200")
