"""Training a routing model of any kind: the split the caller owns, the fit, the held-out metrics, the manifest."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from classifiers.evaluate import dispatch_threshold, evaluation
from classifiers.kinds import TRANSFORMER_DIR, category_classifier, kind_of
from hotline.city import City
from hotline.errors import InvalidInput


def holdout_split(labels: Sequence[str], holdout: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: ``holdout`` of the rows held out, stratified when every class has two rows."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    counts = Counter(labels)
    if len(counts) < 2:
        raise InvalidInput(f"training needs at least two classes, found {len(counts)}")
    if holdout <= 0:
        return index, index[:0]
    stratify = np.asarray(labels, dtype=object) if min(counts.values()) >= 2 else None
    train, test = train_test_split(index, test_size=holdout, random_state=seed, stratify=stratify)
    return np.asarray(train), np.asarray(test)


def fit_model(data: Any, train: np.ndarray, test: np.ndarray, kind: str = "linear", C: float = 0.5,
              holdout: float = 0.1, seed: int = 0, segmenter: str = "rjieba", departments: bool = True,
              base_model: str | None = None, epochs: int = 3, batch_size: int = 16, learning_rate: float = 5e-5,
              source: str = "", params: dict[str, Any] | None = None,
              progress: bool = False, city: City | None = None) -> tuple[Any, dict[str, Any], Any]:
    """Train on the ``train`` rows of ``data`` (:class:`~classifiers.dataset.Examples`), measure on ``test``.

    The caller owns the split (:func:`holdout_split`; the retrainer also drops
    held-out rows that near-duplicate training rows, which would measure
    memory). Returns (linear model or None, transformer parts, manifest); the
    manifest carries the held-out metrics, the auto-dispatch threshold (the
    lowest confidence at which 98% of held-out answers are right) and what
    the model was trained on, and the fingerprint of ``city`` (the bundled one by default), whose offices it
    learns as 属地 and whose words it segments with.
    """
    from classifiers import persist
    from classifiers.model import CaseModel

    city = city or City.bundled(segmenter)

    model_kind = kind_of(kind)
    if model_kind.transformer and not base_model:
        raise InvalidInput(f"--kind {kind} needs --base-model DIR (a local pretrained model directory)")
    started = time.perf_counter()
    counts = Counter(data.labels)
    pick = lambda seq: [seq[i] for i in train]  # noqa: E731
    if progress:
        print(f"training on {len(train)} of {len(data.texts)} examples ({data.skipped} skipped), "
              f"{len(counts)} classes; holding out {len(test)}", file=sys.stderr)
    with_departments = departments and any(data.departments)
    model = None
    if model_kind.linear:
        model = CaseModel(C=C, segmenter=segmenter).fit(
            pick(data.texts), pick(data.labels),
            departments=pick(data.departments) if with_departments else None,
            ids=pick(data.ids), times=pick(data.times), districts=pick(data.districts),
            district_offices=list(city.gazetteer.offices().values()),
        )
    parts = {}
    if model_kind.transformer:
        from classifiers.transformer import TransformerClassifier

        parts[TRANSFORMER_DIR] = TransformerClassifier(
            base_model=base_model, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        ).fit(pick(data.texts), pick(data.labels))
    classifier = category_classifier(model, parts.get(TRANSFORMER_DIR))
    metrics: dict[str, Any] = {}
    threshold = 0.9
    if len(test):
        texts = [data.texts[i] for i in test]
        proba = classifier.predict_proba(texts)
        report = evaluation([data.labels[i] for i in test], proba, classifier.classes_)
        metrics = {k: report[k] for k in ("n", "macro_f1", "accuracy", "top3_accuracy")}
        correct = classifier.classes_[proba.argmax(axis=1)] == np.asarray([data.labels[i] for i in test], dtype=object)
        threshold, coverage = dispatch_threshold(correct, proba.max(axis=1))
        metrics.update(category_threshold_98=threshold, category_coverage_98=coverage)
        if model is not None and model.departments_ is not None:
            leads = np.asarray([model.lead(data.departments[i]) for i in test], dtype=object)
            d_proba = model.department_proba(model.category_.transform_texts(texts))
            d_correct = model.departments_.classes_[d_proba.argmax(axis=1)] == leads
            threshold, coverage = dispatch_threshold(d_correct, d_proba.max(axis=1))
            metrics.update(department_accuracy=float(d_correct.mean()), department_threshold_98=threshold,
                           department_coverage_98=coverage)
    manifest = persist.Manifest.new(
        kind, data_hash=persist.data_hash(data.texts, data.labels), data_size=len(data.texts),
        params={"C": C, "holdout": holdout, "seed": seed, "segmenter": segmenter, "base_model": base_model,
                "epochs": epochs, **(params or {})},
        metrics=metrics,
        extra={"auto_dispatch_threshold": threshold, "source": source, "city": city.fingerprint(),
               "holdout_hash": persist.data_hash([data.texts[i] for i in test], [data.labels[i] for i in test]),
               "train_seconds": round(time.perf_counter() - started, 1)},
    )
    return model, parts, manifest
