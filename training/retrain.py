"""Retraining: labeled data (a file and/or the store's labels) → a candidate compared with the active model.

The candidate and the active model are scored on the same held-out cases
(the candidate's hold-out, which it never trained on), so promotion can
refuse a model that is worse. The evaluation report (per-class metrics,
confusion matrix, the examples whose prediction changed) is written beside
the candidate.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from classifiers import persist
from classifiers.cli import evaluation, fit_model, load_category_classifier
from classifiers.dataset import Examples, load_examples
from hotline.errors import InvalidInput
from hotline.places import default_gazetteer
from hotline.store.base import CaseStore
from training.data import examples_from_store
from training.registry import Entry, Registry

REPORT_FILE = "evaluation.json"


@dataclass
class RetrainRequest:
    data: Path | None = None
    text_col: str = "transcript"
    label_col: str = "category_l1,category_l2"
    department_col: str | None = "department"
    since: datetime | None = None
    use_store: bool = True
    C: float = 0.5
    holdout: float = 0.1
    seed: int = 0
    kind: str = "linear"
    base_model: str | None = None
    segmenter: str = "rjieba"


def gather(request: RetrainRequest, store: CaseStore | None) -> Examples:
    """The file's examples plus the store's labeled cases (by case id, the store's confirmed label wins)."""
    parts: list[Examples] = []
    if request.data:
        parts.append(load_examples(request.data, request.text_col, request.label_col, request.department_col,
                                   default_gazetteer()))
    if request.use_store and store is not None:
        try:
            parts.append(examples_from_store(store, request.since))
        except InvalidInput:
            if not parts:
                raise
    if not parts:
        raise InvalidInput("nothing to train on: give --data or label cases in the store")
    merged = Examples()
    seen: dict[str, int] = {}
    for part in parts:
        for i, text in enumerate(part.texts):
            key = part.ids[i] if not part.ids[i].startswith("row") else f"text:{text}"
            row = (text, part.labels[i], part.ids[i], part.times[i], part.districts[i],
                   part.departments[i] if part.departments else ())
            if key in seen:  # a later source (the store) replaces an earlier one (the file)
                j = seen[key]
                (merged.texts[j], merged.labels[j], merged.ids[j], merged.times[j], merged.districts[j],
                 merged.departments[j]) = row
                continue
            seen[key] = len(merged.texts)
            for target, value in zip((merged.texts, merged.labels, merged.ids, merged.times, merged.districts,
                                      merged.departments), row, strict=True):
                target.append(value)
            merged.rows.append(len(merged.texts))
        merged.skipped += part.skipped
    return merged


def retrain(registry: Registry, request: RetrainRequest, store: CaseStore | None = None, by: str = "system") -> Entry:
    """Train a candidate, compare it with the active model on the same held-out data, register it."""
    data = gather(request, store)
    model, parts, manifest, test = fit_model(
        data, request.kind, C=request.C, holdout=request.holdout, seed=request.seed, segmenter=request.segmenter,
        base_model=request.base_model, source=str(request.data or "store"),
        params={"label_col": request.label_col, "since": request.since.isoformat() if request.since else None},
    )
    staging = Path(tempfile.mkdtemp(prefix=".train-", dir=_ensure(registry.root)))
    try:
        target = staging / manifest.version
        persist.save(target, model, manifest, parts)
        report = _compare(registry, target, data, test)
        if report.get("compared_with"):
            saved = persist.read_manifest(target)
            saved.extra["compared_with"] = report["compared_with"]
            (target / "manifest.json").write_text(json.dumps(asdict(saved), ensure_ascii=False, indent=2), encoding="utf-8")
        (target / REPORT_FILE).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        entry = registry.register(target, by=by)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _compare(registry: Registry, candidate_dir: Path, data: Examples, test: np.ndarray) -> dict[str, Any]:
    """Both models on the candidate's held-out cases: metrics, and the examples whose prediction changed."""
    if not len(test):
        return {"note": "no held-out data; nothing compared"}
    texts = [data.texts[i] for i in test]
    truth = [data.labels[i] for i in test]
    candidate = load_category_classifier(candidate_dir)
    c_proba = candidate.predict_proba(texts)
    report: dict[str, Any] = {"candidate": evaluation(truth, c_proba, candidate.classes_)}
    active = registry.active()
    if active:
        current = load_category_classifier(registry.path(active))
        a_proba = current.predict_proba(texts)
        report["active"] = evaluation(truth, a_proba, current.classes_)
        a_pred = current.classes_[a_proba.argmax(axis=1)]
        c_pred = candidate.classes_[c_proba.argmax(axis=1)]
        report["changed"] = [
            {"text": texts[i][:200], "label": truth[i], "active": str(a_pred[i]), "candidate": str(c_pred[i])}
            for i in np.flatnonzero(a_pred != c_pred)[:200]
        ]
        report["compared_with"] = {
            "version": active, "n": len(texts),
            "active_macro_f1": report["active"]["macro_f1"], "candidate_macro_f1": report["candidate"]["macro_f1"],
        }
    return report
