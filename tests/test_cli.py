"""The command line as a user runs it: real processes, real files, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


def run(args: list[str], tmp_path: Path, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    environment["HOTLINE_STORE"] = f"sqlite:///{tmp_path}/cli.db"
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "hotline.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=tmp_path, env=environment, timeout=120)


def test_mask_reads_stdin_and_writes_stdout(tmp_path: Path) -> None:
    result = run(["mask"], tmp_path, stdin="我叫张三，电话13812345678\n第二行没有隐私\n")
    assert result.returncode == 0
    assert result.stdout == "我叫**，电话138****5678\n第二行没有隐私\n"


def test_parse_prints_the_caller_account(tmp_path: Path) -> None:
    result = run(["parse", "--json"], tmp_path, stdin="坐席：您好\n市民：嗯，路灯不亮了，电话13812345678")
    data = json.loads(result.stdout)
    assert data["caller_account"] == "路灯不亮了，电话138****5678"
    assert data["turns"][0]["speaker"] == "agent"


@pytest.mark.slow
def test_generate_ingest_search_show_summary(tmp_path: Path) -> None:
    gen = run(["generate", "--days", "10", "--seed", "1", "--out", "data/calls.csv"], tmp_path)
    assert gen.returncode == 0, gen.stderr
    assert (tmp_path / "data" / "calls.truth.json").exists()
    ing = run(["ingest", "data/calls.csv"], tmp_path)
    assert ing.returncode == 0, ing.stderr
    assert " 0 rejected" in ing.stdout
    again = run(["ingest", "data/calls.csv"], tmp_path)
    assert "(0 new, 0 updated" in again.stdout
    found = run(["cases", "search", "停水", "--limit", "2", "--json"], tmp_path)
    assert found.returncode == 0, found.stderr
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert hits and all("水" in h["text"] or "水" in h["title"] for h in hits)
    shown = run(["cases", "show", hits[0]["id"]], tmp_path)
    assert json.loads(shown.stdout)["id"] == hits[0]["id"]
    summary = run(["summary"], tmp_path)
    assert "cases" in summary.stdout and "by district" in summary.stdout


def test_store_flag_overrides_the_environment(tmp_path: Path) -> None:
    result = run(["summary", "--store", f"sqlite:///{tmp_path}/other.db"], tmp_path)
    assert result.returncode == 0 and "other.db: 0 cases" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["ingest", "missing.csv"], {}, 2, "no such file"),
        (["cases", "show", "nope"], {}, 1, "no case with id"),
        (["cases", "search", "x", "--from", "2025-02-01", "--to", "2025-01-01"], {}, 2, "is after end"),
        (["summary", "--store", "mongodb://x"], {}, 2, "no store backend"),
        (["summary"], {"HOTLINE_SEGMENTER": "nope"}, 2, "HOTLINE_SEGMENTER"),
    ],
)
@pytest.mark.slow
def test_errors_are_one_line_and_non_zero(tmp_path: Path, args: list[str], env: dict, code: int, message: str) -> None:
    result = run(args, tmp_path, env=env)
    assert result.returncode == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_store_it_cannot_index_before_any_expensive_step(tmp_path: Path) -> None:
    """A PostgreSQL store without HOTLINE_INDEX once trained a first model for five minutes, then refused."""
    started = time.monotonic()
    result = run(["serve", "--port", "1"], tmp_path, env={"HOTLINE_STORE": "postgresql://hotline@127.0.0.1:1/none"})
    assert result.returncode == 2 and "HOTLINE_INDEX" in result.stderr and len(result.stderr.splitlines()) == 1
    assert "training" not in result.stderr and time.monotonic() - started < 30


def test_a_second_demo_imports_nothing_the_store_holds(tmp_path: Path) -> None:
    """A second `make demo` re-imported 66,000 unchanged rows (30 s); a store that lost them imports them again."""
    first = run(["demo", "--days", "3"], tmp_path)
    assert first.returncode == 0 and "accepted" in first.stdout
    again = run(["demo", "--days", "3"], tmp_path)
    assert again.returncode == 0 and "already holds" in again.stderr and "accepted" not in again.stdout
    assert again.stdout in first.stdout  # the same summary of the same store
    (tmp_path / "cli.db").unlink()
    emptied = run(["demo", "--days", "3"], tmp_path)
    assert emptied.returncode == 0 and "accepted" in emptied.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = run(["generate", "--days", "0", "--out", "x.csv"], tmp_path)
    assert result.returncode == 2 and "at least 1" in result.stderr


@pytest.mark.slow
def test_one_spelling_for_dates_and_models_the_old_kept(tmp_path: Path) -> None:
    """--from/--to everywhere (--start/--end still work); --model names a directory, a kind is --kind."""
    assert run(["generate", "--days", "20", "--to", "2025-06-20", "--seed", "2", "--out", "calls.csv"],
               tmp_path).returncode == 0
    new = run(["hotspots", "--data", "calls.csv", "--from", "2025-06-15", "--to", "2025-06-20"], tmp_path)
    old = run(["hotspots", "--data", "calls.csv", "--start", "2025-06-15", "--end", "2025-06-20"], tmp_path)
    assert new.returncode == old.returncode == 0 and new.stdout == old.stdout
    import csv

    with (tmp_path / "calls.csv").open(encoding="utf-8-sig", newline="") as fh:  # no department column:
        rows = [(r["transcript"], r["category_l1"]) for r in csv.DictReader(fh)]  # departments stay optional
    with (tmp_path / "plain.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([("text", "label"), *rows])
    retrained = run(["retrain", "--no-store", "--data", "plain.csv", "--text-col", "text", "--label-col", "label"],
                    tmp_path, env={"HOTLINE_MODELS": str(tmp_path / "models")})
    assert retrained.returncode == 0, retrained.stderr
    renamed = run(["train", "--data", "plain.csv", "--text-col", "text", "--label-col", "label", "--model", "linear",
                   "--out", "trained"], tmp_path)
    assert renamed.returncode == 0 and "--model is now --kind" in renamed.stderr


def test_a_bug_is_not_dressed_up_as_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only our own errors become one-line messages; a ValueError from a bug keeps its traceback."""
    from hotline import cli

    def broken(args: object, settings: object) -> int:
        raise ValueError("a bug, not the user's mistake")

    monkeypatch.setattr(cli, "cmd_summary", broken)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["summary", "--store", "sqlite:///:memory:"])


@pytest.mark.server
def test_route_asks_a_running_service_with_an_agents_key(tmp_path: Path, service: Any) -> None:
    """`hotline route` loaded the model for each call (28.8 s once under load); --url asks the service instead."""
    from tests.api_support import AGENT_KEY, LiveServer

    with LiveServer(service) as live:
        text = "市民：海陵区梅兰新村停水两天了"
        answered = run(["route", "--url", live.url, "--key", AGENT_KEY, text], tmp_path)
        assert answered.returncode == 0, answered.stderr
        assert answered.stdout.startswith("类别: 城乡建设/供水") and "主办" not in answered.stderr
        as_json = run(["route", "--url", live.url, "--json", text], tmp_path, env={"HOTLINE_CLIENT_KEY": AGENT_KEY})
        assert json.loads(as_json.stdout)["departments"]
        refused = run(["route", "--url", live.url, "--key", "not-a-key-0123456789abcdefgh", text], tmp_path)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1 and "401" in refused.stderr
    gone = run(["route", "--url", live.url, "--key", AGENT_KEY, text], tmp_path)
    assert gone.returncode == 1 and "cannot reach" in gone.stderr
    keyless = run(["route", "--url", live.url, text], tmp_path)
    assert keyless.returncode == 2 and "HOTLINE_CLIENT_KEY" in keyless.stderr
