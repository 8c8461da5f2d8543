"""Classification and routing figures, each beside its baseline from the same run.

Accuracy: the real messages of ../shared/data, 5-fold stratified CV, macro-F1 of
the default model against jieba words + TF-IDF + LinearSVC; the same on short
texts (the first sentence). Auto-dispatch: from the out-of-fold probabilities,
the share covered at the lowest threshold whose precision is ≥ 0.98. Speed:
single-case routing latency in process after warm-up, batch throughput on
200-character texts on one core, training time on 6,000 messages.
"""

from __future__ import annotations

import re
import sys
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import five_folds, labeled_rows, peak_rss_mib, report


def first_sentence(text: str) -> str:
    parts = [p for p in re.split(r"[。！？!?\n]", text) if len(p.strip()) >= 6]
    return (parts[0] if parts else text)[:60]


def oof_proba(make, texts: list[str], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes = np.unique(labels)
    proba = np.zeros((len(texts), len(classes)))
    for train, test in five_folds(labels):
        model = make().fit([texts[i] for i in train], labels[train])
        columns = np.searchsorted(classes, model.classes_)
        proba[np.ix_(test, columns)] = model.predict_proba([texts[i] for i in test])
    return classes, proba


class Baseline:
    """The published baseline: jieba words, TF-IDF, LinearSVC (decision scores as 'probabilities')."""

    def fit(self, texts, labels):
        import jieba
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline
        from sklearn.svm import LinearSVC

        jieba.setLogLevel(60)
        self.model = make_pipeline(TfidfVectorizer(tokenizer=jieba.lcut, token_pattern=None), LinearSVC())
        self.model.fit(texts, labels)
        self.classes_ = self.model.classes_
        return self

    def predict_proba(self, texts):
        scores = self.model.decision_function(texts)
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def main() -> None:
    from sklearn.metrics import f1_score

    from classifiers.dataset import prepare_text
    from classifiers.evaluate import dispatch_threshold
    from classifiers.linear import TextClassifier
    from classifiers.model import CaseModel
    from classifiers.router import Router
    from hotline.demo.generator import DemoGenerator
    from hotline.places import default_gazetteer
    from hotline.taxonomy import default_taxonomy

    rows = labeled_rows()
    raw = [r["text"] for r in rows]
    labels = np.array([r["label"] for r in rows], dtype=object)
    texts = [prepare_text(t) or t for t in raw]
    short = [prepare_text(first_sentence(t)) or first_sentence(t) for t in raw]

    figures: dict[str, object] = {"messages": len(rows), "classes": len(set(labels.tolist()))}
    for name, data, make in (
        ("baseline jieba+TF-IDF+LinearSVC", raw, Baseline),
        ("default model", texts, TextClassifier),
        ("baseline, short texts", [first_sentence(t) for t in raw], Baseline),
        ("default model, short texts", short, TextClassifier),
    ):
        started = time.perf_counter()
        classes, proba = oof_proba(make, data, labels)
        predicted = classes[proba.argmax(axis=1)]
        figures[f"{name}: macro-F1 (5-fold)"] = float(f1_score(labels, predicted, average="macro"))
        if not name.startswith("baseline"):
            threshold, share = dispatch_threshold(predicted == labels, proba.max(axis=1))
            figures[f"{name}: auto-dispatch share at precision>=0.98"] = share
            figures[f"{name}: threshold"] = threshold
        figures[f"{name}: seconds for 5 folds"] = time.perf_counter() - started

    started = time.perf_counter()
    sample = np.random.default_rng(0).choice(len(texts), 6000, replace=False)
    model = TextClassifier().fit([texts[i] for i in sample], labels[sample])
    figures["training on 6,000 messages (s)"] = time.perf_counter() - started

    # Routing speed on a model trained from generated calls (categories, departments, similar cases).
    gen_rows, _ = DemoGenerator(default_gazetteer(), default_taxonomy(), seed=5).generate(60, date(2025, 3, 1))
    gen_texts = [prepare_text(r["transcript"]) for r in gen_rows]
    case_model = CaseModel().fit(
        gen_texts, [f"{r['category_l1']}/{r['category_l2']}" for r in gen_rows],
        departments=[tuple(r["department"].split("|")) for r in gen_rows], ids=[r["id"] for r in gen_rows],
        times=[datetime.fromisoformat(r["received_at"]) for r in gen_rows], districts=[r["district"] for r in gen_rows],
        district_offices=list(default_gazetteer().offices().values()),
    )
    router = Router(case_model, default_taxonomy(), default_gazetteer())
    texts200 = [(t * 4)[:200] for t in raw[:1000]]
    for t in texts200[:50]:
        router.route(t)
    latencies = []
    for t in texts200[:500]:
        started = time.perf_counter()
        router.route(t)
        latencies.append((time.perf_counter() - started) * 1000)
    figures["cases in routing model (generated)"] = len(gen_rows)
    figures["single-case routing p50 ms"] = float(np.percentile(latencies, 50))
    figures["single-case routing p99 ms"] = float(np.percentile(latencies, 99))
    started = time.perf_counter()
    model.predict_proba(texts200)
    figures["batch classification msgs/s (200 chars, one core)"] = len(texts200) / (time.perf_counter() - started)
    started = time.perf_counter()
    router.route_many(texts200)
    figures["batch routing msgs/s (200 chars, one core)"] = len(texts200) / (time.perf_counter() - started)
    figures["peak RSS MiB"] = peak_rss_mib()
    report("classify", figures)


if __name__ == "__main__":
    main()
