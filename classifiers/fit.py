"""Training a routing model of any kind: the split the caller owns, the fit, the held-out metrics, the manifest."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from classifiers.evaluate import dispatch_threshold, evaluation
from classifiers.kinds import TRANSFORMER_DIR, kind_of
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
              max_length: int = 256, source: str = "", params: dict[str, Any] | None = None,
              progress: bool = False, city: City | None = None, precision: str = "auto") -> tuple[Any, dict[str, Any], Any]:
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
    if progress:
        print(f"training on {len(train)} of {len(data.texts)} examples ({data.skipped} skipped), "
              f"{len(counts)} classes; holding out {len(test)}", file=sys.stderr)
    with_departments = departments and any(data.departments)
    # An ensemble's stacker learns from rows neither member trained on: a share of the training rows, after
    # which the linear model is refitted on all of them (as scikit-learn's StackingClassifier does).
    stack_rows = np.asarray([], dtype=int)
    fit_rows = np.asarray(train)
    if model_kind.linear and model_kind.transformer:
        inner_fit, inner_stack = holdout_split([data.labels[i] for i in train], 0.1, seed)
        fit_rows, stack_rows = np.asarray(train)[inner_fit], np.asarray(train)[inner_stack]

    def linear(rows: np.ndarray) -> Any:
        pick_rows = lambda seq: [seq[i] for i in rows]  # noqa: E731
        return CaseModel(C=C, segmenter=segmenter).fit(
            pick_rows(data.texts), pick_rows(data.labels),
            departments=pick_rows(data.departments) if with_departments else None,
            ids=pick_rows(data.ids), times=pick_rows(data.times), districts=pick_rows(data.districts),
            district_offices=list(city.gazetteer.offices().values()),
        )

    model = linear(fit_rows) if model_kind.linear else None
    parts: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    classifier = model.category_ if model is not None else None
    if model_kind.transformer and base_model:  # (checked above: a transformer kind without one is refused)
        from classifiers.transformer import TransformerClassifier

        transformer = TransformerClassifier(
            base_model=base_model, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            max_length=max_length, seed=seed, progress=progress, precision=precision,
        ).fit([data.texts[i] for i in fit_rows], [data.labels[i] for i in fit_rows])
        parts[TRANSFORMER_DIR] = transformer
        extra["transformer"] = {"base_model": base_model, "max_length": max_length, "precision": transformer.precision_,
                                "best_epoch": transformer.best_epoch_,
                                "validation_macro_f1": transformer.validation_history_,
                                "loss": transformer.loss_history_}
        classifier = served = transformer.served()  # the stacker and the metrics see what will be served
        extra["transformer"]["int8"] = transformer.int8_  # which int8 graph, and how often it gave fp32's answer
        if model is not None:
            classifier = _stack(model, served, data, stack_rows, parts, extra)
            model = linear(np.asarray(train))
            classifier.first = model.category_
    metrics: dict[str, Any] = {}
    threshold = 0.9
    if len(test) and classifier is not None:
        texts = [data.texts[i] for i in test]
        proba = classifier.predict_proba(texts)
        report = evaluation([data.labels[i] for i in test], proba, classifier.classes_)
        metrics = {k: report[k] for k in ("n", "macro_f1", "accuracy", "top3_accuracy")}
        correct = classifier.classes_[proba.argmax(axis=1)] == np.asarray([data.labels[i] for i in test], dtype=object)
        threshold, coverage = dispatch_threshold(correct, proba.max(axis=1))
        metrics.update(category_threshold_98=threshold, category_coverage_98=coverage)
        if model is not None and "cascade_threshold" in extra:
            first = model.category_.predict_proba(texts)
            metrics["encoder_share"] = float(np.mean(classifier.unsure(first)))
            metrics["linear_macro_f1"] = evaluation([data.labels[i] for i in test], first, model.classes_)["macro_f1"]
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
                "epochs": epochs, "max_length": max_length, **(params or {})},
        metrics=metrics,
        extra={**extra, "auto_dispatch_threshold": threshold, "source": source, "city": city.fingerprint(),
               "holdout_hash": persist.data_hash([data.texts[i] for i in test], [data.labels[i] for i in test]),
               "train_seconds": round(time.perf_counter() - started, 1)},
    )
    return model, parts, manifest


def _stack(model: Any, transformer: Any, data: Any, rows: np.ndarray, parts: dict[str, Any],
           extra: dict[str, Any]) -> Any:
    """The cascade of the linear model and the encoder, its stacker fitted on ``rows`` (which neither saw) and
    its threshold the linear model's 98%-precision confidence there."""
    from classifiers.cascade import STACKER_DIR, Cascade, Stacker

    texts = [data.texts[i] for i in rows]
    labels = np.asarray([data.labels[i] for i in rows], dtype=object)
    first = model.category_.predict_proba(texts)
    second = transformer.predict_proba(texts)
    stacker = Stacker().fit([first, second], [model.classes_, transformer.classes_], labels)
    correct = model.classes_[first.argmax(axis=1)] == labels
    threshold, coverage = dispatch_threshold(correct, first.max(axis=1))
    parts[STACKER_DIR] = stacker
    extra.update(cascade_threshold=threshold, cascade_linear_coverage=coverage, stacker_rows=len(rows),
                 stacker_weights={"linear": float(stacker.weights_[0]), "encoder": float(stacker.weights_[1])})
    return Cascade(model.category_, transformer, stacker, threshold)
