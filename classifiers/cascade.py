"""The linear model first, the encoder where the linear model is unsure: a cascade with a stacked combination.

Routing must answer in milliseconds, and most calls are plain: the linear
model is right on nearly all of those it is confident about, so it answers
them alone (above its auto-dispatch threshold). The rest go to the
fine-tuned encoder, and a :class:`Stacker` — a logistic regression over both
models' log-probabilities, fitted on rows neither model trained on — decides.
A fixed-weight average was tried first; the stacker learns per class which
model to believe.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from classifiers.features import check_texts
from hotline.errors import InvalidInput

STACKER_FILE = "stacker.skops"
#: Where a model directory keeps the stacker.
STACKER_DIR = "stacker"


def aligned(proba: np.ndarray, member_classes: Sequence[Any], classes: np.ndarray) -> np.ndarray:
    """``proba`` (columns in ``member_classes`` order) as columns of ``classes``; classes it lacks get 0."""
    out = np.zeros((proba.shape[0], len(classes)))
    out[:, np.searchsorted(classes, np.asarray(member_classes, dtype=object))] = proba
    return out


class Stacker(ClassifierMixin, BaseEstimator):
    """A multinomial logistic regression over the members' log-probabilities."""

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def _features(self, probas: Sequence[np.ndarray], member_classes: Sequence[Sequence[Any]]) -> np.ndarray:
        return np.hstack([np.log(np.clip(aligned(p, c, self.classes_), 1e-6, 1.0))
                          for p, c in zip(probas, member_classes, strict=True)])

    def fit(self, probas: Sequence[np.ndarray], member_classes: Sequence[Sequence[Any]], y: Sequence[Any]) -> Stacker:
        from sklearn.linear_model import LogisticRegression

        if len(probas) != len(member_classes) or not probas:
            raise InvalidInput("the stacker needs each member's probabilities and classes")
        self.classes_ = np.unique(np.concatenate([np.asarray(c, dtype=object) for c in member_classes]))
        self.model_ = LogisticRegression(C=self.C, max_iter=2000).fit(self._features(probas, member_classes),
                                                                       np.asarray(y, dtype=object))
        return self

    def combine(self, probas: Sequence[np.ndarray], member_classes: Sequence[Sequence[Any]]) -> np.ndarray:
        """Probabilities over ``classes_``; a class the held-out rows lacked keeps the members' mean."""
        mean = np.mean([aligned(p, c, self.classes_) for p, c in zip(probas, member_classes, strict=True)], axis=0)
        learned = aligned(self.model_.predict_proba(self._features(probas, member_classes)), self.model_.classes_,
                          self.classes_)
        missing = ~np.isin(self.classes_, self.model_.classes_)
        if missing.any():
            learned[:, missing] = mean[:, missing]
            learned /= learned.sum(axis=1, keepdims=True)
        return learned

    def save(self, directory: Path) -> Path:
        import skops.io

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        skops.io.dump(self, directory / STACKER_FILE)
        return directory

    @classmethod
    def load(cls, directory: Path) -> Stacker:
        from classifiers.persist import load_skops

        return load_skops(Path(directory) / STACKER_FILE)


class Cascade(ClassifierMixin, BaseEstimator):
    """``first`` alone where its top probability reaches ``threshold``; elsewhere ``stacker`` over both members."""

    def __init__(self, first: Any, second: Any, stacker: Stacker, threshold: float = 1.0) -> None:
        self.first = first
        self.second = second
        self.stacker = stacker
        self.threshold = threshold

    @property
    def classes_(self) -> np.ndarray:
        return self.stacker.classes_

    def predict_proba(self, X: Any) -> np.ndarray:
        texts = check_texts(X)
        first = self.first.predict_proba(texts)
        out = aligned(first, self.first.classes_, self.classes_)
        unsure = np.flatnonzero(self.unsure(first))
        if len(unsure):
            out[unsure] = self.combine(first[unsure], [texts[i] for i in unsure])
        return out

    def combine(self, first: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """The stacked answer for rows where ``first`` (its probabilities given) is unsure."""
        second = self.second.predict_proba(list(texts))
        return self.stacker.combine([first, second], [self.first.classes_, self.second.classes_])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def unsure(self, first: np.ndarray) -> np.ndarray:
        """Per row of ``first``'s probabilities: below the threshold, so the encoder is asked."""
        return first.max(axis=1) < self.threshold

    def encoder_share(self, X: Any) -> float:
        """Share of ``X`` that would reach the encoder."""
        first = self.first.predict_proba(check_texts(X))
        return float(np.mean(self.unsure(first))) if len(first) else 0.0


class CascadeModel:
    """A :class:`~classifiers.router.RoutingModel`: the linear :class:`CaseModel` with the cascade's categories.

    Departments, explanations and similar cases stay with the linear side,
    which can say which words made it choose; only the category
    probabilities of unsure calls come from the cascade.
    """

    #: Unsure calls wait for the encoder: the service routes this model's calls off its event loop.
    runs_encoder = True

    def __init__(self, linear: Any, cascade: Cascade) -> None:
        self.linear = linear
        self.cascade = cascade
        self.similar_ = linear.similar_

    def features(self, text: str) -> tuple[Any, str]:
        return self.linear.features(text), text

    def batch_features(self, texts: Sequence[str]) -> list[tuple[Any, str]]:
        return list(zip(self.linear.batch_features(texts), texts, strict=True))

    def category_scores(self, features: tuple[Any, str]) -> tuple[np.ndarray, np.ndarray]:
        row, text = features
        classes, proba = self.linear.category_scores(row)
        if not self.cascade.unsure(proba[None, :])[0]:
            return classes, proba
        return self.cascade.classes_, self.cascade.combine(proba[None, :], [text])[0]

    def department_scores(self, features: tuple[Any, str]) -> tuple[np.ndarray, np.ndarray] | None:
        return self.linear.department_scores(features[0])

    def explain(self, features: tuple[Any, str], category: str, k: int = 6) -> list[tuple[str, float]]:
        return self.linear.explain(features[0], category, k=k)

    def lead(self, departments: Sequence[str]) -> str:
        return self.linear.lead(departments)

    def unclear(self, features: tuple[Any, str]) -> bool:
        return self.linear.unclear(features[0])

    def usual_departments(self, category: str) -> dict[str, float]:
        return self.linear.usual_departments(category)

    def co_handlers(self, category: str) -> dict[str, float]:
        return self.linear.co_handlers(category)
