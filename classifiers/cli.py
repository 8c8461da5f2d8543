"""``hotline train | evaluate | predict | route``: plugged into the ``hotline`` command.

The core package knows nothing of classifiers; it discovers these commands
through the ``hotline.commands`` entry point, so the dependency points inward.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from hotline.errors import InvalidInput
from hotline.settings import Settings

DEFAULT_MODEL = "current"
TRANSFORMER_DIR = "transformer"


def default_model_dir(settings: Settings) -> Path:
    return Path(settings.models) / DEFAULT_MODEL


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


def fit_model(data: Any, kind: str = "linear", C: float = 0.5, holdout: float = 0.1, seed: int = 0,
              segmenter: str = "rjieba", departments: bool = True, base_model: str | None = None, epochs: int = 3,
              batch_size: int = 16, learning_rate: float = 5e-5, source: str = "", params: dict[str, Any] | None = None,
              progress: bool = False, test_filter: Any = None) -> tuple[Any, dict[str, Any], Any, np.ndarray]:
    """Train on ``data`` (:class:`~classifiers.dataset.Examples`) holding out a share to measure the model.

    Returns (linear model or None, transformer parts, manifest, held-out row
    indices). ``test_filter(train, test)`` may drop held-out rows (near
    duplicates of training rows, which would measure memory). The manifest carries the held-out metrics, the auto-dispatch
    threshold (the lowest confidence at which 98% of held-out answers are
    right) and what the model was trained on.
    """
    from sklearn.model_selection import train_test_split

    from classifiers import persist
    from classifiers.model import CaseModel
    from hotline.places import default_gazetteer

    if kind != "linear" and not base_model:
        raise InvalidInput(f"--model {kind} needs --base-model DIR (a local pretrained model directory)")
    started = time.perf_counter()
    index = np.arange(len(data.texts))
    labels = np.asarray(data.labels, dtype=object)
    counts = Counter(data.labels)
    if len(counts) < 2:
        raise InvalidInput(f"training needs at least two classes, found {len(counts)}")
    stratify = labels if min(counts.values()) >= 2 and holdout > 0 else None
    train, test = (train_test_split(index, test_size=holdout, random_state=seed, stratify=stratify)
                   if holdout > 0 else (index, index[:0]))
    if test_filter is not None and len(test):
        test = test_filter(train, test)
    pick = lambda seq: [seq[i] for i in train]  # noqa: E731
    if progress:
        print(f"training on {len(train)} of {len(data.texts)} examples ({data.skipped} skipped), "
              f"{len(counts)} classes; holding out {len(test)}", file=sys.stderr)
    with_departments = departments and any(data.departments)
    model = None
    if kind in ("linear", "ensemble"):
        model = CaseModel(C=C, segmenter=segmenter).fit(
            pick(data.texts), pick(data.labels),
            departments=pick(data.departments) if with_departments else None,
            ids=pick(data.ids), times=pick(data.times), districts=pick(data.districts),
            district_offices=list(default_gazetteer().offices().values()),
        )
    parts = {}
    if kind in ("transformer", "ensemble"):
        from classifiers.transformer import TransformerClassifier

        parts[TRANSFORMER_DIR] = TransformerClassifier(
            base_model=base_model, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        ).fit(pick(data.texts), pick(data.labels))
    classifier = _category_classifier(model, parts.get(TRANSFORMER_DIR))
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
        extra={"auto_dispatch_threshold": threshold, "source": source,
               "holdout_hash": persist.data_hash([data.texts[i] for i in test], [data.labels[i] for i in test]),
               "train_seconds": round(time.perf_counter() - started, 1)},
    )
    return model, parts, manifest, test


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from classifiers import persist
    from classifiers.dataset import load_examples
    from hotline.places import default_gazetteer

    out = persist.writable(Path(args.out))  # before the minutes of training, not after
    data = load_examples(Path(args.data), args.text_col, args.label_col, args.department_col, default_gazetteer())
    model, parts, manifest, _ = fit_model(
        data, args.model, C=args.C, holdout=args.holdout, seed=args.seed, segmenter=settings.segmenter,
        departments=bool(args.department_col), base_model=args.base_model, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, source=str(args.data),
        params={"label_col": args.label_col, "department_col": args.department_col}, progress=True,
    )
    persist.save(out, model, manifest, parts)
    print(json.dumps({"model": str(args.out), "version": manifest.version, **manifest.metrics}, ensure_ascii=False))
    return 0


def _load(model_dir: Path) -> tuple[Any, Any]:
    from classifiers import persist

    return persist.load(model_dir)


def _category_classifier(model: Any, transformer: Any) -> Any:
    """The linear category model, the transformer, or their even ensemble."""
    if transformer is None:
        return model.category_
    if model is None:
        return transformer
    from classifiers.transformer import EnsembleClassifier

    return EnsembleClassifier([model.category_, transformer])


def load_category_classifier(model_dir: Path) -> Any:
    """Whatever kind a model directory holds, as one estimator with predict_proba and classes_."""
    model, manifest = _load(model_dir)
    transformer = None
    if manifest.kind in ("transformer", "ensemble"):
        from classifiers.transformer import TransformerClassifier

        transformer = TransformerClassifier.load(Path(model_dir) / TRANSFORMER_DIR)
    return _category_classifier(model, transformer)


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from classifiers.dataset import load_examples
    from hotline.spreadsheet import SafeWriter

    classifier = load_category_classifier(Path(args.model))
    data = load_examples(Path(args.data), args.text_col, args.label_col)
    proba = classifier.predict_proba(data.texts)
    print(json.dumps(evaluation(data.labels, proba, classifier.classes_), ensure_ascii=False))
    return 0


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    from classifiers.dataset import load_examples
    from hotline.spreadsheet import SafeWriter

    classifier = load_category_classifier(Path(args.model))
    data = load_examples(Path(args.data), args.text_col, None)
    proba = classifier.predict_proba(data.texts)
    classes = classifier.classes_
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = SafeWriter(fh)
        writer.writerow(["row", "id", "label", "probability", "top3", "probabilities"])
        for i, row in enumerate(proba):
            order = np.argsort(-row)
            writer.writerow([
                data.rows[i], data.ids[i], classes[order[0]], round(float(row[order[0]]), 4),
                "|".join(str(classes[j]) for j in order[:3]),
                json.dumps({str(classes[j]): round(float(row[j]), 4) for j in order[:10] if row[j] >= 0.001}, ensure_ascii=False),
            ])
    print(f"wrote {len(proba)} predictions to {out} ({data.skipped} rows without text skipped)")
    return 0


def make_router(model_dir: Path) -> Any:
    from classifiers.router import Router
    from hotline.places import default_gazetteer
    from hotline.taxonomy import default_taxonomy

    model, manifest = _load(model_dir)
    if model is None:
        raise InvalidInput(f"{model_dir} holds a transformer-only model; routing needs a linear or ensemble model")
    return Router(model, default_taxonomy(), default_gazetteer(), model_version=manifest.version,
                  threshold=float(manifest.extra.get("auto_dispatch_threshold", 0.9)))


def cmd_route(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.case import Area

    text = " ".join(args.text) if args.text else sys.stdin.read()
    router = make_router(Path(args.model) if args.model else default_model_dir(settings))
    routing = router.route(text, area=Area(args.area) if args.area else None)
    if args.json:
        print(json.dumps(routing.to_dict(), ensure_ascii=False))
        return 0
    print(f"类别: {routing.category} ({routing.category_probability:.0%})  区域: {routing.area or '未识别'}")
    for d in routing.departments:
        print(f"  {d.department:<12} {d.probability:6.1%}  {'；'.join(d.reasons)}")
    if routing.terms:
        print("依据: " + "、".join(t for t, _ in routing.terms))
    if routing.similar:
        print("相似工单: " + "、".join(f"{n.case_id}({n.similarity:.2f})" for n in routing.similar))
    print("自动派单" if routing.auto_dispatch else "需人工确认: " + "；".join(routing.needs_person))
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the classifier commands to the ``hotline`` parser."""
    train = commands.add_parser("train", parents=[common], help="train a category (and department) model from a file")
    train.add_argument("--data", required=True, metavar="FILE")
    train.add_argument("--text-col", required=True, metavar="C", help="column with the text or transcript")
    train.add_argument("--label-col", required=True, metavar="C", help="label column; 'a,b' makes the path a/b")
    train.add_argument("--department-col", metavar="C", help="also learn departments and similar cases from C")
    train.add_argument("--out", required=True, metavar="DIR")
    train.add_argument("--model", default="linear", choices=["linear", "transformer", "ensemble"], help="model kind")
    train.add_argument("--base-model", metavar="PATH", help="local pretrained model directory (transformer, ensemble)")
    train.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (transformer)")
    train.add_argument("--batch-size", type=int, default=16, help="fine-tuning batch size (transformer)")
    train.add_argument("--learning-rate", type=float, default=5e-5, help="fine-tuning learning rate (transformer)")
    train.add_argument("--C", type=float, default=0.5, help="SVM regularisation")
    train.add_argument("--holdout", type=float, default=0.1, help="share held out for metrics and the threshold")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(handler=cmd_train)

    model_on_file = argparse.ArgumentParser(add_help=False, parents=[common])
    model_on_file.add_argument("--model", required=True, metavar="DIR")
    model_on_file.add_argument("--data", required=True, metavar="FILE")
    model_on_file.add_argument("--text-col", required=True, metavar="C")

    evaluate = commands.add_parser("evaluate", parents=[model_on_file], help="score a model on a labeled file (JSON)")
    evaluate.add_argument("--label-col", required=True, metavar="C")
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser("predict", parents=[model_on_file], help="label every row of a file")
    predict.add_argument("--out", required=True, metavar="FILE.csv")
    predict.set_defaults(handler=cmd_predict)

    route = commands.add_parser("route", parents=[common], help="suggest category and departments for a transcript")
    route.add_argument("text", nargs="*", help="transcript or message (default: stdin)")
    route.add_argument("--model", metavar="DIR", help="model directory (default: HOTLINE_MODELS/current)")
    route.add_argument("--area", metavar="DISTRICT", help="district, when the caller named it elsewhere")
    route.add_argument("--json", action="store_true")
    route.set_defaults(handler=cmd_route)
