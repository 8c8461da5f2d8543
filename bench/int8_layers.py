"""How to quantize the fine-tuned encoder: argmax agreement with fp32, macro-F1 and latency.

Fine-tunes bge-small on fold 1 of the short real messages as the product
does (3 epochs at most, 5e-5, early stopping; the model is kept in
``bench/out/int8-layers-defaults`` between runs), then quantizes its MatMuls
to int8 dynamically (per output channel) with some layers left in fp32, and
block-wise (MatMulNBits), and scores each variant on the fold's test texts,
one text per run as served (latency likewise).

    python bench/int8_layers.py
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import SHARED, report  # noqa: E402
from classify import first_sentence  # noqa: E402


def main() -> None:
    import onnx
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    from classifiers import encoder
    from classifiers.encoder import quantize_blockwise, quantize_int8
    from classifiers.dataset import prepare_text
    from classifiers.transformer import INT8_FILE, ONNX_FILE, OnnxClassifier, TransformerClassifier

    with (SHARED / "messages_labeled.csv").open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = np.array([r["label"] for r in rows], dtype=object)
    short = [prepare_text(first_sentence(r["text"])) or first_sentence(r["text"]) for r in rows]
    train, test = next(iter(StratifiedKFold(5, shuffle=True, random_state=0).split(short, labels)))
    model_dir = Path(__file__).resolve().parent / "out" / "int8-layers-defaults"
    if not (model_dir / ONNX_FILE).is_file():  # the product's fine-tuning (3 epochs at most, 5e-5, early stopping)
        TransformerClassifier(base_model=str(encoder.fetch()), max_length=64).fit(
            [short[i] for i in train], labels[train]).save(model_dir)
    texts = [short[i] for i in test]

    def scored(model: OnnxClassifier) -> tuple[np.ndarray, float, float]:
        proba = model.predict_proba(texts)
        started = time.perf_counter()
        for text in texts[:200]:
            model.predict_proba([text])
        ms = (time.perf_counter() - started) / 200 * 1000
        return proba, float(f1_score(labels[test], model.classes_[proba.argmax(1)], average="macro")), ms

    fp32_proba, fp32_f1, fp32_ms = scored(OnnxClassifier.load(model_dir, quantized=False))
    figures: dict[str, object] = {"test texts": len(texts), "fp32: macro-F1 / ms": f"{fp32_f1:.4f} / {fp32_ms:.1f}"}
    matmuls = [n.name for n in onnx.load(str(model_dir / ONNX_FILE)).graph.node if n.op_type == "MatMul"]
    in_layers = lambda *ks: [n for n in matmuls if any(f"/layer.{k}/" in n for k in ks)]  # noqa: E731
    variants = {"all int8": [], **{f"layer {k} fp32": in_layers(k) for k in range(4)},
                "layers 0, 1 fp32": in_layers(0, 1), "layers 0, 3 fp32": in_layers(0, 3),
                "layers 0, 1, 2 fp32": in_layers(0, 1, 2),
                "FFN outputs fp32": [n for n in matmuls if "/output/dense/" in n and "attention" not in n],
                "FFN inputs fp32": [n for n in matmuls if "/intermediate/" in n],
                "attention fp32": [n for n in matmuls if "/attention/" in n]}
    quantizers = {name: lambda source, target, exclude=exclude: quantize_int8(source, target, exclude)
                  for name, exclude in variants.items()}
    quantizers["block-wise int8 (MatMulNBits, blocks of 32, int8 compute)"] = quantize_blockwise
    for name, quantize in quantizers.items():
        with tempfile.TemporaryDirectory() as tmp:
            for f in model_dir.resolve().iterdir():
                if f.name != INT8_FILE:
                    (Path(tmp) / f.name).symlink_to(f)
            quantize(model_dir / ONNX_FILE, Path(tmp) / INT8_FILE)
            proba, f1, ms = scored(OnnxClassifier.load(Path(tmp)))
        agreement = float(np.mean(proba.argmax(1) == fp32_proba.argmax(1)))
        figures[f"{name}: agreement / macro-F1 / ms"] = f"{agreement:.4f} / {f1:.4f} / {ms:.1f}"
    report("int8 layers", figures)


if __name__ == "__main__":
    main()
