"""The search protocol every backend offers, and the similarity both compute alike.

Backends answer the same questions (filters, dates, paging, similar cases,
counts per day × area × category) over the same jieba tokens the models see.
Ranking is each engine's own (FTS5's bm25, Lucene's BM25); *similarity* is
computed here from tokens and document frequencies the backend reports, so
the router's threshold and weights mean the same thing on either backend.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from hotline.case import Case, Neighbour, snippet
from hotline.store.base import CaseQuery, CellCount, Page

#: Words in more than this share of the cases (我, 小区, 反映) do not tell one incident from another.
MAX_DOC_SHARE = 0.3
#: The most informative query words a similar-case query keeps.
MAX_QUERY_TERMS = 24
#: How many postings (cases per word, summed) a similar-case query may touch: its cost on either engine.
POSTINGS_BUDGET = 8000


@runtime_checkable
class SearchIndex(Protocol):
    """A search index over cases, derived from the store (the system of record)."""

    url: str

    def index(self, cases: Iterable[Case], versions: Mapping[str, int] | None = None) -> int:
        """Add or replace cases by id; returns how many were written. Idempotent.

        ``versions`` (a case's outbox sequence) let an index that several
        workers write keep the latest: a write older than the one it holds
        is dropped, so a worker that lost its lease cannot put an old text back.
        """
        ...

    def delete(self, case_ids: Sequence[str], versions: Mapping[str, int] | None = None) -> int: ...

    def get(self, case_id: str) -> Case: ...

    def search(self, query: CaseQuery) -> Page:
        """Text (all words must match), filters, date range and paging; newest first without text."""
        ...

    def similar(
        self,
        text: str,
        k: int = 5,
        district: str = "",
        since: datetime | None = None,
        exclude: str = "",
        min_similarity: float = 0.2,
    ) -> list[Neighbour]:
        """The ``k`` cases most like ``text`` (optionally in one district, since a time)."""
        ...

    def counts(self, query: CaseQuery | None = None) -> list[CellCount]:
        """Daily counts per district and level-2 category, for cases matching the filters."""
        ...

    def count(self) -> int: ...

    def refresh(self) -> None:
        """Make everything indexed so far visible to searches."""
        ...

    def close(self) -> None: ...


class CachedCount:
    """A count (cases in the index, for idf) reused for ``ttl`` seconds: a few seconds stale is harmless."""

    def __init__(self, count: Callable[[], int], ttl: float = 5.0) -> None:
        self.count = count
        self.ttl = ttl
        self._value: tuple[float, int] | None = None

    def __call__(self) -> int:
        if self._value is None or time.monotonic() - self._value[0] > self.ttl:
            self._value = (time.monotonic(), self.count())
        return self._value[1]

    def clear(self) -> None:
        self._value = None


class DocFreqCache:
    """Document frequencies of words, reused for ``ttl`` seconds.

    Counting a common word's cases is the dearest part of a similar-case
    query on either engine, and the counts move slowly; one lookup per new
    word (``lookup`` takes the missing words, returns their counts) and the
    rest from memory.
    """

    def __init__(self, lookup: Callable[[list[str]], dict[str, int]], ttl: float = 60.0, size: int = 200_000) -> None:
        self.lookup = lookup
        self.ttl = ttl
        self.size = size
        self._cache: dict[str, tuple[float, int]] = {}

    def __call__(self, tokens: Sequence[str]) -> dict[str, int]:
        now = time.monotonic()
        found: dict[str, int] = {}
        missing: list[str] = []
        for token in dict.fromkeys(tokens):
            cached = self._cache.get(token)
            if cached is None or now - cached[0] > self.ttl:
                missing.append(token)
            else:
                found[token] = cached[1]
        if missing:
            fresh = self.lookup(missing)
            if len(self._cache) + len(missing) > self.size:
                self._cache.clear()
            for token in missing:
                found[token] = fresh.get(token, 0)
                self._cache[token] = (now, found[token])
        return found

    def clear(self) -> None:
        self._cache.clear()


def query_terms(tokens: Sequence[str], doc_freq: Mapping[str, int], total: int,
                budget: int = POSTINGS_BUDGET) -> dict[str, float]:
    """The informative words of a query with their idf, rarest first, within a postings budget.

    Rare words (a community, a road, 爆管) are what tells one incident from
    another; words in many cases cost the most to look up and say the least.
    The three rarest are always kept; more join while their postings fit the
    budget, so a query's cost stays flat as the index grows.
    """
    limit = max(1.0, MAX_DOC_SHARE * total) if total >= 50 else float("inf")
    candidates = sorted(
        (doc_freq[t], t) for t in dict.fromkeys(tokens) if t.strip() and 0 < doc_freq.get(t, 0) <= limit
    )
    chosen: dict[str, float] = {}
    spent = 0
    for df, token in candidates:
        if len(chosen) >= MAX_QUERY_TERMS or (len(chosen) >= 3 and spent + df > budget):
            break
        chosen[token] = math.log((1 + total) / (1 + df)) + 1.0
        spent += df
    return chosen


def similarity(query: Mapping[str, float], doc_tokens: Iterable[str]) -> float:
    """Cosine of binary, idf-weighted word sets; words the query lacks weigh its mean idf.

    Only the query's document frequencies are looked up (one round trip to
    the backend), so a case's other words are weighed as an average query word.
    """
    if not query:
        return 0.0
    words = set(doc_tokens)
    shared = [w for w in query if w in words]
    if not shared:
        return 0.0
    mean = sum(query.values()) / len(query)
    dot = sum(query[w] ** 2 for w in shared)
    q_norm = math.sqrt(sum(v * v for v in query.values()))
    d_norm = math.sqrt(dot + (len(words) - len(shared)) * mean * mean)
    return dot / (q_norm * d_norm)


def neighbour(case: Case, score: float, meaning: float | None = None) -> Neighbour:
    text = snippet(case.text)
    return Neighbour(
        case_id=case.id,
        similarity=score,
        departments=case.departments,
        category=case.category.path if case.category else "",
        received_at=case.received_at,
        district=case.area.district,
        meaning=meaning,
        text=text,
        event_id=case.event_id or "",
    )
