"""How hard is the demo data? A plain TF-IDF + LinearSVC, 5-fold, on generated and on real messages.

A generator with one template per class would let this baseline score ~1.0;
real 12345 data does not. The real competition messages are measured in the
same run as the reference point.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import labeled_rows, report


def cv_macro_f1(docs: list[str], labels: list[str]) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    model = make_pipeline(TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True), LinearSVC())
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(mean(cross_val_score(model, docs, labels, cv=folds, scoring="f1_macro")))


def main() -> None:
    from hotline.demo.generator import DemoGenerator
    from hotline.places import default_gazetteer
    from hotline.taxonomy import default_taxonomy
    from hotline.text.segment import default_segmenter
    from hotline.text.transcript import caller_account

    seg = default_segmenter()
    rows, truth = DemoGenerator(default_gazetteer(), default_taxonomy(), seed=11).generate(120, date(2025, 3, 1))
    accounts = [caller_account(r["transcript"]) for r in rows]
    docs = [" ".join(seg.tokens(a)) for a in accounts]
    real = labeled_rows()
    real_docs = [" ".join(seg.tokens(r["text"])) for r in real]

    report("demo_data", {
        "generated cases": len(rows),
        "second-level categories": len({r["category_l2"] for r in rows}),
        "distinct caller accounts": f"{len(set(accounts)) / len(accounts):.1%}",
        "mean caller account length (chars)": mean(len(a) for a in accounts),
        "vocabulary (distinct tokens)": len({t for d in docs for t in d.split()}),
        "events / surges in ground truth": f"{len(truth.events)} / {len(truth.surges)}",
        "TF-IDF+LinearSVC macro-F1, generated, level 2": cv_macro_f1(docs, [r["category_l2"] for r in rows]),
        "TF-IDF+LinearSVC macro-F1, generated, level 1": cv_macro_f1(docs, [r["category_l1"] for r in rows]),
        "TF-IDF+LinearSVC macro-F1, real messages (7 classes)": cv_macro_f1(real_docs, [r["label"] for r in real]),
    })


if __name__ == "__main__":
    main()
