"""Shared helpers for the benchmarks: the real data, timing and reporting."""

from __future__ import annotations

import csv
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "tipdm2020c"
OUT = ROOT / "bench" / "out"


def real_texts() -> list[str]:
    """Every message text of the competition data (development use only; never copied)."""
    texts: list[str] = []
    for name in ("messages_labeled.csv", "messages_timed.csv"):
        path = SHARED / name
        if not path.exists():
            sys.exit(f"bench: {path} is missing; the benchmarks read ../shared/data")
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
            texts.extend(row["text"] for row in csv.DictReader(fh))
    return texts


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
