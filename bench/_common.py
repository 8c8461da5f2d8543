"""Shared helpers for the benchmarks: the real data, timing and reporting."""

from __future__ import annotations

import csv
import json
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "tipdm2020c"
OUT = ROOT / "bench" / "out"


def shared_rows(name: str) -> list[dict[str, str]]:
    """The rows of one file of the competition data (development use only; never copied)."""
    path = SHARED / name
    if not path.exists():
        sys.exit(f"bench: {path} is missing; the benchmarks read ../shared/data")
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        return list(csv.DictReader(fh))


def real_texts() -> list[str]:
    """Every message text of the competition data."""
    return [row["text"] for name in ("messages_labeled.csv", "messages_timed.csv") for row in shared_rows(name)]


def labeled_rows() -> list[dict[str, str]]:
    """The labeled messages: ``text`` and ``label``."""
    return shared_rows("messages_labeled.csv")


def five_folds(labels: Sequence[str]) -> list[tuple[Any, Any]]:
    """(train, test) index arrays of the stratified five-fold split every real-data benchmark uses, so that
    "fold k" names the same messages in bench/classify.py, bench/encoder.py and bench/api_load.py."""
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(5, shuffle=True, random_state=0).split(labels, labels))


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (the least disturbed by other load) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(name: str, figures: dict[str, Any]) -> None:
    """Print the figures and keep them as JSON under bench/out/."""
    figures = {"benchmark": name, "python": platform.python_version(), **figures}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
