"""How to quantize the fine-tuned encoder: argmax agreement with fp32, macro-F1 and latency.

Fine-tunes bge-small on fold 1 of the real messages as the product does and
keeps the model under ``bench/out/`` between runs: short texts (first
sentence, 64 tokens, 3 epochs at most, 5e-5, early stopping; the default) or
whole messages (``--kind whole``: 256 tokens head and tail, 2 epochs, on the
rows bench/encoder.py fine-tunes fold 1 on). Then quantizes its MatMuls to
int8 — dynamically (per output channel; on short texts also with some
layers left in fp32), block-wise (MatMulNBits), with only the weights rounded
(activations left fp32: the floor any int8 graph with these weights starts
from), dynamically after SmoothQuant-style smoothing (each MatMul input
divided per channel by s = max|x|^α / max|w|^(1-α) and the weight rows
multiplied by s, so per-tensor activation ranges lose less), and the same
with the two MatMuls that round worst left fp32 ("mixed") — and scores
each variant on the fold's test texts, one text per run as served; latency
likewise, on 200 texts (``--kind whole``: their first 200 characters). Also,
per variant, what the export judges it by: its flips on the fit's validation
texts and the agreement it is sure of there (classifiers.int8.flip_bound).

    python bench/int8_layers.py [--kind short|whole]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import five_folds, labeled_rows, report
from classify import first_sentence


def weights_only(source: Path, target: Path) -> Path:
    """The fp32 graph with its MatMul weights rounded to int8 per output channel and back: activations exact."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    weights = {n.input[1] for n in model.graph.node if n.op_type == "MatMul"}
    for tensor in model.graph.initializer:
        if tensor.name in weights and len(tensor.dims) == 2:
            w = numpy_helper.to_array(tensor)
            scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / 127
            tensor.CopyFrom(numpy_helper.from_array((np.round(w / scale) * scale).astype(np.float32), tensor.name))
    onnx.save(model, str(target))
    return target


def main() -> None:
    import onnx
    from sklearn.metrics import f1_score

    from classifiers import encoder
    from classifiers.dataset import prepare_text
    from classifiers.fit import holdout_split
    from classifiers.int8 import flip_bound, quantize_blockwise, quantize_int8, quantize_mixed, quantize_smoothed
    from classifiers.tokens import token_ids
    from classifiers.transformer import INT8_FILE, ONNX_FILE, OnnxClassifier, TransformerClassifier

    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("short", "whole"), default="short")
    args = parser.parse_args()
    rows = labeled_rows()
    labels = np.array([r["label"] for r in rows], dtype=object)
    if args.kind == "short":
        texts = [prepare_text(first_sentence(r["text"])) or first_sentence(r["text"]) for r in rows]
    else:
        texts = [prepare_text(r["text"]) or r["text"] for r in rows]
    train, test = five_folds(labels)[0]
    out = Path(__file__).resolve().parent / "out"
    if args.kind == "short":  # the product's fine-tuning (3 epochs at most, 5e-5, early stopping)
        model_dir, settings, fit_rows = out / "int8-layers-defaults", {"max_length": 64}, train
    else:  # as bench/encoder.py --only whole --epochs 2 fine-tunes fold 1
        model_dir, settings = out / "int8-layers-whole", {"max_length": 256, "epochs": 2}
        fit_rows = train[holdout_split(labels[train].tolist(), 0.1, 0)[0]]
    if not (model_dir / ONNX_FILE).is_file():
        TransformerClassifier(base_model=str(encoder.fetch()), **settings).fit(
            [texts[i] for i in fit_rows], labels[fit_rows]).save(model_dir)
    test_texts = [texts[i] for i in test]
    # The texts the export judges a graph on (the fit's validation share) and those it measures ranges on.
    trained, held = TransformerClassifier(validation_fraction=0.1)._validation_split(
        np.searchsorted(np.unique(labels[fit_rows]), labels[fit_rows]))
    held_texts = [texts[i] for i in fit_rows[held]]
    timed_texts = test_texts[:200] if args.kind == "short" else [(t * 4)[:200] for t in test_texts[:200]]

    def scored(model: OnnxClassifier) -> tuple[np.ndarray, np.ndarray, float, float]:
        proba = model.predict_proba(test_texts)
        started = time.perf_counter()
        for text in timed_texts:
            model.predict_proba([text])
        ms = (time.perf_counter() - started) / len(timed_texts) * 1000
        held_logs = np.log(np.clip(model.predict_proba(held_texts), 1e-30, 1))  # logits, less a constant per text
        return proba, held_logs, float(f1_score(labels[test], model.classes_[proba.argmax(1)], average="macro")), ms

    fp32 = OnnxClassifier.load(model_dir, quantized=False)
    fp32_proba, fp32_held, fp32_f1, fp32_ms = scored(fp32)
    figures: dict[str, object] = {"kind": args.kind, "test texts": len(test_texts), "validation texts": len(held),
                                  "fp32: macro-F1 / ms": f"{fp32_f1:.4f} / {fp32_ms:.1f}"}
    quantizers = {"all int8": quantize_int8}
    if args.kind == "short":
        matmuls = [n.name for n in onnx.load(str(model_dir / ONNX_FILE)).graph.node if n.op_type == "MatMul"]
        in_layers = lambda *ks: [n for n in matmuls if any(f"/layer.{k}/" in n for k in ks)]  # noqa: E731
        variants = {**{f"layer {k} fp32": in_layers(k) for k in range(4)},
                    "layers 0, 1 fp32": in_layers(0, 1), "layers 0, 3 fp32": in_layers(0, 3),
                    "layers 0, 1, 2 fp32": in_layers(0, 1, 2),
                    "FFN outputs fp32": [n for n in matmuls if "/output/dense/" in n and "attention" not in n],
                    "FFN inputs fp32": [n for n in matmuls if "/intermediate/" in n],
                    "attention fp32": [n for n in matmuls if "/attention/" in n]}
        quantizers.update({name: lambda source, target, exclude=exclude: quantize_int8(source, target, exclude)
                           for name, exclude in variants.items()})
    # Activation ranges from texts the model trained on, as the export measures them.
    ranges = token_ids(fp32.tokenizer_,
                       [texts[i] for i in fit_rows[trained][:2000]], int(settings["max_length"]))
    quantizers["smoothed, then dynamic int8"] = lambda source, target: quantize_smoothed(source, target, ranges)
    quantizers["smoothed, the two MatMuls that round worst fp32 (mixed)"] = \
        lambda source, target: quantize_mixed(source, target, ranges)
    quantizers["int8 weights only, activations fp32 (the floor; fp32 speed)"] = weights_only
    quantizers["block-wise int8 (MatMulNBits, blocks of 32, int8 compute)"] = quantize_blockwise
    for name, quantize in quantizers.items():
        with tempfile.TemporaryDirectory() as tmp:
            for f in model_dir.resolve().iterdir():
                if f.name != INT8_FILE:
                    (Path(tmp) / f.name).symlink_to(f)
            quantize(model_dir / ONNX_FILE, Path(tmp) / INT8_FILE)
            proba, held_logs, f1, ms = scored(OnnxClassifier.load(Path(tmp)))
        agreement = float(np.mean(proba.argmax(1) == fp32_proba.argmax(1)))
        figures[f"{name}: agreement / macro-F1 / ms"] = f"{agreement:.4f} / {f1:.4f} / {ms:.1f}"
        figures[f"{name}: validation flips, at least (the export's rule)"] = (
            f"{int(np.sum(held_logs.argmax(1) != fp32_held.argmax(1)))}, {1 - flip_bound(fp32_held, held_logs):.4f}")
    report(f"int8 layers, {args.kind}", figures)


if __name__ == "__main__":
    main()
