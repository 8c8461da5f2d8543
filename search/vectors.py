"""Similar cases by meaning: sentence vectors beside the word match, fused by reciprocal rank.

Word overlap finds the caller who says 停水 about the same 小区; it misses
the one who says 家里没水 or 自来水断了. A pretrained encoder's sentence
vectors (``HOTLINE_ENCODER``) close that gap. Each backend stores every
case's vector (Elasticsearch as a ``dense_vector`` field with its kNN
search, the embedded index as a table read into one matrix for exact
cosine) and answers two rankings, words and meaning, which are fused here
by reciprocal rank (Cormack et al., 2009): no score of either needs to be
comparable with the other's, and a case both rank high comes first.

A neighbour keeps its word similarity (what the router's weights were set
for) and gains its meaning similarity; it is kept when either passes its
threshold.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

import numpy as np

from hotline.case import Case

#: Reciprocal rank fusion's constant: a case ranked r in a list adds 1 / (RRF_K + r).
RRF_K = 60
#: Cosine of two bge-small-zh sentence vectors from which cases count as alike: 2% of pairs of different
#: categories reach it, 30% of pairs of one category (600 demo cases). It only admits cases with few shared
#: words; the fused ranking does the rest (0.65 to 0.8 give the same neighbours in bench/neighbours.py).
MIN_MEANING = 0.7
#: Nearest vectors each similar-case query takes before fusion.
VECTOR_CANDIDATES = 50


@runtime_checkable
class Embedder(Protocol):
    """Unit-length sentence vectors (:class:`classifiers.encoder.SentenceEncoder` is one)."""

    name: str
    dimension: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    case_id: str
    similarity: float          # word similarity (search.base.similarity)
    meaning: float | None      # cosine of the sentence vectors; None without vectors


def case_text(case: Case) -> str:
    """What a case's vector is computed from (its title and text, as its words are)."""
    return f"{case.title} {case.text}".strip()


def fuse(words: Sequence[tuple[str, float]], meanings: Sequence[tuple[str, float]] | None,
         word_similarity: Callable[[str], float], k: int, min_similarity: float,
         min_meaning: float = MIN_MEANING) -> list[Candidate]:
    """Two rankings (case id, score) → the ``k`` best by reciprocal rank fusion.

    Each ranking is ordered by its score (ties by id) here. Without vectors
    (``meanings`` None) the words alone rank, above ``min_similarity``.
    ``word_similarity`` gives the word similarity of a case only the vectors
    found; a case passes when its words or its meaning pass their threshold.
    """
    order = lambda ranking: sorted(ranking, key=lambda pair: (-pair[1], pair[0]))  # noqa: E731
    words = order(words)
    if meanings is None:
        return [Candidate(i, s, None) for i, s in words if s >= min_similarity][:k]
    meanings = order(meanings)
    fused: dict[str, float] = {}
    for ranking in (words, meanings):
        for rank, (case_id, _) in enumerate(ranking, start=1):
            fused[case_id] = fused.get(case_id, 0.0) + 1.0 / (RRF_K + rank)
    by_words, by_meaning = dict(words), dict(meanings)
    found = []
    for case_id in sorted(fused, key=lambda i: (-fused[i], i)):
        similarity = by_words[case_id] if case_id in by_words else word_similarity(case_id)
        meaning = by_meaning.get(case_id)
        if similarity >= min_similarity or (meaning is not None and meaning >= min_meaning):
            found.append(Candidate(case_id, similarity, meaning))
            if len(found) >= k:
                break
    return found


class VectorMatrix:
    """Every stored vector in one float32 matrix, for exact cosine (one product per query).

    512 floats a case: 200 MB for 100,000 cases, a product of a few
    milliseconds; an approximate index has not earned its place below that.
    ``load`` reads the rows written since the last call (their ``seq`` grows
    with every write, a re-embedded case included).
    """

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.last_seq = 0
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._matrix = np.zeros((0, dimension), dtype=np.float32)
        self._districts = np.zeros(0, dtype=object)
        self._times = np.zeros(0, dtype=np.float64)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, rows: Sequence[tuple[int, str, str, datetime | None, bytes]]) -> None:
        """(seq, case id, district, received_at, float32 bytes) rows; a known case id is replaced."""
        if not rows:
            return
        with self._lock:
            fresh_ids: list[str] = []
            fresh_vectors: list[np.ndarray] = []
            fresh_districts: list[str] = []
            fresh_times: list[float] = []
            for seq, case_id, district, received_at, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape[0] != self.dimension:
                    continue  # another model's vector: ignored until the case is embedded again
                stamp = received_at.timestamp() if received_at else np.nan
                if case_id in self._row:
                    i = self._row[case_id]
                    self._matrix[i], self._districts[i], self._times[i] = vector, district, stamp
                else:
                    self._row[case_id] = len(self._ids) + len(fresh_ids)
                    fresh_ids.append(case_id)
                    fresh_vectors.append(vector)
                    fresh_districts.append(district)
                    fresh_times.append(stamp)
                self.last_seq = max(self.last_seq, seq)
            if fresh_ids:
                self._ids.extend(fresh_ids)
                self._districts = np.concatenate([self._districts, np.asarray(fresh_districts, dtype=object)])
                self._matrix = np.vstack([self._matrix, np.asarray(fresh_vectors, dtype=np.float32)])
                self._times = np.concatenate([self._times, np.asarray(fresh_times, dtype=np.float64)])

    def nearest(self, query: np.ndarray, k: int = VECTOR_CANDIDATES, district: str = "",
                since: datetime | None = None, exclude: str = "") -> list[tuple[str, float]]:
        """The ``k`` stored cases with the highest cosine to ``query`` (a unit vector), best first."""
        with self._lock:
            if not self._ids:
                return []
            scores = self._matrix @ query.astype(np.float32)
            keep = np.ones(len(scores), dtype=bool)
            if district:
                keep &= self._districts == district
            if since is not None:
                keep &= self._times >= since.timestamp()
            if exclude and exclude in self._row:
                keep[self._row[exclude]] = False
            candidates = np.flatnonzero(keep)
            if len(candidates) > k:
                candidates = candidates[np.argpartition(-scores[candidates], k)[:k]]
            order = candidates[np.argsort(-scores[candidates], kind="stable")]
            return [(self._ids[i], float(scores[i])) for i in order]
