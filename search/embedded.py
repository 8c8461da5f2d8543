"""The embedded index: SQLite FTS5 over jieba tokens, in the store's own file or a file of its own.

On one machine the store *is* the index (``HOTLINE_INDEX`` empty, the
default, or equal to ``HOTLINE_STORE``): its FTS5 table is kept in the same transaction as every
write, so there is nothing to catch up. A separate file (another
``sqlite:///`` URL) is a full copy kept by the outbox, like Elasticsearch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path

from hotline.case import Case, Neighbour, format_time
from hotline.store.base import CaseQuery, Page
from hotline.store.sqlite import SQLiteStore, path_from_url
from search.base import CachedCount, CellCount, DocFreqCache, neighbour, query_terms, similarity

#: Candidates fetched by bm25 before they are scored for similarity.
CANDIDATES = 50
#: Seconds a word's document frequency is reused.
DF_TTL = 60.0


def same_file(a: str, b: str) -> bool:
    pa, pb = path_from_url(a), path_from_url(b)
    return pa != ":memory:" and Path(pa).resolve() == Path(pb).resolve()


class EmbeddedIndex:
    """The default :class:`~search.base.SearchIndex`."""

    def __init__(self, url: str, store: SQLiteStore | None = None) -> None:
        self.url = url
        self.shared = isinstance(store, SQLiteStore) and same_file(store.url, url)
        self._db = store if self.shared else SQLiteStore(url)  # type: ignore[assignment]
        self._count_cached = CachedCount(self.count)
        self._doc_freq = DocFreqCache(self._lookup, ttl=DF_TTL)

    # ------------------------------------------------------------ writes
    def index(self, cases: Iterable[Case]) -> int:
        batch = list(cases)
        self._db.upsert(batch)
        if not self.shared:
            # This file is an index, not a store: nobody consumes its own outbox.
            self._db.acknowledge([seq for seq, _, _ in self._db.pending(limit=len(batch) * 2 + 10)])
        self._count_cached.clear()
        return len(batch)

    def delete(self, case_ids: Sequence[str]) -> int:
        removed = self._db.delete(case_ids)
        self._count_cached.clear()
        return removed

    def refresh(self) -> None:
        """Writes are visible when they commit."""

    def close(self) -> None:
        if not self.shared:
            self._db.close()

    # ------------------------------------------------------------ reads
    def get(self, case_id: str) -> Case:
        return self._db.get(case_id)

    def search(self, query: CaseQuery) -> Page:
        return self._db.search(query)

    def count(self) -> int:
        return self._db.read("SELECT count(*) FROM cases")[0][0]

    def _lookup(self, words: list[str]) -> dict[str, int]:
        """Cases per word, from FTS5's vocabulary (which reads each word's posting list)."""
        found = {}
        for word in words:
            rows = self._db.read("SELECT doc FROM cases_vocab WHERE term = ?", (word,))
            found[word] = rows[0][0] if rows else 0
        return found

    def similar(
        self,
        text: str,
        k: int = 5,
        district: str = "",
        since: datetime | None = None,
        exclude: str = "",
        min_similarity: float = 0.2,
    ) -> list[Neighbour]:
        tokens = self._db.tokenize(text)
        if not tokens:
            return []
        terms = query_terms(tokens, self._doc_freq(tokens), self._count_cached())
        if not terms:
            return []
        clauses, params = ["cases_fts MATCH ?"], [" OR ".join('"' + t.replace('"', '""') + '"' for t in terms)]
        if district:
            clauses.append("c.district = ?")
            params.append(district)
        if since:
            clauses.append("c.received_at >= ?")
            params.append(format_time(since))
        if exclude:
            clauses.append("c.id != ?")
            params.append(exclude)
        rows = self._db.read(
            f"SELECT c.id, c.tokens FROM cases_fts f JOIN cases c ON c.rowid = f.rowid "
            f"WHERE {' AND '.join(clauses)} ORDER BY f.rank LIMIT ?",
            [*params, max(CANDIDATES, 3 * k)],
        )
        scored = [(similarity(terms, tok.split()), case_id) for case_id, tok in rows]
        best = sorted(((s, i) for s, i in scored if s >= min_similarity), key=lambda pair: (-pair[0], pair[1]))[:k]
        return [neighbour(self._db.get(case_id), score) for score, case_id in best]

    def counts(self, query: CaseQuery | None = None) -> list[CellCount]:
        source, where, params = self._db.where(query or CaseQuery())
        rows = self._db.read(
            f"SELECT substr(c.received_at, 1, 10), c.district, coalesce(c.category_l2, c.category_l1, ''), count(*) "
            f"FROM {source}{where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            params,
        )
        return [CellCount(date.fromisoformat(d), district, category, n) for d, district, category, n in rows]
