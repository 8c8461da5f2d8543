"""Text features: jieba words and character n-grams, as scikit-learn transformers.

Words carry meaning (``停水``, ``物业``); character n-grams survive what breaks
words: ASR slips (``无业`` for ``物业``), dialect, unknown place names. Both
read the same cleaned, masked text the store holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline

from hotline.errors import InvalidInput


def check_texts(X: Any, name: str = "X") -> list[str]:
    """Validate input once, at the boundary: a sequence of non-empty strings."""
    if isinstance(X, str):
        raise InvalidInput(f"{name} must be a list of texts, not a single string")
    try:
        texts = list(X)
    except TypeError:
        raise InvalidInput(f"{name} must be a list of texts, not {type(X).__name__}") from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(f"{name}[{i}] is {type(text).__name__}, not text")
        if not text.strip():
            raise InvalidInput(f"{name}[{i}] is empty: there is nothing to classify")
    return texts


def check_labels(texts: list[str], y: Any) -> np.ndarray:
    """One non-empty label per text, at least two classes."""
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(texts):
        raise InvalidInput(f"X has {len(texts)} texts but y has {len(labels)} labels")
    missing = [i for i, label in enumerate(labels) if label is None or (isinstance(label, str) and not label.strip())]
    if missing:
        raise InvalidInput(f"y[{missing[0]}] is empty: every text needs a label ({len(missing)} do not)")
    if len(np.unique(labels)) < 2:
        raise InvalidInput("training needs at least two classes")
    return labels


class JiebaTokens(TransformerMixin, BaseEstimator):
    """Texts to space-joined jieba tokens (the city dictionary loaded); stateless.

    Producing strings rather than a tokenizer callable keeps the fitted
    pipeline free of lambdas, so it saves with skops and loads without
    running code.
    """

    def __init__(self, backend: str = "rjieba") -> None:
        self.backend = backend

    def fit(self, X: Iterable[str], y: Any = None) -> JiebaTokens:
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features if input_features is not None else ["text"], dtype=object)

    def transform(self, X: Iterable[str]) -> list[str]:
        from hotline.text.segment import default_segmenter

        seg = default_segmenter(self.backend)
        return [" ".join(seg.tokens(text)) for text in X]


class CompactTfidfVectorizer(TfidfVectorizer):
    """A TfidfVectorizer whose vocabulary is saved as two arrays instead of a dict.

    skops writes a dict of n-grams one node per entry: a 60,000-term
    vocabulary took a minute and 60 MB. As arrays it takes milliseconds.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # object.__getstate__ hands out the live __dict__
        vocabulary = state.pop("vocabulary_", None)
        if isinstance(vocabulary, dict):
            state["vocabulary_terms_"] = np.array(list(vocabulary), dtype=str)
            state["vocabulary_index_"] = np.fromiter(vocabulary.values(), dtype=np.int64, count=len(vocabulary))
        state.pop("stop_words_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        terms = state.pop("vocabulary_terms_", None)
        index = state.pop("vocabulary_index_", None)
        if terms is not None and index is not None:
            state["vocabulary_"] = dict(zip(terms.tolist(), index.tolist(), strict=True))
        super().__setstate__(state)


def text_features(
    word_ngrams: tuple[int, int] = (1, 2),
    char_ngrams: tuple[int, int] = (1, 3),
    min_df: int = 2,
    max_features: int | None = 400_000,
    backend: str = "rjieba",
) -> FeatureUnion:
    """TF-IDF over jieba word n-grams beside TF-IDF over character n-grams (sublinear tf)."""
    words = Pipeline([
        ("tokens", JiebaTokens(backend)),
        ("tfidf", CompactTfidfVectorizer(token_pattern=r"\S+", ngram_range=word_ngrams, min_df=min_df,
                                  sublinear_tf=True, max_features=max_features, dtype=np.float32)),
    ])
    chars = CompactTfidfVectorizer(analyzer="char_wb", ngram_range=char_ngrams, min_df=min_df, sublinear_tf=True,
                            max_features=max_features, dtype=np.float32)
    return FeatureUnion([("words", words), ("chars", chars)])


def forget_stop_words(estimator: Any) -> Any:
    """Drop ``stop_words_`` from every fitted TfidfVectorizer inside ``estimator``.

    scikit-learn keeps every term that min_df cut (millions of n-grams) only
    for introspection; the documentation says to remove it before saving, and
    it makes a saved model ten times larger and slower to write.
    """
    if isinstance(estimator, TfidfVectorizer):
        if hasattr(estimator, "stop_words_"):
            del estimator.stop_words_
    elif isinstance(estimator, Pipeline):
        for _, step in estimator.steps:
            forget_stop_words(step)
    elif isinstance(estimator, FeatureUnion):
        for _, part in estimator.transformer_list:
            forget_stop_words(part)
    return estimator


@dataclass(frozen=True, slots=True)
class SparseRow:
    """One text's features as (columns, values).

    Routing one case at a time is the agents' path; a scipy matrix and
    scikit-learn's per-call validation cost more there than the arithmetic.
    The estimators here accept a row wherever they accept a matrix.
    """

    indices: np.ndarray
    data: np.ndarray
    n_features: int

    @property
    def shape(self) -> tuple[int, int]:
        return (1, self.n_features)

    @classmethod
    def from_matrix(cls, row: Any) -> SparseRow:
        if isinstance(row, SparseRow):
            return row
        row = sparse.csr_matrix(row)
        if row.shape[0] != 1:
            raise ValueError(f"a SparseRow holds one row, not {row.shape[0]}")
        return cls(row.indices.astype(np.int64), row.data.astype(np.float64), row.shape[1])


@dataclass(frozen=True, slots=True)
class _Part:
    segment: str | None          # segmenter backend when the part reads jieba tokens, None for raw text
    analyzer: Callable[[str], list[str]]
    vocabulary: dict[str, int]
    idf: np.ndarray | None
    sublinear: bool
    binary: bool
    norm: str | None
    offset: int


class RowFeatures:
    """A fitted feature union, pipeline or vectorizer, applied to one text with dictionary lookups.

    Reproduces ``transform`` of the fitted objects (tested against it) for the
    structures built here: TF-IDF vectorizers, alone or after
    :class:`JiebaTokens`, side by side in a FeatureUnion. Build it with
    :func:`row_features`, which says ``None`` for anything else.
    """

    def __init__(self, parts: list[_Part], n_features: int) -> None:
        self.parts = parts
        self.n_features = n_features

    def transform(self, text: str) -> SparseRow:
        from hotline.text.segment import default_segmenter

        indices: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for part in self.parts:
            doc = " ".join(default_segmenter(part.segment).tokens(text)) if part.segment else text
            counts: dict[int, int] = {}
            vocabulary = part.vocabulary
            for term in part.analyzer(doc):
                column = vocabulary.get(term)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            if not counts:
                continue
            columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            order = np.argsort(columns)
            columns, tf = columns[order], tf[order]
            if part.binary:
                tf[:] = 1.0
            elif part.sublinear:
                tf = 1.0 + np.log(tf)
            if part.idf is not None:
                tf = tf * part.idf[columns]
            if part.norm == "l2":
                tf = tf / np.sqrt(np.dot(tf, tf))
            elif part.norm == "l1":
                tf = tf / np.abs(tf).sum()
            indices.append(columns + part.offset)
            values.append(tf)
        if not indices:
            return SparseRow(np.empty(0, dtype=np.int64), np.empty(0), self.n_features)
        return SparseRow(np.concatenate(indices), np.concatenate(values), self.n_features)


_ROWS: WeakKeyDictionary[Any, RowFeatures | None] = WeakKeyDictionary()


def row_features(fitted: Any) -> RowFeatures | None:
    """The one-text path of a fitted transformer (cached per object; a refit makes a new object)."""
    try:
        return _ROWS[fitted]
    except KeyError:
        pass
    parts: list[_Part] = []
    offset = 0
    union = fitted.transformer_list if isinstance(fitted, FeatureUnion) else [("only", fitted)]
    supported = not (isinstance(fitted, FeatureUnion) and fitted.transformer_weights)
    for _, part in union:
        segment = None
        if isinstance(part, Pipeline):
            *before, (_, part) = part.steps
            if len(before) > 1 or (before and not isinstance(before[0][1], JiebaTokens)):
                supported = False
                break
            segment = before[0][1].backend if before else None
        if not isinstance(part, TfidfVectorizer) or not hasattr(part, "vocabulary_") or callable(part.analyzer):
            supported = False
            break
        idf = np.asarray(part.idf_, dtype=np.float64) if part.use_idf else None
        parts.append(_Part(segment, part.build_analyzer(), part.vocabulary_, idf, bool(part.sublinear_tf),
                           bool(part.binary), part.norm, offset))
        offset += len(part.vocabulary_)
    rows = RowFeatures(parts, offset) if supported else None
    _ROWS[fitted] = rows
    return rows
