"""The routing model: what one training run produces and one directory holds.

Three learned parts: the category classifier, the department classifier (on
the category model's features, so a routed case is featurised once) and the
index of similar past cases. District offices are learned as one class,
属地 (jurisdiction): the text tells *whether* the local office leads, the
area of the case tells *which* office, so a model trained on one district
routes cases of every district.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from classifiers.features import SparseRow
from classifiers.linear import CalibratedSVM, TextClassifier
from classifiers.similar import SimilarCases
from hotline.errors import InvalidInput

LOCAL = "属地"


class CaseModel(BaseEstimator):
    """Category + lead department + similar cases, fitted together on labeled cases."""

    def __init__(self, C: float = 0.5, segmenter: str = "rjieba", similar: bool = True) -> None:
        self.C = C
        self.segmenter = segmenter
        self.similar = similar

    def fit(
        self,
        X: Sequence[str],
        categories: Sequence[str],
        departments: Sequence[tuple[str, ...]] | None = None,
        ids: Sequence[str] | None = None,
        times: Sequence[datetime | None] | None = None,
        districts: Sequence[str] | None = None,
        district_offices: Sequence[str] = (),
    ) -> CaseModel:
        texts = list(X)
        hierarchical = all("/" in c for c in categories)
        self.category_ = TextClassifier(C=self.C, hierarchical=hierarchical, segmenter=self.segmenter).fit(texts, list(categories))
        self.district_offices_ = np.asarray(sorted(district_offices), dtype=object)
        self.departments_ = None
        self.similar_ = None
        self.usual_departments_: dict[str, dict[str, float]] = {}
        self.co_handlers_: dict[str, dict[str, float]] = {}
        if departments is not None:
            if len(departments) != len(texts):
                raise InvalidInput(f"{len(texts)} texts but {len(departments)} department lists")
            leads = [self.lead(d) for d in departments]
            self.usual_departments_, self.co_handlers_ = _category_departments(categories, departments, leads)
            labeled = [i for i, lead in enumerate(leads) if lead]
            if len({leads[i] for i in labeled}) >= 2:
                matrix = self.category_.transform_texts([texts[i] for i in labeled])
                # A plain SVM here: naive-Bayes scaling took 2.5× the time on the overlapping department classes
                # and made the 100k retrain 457 s instead of 154 (target 300); the category model keeps it.
                self.departments_ = CalibratedSVM(C=self.C, nb_scale=False).fit(
                    matrix, np.asarray([leads[i] for i in labeled]))
            if self.similar and labeled:
                pick = lambda seq: [seq[i] for i in labeled] if seq is not None else None  # noqa: E731
                self.similar_ = SimilarCases(segmenter=self.segmenter).fit(
                    [texts[i] for i in labeled],
                    ids=pick(ids) or [str(i) for i in labeled],
                    departments=[tuple(departments[i]) for i in labeled],
                    categories=[categories[i] for i in labeled],
                    times=pick(times),
                    districts=pick(districts),
                )
        return self

    def department_proba(self, features: Any) -> np.ndarray | None:
        """Lead-department probabilities for rows of ``category_`` features (None without a model)."""
        return None if self.departments_ is None else self.departments_.predict_proba(features)

    def lead(self, departments: Sequence[str]) -> str:
        """The lead department as the model learns it: district offices become 属地."""
        if not departments:
            return ""
        first = departments[0]
        return LOCAL if first in set(self.district_offices_.tolist()) else first

    def usual_departments(self, category: str) -> dict[str, float]:
        """Share of the category's training cases each lead department handled (empty for older models)."""
        return getattr(self, "usual_departments_", {}).get(category, {})

    def co_handlers(self, category: str) -> dict[str, float]:
        """Share of the category's training cases each department co-handled (协办)."""
        return getattr(self, "co_handlers_", {}).get(category, {})

    @property
    def classes_(self) -> Any:
        return self.category_.classes_

    # ------------------------------------------------------------ the RoutingModel protocol
    def features(self, text: str) -> SparseRow:
        return self.category_.transform_row(text)

    def batch_features(self, texts: Sequence[str]) -> list[SparseRow]:
        matrix = self.category_.transform_texts(list(texts)).tocsr()
        return [SparseRow.from_matrix(matrix[i]) for i in range(matrix.shape[0])]

    def category_scores(self, features: SparseRow) -> tuple[np.ndarray, np.ndarray]:
        return self.category_.classes_, self.category_.model_.predict_proba(features)[0]

    def department_scores(self, features: SparseRow) -> tuple[np.ndarray, np.ndarray] | None:
        if self.departments_ is None:
            return None
        return self.departments_.classes_, self.departments_.predict_proba(features)[0]

    def explain(self, features: SparseRow, category: str, k: int = 6) -> list[tuple[str, float]]:
        return self.category_.explain_row(features, category, k=k)

    def unclear(self, features: SparseRow) -> bool:
        return bool(self.category_.unclear(features)[0])


def _category_departments(categories: Sequence[str], departments: Sequence[Sequence[str]],
                          leads: Sequence[str]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per category: the share of its cases each department led, and the share each co-handled."""
    from collections import Counter, defaultdict

    led: dict[str, Counter] = defaultdict(Counter)
    helped: dict[str, Counter] = defaultdict(Counter)
    sizes: Counter = Counter()
    for category, lead, handlers in zip(categories, leads, departments, strict=True):
        if not lead:
            continue
        sizes[category] += 1
        led[category][lead] += 1
        for d in dict.fromkeys(handlers[1:]):
            helped[category][d] += 1
    share = lambda counts, n: {d: c / n for d, c in counts.most_common()}  # noqa: E731
    return ({c: share(led[c], n) for c, n in sizes.items()}, {c: share(helped[c], n) for c, n in sizes.items()})
