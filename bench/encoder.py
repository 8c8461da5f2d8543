"""The pretrained encoder beside the linear model, on the real messages: accuracy, int8 serving, the cascade.

Per fold of a stratified 5-fold split of ../shared/data (``--folds N`` runs the
first N, since each fold fine-tunes bge-small-zh-v1.5 on two CPU cores for
minutes): the jieba + TF-IDF + LinearSVC baseline, the linear model, the
fine-tuned encoder alone (fp32 with torch, int8 with onnxruntime), and the
cascade (linear alone where sure, else the stacker over both; and, for
comparison, the per-class regression stacker it replaced) — on whole
messages and on short texts (first sentence ≤ 60 characters). Also: the
share of calls that reach the encoder, the encoder's own latency, the
auto-dispatch share at precision ≥ 0.98, and the fine-tuning time.

    python bench/encoder.py [--first-fold 1] [--folds 5] [--only whole|short] [--epochs 3]
                            [--learning-rate 5e-5] [--max-length 256] [--short-max-length 64]
                            [--base bench/out/adapted] [--precision auto|bf16|fp32]
                            [--patience 1] [--layer-decay 1.0] [--threads N] [--probas DIR]
    python bench/encoder.py --wider [DIR] [--only whole|short]   # from saved probabilities, no fine-tuning

``--wider`` asks what a wider cascade would buy: the linear model answering alone only above its
99%-precision confidence on the held-out rows (more calls reach the encoder), or never.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import five_folds, labeled_rows, peak_rss_mib, report
from classify import Baseline, first_sentence


def latencies_ms(fn, texts: list[str]) -> tuple[float, float]:
    for t in texts[:10]:
        fn([t])
    out = []
    for t in texts:
        started = time.perf_counter()
        fn([t])
        out.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(out, 50)), float(np.percentile(out, 99))


def run_fold(name: str, texts: list[str], labels: np.ndarray, train: np.ndarray, test: np.ndarray,
             base: Path, args: argparse.Namespace, max_length: int, out: Path, figures: dict) -> None:
    import tempfile

    from sklearn.metrics import f1_score

    from classifiers.cascade import Cascade, Stacker, aligned
    from classifiers.evaluate import dispatch_threshold
    from classifiers.fit import holdout_split
    from classifiers.linear import TextClassifier
    from classifiers.transformer import OnnxClassifier, TransformerClassifier

    pick = lambda rows: [texts[i] for i in rows]  # noqa: E731
    y_test = labels[test]
    f1 = lambda proba, classes: float(f1_score(y_test, np.asarray(classes)[proba.argmax(axis=1)], average="macro"))  # noqa: E731
    baseline = Baseline().fit(pick(train), labels[train])
    figures[f"{name}: baseline jieba+TF-IDF+LinearSVC macro-F1"] = f1(baseline.predict_proba(pick(test)), baseline.classes_)
    linear_full = TextClassifier().fit(pick(train), labels[train])
    linear_proba = linear_full.predict_proba(pick(test))
    figures[f"{name}: linear macro-F1"] = f1(linear_proba, linear_full.classes_)

    inner_fit, inner_stack = holdout_split(labels[train].tolist(), 0.1, 0)
    fit_rows, stack_rows = train[inner_fit], train[inner_stack]
    started = time.perf_counter()
    encoder = TransformerClassifier(base_model=str(base), epochs=args.epochs, batch_size=16,
                                    learning_rate=args.learning_rate, max_length=max_length, progress=True,
                                    precision=args.precision, patience=args.patience,
                                    layer_decay=args.layer_decay, threads=args.threads).fit(pick(fit_rows), labels[fit_rows])
    figures[f"{name}: fine-tuning seconds ({len(fit_rows)} texts, {args.epochs} epochs max, {max_length} tokens, "
            f"patience {args.patience}, layer decay {args.layer_decay}, "
            f"{encoder.precision_})"] = time.perf_counter() - started
    figures[f"{name}: best epoch / validation macro-F1"] = f"{encoder.best_epoch_} / {encoder.validation_history_}"
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        started = time.perf_counter()
        encoder.save(Path(tmp))
        figures[f"{name}: ONNX export + int8 seconds"] = time.perf_counter() - started
        fp32 = OnnxClassifier.load(Path(tmp), quantized=False)
        int8 = OnnxClassifier.load(Path(tmp), quantized=True)
        torch_proba = encoder.predict_proba(pick(test))
        fp32_proba = fp32.predict_proba(pick(test))
        int8_proba = int8.predict_proba(pick(test))
        figures[f"{name}: encoder alone macro-F1 (torch fp32)"] = f1(torch_proba, encoder.classes_)
        figures[f"{name}: encoder alone macro-F1 (ONNX fp32)"] = f1(fp32_proba, encoder.classes_)
        figures[f"{name}: encoder alone macro-F1 (ONNX int8)"] = f1(int8_proba, encoder.classes_)
        figures[f"{name}: int8 argmax agreement with fp32"] = float(np.mean(int8_proba.argmax(1) == fp32_proba.argmax(1)))
        figures[f"{name}: int8 graph chosen (agreement on the validation texts; at least, 95%)"] = \
            f"{encoder.int8_['graph']} ({encoder.int8_['tried']}; {encoder.int8_.get('at_least')})"
        sample = [(t * 4)[:200] for t in pick(test)[:200]]
        figures[f"{name}: encoder p50/p99 ms per 200-char text, fp32"] = "%.1f / %.1f" % latencies_ms(fp32.predict_proba, sample)
        figures[f"{name}: encoder p50/p99 ms per 200-char text, int8"] = "%.1f / %.1f" % latencies_ms(int8.predict_proba, sample)

        linear = TextClassifier().fit(pick(fit_rows), labels[fit_rows])
        first = linear.predict_proba(pick(stack_rows))
        second = int8.predict_proba(pick(stack_rows))
        stacker = Stacker().fit([first, second], [linear.classes_, int8.classes_], labels[stack_rows])
        threshold, _ = dispatch_threshold(linear.classes_[first.argmax(1)] == labels[stack_rows], first.max(1))
        cascade = Cascade(linear_full, int8, stacker, threshold)
        proba = cascade.predict_proba(pick(test))
        figures[f"{name}: cascade macro-F1"] = f1(proba, cascade.classes_)
        figures[f"{name}: cascade gain over linear (points)"] = 100 * (figures[f"{name}: cascade macro-F1"]
                                                                         - figures[f"{name}: linear macro-F1"])
        # The old stacker on the probabilities already computed (the encoder reads one text per run, so its answers
        # on the unsure rows are these): no second pass of the encoder over the test texts.
        old = Stacker(per_class=True).fit([first, second], [linear.classes_, int8.classes_], labels[stack_rows])
        unsure = cascade.unsure(linear_proba)
        before = aligned(linear_proba, linear_full.classes_, cascade.classes_)
        before[unsure] = old.combine([linear_proba[unsure], int8_proba[unsure]], [linear_full.classes_, int8.classes_])
        figures[f"{name}: cascade gain with the per-class regression stacker (before)"] = 100 * (
            f1(before, cascade.classes_) - figures[f"{name}: linear macro-F1"])
        figures[f"{name}: stacker weights (linear, encoder)"] = [round(float(w), 3) for w in stacker.weights_]
        figures[f"{name}: share reaching the encoder"] = cascade.encoder_share(pick(test))
        correct = cascade.classes_[proba.argmax(1)] == y_test
        figures[f"{name}: cascade auto-dispatch share at precision>=0.98"] = dispatch_threshold(correct, proba.max(1))[1]
        correct = linear_full.classes_[linear_proba.argmax(1)] == y_test
        figures[f"{name}: linear auto-dispatch share at precision>=0.98"] = dispatch_threshold(correct, linear_proba.max(1))[1]
        np.savez_compressed(args.probas / f"{name.replace(' ', '-')}.npz", classes=linear.classes_.astype(str),
                            test=test, stack=stack_rows, y_test=y_test.astype(str), y_stack=labels[stack_rows].astype(str),
                            linear_test=linear_proba, linear_stack=first, encoder_stack=second,
                            encoder_test=int8_proba, fp32_test=fp32_proba)
        figures[f"{name}: cascade p50/p99 ms per 200-char text"] = "%.1f / %.1f" % latencies_ms(cascade.predict_proba, sample)
        figures[f"{name}: linear p50/p99 ms per 200-char text"] = "%.1f / %.1f" % latencies_ms(linear_full.predict_proba, sample)


def wider(saved_in: Path, only: str | None) -> None:
    """From each fold's saved probabilities: the cascade's share reaching the encoder, macro-F1 gain and
    auto-dispatch share when the linear model answers alone above its 98% / 99%-precision confidence, or never."""
    from sklearn.metrics import f1_score

    from classifiers.cascade import Stacker
    from classifiers.evaluate import dispatch_threshold

    figures: dict[str, object] = {}
    for path in sorted(saved_in.glob("fold-*.npz")):
        name = path.stem.replace("-", " ")
        if only and not name.endswith(only):
            continue
        saved = np.load(path, allow_pickle=True)
        classes, y, y_stack = (saved[k].astype(object) for k in ("classes", "y_test", "y_stack"))
        linear, encoder = saved["linear_test"], saved["encoder_test"]
        stacker = Stacker().fit([saved["linear_stack"], saved["encoder_stack"]], [classes, classes], y_stack)
        combined = stacker.combine([linear, encoder], [classes, classes])
        base = f1_score(y, classes[linear.argmax(1)], average="macro")
        stack_right = classes[saved["linear_stack"].argmax(1)] == y_stack
        for precision in (0.98, 0.99, None):
            threshold = dispatch_threshold(stack_right, saved["linear_stack"].max(1), precision)[0] if precision else 2.0
            unsure = linear.max(1) < threshold
            proba = np.where(unsure[:, None], combined, linear)
            label = f"{name}: linear alone above its {precision:.0%}-precision confidence" if precision else \
                f"{name}: encoder on every call"
            figures[f"{label}: share reaching the encoder"] = float(unsure.mean())
            figures[f"{label}: gain over linear (points)"] = 100 * (f1_score(y, classes[proba.argmax(1)], average="macro") - base)
            figures[f"{label}: auto-dispatch share at precision>=0.98"] = \
                dispatch_threshold(classes[proba.argmax(1)] == y, proba.max(1))[1]
    report("encoder: a wider cascade, from the saved probabilities", figures)
    report("encoder: a wider cascade, mean over the folds (min – max)", summary(figures))


def main() -> None:
    from classifiers import encoder
    from classifiers.dataset import prepare_text
    from classifiers.transformer import PRECISIONS

    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=5e-5)  # the product's default; 1e-4 overshot
    parser.add_argument("--patience", type=int, default=1, help="epochs without a better validation score before stopping")
    parser.add_argument("--layer-decay", type=float, default=1.0, help="each layer's learning rate against the one above")
    parser.add_argument("--threads", type=int, default=0, help="fine-tuning threads (default: every core)")
    parser.add_argument("--probas", type=Path, help="where each fold's probabilities go (default: bench/out/encoder-probas)")
    parser.add_argument("--first-fold", type=int, default=1, help="start at this fold (1-5)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--short-max-length", type=int, default=64)
    parser.add_argument("--only", choices=("whole", "short"))
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="fine-tuning arithmetic")
    parser.add_argument("--base", type=Path, help="the encoder to fine-tune (default: bge-small-zh-v1.5 as fetched; "
                                                   "bench/out/adapted after bench/pretrain.py)")
    parser.add_argument("--wider", nargs="?", type=Path, const=Path(__file__).resolve().parent / "out" / "encoder-probas",
                        metavar="DIR", help="study wider cascades on saved probabilities (default bench/out/encoder-probas)")
    args = parser.parse_args()
    if args.wider:
        return wider(args.wider, args.only)
    out = Path(__file__).resolve().parent / "out"
    base = args.base or encoder.fetch()
    rows = labeled_rows()
    labels = np.array([r["label"] for r in rows], dtype=object)
    whole = [prepare_text(r["text"]) or r["text"] for r in rows]
    short = [prepare_text(first_sentence(r["text"])) or first_sentence(r["text"]) for r in rows]
    args.probas = args.probas or out / "encoder-probas"
    args.probas.mkdir(parents=True, exist_ok=True)  # each fold's probabilities, to study combinations
    figures: dict[str, object] = {"messages": len(rows), "classes": len(set(labels.tolist())),
                                  "folds run": f"{args.folds} of 5", "encoder": str(base)}
    folds = five_folds(labels)[args.first_fold - 1: args.first_fold - 1 + args.folds]
    for k, (train, test) in enumerate(folds, start=args.first_fold):
        for name, texts, length in (("whole", whole, args.max_length), ("short", short, args.short_max_length)):
            if args.only and name != args.only:
                continue
            run_fold(f"fold {k} {name}", texts, labels, train, test, base, args, length, out, figures)
            report("encoder", {**figures, "peak RSS MiB": peak_rss_mib()})
    report("encoder: mean over the folds run (min – max)", summary(figures))


def summary(figures: dict[str, object]) -> dict[str, str]:
    """Each numeric figure of the folds as mean (min – max), by text kind."""
    per: dict[str, list[float]] = {}
    for key, value in figures.items():
        if key.startswith("fold ") and isinstance(value, float | int):
            _, _, rest = key.split(" ", 2)  # "fold K whole: …" → "whole: …"
            per.setdefault(rest, []).append(float(value))
    return {k: f"{np.mean(v):.4f} ({min(v):.4f} – {max(v):.4f}, {len(v)} folds)" for k, v in per.items()}


if __name__ == "__main__":
    main()
