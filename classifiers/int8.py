"""Int8 graphs of a fine-tuned encoder's ONNX export, and the choice of the one that keeps fp32's answers.

The service runs the encoder on the CPU, where int8 MatMuls are about twice
as fast as fp32; but rounding flips the answer of a text near a tie. Four
ways of rounding are tried, fastest first (:data:`INT8_GRAPHS`), and the
first that gives fp32's answer on 99.5% of texts with 95% confidence
(:func:`flip_bound`) is served (:func:`quantize_agreeing`). Fine-tuning
(:mod:`classifiers.transformer`) and the sentence encoder
(:mod:`classifiers.encoder`) both use this module; it uses neither, so there
is no import circle between them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.tokens import pad
from hotline.errors import InvalidInput

log = logging.getLogger(__name__)

#: The int8 graph must give the fp32 graph's answer on this share of texts at least (with 95% confidence,
#: estimated on the calibration texts: :func:`flip_bound`).
INT8_AGREEMENT = 0.995


#: At most this many calibration texts (each run alone, once per graph tried).
CALIBRATION_TEXTS = 2000


#: The flip rate is estimated with each text's quantization error multiplied by this (:func:`flip_bound`).
AMPLIFICATION = 8


def quantize_int8(source: Path, target: Path, exclude: Sequence[str] = ()) -> Path:
    """An ONNX graph with its MatMul weights int8, one scale per output channel (one per tensor flipped 3% of a
    fine-tuned bge-small's answers), ``exclude`` nodes left fp32; written whole or not at all."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_suffix(".partial")
    quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=list(exclude))
    partial.rename(target)
    return target


def quantize_blockwise(source: Path, target: Path) -> Path:
    """An ONNX graph with its MatMul weights int8 in blocks of 32 (MatMulNBits), computed in int8 with the
    activations quantized per block too: closer to fp32 than :func:`quantize_int8`'s one range per activation
    tensor, and slower (1.1–1.2× fp32's speed against 1.6–2×); written whole or not at all."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=8, block_size=32, is_symmetric=True,
                                     accuracy_level=4)  # 4: int8 compute
    chatty = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")  # a line per node at INFO
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    try:
        quantizer.process()
    finally:
        chatty.setLevel(level)
    partial = target.with_suffix(".partial")
    onnx.save(quantizer.model.model, str(partial))
    partial.rename(target)
    return target


#: How far smoothing moves the activations' spread into the weights (SmoothQuant's α). Its paper's default, 0.5,
#: flipped more of a fine-tuned short-text bge-small's answers than no smoothing; 0.9 flipped fewest of 0.15–1.0.
SMOOTHING_ALPHA = 0.9


def _weight_matmuls(graph: Any) -> dict[str, list[Any]]:
    """The MatMul nodes with a constant 2-D weight, by the activation they read (several may read one)."""
    weights = {t.name: t for t in graph.initializer}
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights and len(weights[node.input[1]].dims) == 2:
            users.setdefault(node.input[0], []).append(node)
    return users


def _activations(model: Any, names: Sequence[str], rows: Sequence[Sequence[int]]) -> Iterator[list[np.ndarray]]:
    """Per row (token ids, one text per run as served), the values of the tensors ``names``: the graph is run
    with them added as outputs."""
    import onnx
    import onnxruntime
    from onnx import helper

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    for row in rows:
        ids, mask = pad([row])
        yield session.run(list(names), {"input_ids": ids, "attention_mask": mask})


def smooth(source: Path, target: Path, rows: Sequence[Sequence[int]], alpha: float = SMOOTHING_ALPHA) -> Path:
    """The same function as ``source`` with each weight MatMul's input divided per channel by s and the weight's
    rows multiplied by s, s = max|x|^α / max|w|^(1-α), max|x| over ``rows`` (token ids, one text per run).

    Dynamic int8 rounds each activation tensor to 256 levels over one range:
    a few channels far wider than the rest (the LayerNorm outputs of a BERT
    have some) leave the others a handful of levels. Dividing those channels
    down and folding the factor into the weights, which are rounded per output
    channel, spreads the error over both (SmoothQuant, Xiao et al. 2023). A
    BERT's LayerNorm outputs also feed its residual sums, so the division is a
    ``Mul`` node before the MatMuls rather than folded into the LayerNorm.
    """
    import onnx
    from onnx import helper, numpy_helper

    if not rows:
        raise InvalidInput("smoothing needs texts to measure the activations on")
    model = onnx.load(str(source))
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    users = _weight_matmuls(graph)
    names = list(users)
    peak: dict[str, Any] = dict.fromkeys(names, 0.0)
    for values in _activations(model, names, rows):
        for name, value in zip(names, values, strict=True):
            peak[name] = np.maximum(peak[name], np.abs(value.reshape(-1, value.shape[-1])).max(axis=0))
    nodes = list(graph.node)
    for name, consumers in users.items():
        arrays = [numpy_helper.to_array(weights[n.input[1]]) for n in consumers]
        w_peak = np.max([np.abs(w).max(axis=1) for w in arrays], axis=0)
        s = (np.maximum(peak[name], 1e-5) ** alpha / np.maximum(w_peak, 1e-5) ** (1 - alpha)).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(1 / s, f"{name}/smooth"))
        divide = helper.make_node("Mul", [name, f"{name}/smooth"], [f"{name}/smoothed"], name=f"{name}/Smooth")
        nodes.insert(min(nodes.index(n) for n in consumers), divide)  # before its first consumer: still in order
        for node, w in zip(consumers, arrays, strict=True):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array(w * s[:, None], node.input[1]))
            node.input[0] = f"{name}/smoothed"
    del graph.node[:]
    graph.node.extend(nodes)
    partial = target.with_suffix(".partial")
    onnx.save(model, str(partial))
    partial.rename(target)
    return target


def quantize_smoothed(source: Path, target: Path, rows: Sequence[Sequence[int]]) -> Path:
    """:func:`smooth` with ranges measured on ``rows``, then :func:`quantize_int8`: dynamic int8's speed, with
    about half its flipped answers (bench/int8_layers.py)."""
    smoothed = target.with_suffix(".smoothed")
    try:
        return quantize_int8(smooth(source, smoothed, rows), target)
    finally:
        smoothed.unlink(missing_ok=True)


#: Texts :func:`worst_rounded` measures on (about 10 s): the same four MatMuls led on 100 training texts and on 150
#: validation texts, the worst 6× the fifth.
ROUNDING_TEXTS = 100


def worst_rounded(source: Path, rows: Sequence[Sequence[int]], count: int) -> list[str]:
    """The ``count`` weight MatMuls of ``source`` whose output dynamic int8 moves most, relative to its size,
    on ``rows`` (at most :data:`ROUNDING_TEXTS`): each input rounded over its own range per run (as onnxruntime's
    ``DynamicQuantizeLinear`` does), each weight per output channel, the product against fp32's.

    On fine-tuned bge-smalls the four feed-forward output projections (whose
    inputs, after GELU, have the widest tails) lead by far; the worst was
    also the one whose restoring to fp32 took most error off the whole
    graph's logits (a one-off check restoring each of the 24 in turn).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = [node for consumers in _weight_matmuls(model.graph).values() for node in consumers]
    rounded = {}
    for node in nodes:
        w = weights[node.input[1]]
        scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / 127
        rounded[node.name] = np.round(w / scale) * scale
    error = dict.fromkeys(rounded, 0.0)
    size = dict.fromkeys(rounded, 0.0)
    names = list(dict.fromkeys(node.input[0] for node in nodes))
    for values in _activations(model, names, rows[:ROUNDING_TEXTS]):
        value_of = dict(zip(names, values, strict=True))
        for node in nodes:
            x = value_of[node.input[0]].reshape(-1, value_of[node.input[0]].shape[-1])
            low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
            step = max(high - low, 1e-12) / 255
            zero = np.round(-low / step)
            exact = x @ weights[node.input[1]]
            moved = ((np.clip(np.round(x / step) + zero, 0, 255) - zero) * step) @ rounded[node.name] - exact
            error[node.name] += float(np.sum(moved ** 2))
            size[node.name] += float(np.sum(exact ** 2))
    return sorted(error, key=lambda n: -error[n] / max(size[n], 1e-12))[:count]


#: How many MatMuls :func:`quantize_mixed` leaves fp32: on whole-message bge-smalls two took the smoothed graph's
#: sure agreement from 99.57 to 99.64% (fold 1) and 99.37 to 99.54% (fold 3) at 1.55× fp32's speed (block-wise:
#: 1.1×); in a one-off check three or four did no better than two (BENCHMARKS.md).
MIXED_FP32 = 2


def quantize_mixed(source: Path, target: Path, rows: Sequence[Sequence[int]], keep: int = MIXED_FP32) -> Path:
    """:func:`quantize_smoothed`, with the ``keep`` MatMuls that round worst (:func:`worst_rounded`, on the
    smoothed graph) left fp32: between the smoothed graph's speed and the block-wise graph's faithfulness."""
    smoothed = target.with_suffix(".smoothed")
    try:
        smooth(source, smoothed, rows)
        return quantize_int8(smoothed, target, exclude=worst_rounded(smoothed, rows, keep))
    finally:
        smoothed.unlink(missing_ok=True)


def _rows_unused(quantize: Callable[[Path, Path], Path]) -> Callable[[Path, Path, Sequence[Sequence[int]]], Path]:
    return lambda source, target, rows: quantize(source, target)


#: The int8 graphs an export may serve, by name, fastest first (:func:`quantize_agreeing`); each
#: takes the fp32 graph, the path to write, and token ids of texts to measure activation ranges on.
INT8_GRAPHS: dict[str, Callable[[Path, Path, Sequence[Sequence[int]]], Path]] = {
    "dynamic": _rows_unused(quantize_int8), "smoothed": quantize_smoothed, "mixed": quantize_mixed,
    "block-wise": _rows_unused(quantize_blockwise)}


def flip_bound(reference: np.ndarray, quantized: np.ndarray, amplification: int = AMPLIFICATION) -> float:
    """An upper 95% bound on the share of texts whose answer a quantized graph flips, from both graphs' logits.

    Counting flips cannot show 99.5% on a few hundred texts: with none in 455
    the bound is 0.66%. But a flip is a near-tie that the quantization error
    crossed, and near zero the fp32 margins are spread about evenly, so the
    share of answers flipped by the error multiplied by T grows in proportion
    to T: the share flipped at T, divided by T, estimates the share flipped at
    1 from T times the events (the Clopper–Pearson bound on those events,
    divided by T). For the dynamic, smoothed and block-wise graphs of two
    fine-tuned bge-smalls (bench/int8_layers.py), the bound from 455–505
    validation texts was below the agreement on 1,263 test texts in all six
    cases, by 0.06–0.8 point.
    """
    from scipy.stats import beta

    n = len(reference)
    moved = reference + amplification * (quantized - reference)
    events = int(np.sum(moved.argmax(axis=1) != reference.argmax(axis=1)))
    return 1.0 if events >= n else float(beta.ppf(0.95, events + 1, n - events)) / amplification


def quantize_agreeing(graph: Path, target: Path, rows: Sequence[Sequence[int]], ranges: Sequence[Sequence[int]] = (),
                      agreement: float = INT8_AGREEMENT) -> dict[str, Any]:
    """The fastest int8 graph of ``graph`` that gives fp32's answer on ``agreement`` of texts like ``rows``
    (token ids of texts the model did not train on, one text per run as served), with 95% confidence
    (:func:`flip_bound`); what was chosen and measured. ``ranges``: token ids to measure activation ranges on,
    for smoothing (``rows`` when empty).

    Dynamic quantization (int8 weights per output channel, each activation
    tensor rounded to 256 levels) is about 2× as fast as fp32, but flipped
    0.6–0.9% of the answers of fine-tuned bge-smalls. Smoothed first
    (:func:`smooth`), it keeps that speed and flipped
    0.3–0.4%; block-wise int8 (MatMulNBits: one scale per 32 weights,
    activations quantized per block) flipped 0.2–0.3% and is only 1.1–1.2×
    as fast as fp32. Between them, the smoothed graph with the two MatMuls
    that round worst left fp32 (:func:`quantize_mixed`),
    at about 1.55× fp32's speed. So each is tried, fastest first, and the
    first that is sure to agree is served; where none is sure, the one with
    the highest bound. Without rows the dynamic graph is written unchecked.
    """
    import shutil
    import tempfile

    import onnxruntime

    if not rows:
        fastest = next(iter(INT8_GRAPHS))
        INT8_GRAPHS[fastest](graph, target, ranges)
        return {"graph": fastest, "calibration_texts": 0}
    feeds = [dict(zip(("input_ids", "attention_mask"), pad([r]), strict=True)) for r in rows]

    def logits(path: Path) -> np.ndarray:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.vstack([session.run(None, feed)[0] for feed in feeds])

    reference = logits(graph)
    measured: dict[str, float] = {}
    surely: dict[str, float] = {}  # the agreement with 95% confidence
    with tempfile.TemporaryDirectory(prefix="hotline-int8-") as tmp:
        for name, quantize in INT8_GRAPHS.items():
            trial = logits(quantize(graph, Path(tmp) / f"{name}.onnx", ranges or rows))
            measured[name] = float(np.mean(trial.argmax(axis=1) == reference.argmax(axis=1)))
            surely[name] = 1 - flip_bound(reference, trial)
            log.info("int8 %s: agreement with fp32 %.4f on %d texts (at least %.4f)", name, measured[name],
                     len(rows), surely[name])
            if surely[name] >= agreement:
                break
        chosen = next((n for n in surely if surely[n] >= agreement), max(surely, key=surely.__getitem__))
        partial = target.with_suffix(".partial")
        shutil.copyfile(Path(tmp) / f"{chosen}.onnx", partial)
        partial.rename(target)
    return {"graph": chosen, "agreement": measured[chosen], "tried": measured, "at_least": surely,
            "calibration_texts": len(rows), "target": agreement}
