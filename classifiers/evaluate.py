"""Measuring a model on held-out cases: the metrics a candidate is compared on, and the auto-dispatch threshold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def evaluation(y_true: list[str], proba: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    """macro-F1, accuracy, top-3 accuracy, per-class P/R/F1 and the confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    y = np.asarray(y_true, dtype=object)
    predicted = classes[np.argmax(proba, axis=1)]
    top3 = classes[np.argsort(-proba, axis=1)[:, :3]]
    labels = sorted(set(y.tolist()) | set(predicted.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    return {
        "n": int(len(y)),
        "macro_f1": float(f1_score(y, predicted, labels=sorted(set(y.tolist())), average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, predicted)),
        "top3_accuracy": float(np.mean([t in row for t, row in zip(y, top3, strict=True)])),
        "per_class": {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)},
        "confusion_matrix": {"labels": labels, "matrix": confusion_matrix(y, predicted, labels=labels).tolist()},
    }


def dispatch_threshold(correct: np.ndarray, confidence: np.ndarray, precision: float = 0.98) -> tuple[float, float]:
    """The lowest confidence threshold whose auto-dispatched share is ``precision`` right, and that share.

    Returns (1.0, 0.0) when no threshold reaches the precision.
    """
    order = np.argsort(-confidence)
    hits = np.cumsum(correct[order])
    counts = np.arange(1, len(order) + 1)
    ok = np.flatnonzero(hits / counts >= precision)
    if len(ok) == 0:
        return 1.0, 0.0
    last = ok[-1]
    return float(confidence[order][last]), float((last + 1) / len(order))


#: Resamples of the paired bootstrap: the interval's ends move by about 0.0005 macro-F1 between seeds at 1,000.
BOOTSTRAP_RESAMPLES = 1000


def paired_macro_f1_interval(y_true: Sequence[str], first: Sequence[str], second: Sequence[str],
                             resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """The macro-F1 of ``second`` minus that of ``first`` on the same cases, and its 95% paired-bootstrap interval.

    Two models measured on the same few thousand held-out cases differ by a
    few cases' worth of macro-F1 from chance alone (0.9344 against 0.9354 on
    6,664 cases is about 7 cases). Resampling the cases, with both models'
    answers kept together, gives the spread of the difference; a candidate
    is worse than the active model only when the whole interval lies below
    zero (Efron & Tibshirani 1993, ch. 13, the percentile interval). Macro-F1
    is over the labels of ``y_true``, as :func:`evaluation` computes it.
    """
    y = np.asarray(y_true, dtype=object)
    labels = sorted(set(y.tolist()))
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)

    def codes(values: Sequence[str]) -> np.ndarray:
        return np.asarray([index.get(v, k) for v in values], dtype=np.int64)  # k: a label outside y_true

    truth, a, b = codes(list(y)), codes(first), codes(second)
    rng = np.random.default_rng(seed)
    weights = np.vstack([np.ones(len(truth)), rng.multinomial(len(truth), np.full(len(truth), 1 / len(truth)),
                                                               size=resamples)])

    def macro_f1(predicted: np.ndarray) -> np.ndarray:
        hit = (predicted == truth).astype(float)
        tp = np.stack([np.bincount(truth, weights=w * hit, minlength=k + 1)[:k] for w in weights])
        support = np.stack([np.bincount(truth, weights=w, minlength=k + 1)[:k] for w in weights])
        said = np.stack([np.bincount(predicted, weights=w, minlength=k + 1)[:k] for w in weights])
        denominator = support + said
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        present = support > 0  # a label a resample lacks does not count (as for sklearn's labels of y_true)
        return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)

    difference = macro_f1(b) - macro_f1(a)
    low, high = np.percentile(difference[1:], [2.5, 97.5])
    return float(difference[0]), float(low), float(high)


def noise_verdict(low: float, high: float) -> str:
    """What a 95% interval of a difference (second minus first) says: ``worse`` when it lies wholly below zero,
    ``better`` wholly above, else ``within noise``. The one rule the registry's refusal, the evaluation page and
    the models page read."""
    return "worse" if high < 0 else "better" if low > 0 else "within noise"
