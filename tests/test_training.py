"""Retraining and the model registry: candidates, comparison, refusal of worse models, rollback, data quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classifiers.dataset import Examples
from hotline.case import Case
from hotline.demo.generator import write_csv
from hotline.errors import Conflict, InvalidInput, NotFound
from hotline.store.sqlite import SQLiteStore
from hotline.text.segment import default_segmenter
from tests.test_cli import run
from training.quality import QualityReport, deduplicate, drift, leak_free, skeleton, suspect_labels
from training.registry import Registry
from training.retrain import RetrainRequest, retrain


@pytest.fixture(scope="module")
def labeled_store(tmp_path_factory: pytest.TempPathFactory, demo_cases: list[Case]) -> SQLiteStore:
    store = SQLiteStore(f"sqlite:///{tmp_path_factory.mktemp('train')}/store.db")
    store.upsert(demo_cases[:2500])
    return store


@pytest.mark.slow
def test_retrain_registers_compares_and_promotion_refuses_worse(tmp_path: Path, labeled_store: SQLiteStore) -> None:
    registry = Registry(tmp_path / "models")
    first = retrain(registry, RetrainRequest(), labeled_store, by="test")
    assert first.state == "candidate" and first.metrics["macro_f1"] > 0.5
    assert registry.promote(first.version, by="test").state == "active"
    assert (registry.current / "manifest.json").is_file() and registry.current.is_symlink()
    report = json.loads((registry.path(first.version) / "evaluation.json").read_text(encoding="utf-8"))
    assert report["data_quality"]["examples"] <= 2500 and "confusion_matrix" in report["candidate"]
    assert (registry.path(first.version) / "evaluation.html").read_text(encoding="utf-8").count("<tr>") > 5

    weak = retrain(registry, RetrainRequest(C=1e-6), labeled_store, by="test")  # so regularised it learns next to nothing
    compared = weak.manifest["extra"]["compared_with"]
    assert compared["version"] == first.version and compared["candidate_macro_f1"] < compared["active_macro_f1"]
    assert compared["interval_95"][1] < 0 and "bootstrap" in compared["method"]  # far worse, beyond the noise
    assert compared["verdict"] == "worse"
    with pytest.raises(Conflict, match="worse beyond the noise"):
        registry.promote(weak.version, by="test")
    assert registry.promote(weak.version, by="test", force=True).state == "active"
    assert registry.get(first.version).state == "retired"
    assert registry.rollback(by="test").version == first.version
    assert registry.current.resolve().name == first.version
    with pytest.raises(Conflict):
        registry.rollback(by="test")
    assert [a["action"] for a in registry.audit()] == ["register", "promote", "register", "promote", "rollback"]
    for bad in ("../etc", "a/b", ""):
        with pytest.raises((InvalidInput, NotFound)):
            registry.path(bad)


def test_quality_dedupes_and_keeps_leaks_out_of_the_test_set() -> None:
    data = Examples(texts=["楼下饭店油烟大，电话138****1234", "楼下饭店油烟大，电话139****5678", "楼下饭店油烟大，电话138****1234",
                           "路灯不亮"],
                    labels=["环境保护", "环境保护", "环境保护", "城乡建设"], ids=["a", "b", "c", "d"],
                    times=[None] * 4, districts=[""] * 4, departments=[()] * 4, rows=[1, 2, 3, 4])
    report = QualityReport()
    kept = deduplicate(data, report)
    assert kept.ids == ["c", "d"] and report.exact_duplicates == 1 and report.near_duplicates == 1
    assert skeleton("A3区 12号楼，噪音！") == "区号楼噪音"
    held = leak_free([0], np.array([1, 2]), ["油烟大", "油烟大！", "路灯不亮"], report)
    assert held.tolist() == [2] and report.leaked_from_test == 1


def test_suspect_labels_and_drift() -> None:
    proba = np.array([[0.9, 0.1], [0.85, 0.15], [0.1, 0.9], [0.95, 0.05]])
    flagged = suspect_labels(["a", "a", "b", "b"], proba, ["a", "b"], ["t0", "t1", "t2", "t3"], ["0", "1", "2", "3"])
    assert [f["id"] for f in flagged] == ["3"] and flagged[0]["suggested"] == "a"
    report = drift(["a"] * 10, ["a"] * 5 + ["new"] * 5, ["停水 小区"] * 10, ["充电桩 收费"] * 10,
                   default_segmenter().tokens)
    assert report["new_labels"] == ["new"] and report["label_js_divergence"] > 0.1
    assert {w["word"] for w in report["rising_words"][:3]} & {"充电桩", "充电", "桩", "收费"}


@pytest.mark.slow
def test_models_and_retrain_commands(tmp_path: Path, demo: tuple[list, object]) -> None:
    rows, _ = demo
    write_csv(rows[:1500], tmp_path / "calls.csv")
    env = {"HOTLINE_MODELS": str(tmp_path / "models")}
    trained = run(["retrain", "--no-store", "--data", "calls.csv", "--promote"], tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr
    version = json.loads(trained.stdout)["version"]
    listing = run(["models", "list"], tmp_path, env=env)
    assert version in listing.stdout and "active" in listing.stdout
    assert run(["models", "show", version], tmp_path, env=env).returncode == 0
    again = run(["models", "promote", version], tmp_path, env=env)
    assert again.returncode == 1 and "already" in again.stderr
    missing = run(["models", "promote", "no-such"], tmp_path, env=env)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert run(["route", "市民：我家楼下烧烤店油烟太大了"], tmp_path, env=env).returncode == 0
    # A candidate trained while the first was active was measured beside it on its own held-out cases:
    # compare says so and shows that pair of figures, whatever each model's own held-out set was.
    write_csv(rows[1500:3000], tmp_path / "more.csv")
    second = run(["retrain", "--no-store", "--data", "more.csv"], tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    candidate = json.loads(second.stdout)["version"]
    compared = json.loads(run(["models", "compare", version, candidate], tmp_path, env=env).stdout)
    assert compared["same_evaluation_data"] is True
    same = compared["on_the_same_cases"]
    assert set(same["macro_f1"]) == {version, candidate} and len(same["interval_95"]) == 2


def test_the_macro_f1_difference_has_a_paired_bootstrap_interval() -> None:
    from sklearn.metrics import f1_score

    from classifiers.evaluate import paired_macro_f1_interval

    rng = np.random.default_rng(3)
    truth = [str(c) for c in rng.integers(0, 7, 6664)]
    first = [t if rng.random() < 0.93 else str(rng.integers(0, 7)) for t in truth]
    labels = sorted(set(truth))
    assert paired_macro_f1_interval(truth, first, first) == (0.0, 0.0, 0.0)
    # A retrained model answers hundreds of cases differently, both ways; seven fewer right in all is within the
    # noise of 6,664 cases (as 0.9344 against 0.9354 was).
    nearly = list(first)
    right = [i for i, (t, f) in enumerate(zip(truth, first, strict=True)) if t == f]
    wrong = [i for i, (t, f) in enumerate(zip(truth, first, strict=True)) if t != f]
    for i in right[:107]:
        nearly[i] = str((int(truth[i]) + 1) % 7)
    for i in wrong[:100]:
        nearly[i] = truth[i]
    difference, low, high = paired_macro_f1_interval(truth, first, nearly)
    exact = (f1_score(truth, nearly, labels=labels, average="macro", zero_division=0)
             - f1_score(truth, first, labels=labels, average="macro", zero_division=0))
    assert abs(difference - exact) < 1e-12 and low < difference < 0 < high
    worse = [t if rng.random() < 0.85 else "x" for t in first]
    assert paired_macro_f1_interval(truth, first, worse)[2] < 0


def test_promotion_is_refused_only_beyond_the_noise() -> None:
    from training.registry import worse_beyond_noise

    within = {"candidate_macro_f1": 0.9344, "active_macro_f1": 0.9354, "n": 6664, "interval_95": [-0.0041, 0.0019]}
    beyond = {**within, "candidate_macro_f1": 0.9100, "interval_95": [-0.0310, -0.0190]}
    assert worse_beyond_noise("b", "a", within) is None
    assert "worse beyond the noise" in (worse_beyond_noise("b", "a", beyond) or "")
    assert "-0.0310 to -0.0190" in (worse_beyond_noise("b", "a", beyond) or "")
    older = {"candidate_macro_f1": 0.9344, "active_macro_f1": 0.9354}  # recorded before the interval was
    assert worse_beyond_noise("b", "a", older) is not None
