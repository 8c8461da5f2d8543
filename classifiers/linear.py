"""The default CPU classifier: TF-IDF words and characters, linear SVM, calibrated.

Linear SVMs are the strongest cheap text classifiers (with naive-Bayes
feature scaling, :class:`NBLinearSVC`, a little stronger), but their scores are
not probabilities; agents and the auto-dispatch threshold need probabilities
that mean what they say, so the scores are calibrated by temperature scaling
(:class:`CalibratedSVM`). Categories can be learned flat or
hierarchically: first level, then the second level within it
(P(l2) = P(l1) · P(l2 | l1)), which keeps rare second-level classes from
competing with unrelated first-level ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from classifiers.features import SparseRow, check_labels, check_texts, forget_stop_words, row_features, text_features
from hotline.errors import InvalidInput

SEPARATOR = "/"
#: At most this share of the training texts may fall below the evidence floor of :meth:`TextClassifier.unclear`.
EVIDENCE_QUANTILE = 0.01
#: ... and at most the evidence of the median bundled content-free phrase.
CONTENT_FREE_QUANTILE = 0.5


def linear_scores(X: Any, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """``X · coefᵀ + intercept``, one sparse product per class when ``X`` is sparse.

    scipy multiplies a sparse matrix by ``coef.T`` only after copying that transposed view into a contiguous
    array: the whole weight matrix (hundreds of thousands of features × classes) on every call, 2–3 ms
    whatever the batch. Each row of ``coef`` is already contiguous, so a product per class copies nothing
    (0.02 ms for one text, 0.13 ms for 64, against 2.4 and 3.3 ms).
    """
    if sparse.issparse(X):
        return np.column_stack([np.asarray(X @ row).ravel() for row in coef]) + intercept
    return np.asarray(X @ coef.T) + intercept


class NBLinearSVC(ClassifierMixin, BaseEstimator):
    """One-vs-rest linear SVMs over features scaled by naive-Bayes log-count ratios (NBSVM).

    Wang & Manning (2012), "Baselines and Bigrams": scaling each feature by
    how much more often it occurs in the class than outside it lets a linear
    SVM weigh rare but telling words properly. Each class's scaling is folded
    into its weights, so prediction is one product, as for a plain SVM
    (``coef_`` and ``intercept_`` as LinearSVC has them).
    """

    def __init__(self, C: float = 0.5, class_weight: str | None = "balanced", alpha: float = 1.0) -> None:
        self.C = C
        self.class_weight = class_weight
        self.alpha = alpha

    def fit(self, X: Any, y: Any) -> NBLinearSVC:
        X = sparse.csr_matrix(X, dtype=np.float64)
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        present = X.copy()
        present.data[:] = 1.0
        in_all = np.asarray(present.sum(axis=0)).ravel()
        targets = self.classes_[1:] if len(self.classes_) == 2 else self.classes_
        coef, intercept = [], []
        scaled = X.copy()
        for cls in targets:
            positive = y == cls
            in_class = present.T @ positive.astype(np.float64)  # documents of the class holding each feature
            p = self.alpha + in_class
            q = self.alpha + in_all - in_class
            ratio = np.log(p / p.sum()) - np.log(q / q.sum())
            scaled.data = X.data * ratio[X.indices]
            svm = LinearSVC(C=self.C, class_weight=self.class_weight).fit(scaled, positive)
            coef.append(svm.coef_[0] * ratio)
            intercept.append(svm.intercept_[0])
        self.coef_ = np.vstack(coef)
        self.intercept_ = np.asarray(intercept)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        scores = linear_scores(X, self.coef_, self.intercept_)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X: Any) -> np.ndarray:
        scores = _as_matrix(self.decision_function(X))
        return self.classes_[np.argmax(scores, axis=1)]


class CalibratedSVM(ClassifierMixin, BaseEstimator):
    """A linear SVM whose decision scores become probabilities by temperature scaling.

    Out-of-fold decision scores (``cv`` folds) fit one temperature T that
    minimises the log loss of softmax(score / T) (Guo et al., 2017, "On
    Calibration of Modern Neural Networks"); the final SVM is then fitted on
    all data. One SVM at prediction time, and multi-class probabilities that
    neither normalised one-vs-rest Platt scaling (under-confident with many
    classes) nor raw scores give.
    """

    def __init__(self, C: float = 0.5, cv: int = 3, class_weight: str | None = "balanced", nb_scale: bool = True) -> None:
        self.C = C
        self.cv = cv
        self.class_weight = class_weight
        self.nb_scale = nb_scale

    def fit(self, X: Any, y: Any) -> CalibratedSVM:
        from sklearn.model_selection import StratifiedKFold

        y = np.asarray(y)
        svm = (NBLinearSVC(C=self.C, class_weight=self.class_weight) if self.nb_scale
               else LinearSVC(C=self.C, class_weight=self.class_weight))
        self.classes_ = np.unique(y)
        rarest = min(Counter(y.tolist()).values())
        if rarest < 2:
            label = min(Counter(y.tolist()), key=Counter(y.tolist()).get)  # type: ignore[arg-type]
            raise InvalidInput(f"class {label!r} has only one example; calibration needs at least two")
        folds = StratifiedKFold(min(self.cv, rarest), shuffle=True, random_state=0)
        _, self.temperature_ = out_of_fold_scores(svm, X, y, folds)
        self.svm_ = svm.fit(X, y)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """``X · wᵀ + b`` directly: on one routed case the SVM's own input checks cost more than the product."""
        if not hasattr(self, "svm_"):
            check_is_fitted(self, "svm_")  # raises NotFittedError; skipped on the hot path once fitted
        coef = self.svm_.coef_
        if isinstance(X, SparseRow):
            scores = (coef[:, X.indices] @ X.data)[None, :] + self.svm_.intercept_
        else:
            scores = linear_scores(X, coef, self.svm_.intercept_)
        return _as_matrix(scores[:, 0]) if scores.shape[1] == 1 else scores

    def predict_proba(self, X: Any) -> np.ndarray:
        return softmax(self.decision_function(X), self.temperature_)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def class_weights(self, cls: Any) -> np.ndarray:
        """The SVM weight vector that scores ``cls``."""
        coef = self.svm_.coef_
        index = list(self.classes_).index(cls)
        if coef.shape[0] == 1:
            return coef[0] if index == 1 else -coef[0]
        return coef[index]


def out_of_fold_scores(svm: BaseEstimator, X: Any, y: np.ndarray, folds: Any,
                       n_jobs: int | None = None) -> tuple[np.ndarray, float]:
    """Each row's decision scores from the fold that did not train on it (columns in sorted class order), and
    the temperature that makes them probabilities (``softmax(scores, T)``)."""
    from sklearn.model_selection import cross_val_predict

    scores = _as_matrix(cross_val_predict(svm, X, y, cv=folds, method="decision_function", n_jobs=n_jobs))
    return scores, fit_temperature(scores, np.searchsorted(np.unique(y), y))


def fit_temperature(scores: np.ndarray, target: np.ndarray) -> float:
    """The T minimising the log loss of softmax(scores / T) against the true columns ``target``."""
    from scipy.optimize import minimize_scalar

    def log_loss(log_t: float) -> float:
        z = scores / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), target]))

    return float(np.exp(minimize_scalar(log_loss, bounds=(-6, 3), method="bounded").x))


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = scores / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _as_matrix(scores: np.ndarray) -> np.ndarray:
    """Binary SVMs give one score column; make it two (−s, s) like the multi-class case."""
    return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


def calibrated_svm(C: float = 0.5, cv: int = 3, class_weight: str | None = "balanced") -> CalibratedSVM:
    return CalibratedSVM(C=C, cv=cv, class_weight=class_weight)


class ConstantClassifier(ClassifierMixin, BaseEstimator):
    """The only class there is, with probability one (a first level with one second level)."""

    def fit(self, X: Any, y: Any) -> ConstantClassifier:
        self.classes_ = np.unique(np.asarray(y))
        if len(self.classes_) != 1:
            raise ValueError("ConstantClassifier takes exactly one class")
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.ones((X.shape[0], 1))

    def predict(self, X: Any) -> np.ndarray:
        return np.repeat(self.classes_, X.shape[0])


def _fit_base(base: BaseEstimator, X: Any, y: np.ndarray) -> BaseEstimator:
    """Fit a clone of ``base``; a single class needs no model."""
    counts = Counter(y.tolist())
    if len(counts) == 1:
        return ConstantClassifier().fit(X, y)
    return clone(base).fit(X, y)


class HierarchicalClassifier(ClassifierMixin, BaseEstimator):
    """Level 1 first, then level 2 within it, over a shared feature matrix.

    Labels are paths ``一级/二级``; a label without a separator is a class of
    its own at both levels.
    """

    def __init__(self, base: BaseEstimator | None = None, separator: str = SEPARATOR) -> None:
        self.base = base
        self.separator = separator

    def fit(self, X: Any, y: Any) -> HierarchicalClassifier:
        y = np.asarray(y, dtype=object)
        base = self.base if self.base is not None else calibrated_svm()
        top = np.array([label.split(self.separator, 1)[0] for label in y], dtype=object)
        self.top_ = _fit_base(base, X, top)
        self.children_: dict[str, BaseEstimator] = {}
        for parent in self.top_.classes_:
            rows = np.flatnonzero(top == parent)
            self.children_[parent] = _fit_base(base, X[rows], y[rows])
        self.classes_ = np.array(sorted(set(y.tolist())), dtype=object)
        self._index = {label: i for i, label in enumerate(self.classes_)}
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        if not hasattr(self, "top_"):
            check_is_fitted(self, "top_")
        top = self.top_.predict_proba(X)
        proba = np.zeros((X.shape[0], len(self.classes_)))
        for j, parent in enumerate(self.top_.classes_):
            child = self.children_[parent]
            columns = [self._index[label] for label in child.classes_]
            proba[:, columns] = top[:, [j]] * child.predict_proba(X)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class TextClassifier(ClassifierMixin, BaseEstimator):
    """Raw text in, calibrated class probabilities out; one object to fit, save and evaluate.

    ``hierarchical=True`` expects labels as ``一级/二级`` paths.
    """

    def __init__(
        self,
        C: float = 0.5,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (1, 3),
        min_df: int = 2,
        hierarchical: bool = False,
        calibration_folds: int = 3,
        class_weight: str | None = "balanced",
        segmenter: str = "rjieba",
    ) -> None:
        self.C = C
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.hierarchical = hierarchical
        self.calibration_folds = calibration_folds
        self.class_weight = class_weight
        self.segmenter = segmenter

    def fit(self, X: Any, y: Any) -> TextClassifier:
        texts = check_texts(X)
        labels = check_labels(texts, y)
        if self.hierarchical and not all(isinstance(label, str) for label in labels):
            raise InvalidInput("a hierarchical model needs labels as '一级/二级' paths")
        min_df = self.min_df if len(texts) >= 50 else 1
        self.features_ = text_features(_pair(self.word_ngrams), _pair(self.char_ngrams), min_df, backend=self.segmenter)
        matrix = self.features_.fit_transform(texts)
        forget_stop_words(self.features_)
        base = calibrated_svm(self.C, self.calibration_folds, self.class_weight)
        self.model_ = HierarchicalClassifier(base).fit(matrix, labels) if self.hierarchical else _fit_base(base, matrix, labels)
        self.classes_ = self.model_.classes_
        self._fit_unclear(texts, matrix)
        return self

    def transform_texts(self, X: Any) -> sparse.csr_matrix:
        check_is_fitted(self, "model_")
        return self.features_.transform(check_texts(X))

    def transform_row(self, text: str) -> SparseRow:
        """One text's features, for routing one case (the same values as :meth:`transform_texts`, a fraction of the time)."""
        check_is_fitted(self, "model_")
        rows = row_features(self.features_)
        if rows is None:
            return SparseRow.from_matrix(self.transform_texts([text]))
        return rows.transform(check_texts([text], "text")[0])

    def predict_proba(self, X: Any) -> np.ndarray:
        """One text takes :meth:`transform_row`'s path, as routing does: building a one-row scipy matrix costs more
        than scoring it (0.6 against 1.5 ms p50 for a 200-character text on a whole-message model)."""
        texts = check_texts(X)
        if len(texts) == 1:
            return self.model_.predict_proba(self.transform_row(texts[0]))
        return self.model_.predict_proba(self.transform_texts(texts))

    def evidence(self, features: Any) -> np.ndarray:
        """Per row: Σ feature value × the largest weight any class gives that feature (first level).

        Words no class cares about (greetings, fillers, 我想问个事) add little;
        one telling word (路灯, 欠薪) adds much.
        """
        weights = self.evidence_weights_
        if isinstance(features, SparseRow):
            return np.asarray([float(features.data @ weights[features.indices])])
        return np.asarray(features @ weights).ravel()

    def unclear(self, features: Any) -> np.ndarray:
        """Per row: nothing a department could act on yet ("hello", "我想问个事", a question about the weather).

        The calibrated probabilities cannot say this (they sum to one, and a
        text with no evidence still leans somewhere, at 75–87% in the demo).
        Two signals can: a small logistic model that tells the bundled
        content-free phrases from training texts (and from those phrases
        followed by real content, so "我想问个事，停电了" is clear), and the
        evidence, below what the median content-free phrase carries. The
        phrase model is not believed against more evidence than any bundled
        content-free phrase carries ("我想咨询一下关于拆迁户大病补助的事"
        sounds like a phrase but names a problem). Models saved before this
        rule never answer unclear.
        """
        detector = getattr(self, "content_free_", None)
        if detector is None:
            return np.zeros(1 if isinstance(features, SparseRow) else features.shape[0], dtype=bool)
        coef, intercept = detector.coef_[0], detector.intercept_[0]
        if isinstance(features, SparseRow):
            logit = np.asarray([float(features.data @ coef[features.indices]) + intercept])
        else:
            logit = np.asarray(features @ coef).ravel() + intercept
        evidence = self.evidence(features)
        ceiling = getattr(self, "evidence_ceiling_", np.inf)
        return ((logit >= 0) & (evidence < ceiling)) | (evidence < self.evidence_floor_)

    def _fit_unclear(self, texts: list[str], matrix: sparse.csr_matrix) -> None:
        import random

        from sklearn.linear_model import LogisticRegression

        svm = self.model_.top_ if isinstance(self.model_, HierarchicalClassifier) else self.model_
        inner = getattr(getattr(svm, "svm_", None), "coef_", None)
        if inner is None:
            return
        self.evidence_weights_ = np.abs(np.asarray(inner)).max(axis=0)
        phrases = content_free_phrases()
        rng = random.Random(0)
        pairs = [f"{a}，{b}" for a, b in (rng.sample(phrases, 2) for _ in range(300))]

        def window(text: str) -> str:
            start = rng.randrange(max(1, len(text) - 12))
            return text[start:start + 12]

        led = [f"{rng.choice(phrases)}，{window(rng.choice(texts))}" for _ in range(600)]
        sample = rng.sample(range(len(texts)), min(len(texts), 5000))
        free = self.features_.transform(phrases + pairs)
        X = sparse.vstack([matrix[sample], self.features_.transform(led), free]).tocsr()
        y = np.r_[np.zeros(len(sample) + len(led)), np.ones(free.shape[0])]
        self.content_free_ = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(X, y)
        carried = self.evidence(self.features_.transform(phrases))
        self.evidence_floor_ = float(min(np.quantile(carried, CONTENT_FREE_QUANTILE),
                                         np.quantile(self.evidence(matrix), EVIDENCE_QUANTILE)))
        self.evidence_ceiling_ = float(carried.max())

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def as_pipeline(self) -> Pipeline:
        """The fitted model as a plain scikit-learn Pipeline (features → classifier)."""
        check_is_fitted(self, "model_")
        return Pipeline([("features", self.features_), ("classifier", self.model_)])

    def explain(self, text: str, label: str, k: int = 8) -> list[tuple[str, float]]:
        """The ``k`` terms of ``text`` that push most towards ``label`` (weight × tf-idf).

        For a hierarchical model the weights of the first level and of the
        second level within it are added.
        """
        return self.explain_row(self.transform_texts([text]), label, k)

    def explain_row(self, row: sparse.csr_matrix | SparseRow, label: str, k: int = 8) -> list[tuple[str, float]]:
        """:meth:`explain` for a text already turned into features."""
        row = SparseRow.from_matrix(row)
        contribution = np.zeros(len(row.indices))
        for model, cls in self._linear_parts(label):
            weights = _class_weights(model, cls)
            if not np.isscalar(weights):
                contribution += np.asarray(weights)[row.indices] * row.data
        if not contribution.any():
            return []
        term_ids, terms = self._terms()
        ids, each = np.unique(term_ids[row.indices], return_inverse=True)
        pushes = np.bincount(each, weights=contribution, minlength=len(ids))  # a term's features added
        order = np.argsort(-pushes, kind="stable")[:k]
        return [(terms[ids[i]], float(pushes[i])) for i in order if pushes[i] > 0]

    def _linear_parts(self, label: str) -> list[tuple[BaseEstimator, str]]:
        if isinstance(self.model_, HierarchicalClassifier):
            parent = label.split(self.model_.separator, 1)[0]
            return [(self.model_.top_, parent), (self.model_.children_.get(parent), label)]
        return [(self.model_, label)]

    def _terms(self) -> tuple[np.ndarray, np.ndarray]:
        """Each feature's term id, and the terms as the agent reads them. A word and the same characters as a
        character n-gram (or a word pair with its space removed) read alike: one term, so that reasons add
        their pushes instead of naming it twice. Built once per model (tens of ms), not on each call."""
        if not hasattr(self, "_term_ids"):
            seen: dict[str, int] = {}
            names = (n.split("__", 1)[1].replace(" ", "") for n in self.features_.get_feature_names_out())
            self._term_ids = np.fromiter((seen.setdefault(n, len(seen)) for n in names), dtype=np.int64)
            self._term_names = np.array(list(seen), dtype=object)
        return self._term_ids, self._term_names


def content_free_phrases() -> list[str]:
    """The bundled calls that say nothing yet (greetings, fillers, questions about the hotline itself)."""
    from importlib import resources

    text = resources.files("hotline.data").joinpath("content_free.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _class_weights(model: BaseEstimator | None, cls: str) -> np.ndarray | float:
    """The linear weights that score ``cls`` (0 where the model is not linear or lacks the class)."""
    if not isinstance(model, CalibratedSVM) or cls not in model.classes_:
        return 0.0
    return model.class_weights(cls)


def _pair(ngrams: Sequence[int]) -> tuple[int, int]:
    """An n-gram range as given (a list after a JSON round trip) as the (low, high) pair the features take."""
    low, high = ngrams
    return low, high
