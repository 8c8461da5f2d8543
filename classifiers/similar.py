"""Similar past cases, in memory: cosine similarity over TF-IDF of jieba tokens.

Agents trust a suggestion they can check against cases like it, and the
departments that handled similar cases recently are strong evidence for
routing. This index lives inside a trained model; the search package offers
the same question over the whole store (Elasticsearch or embedded).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from classifiers.features import (
    CompactTfidfVectorizer,
    JiebaTokens,
    SparseRow,
    check_texts,
    forget_stop_words,
    row_features,
)
from hotline.case import Neighbour, snippet
from hotline.errors import InvalidInput

__all__ = ["Neighbour", "SimilarCases"]


class SimilarCases(BaseEstimator):
    """Nearest past cases by text, optionally within an area and a time window.

    Words in more than ``max_df`` of the cases (我, 小区, 反映) say nothing about
    which incident a case is and are left out; that also keeps a query from
    touching every row.
    """

    def __init__(self, min_similarity: float = 0.2, max_df: float = 0.3, segmenter: str = "rjieba") -> None:
        self.min_similarity = min_similarity
        self.max_df = max_df
        self.segmenter = segmenter

    def fit(
        self,
        X: Any,
        ids: list[str],
        departments: list[tuple[str, ...]],
        categories: list[str] | None = None,
        times: list[datetime | None] | None = None,
        districts: list[str] | None = None,
    ) -> SimilarCases:
        texts = check_texts(X)
        n = len(texts)
        if not (len(ids) == len(departments) == n):
            raise InvalidInput("ids and departments must have one entry per text")
        self.vectorizer_ = Pipeline([
            ("tokens", JiebaTokens(self.segmenter)),
            ("tfidf", CompactTfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True, min_df=1,
                                            max_df=self.max_df if n >= 50 else 1.0, dtype=np.float32)),
        ])
        self.matrix_ = self.vectorizer_.fit_transform(texts).tocsc()
        forget_stop_words(self.vectorizer_)
        self.ids_ = np.asarray(ids, dtype=object)
        self.departments_ = np.asarray(["|".join(d) for d in departments], dtype=object)
        self.categories_ = np.asarray(categories or [""] * n, dtype=object)
        stamps = [t.timestamp() if t else np.nan for t in (times or [None] * n)]
        self.times_ = np.asarray(stamps, dtype=np.float64)
        self.districts_ = np.asarray(districts or [""] * n, dtype=object)
        # The start of each (masked) text, as agents see a similar case: routing then shows its similar cases
        # from the model alone, without asking the store (which may be away: PostgreSQL killed froze routing).
        self.snippets_ = np.asarray([snippet(t) for t in texts], dtype=object)
        return self

    def similar(
        self,
        text: str,
        k: int = 5,
        district: str = "",
        since: datetime | None = None,
        exclude: str = "",
    ) -> list[Neighbour]:
        """The ``k`` most similar cases at or above ``min_similarity``."""
        check_is_fitted(self, "matrix_")
        text = check_texts([text], "text")[0]
        rows = row_features(self.vectorizer_)
        query = rows.transform(text) if rows else SparseRow.from_matrix(self.vectorizer_.transform([text]))
        # Only the postings of the query's terms are touched (the index is column-major).
        matrix = self.matrix_
        starts, ends = matrix.indptr[query.indices], matrix.indptr[query.indices + 1]
        if len(query.indices):
            postings = np.concatenate([matrix.indices[a:b] for a, b in zip(starts, ends, strict=True)])
            weights = np.concatenate([matrix.data[a:b] * w for a, b, w in zip(starts, ends, query.data, strict=True)])
            scores = np.bincount(postings, weights=weights, minlength=matrix.shape[0])
        else:
            scores = np.zeros(matrix.shape[0])
        candidates = np.flatnonzero(scores >= self.min_similarity)
        if district:
            candidates = candidates[self.districts_[candidates] == district]
        if since is not None:
            candidates = candidates[self.times_[candidates] >= since.timestamp()]
        if exclude:
            candidates = candidates[self.ids_[candidates] != exclude]
        top = candidates[np.argsort(-scores[candidates], kind="stable")[:k]]
        snippets = getattr(self, "snippets_", None)  # models saved before snippets: the service asks the store
        return [
            Neighbour(
                case_id=str(self.ids_[i]),
                similarity=float(scores[i]),
                departments=tuple(d for d in str(self.departments_[i]).split("|") if d),
                category=str(self.categories_[i]),
                received_at=None if np.isnan(self.times_[i]) else datetime.fromtimestamp(self.times_[i]),
                district=str(self.districts_[i]),
                text=str(snippets[i]) if snippets is not None else "",
            )
            for i in top
        ]
