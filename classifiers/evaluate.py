"""Measuring a model on held-out cases: the metrics a candidate is compared on, and the auto-dispatch threshold."""

from __future__ import annotations

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
