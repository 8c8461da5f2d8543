"""Retraining: 100,000 labeled cases with the default model (time, peak memory); recovery from a month of drift.

Drift: the old model never saw one category (it is new this month) and the
new month's callers use other words for common things (断水 for 停水, 噪声
for 噪音 …). Half of the new month's cases get agent-confirmed labels; the
retrained model is scored on the other half against the old level.
Baseline in the same run: the old model on the new month.

    python bench/retrain.py [--cases 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import peak_rss_mib, report
from sklearn.metrics import f1_score

from classifiers.dataset import prepare_text
from classifiers.linear import TextClassifier
from hotline.demo.generator import DemoGenerator, write_csv
from hotline.places import default_gazetteer
from hotline.taxonomy import default_taxonomy
from training.registry import Registry
from training.retrain import RetrainRequest, retrain

SYNONYMS = {"停水": "断水", "噪音": "噪声", "路灯": "照明灯", "垃圾": "废弃物", "物业": "物管", "小区": "社区",
            "投诉": "反映", "工资": "薪水", "拖欠": "欠着", "电梯": "升降梯", "漏水": "渗水", "油烟": "烟气"}
NEW_CATEGORY = "营商环境"


def reword(text: str) -> str:
    for old, new in SYNONYMS.items():
        text = text.replace(old, new)
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()
    gazetteer, taxonomy = default_gazetteer(), default_taxonomy()
    figures: dict[str, object] = {}
    work = Path(tempfile.mkdtemp(prefix="hotline-bench-retrain-"))

    rows, _ = DemoGenerator(gazetteer, taxonomy, seed=51, rate=args.cases / 200 * 1.05).generate(200, date(2025, 1, 1))
    rows = rows[: args.cases]
    data = work / "labeled.csv"
    write_csv(rows, data)
    registry = Registry(work / "models")
    started = time.perf_counter()
    entry = retrain(registry, RetrainRequest(data=data, use_store=False), None, by="bench")
    figures["retrain: labeled cases"] = len(rows)
    figures["retrain: seconds (read, dedupe, train, evaluate, register)"] = time.perf_counter() - started
    figures["retrain: peak RSS MiB"] = peak_rss_mib()
    figures["retrain: held-out macro-F1"] = entry.metrics["macro_f1"]
    figures["retrain: examples after dedupe"] = entry.manifest["data_size"]

    # Drift: an old period without the new category, a new month with it and with other words.
    old_rows, _ = DemoGenerator(gazetteer, taxonomy, seed=61).generate(150, date(2025, 1, 1))
    new_rows, _ = DemoGenerator(gazetteer, taxonomy, seed=62).generate(30, date(2025, 6, 1))
    label = lambda r: f"{r['category_l1']}/{r['category_l2']}"  # noqa: E731
    old = [r for r in old_rows if r["category_l2"] != NEW_CATEGORY]
    cut = int(len(old) * 0.9)
    old_train, old_test = old[:cut], old[cut:]
    text = lambda r: prepare_text(r["transcript"])  # noqa: E731
    model = TextClassifier().fit([text(r) for r in old_train], [label(r) for r in old_train])
    old_level = f1_score([label(r) for r in old_test], model.predict([text(r) for r in old_test]), average="macro")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(new_rows))
    confirmed = [new_rows[i] for i in order[: len(order) // 2]]
    evaluate = [new_rows[i] for i in order[len(order) // 2 :]]
    new_texts = [reword(text(r)) for r in evaluate]
    new_labels = [label(r) for r in evaluate]
    before = f1_score(new_labels, model.predict(new_texts), average="macro")
    updated = TextClassifier().fit([text(r) for r in old_train] + [reword(text(r)) for r in confirmed],
                                   [label(r) for r in old_train] + [label(r) for r in confirmed])
    after = f1_score(new_labels, updated.predict(new_texts), average="macro")
    figures.update({
        "drift: old level macro-F1 (old model, old data)": old_level,
        "drift: baseline, old model on the new month": before,
        "drift: retrained with the month's confirmed labels, on the new month": after,
        "drift: gap to the old level (points)": 100 * (old_level - after),
        "drift: confirmed labels added": len(confirmed),
    })
    report("retrain", figures)


if __name__ == "__main__":
    main()
