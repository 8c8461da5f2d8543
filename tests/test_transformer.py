"""The transformer path with a tiny BERT the test builds itself (no hub, no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch  # make test installs the transformer extra; a missing torch must fail, not skip
import transformers

from classifiers.cascade import Cascade, Stacker
from classifiers.linear import TextClassifier
from classifiers.tokens import token_ids
from classifiers.transformer import OnnxClassifier, TransformerClassifier, adamw, length_batches
from hotline.errors import InvalidInput

pytestmark = pytest.mark.slow  # fine-tunes a tiny BERT


TEXTS = {
    "供水": ["小区停水了", "家里没有水", "自来水发黄", "水管爆了到处是水", "水压太低用不上水", "停水也不通知"],
    "噪声": ["工地夜里施工太吵", "广场舞声音太大", "楼上装修噪音", "半夜打桩吵得睡不着", "商铺音响太吵", "货车夜里鸣笛"],
    "欠薪": ["老板拖欠工资", "工资三个月没发", "包工头不给钱", "公司欠薪不还", "加班费不给", "干完活拿不到工资"],
}


def tiny_bert(directory: Path) -> Path:
    """A two-layer BERT with a character vocabulary: what a local Chinese BERT looks like, in miniature."""
    chars = sorted({c for texts in TEXTS.values() for t in texts for c in t} | set("的了是我"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizer(vocab={token: i for i, token in enumerate(vocab)})
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=512)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def tiny_encoder(directory: Path) -> Path:
    """The tiny BERT laid out as `hotline encoder fetch` leaves bge-small: its weights and tokenizer.json for
    fine-tuning, and ``encoder.onnx`` (last hidden state from ids, mask, token types) for sentence vectors."""
    from classifiers.encoder import GRAPH_FILE

    tiny_bert(directory)
    model = transformers.BertModel.from_pretrained(directory).eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    ids = torch.tensor([[2, 5, 6, 3]])
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(Hidden(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(directory / GRAPH_FILE),
                      input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["hidden"],
                      dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "hidden": axes},
                      dynamo=False)
    return directory


@pytest.fixture(scope="module")
def data() -> tuple[list[str], np.ndarray]:
    texts = [t for texts in TEXTS.values() for t in texts]
    labels = np.array([label for label, texts in TEXTS.items() for _ in texts])
    return texts, labels


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, data: tuple) -> TransformerClassifier:
    base = tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-chinese-bert")
    texts, labels = data
    return TransformerClassifier(base_model=str(base), epochs=30, batch_size=6, learning_rate=2e-3, max_length=32,
                                 validation_fraction=0).fit(texts, labels)


def test_fine_tuning_lowers_the_loss(fitted: TransformerClassifier, data: tuple) -> None:
    assert fitted.loss_history_[-1] < 0.6 * fitted.loss_history_[0]
    texts, labels = data
    assert np.mean(fitted.predict(texts) == labels) > 0.5  # three classes: chance is 1/3


def test_saved_model_predicts_the_same_after_loading(fitted: TransformerClassifier, tmp_path: Path) -> None:
    fitted.save(tmp_path / "model")
    assert list((tmp_path / "model").glob("*.safetensors"))
    loaded = TransformerClassifier.load(tmp_path / "model")
    probe = ["停水三天了", "晚上太吵", "工资不发"]
    np.testing.assert_allclose(loaded.predict_proba(probe), fitted.predict_proba(probe), rtol=1e-5, atol=1e-6)
    assert list(loaded.classes_) == list(fitted.classes_)


def test_the_int8_graph_serves_without_torch(fitted: TransformerClassifier, tmp_path: Path) -> None:
    import subprocess
    import sys

    fitted.save(tmp_path / "model")
    probe = ["停水三天了", "晚上太吵", "工资不发"]
    int8 = OnnxClassifier.load(tmp_path / "model")
    assert list(int8.predict(probe)) == list(fitted.predict(probe))
    fp32 = OnnxClassifier.load(tmp_path / "model", quantized=False)
    np.testing.assert_allclose(fp32.predict_proba(probe), fitted.predict_proba(probe), atol=1e-5)
    script = ("import sys\n"
              "class NoTorch:\n"  # any import of torch now fails
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name.split('.')[0] == 'torch': raise ImportError('no torch in the service')\n"
              "sys.meta_path.insert(0, NoTorch())\n"
              "from classifiers.transformer import OnnxClassifier\n"
              f"print(list(OnnxClassifier.load({str(tmp_path / 'model')!r}).predict({probe!r})))\n"
              "assert 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([str(c) for c in fitted.predict(probe)])


def test_the_int8_export_is_the_fastest_graph_that_agrees_with_fp32(fitted: TransformerClassifier,
                                                                     tmp_path: Path) -> None:
    import json

    import onnx

    from classifiers.int8 import quantize_agreeing
    from classifiers.transformer import INT8_FILE, ONNX_FILE

    directory = fitted.save(tmp_path / "model")
    chosen = json.loads((directory / "classes.json").read_text(encoding="utf-8"))["int8"]
    assert chosen["calibration_texts"] == len(fitted.calibration_rows_) == 18  # no validation split: training texts
    assert chosen["graph"] in chosen["tried"] and chosen["agreement"] == chosen["tried"][chosen["graph"]]
    graph, rows = directory / ONNX_FILE, fitted.calibration_rows_

    def ops(path: Path) -> set[str]:
        return {n.op_type for n in onnx.load(str(path)).graph.node}

    first = quantize_agreeing(graph, tmp_path / "loose.onnx", rows, agreement=0.0)
    assert first["graph"] == "dynamic" and list(first["tried"]) == ["dynamic"]  # the fastest agrees: no other tried
    assert "MatMulInteger" in ops(tmp_path / "loose.onnx")
    best = quantize_agreeing(graph, tmp_path / "strict.onnx", rows, agreement=1.01)  # never met: the surest one
    assert list(best["tried"]) == ["dynamic", "smoothed", "mixed", "block-wise"]
    assert best["at_least"][best["graph"]] == max(best["at_least"].values())
    assert quantize_agreeing(graph, tmp_path / "unchecked.onnx", [])["graph"] == "dynamic"
    from classifiers.int8 import quantize_blockwise

    blockwise = tmp_path / "blockwise"
    blockwise.mkdir()
    for f in directory.iterdir():
        if f.name != INT8_FILE:
            (blockwise / f.name).symlink_to(f)
    quantize_blockwise(graph, blockwise / INT8_FILE)
    assert "MatMulNBits" in ops(blockwise / INT8_FILE)
    probe = ["停水三天了", "晚上太吵", "工资不发"]
    fp32 = OnnxClassifier.load(directory, quantized=False).predict_proba(probe)
    np.testing.assert_allclose(OnnxClassifier.load(blockwise).predict_proba(probe), fp32, atol=0.02)


def test_smoothing_keeps_the_function_and_moves_the_spread_into_the_weights(fitted: TransformerClassifier,
                                                                           tmp_path: Path) -> None:
    import onnx
    import onnxruntime

    from classifiers.int8 import quantize_smoothed, smooth
    from classifiers.tokens import pad
    from classifiers.transformer import ONNX_FILE

    graph = fitted.save(tmp_path / "model") / ONNX_FILE
    rows = fitted.range_rows_
    smoothed = smooth(graph, tmp_path / "smoothed.onnx", rows)
    divided = [n for n in onnx.load(str(smoothed)).graph.node if n.name.endswith("/Smooth")]
    assert len(divided) == 2 * 4  # per layer: the attention input, its context, the FFN input, the GELU output
    feed = dict(zip(("input_ids", "attention_mask"), pad(token_ids(fitted.tokenizer_, ["小区停水了三天"], 32)),
                    strict=True))
    run = lambda path: onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]  # noqa: E731
    np.testing.assert_allclose(run(smoothed), run(graph), rtol=1e-4, atol=1e-4)  # fp32: the same function
    quantized = quantize_smoothed(graph, tmp_path / "model.int8.onnx", rows)
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(quantized)).graph.node}
    assert not (tmp_path / "model.int8.smoothed").exists()  # the fp32 intermediate is not left behind
    with pytest.raises(InvalidInput):
        smooth(graph, tmp_path / "none.onnx", [])


def test_the_matmuls_that_round_worst_are_left_fp32(fitted: TransformerClassifier, tmp_path: Path) -> None:
    """A MatMul whose input has one channel far wider than the rest loses most to one range per tensor."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from classifiers.int8 import MIXED_FP32, quantize_mixed, worst_rounded
    from classifiers.transformer import ONNX_FILE

    rng = np.random.default_rng(0)
    wide = np.ones(8, dtype=np.float32)
    wide[3] = 1000.0
    tensors = {"embed": rng.normal(size=(1, 8)), "wide": wide[None, None, :], "plain_w": rng.normal(size=(8, 4)),
               "wide_w": rng.normal(size=(8, 4))}
    nodes = [helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["ids", "mask"], ["summed"]),
             helper.make_node("Unsqueeze", ["summed", "axis"], ["column"]),
             helper.make_node("MatMul", ["column", "embed"], ["hidden"], name="embed"),
             helper.make_node("Sin", ["hidden"], ["waves"]),
             helper.make_node("MatMul", ["waves", "plain_w"], ["plain"], name="plain"),
             helper.make_node("Mul", ["waves", "wide"], ["widened"]),
             helper.make_node("MatMul", ["widened", "wide_w"], ["skewed"], name="skewed"),
             helper.make_node("Add", ["plain", "skewed"], ["logits"])]
    initializers = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in tensors.items()]
    initializers.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis"))
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info(n, TensorProto.INT64, [1, None])
                                             for n in ("input_ids", "attention_mask")],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "toy.onnx"))
    rows = [list(rng.integers(1, 50, 12)) for _ in range(5)]
    assert worst_rounded(tmp_path / "toy.onnx", rows, 1) == ["skewed"]
    assert sorted(worst_rounded(tmp_path / "toy.onnx", rows, 5)) == ["embed", "plain", "skewed"]
    # On the fine-tuned model: all MatMuls int8 but the MIXED_FP32 that round worst.
    source = fitted.save(tmp_path / "model") / ONNX_FILE
    mixed = onnx.load(str(quantize_mixed(source, tmp_path / "mixed.onnx", fitted.range_rows_)))
    kept = [n for n in mixed.graph.node if n.op_type == "MatMul"
            and n.input[1] in {t.name for t in mixed.graph.initializer}]
    assert len(kept) == MIXED_FP32 and any(n.op_type == "MatMulInteger" for n in mixed.graph.node)
    assert not (tmp_path / "mixed.smoothed").exists()


def test_the_flip_bound_covers_the_flip_rate_and_can_pass_where_counting_cannot() -> None:
    from scipy.stats import beta

    from classifiers.int8 import INT8_AGREEMENT, flip_bound

    rng = np.random.default_rng(0)
    logits = lambda n: rng.normal(size=(n, 7)) * 3  # noqa: E731
    reference, noise = logits(500), rng.normal(size=(500, 7))
    population, population_noise = logits(200_000), rng.normal(size=(200_000, 7))
    bounds = []
    for error in (0.0, 0.01, 0.03):
        rate = np.mean((population + error * population_noise).argmax(1) != population.argmax(1))
        bounds.append(flip_bound(reference, reference + error * noise))
        assert bounds[-1] >= rate  # an upper bound on the share that error flips, from 500 texts
    assert bounds[0] < bounds[1] < bounds[2]
    # A graph flipping 0.26% of answers: counting flips on 500 texts can never be sure of 99.5%; the bound is.
    assert beta.ppf(0.95, 1, 500) > 1 - INT8_AGREEMENT > bounds[1]
    assert flip_bound(reference, reference[:, ::-1]) <= 1.0


def test_long_texts_keep_their_head_and_tail_and_batches_group_lengths(fitted: TransformerClassifier) -> None:
    ids = token_ids(fitted.tokenizer_, ["停" * 10 + "吵" * 40 + "钱" * 10], 22)[0]
    words = fitted.tokenizer_.decode(ids).replace(" ", "")
    assert len(ids) == 22 and words.startswith("停" * 10) and words.endswith("钱" * 5)
    batches = length_batches([1, 9, 2, 8, 3, 7], 2)
    assert [sorted(b) for b in batches] == [[0, 2], [4, 5], [1, 3]]


def test_early_stopping_keeps_the_best_epoch(tmp_path: Path, data: tuple) -> None:
    texts, labels = data
    base = tiny_bert(tmp_path / "bert")
    model = TransformerClassifier(base_model=str(base), epochs=6, batch_size=6, learning_rate=2e-3, max_length=32,
                                  validation_fraction=0.5, patience=1).fit(texts * 2, np.concatenate([labels, labels]))
    assert len(model.validation_history_) <= 6 and model.best_epoch_ == int(np.argmax(model.validation_history_)) + 1


def test_layer_decay_slows_the_lower_layers_and_keeps_the_head_rate(tmp_path: Path) -> None:
    model = transformers.BertForSequenceClassification.from_pretrained(tiny_bert(tmp_path / "bert"))
    rates = {}
    for decay in (1.0, 0.5):
        optimizer, _ = adamw(model, 1e-3, 0.01, total=10, warm=0, layer_decay=decay)
        rate_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
        no_decay = {id(p) for group in optimizer.param_groups if group["weight_decay"] == 0 for p in group["params"]}
        named = dict(model.named_parameters())
        rates[decay] = {n: rate_of[id(p)] for n, p in named.items()}
        assert {n for n, p in named.items() if id(p) in no_decay} == \
            {n for n in named if n.endswith("bias") or "LayerNorm" in n}  # biases and LayerNorms never decay
    assert set(rates[1.0].values()) == {1e-3}  # no layer decay: one rate, as before
    slowed = rates[0.5]  # two layers: embeddings 3 steps below the head, layer 0 two, layer 1 one
    assert slowed["classifier.weight"] == slowed["bert.pooler.dense.weight"] == 1e-3
    assert slowed["bert.encoder.layer.1.output.dense.weight"] == pytest.approx(5e-4)
    assert slowed["bert.encoder.layer.0.attention.self.query.bias"] == pytest.approx(2.5e-4)
    assert slowed["bert.embeddings.word_embeddings.weight"] == pytest.approx(1.25e-4)


def test_the_cascade_asks_the_encoder_only_when_the_linear_model_is_unsure(fitted: TransformerClassifier,
                                                                          data: tuple) -> None:
    texts, labels = data
    linear = TextClassifier(min_df=1, calibration_folds=2).fit(texts * 2, np.concatenate([labels, labels]))
    stacker = Stacker().fit([linear.predict_proba(texts), fitted.predict_proba(texts)],
                            [linear.classes_, fitted.classes_], labels)

    class Counting:
        classes_ = fitted.classes_
        calls = 0

        def predict_proba(self, X: list[str]) -> np.ndarray:
            Counting.calls += len(X)
            return fitted.predict_proba(X)

    probe = ["小区停水了", "晚上广场舞太吵", "工资不发"]
    sure = linear.predict_proba(probe).max(axis=1)
    cascade = Cascade(linear, Counting(), stacker, threshold=float(np.median(sure)))
    proba = cascade.predict_proba(probe)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert Counting.calls == int(np.sum(sure < np.median(sure))) == round(3 * cascade.encoder_share(probe))
    everything = Cascade(linear, fitted, stacker, threshold=1.01)
    assert everything.encoder_share(probe) == 1.0 and set(everything.classes_) == {"供水", "噪声", "欠薪"}


def test_hub_names_and_missing_directories_are_refused(data: tuple) -> None:
    texts, labels = data
    with pytest.raises(InvalidInput, match="local model directory"):
        TransformerClassifier(base_model="bert-base-chinese").fit(texts, labels)


def test_the_encoder_gate_shares_its_slots_and_lets_go_of_them(tmp_path: Path) -> None:
    """Two gates on one folder are two workers (each opens the slot files itself, so their locks conflict)."""
    from classifiers.cascade import EncoderGate

    one, other = EncoderGate(2, slots=tmp_path), EncoderGate(2, slots=tmp_path)
    with one.admit() as first, other.admit() as second, one.admit() as third:
        assert first and second and not third and (one.inside, other.inside, one.shed) == (1, 1, 1)
    with one.admit() as again:  # both slots free again
        assert again
        one.close()  # shutting down under a running call: its slot goes with the file, and the call ends cleanly
    assert one.inside == 0
    with other.admit() as a, other.admit() as b:
        assert a and b
    with EncoderGate(0).admit() as unbounded:
        assert unbounded
    other.close()


#: Another worker process inside the encoder: holds the slot file named by argv[1] until its stdin closes.
HOLD_SLOT = ("import fcntl, sys\n"
             "slot = open(sys.argv[1], 'a')\n"
             "fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "print('held', flush=True)\n"
             "sys.stdin.read()\n")


@pytest.mark.parametrize("kind", ["transformer", "ensemble"])
def test_train_evaluate_predict_through_the_command_line(tmp_path: Path, kind: str) -> None:
    import csv
    import json
    import subprocess
    import sys

    from test_cli import run

    tiny_bert(tmp_path / "bert")
    with (tmp_path / "train.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for label, texts in TEXTS.items():
            for text in texts * 2:
                writer.writerow([text, label])
    trained = run(["train", "--data", "train.csv", "--text-col", "text", "--label-col", "label", "--out", "m",
                   "--model", kind, "--base-model", "bert", "--epochs", "2", "--holdout", "0"], tmp_path)
    assert trained.returncode == 0, trained.stderr
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == kind and list((tmp_path / "m" / "transformer").glob("*.safetensors"))
    assert (tmp_path / "m" / "transformer" / "model.int8.onnx").is_file()
    assert manifest["extra"]["transformer"]["base_model"] == "bert"
    from classifiers.int8 import INT8_GRAPHS

    assert manifest["extra"]["transformer"]["int8"]["graph"] in INT8_GRAPHS  # the maintainer sees which
    if kind == "ensemble":  # the manifest records both parts and the cascade between them
        assert (tmp_path / "m" / "stacker" / "stacker.skops").is_file()
        assert 0 < manifest["extra"]["cascade_threshold"] <= 1 and manifest["extra"]["stacker_rows"] > 0
        assert set(manifest["extra"]["stacker_weights"]) == {"linear", "encoder"}  # how far each is believed
        routed = run(["route", "--model", "m", "--json", "小区停水了好几天"], tmp_path)
        assert routed.returncode == 0, routed.stderr
        assert json.loads(routed.stdout)["category"] in TEXTS
        from classifiers.kinds import make_router

        # The service routes this model's calls off its event loop, with one encoder thread per worker.
        router = make_router(tmp_path / "m", threads=1)
        assert router.runs_encoder and router.model.cascade.second.session_.get_session_options().intra_op_num_threads == 1
        # Bounded: with one call inside the encoder, the next unsure call gets the linear model's answer, marked
        # for a person (never auto-dispatched), instead of queueing; once the encoder is free it is asked again.
        from classifiers.cascade import EncoderGate
        from classifiers.router import ENCODER_BUSY

        gate = EncoderGate(1, slots=tmp_path / "slots")
        bounded = make_router(tmp_path / "m", threads=1, gate=gate)
        bounded.model.cascade.threshold = 1.01  # every call unsure
        assert ENCODER_BUSY not in bounded.route("小区停水了好几天").needs_person and (gate.asked, gate.shed) == (1, 0)
        with gate.admit() as inside:  # another call of this process is inside the encoder
            assert inside
            busy = bounded.route("小区停水了好几天")
        assert ENCODER_BUSY in busy.needs_person and not busy.auto_dispatch and gate.shed == 1 and gate.inside == 0
        linear_top = bounded.model.linear.category_scores(bounded.model.features("小区停水了好几天").row)
        assert busy.category == str(linear_top[0][int(np.argmax(linear_top[1]))])
        assert ENCODER_BUSY not in bounded.route("小区停水了好几天").needs_person and gate.shed == 1
        # The bound is the host's: while another worker process holds the slot, this one goes without too.
        holder = subprocess.Popen([sys.executable, "-c", HOLD_SLOT, str(tmp_path / "slots" / "slot-0")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        assert ENCODER_BUSY in bounded.route("小区停水了好几天").needs_person and gate.shed == 2
        holder.communicate("", timeout=30)  # it lets go (as a worker that dies would)
        assert ENCODER_BUSY not in bounded.route("小区停水了好几天").needs_person and gate.shed == 2
        gate.close()
    report = json.loads(run(["evaluate", "--model", "m", "--data", "train.csv", "--text-col", "text",
                             "--label-col", "label"], tmp_path).stdout)
    assert set(report["per_class"]) >= {"供水", "噪声", "欠薪"}
    assert run(["predict", "--model", "m", "--data", "train.csv", "--text-col", "text", "--out", "p.csv"],
               tmp_path).returncode == 0
    missing = run(["train", "--data", "train.csv", "--text-col", "text", "--label-col", "label", "--out", "x",
                   "--model", kind], tmp_path)
    assert missing.returncode == 2 and "--base-model" in missing.stderr


def test_an_admin_fine_tunes_an_ensemble_in_the_background(tmp_path: Path, demo_cases: list) -> None:
    """POST /v1/models/train {"kind": "ensemble"}: a child process fine-tunes the encoder HOTLINE_ENCODER names;
    the job reports its progress, and the result is registered as an ensemble (served when it wins)."""
    import time

    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.services import Services
    from hotline.settings import Settings
    from tests.api_support import ADMIN, KEYS_SETTING

    settings = Settings(store=f"sqlite:///{tmp_path}/store.db", models=tmp_path / "models", api_keys=KEYS_SETTING,
                        encoder=tiny_encoder(tmp_path / "encoder"), encoder_slots=tmp_path / "slots")
    services = Services(settings, sync_interval=0.2)
    try:
        services.store.upsert(demo_cases[:400])
        services.train("test")
        services.start()
        client = TestClient(create_app(settings, services))
        job = client.post("/v1/models/train", json={"kind": "ensemble", "epochs": 1}, headers=ADMIN).json()
        deadline = time.monotonic() + 600
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
            job = client.get(f"/v1/models/jobs/{job['id']}", headers=ADMIN).json()
        assert job["status"] == "succeeded", job
        assert job["progress"].startswith("evaluation report:")  # the child's last line
        entry = services.registry.get(job["version"])
        assert entry.manifest["kind"] == "ensemble" and entry.manifest["extra"]["compared_with"]
        assert job["promoted"] == (services.registry.active() == job["version"])
        audit = services.registry.audit()
        assert any(a.get("version") == job["version"] and a.get("by") == "admin-1" for a in audit)
        # The same directory gives the service its sentence vectors: similar cases by words and meaning.
        assert services.embedder is not None and services.embedder.dimension == 32
        case = demo_cases[5]
        found = services.index.similar(case.text, k=5, exclude=case.id)
        assert found and all(n.meaning is not None for n in found)  # the outbox gave every case its vector
        assert client.get(f"/v1/cases/{case.id}/similar", headers=ADMIN).status_code == 200
        # Served, every unsure call asks the host's encoder gate, and /metrics says how many ran it.
        if services.registry.active() != job["version"]:  # it is already when it beat the linear model
            services.registry.promote(job["version"], by="test", force=True)
        services.reload_model()
        services.models.get().model.cascade.threshold = 1.01  # every call unsure
        assert client.post("/v1/route", json={"text": case.text}, headers=ADMIN).status_code == 200
        assert 'hotline_encoder_calls_total{outcome="ran"} 1.0' in client.get("/metrics").text
        assert (tmp_path / "slots" / "slot-0").is_file()  # this host's slot, not in the (shared) models folder
    finally:
        services.close()


def _members(rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three classes; the first member gives the truth 0.7 of the time, the second is noise."""
    y = rng.integers(0, 3, rows)
    sharp = np.full((rows, 3), 0.15)
    guess = np.where(rng.random(rows) < 0.7, y, rng.integers(0, 3, rows))
    sharp[np.arange(rows), guess] = 0.7
    noise = rng.dirichlet(np.ones(3), rows)
    return sharp, noise, np.array(["供水", "噪声", "欠薪"], dtype=object)[y]


def test_the_stacker_learns_which_member_to_believe(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sharp, noise, y = _members(400, rng)
    classes = np.array(["供水", "噪声", "欠薪"], dtype=object)
    stacker = Stacker().fit([sharp, noise], [classes, classes], y)
    assert stacker.weights_[0] > 1.0 and stacker.weights_[1] < 0.2 * stacker.weights_[0]
    test_sharp, test_noise, test_y = _members(400, rng)
    proba = stacker.combine([test_sharp, test_noise], [classes, classes])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(stacker.classes_[proba.argmax(1)] == test_y) > 0.6
    loaded = Stacker.load(stacker.save(tmp_path / "shared"))
    np.testing.assert_allclose(loaded.combine([test_sharp, test_noise], [classes, classes]), proba)
    # The per-class regression it replaced (and stackers saved before) still combine after loading.
    regression = Stacker(per_class=True).fit([sharp, noise], [classes, classes], y)
    again = Stacker.load(regression.save(tmp_path / "per-class"))
    np.testing.assert_allclose(again.combine([test_sharp, test_noise], [classes, classes]),
                               regression.combine([test_sharp, test_noise], [classes, classes]))


def test_a_class_the_held_out_rows_lack_is_still_answered_when_the_members_agree() -> None:
    rng = np.random.default_rng(1)
    sharp, noise, y = _members(300, rng)
    keep = y != "欠薪"
    classes = np.array(["供水", "噪声", "欠薪"], dtype=object)
    stacker = Stacker().fit([sharp[keep], noise[keep]], [classes, classes], y[keep])
    assert stacker.bias_[list(stacker.classes_).index("欠薪")] == 0.0
    both = np.array([[0.05, 0.05, 0.9]])
    assert stacker.classes_[stacker.combine([both, both], [classes, classes]).argmax()] == "欠薪"


def test_precision_auto_takes_bf16_only_where_the_processor_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from classifiers.transformer import resolve_precision

    for bf16, amx, expected in ((False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda bf16=bf16: bf16, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx, raising=False)
        assert resolve_precision("auto", "cpu") == expected
        assert resolve_precision("fp32", "cpu") == "fp32"  # asked for, it is kept either way
        assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(InvalidInput, match="precision"):
        resolve_precision("fp16", "cpu")


def test_bf16_fine_tuning_learns_like_fp32(tmp_path: Path, data: tuple) -> None:
    """bf16 autocast changes the arithmetic of the matrix products, not what is learned: both runs fit the toy
    task, agree on it, and the bf16 model's exported fp32 graph gives its answers."""
    base = tiny_bert(tmp_path / "bert")
    texts, labels = data
    runs = {precision: TransformerClassifier(base_model=str(base), epochs=30, batch_size=6, learning_rate=2e-3,
                                             max_length=32, validation_fraction=0, precision=precision).fit(texts, labels)
            for precision in ("fp32", "bf16")}
    assert {p: m.precision_ for p, m in runs.items()} == {"fp32": "fp32", "bf16": "bf16"}
    for model in runs.values():
        assert model.loss_history_[-1] < 0.6 * model.loss_history_[0]
    predicted = {p: m.predict(texts) for p, m in runs.items()}
    assert np.mean(predicted["bf16"] == labels) > 0.5
    assert np.mean(predicted["bf16"] == predicted["fp32"]) >= 0.8
    runs["bf16"].save(tmp_path / "model")
    assert list(OnnxClassifier.load(tmp_path / "model", quantized=False).predict(texts)) == list(predicted["bf16"])
