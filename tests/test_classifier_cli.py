"""hotline train / evaluate / predict / route, run as a maintainer and an agent would."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_cli import run

pytestmark = pytest.mark.slow  # trains models through the command line


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("train")
    assert run(["generate", "--days", "25", "--seed", "3", "--out", "calls.csv"], work).returncode == 0
    result = run(["train", "--data", "calls.csv", "--text-col", "transcript", "--label-col", "category_l1,category_l2",
                  "--department-col", "department", "--out", "models/current"], work)
    assert result.returncode == 0, result.stderr
    return work


def test_train_writes_a_model_directory_with_its_manifest(workdir: Path) -> None:
    manifest = json.loads((workdir / "models" / "current" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == "linear" and manifest["data_size"] > 1000
    assert 0.7 < manifest["metrics"]["macro_f1"] <= 1.0
    assert "auto_dispatch_threshold" in manifest["extra"]
    assert manifest["libraries"]["scikit-learn"]


def test_evaluate_prints_one_json_object(workdir: Path) -> None:
    result = run(["evaluate", "--model", "models/current", "--data", "calls.csv", "--text-col", "transcript",
                  "--label-col", "category_l1,category_l2"], workdir)
    report = json.loads(result.stdout)
    for key in ("macro_f1", "accuracy", "top3_accuracy", "per_class", "confusion_matrix"):
        assert key in report
    assert report["top3_accuracy"] >= report["accuracy"] > 0.8


def test_predict_writes_label_top3_and_probabilities(workdir: Path) -> None:
    result = run(["predict", "--model", "models/current", "--data", "calls.csv", "--text-col", "transcript",
                  "--out", "predicted.csv"], workdir)
    assert result.returncode == 0, result.stderr
    with (workdir / "predicted.csv").open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and rows[0]["label"] == rows[0]["top3"].split("|")[0]
    assert abs(sum(json.loads(rows[0]["probabilities"]).values()) - 1.0) < 0.05


def test_route_prints_departments_and_reasons(workdir: Path) -> None:
    result = run(["route", "--model", "models/current", "--json", "海陵区城东街道梅兰新村停水三天了，一点水都没得"], workdir)
    assert result.returncode == 0, result.stderr
    routing = json.loads(result.stdout)
    assert routing["category"].endswith("供水")
    assert routing["departments"][0]["department"] == "自来水公司"
    text = run(["route", "--model", "models/current", "楼道里煤气味很重"], workdir)
    assert "燃气公司" in text.stdout and "紧急" in text.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["route", "--model", "nowhere", "停水了"],
        ["train", "--data", "calls.csv", "--text-col", "nope", "--label-col", "category_l2", "--out", "m"],
        ["route", "--model", "models/current", "   "],
    ],
)
def test_errors_are_one_line(workdir: Path, args: list[str]) -> None:
    result = run(args, workdir)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
