"""The embedded index: SQLite FTS5 over jieba tokens, in the store's own file or a file of its own.

On one machine the store *is* the index (``HOTLINE_INDEX`` empty, the
default, or equal to ``HOTLINE_STORE``): its FTS5 table is kept in the same transaction as every
write, so there is nothing to catch up. A separate file (another
``sqlite:///`` URL) is a full copy kept by the outbox, like Elasticsearch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np

from hotline.case import Case, Neighbour, format_time, parse_time
from hotline.errors import NotFound
from hotline.store.base import CaseQuery, Page
from hotline.store.sqlite import SQLiteStore, path_from_url
from search.base import CachedCount, CellCount, DocFreqCache, neighbour, query_terms, similarity
from search.vectors import MIN_MEANING, VECTOR_CANDIDATES, Embedder, VectorMatrix, case_text, fuse

#: Candidates fetched by bm25 before they are scored for similarity.
CANDIDATES = 50
#: Seconds a word's document frequency is reused.
DF_TTL = 60.0


def same_file(a: str, b: str) -> bool:
    pa, pb = path_from_url(a), path_from_url(b)
    return pa != ":memory:" and Path(pa).resolve() == Path(pb).resolve()


class EmbeddedIndex:
    """The default :class:`~search.base.SearchIndex`."""

    def __init__(self, url: str, store: SQLiteStore | None = None, embedder: Embedder | None = None,
                 min_meaning: float = MIN_MEANING) -> None:
        self.url = url
        self.shared = isinstance(store, SQLiteStore) and same_file(store.url, url)
        self._db: SQLiteStore = store if store is not None and self.shared else SQLiteStore(url)
        self._count_cached = CachedCount(self.count)
        self._doc_freq = DocFreqCache(self._lookup, ttl=DF_TTL)
        self.embedder = embedder
        self.min_meaning = min_meaning
        self._vectors = VectorMatrix(embedder.dimension) if embedder else None

    @property
    def needs_cases(self) -> bool:
        """Whether the outbox must hand this index the written cases (the store's own FTS needs none, vectors do)."""
        return not self.shared or self.embedder is not None

    # ------------------------------------------------------------ writes
    def index(self, cases: Iterable[Case], versions: Mapping[str, int] | None = None) -> int:
        """Versions are not needed: the file's writers take turns, in the outbox's order."""
        batch = list(cases)
        if not self.shared:
            self._db.upsert(batch)
            # This file is an index, not a store: nobody consumes its own outbox.
            self._db.acknowledge([seq for seq, _, _ in self._db.pending(limit=len(batch) * 2 + 10)])
        if self.embedder is not None and batch:
            vectors = self.embedder.encode([case_text(c) for c in batch]).astype(np.float32)
            with self._db.transaction() as db:
                db.executemany("INSERT OR REPLACE INTO case_vectors (case_id, model, vector) VALUES (?, ?, ?)",
                               [(c.id, self.embedder.name, v.tobytes()) for c, v in zip(batch, vectors, strict=True)])
        self._count_cached.clear()
        return len(batch)

    def delete(self, case_ids: Sequence[str], versions: Mapping[str, int] | None = None) -> int:
        """Cases leave the index (and their vectors with them: a trigger); the store's own index has them gone."""
        removed = len(self._db.read(
            f"SELECT 1 FROM cases WHERE id IN ({','.join('?' * len(case_ids))})", list(case_ids))) if self.shared \
            else self._db.delete(case_ids)
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
        if not terms and self.embedder is None:
            return []
        rows = self._word_candidates(terms, k, district, since, exclude) if terms else []
        words = [(case_id, similarity(terms, tok.split())) for case_id, tok in rows]
        best = fuse(words, self._nearest(text, district, since, exclude),
                    lambda case_id: self._word_similarity(terms, case_id), k, min_similarity, self.min_meaning)
        found = []
        for candidate in best:
            try:
                case = self._db.get(candidate.case_id)
            except NotFound:  # deleted since its vector was read
                continue
            found.append(neighbour(case, candidate.similarity, candidate.meaning))
        return found

    def _word_candidates(self, terms: dict[str, float], k: int, district: str, since: datetime | None,
                         exclude: str) -> list[tuple[str, str]]:
        """(case id, tokens) of the cases bm25 ranks first for any of the terms, under the filters."""
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
        return self._db.read(
            f"SELECT c.id, c.tokens FROM cases_fts f JOIN cases c ON c.rowid = f.rowid "
            f"WHERE {' AND '.join(clauses)} ORDER BY f.rank LIMIT ?",
            [*params, max(CANDIDATES, 3 * k)],
        )

    def _word_similarity(self, terms: dict[str, float], case_id: str) -> float:
        rows = self._db.read("SELECT tokens FROM cases WHERE id = ?", (case_id,))
        return similarity(terms, rows[0][0].split()) if rows else 0.0

    def _nearest(self, text: str, district: str, since: datetime | None, exclude: str) -> list[tuple[str, float]] | None:
        """The nearest stored vectors to the text's (None without an encoder); new rows are read first."""
        if self.embedder is None or self._vectors is None:  # (the second says the same, for the type checker)
            return None
        rows = self._db.read(
            "SELECT v.seq, v.case_id, c.district, c.received_at, v.vector FROM case_vectors v "
            "JOIN cases c ON c.id = v.case_id WHERE v.seq > ? AND v.model = ? ORDER BY v.seq",
            (self._vectors.last_seq, self.embedder.name),
        )
        self._vectors.add([(seq, i, d, parse_time(t) if t else None, blob) for seq, i, d, t, blob in rows])
        query = self.embedder.encode([text])[0]
        return self._vectors.nearest(query, VECTOR_CANDIDATES, district, since, exclude)

    def counts(self, query: CaseQuery | None = None) -> list[CellCount]:
        source, where, params = self._db.where(query or CaseQuery())
        rows = self._db.read(
            f"SELECT substr(c.received_at, 1, 10), c.district, coalesce(c.category_l2, c.category_l1, ''), count(*) "
            f"FROM {source}{where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            params,
        )
        return [CellCount(date.fromisoformat(d), district, category, n) for d, district, category, n in rows]
