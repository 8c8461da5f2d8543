"""Soak: mixed traffic (routing, ingest, search, hotspots) from a second process for a bounded time.

Reports per-kind latency, errors and the service's memory over time (RSS
sampled every few seconds; "flat" means the last sample is within 10% of the
one after warm-up). ``make test`` runs it for 20 s at a low rate; the full
run is 10 minutes.

    python bench/soak.py [--seconds 600] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import report
from api_load import _client, _request, running_service


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(port: int, mixes: dict[str, list[bytes]], weights: dict[str, float], rate: float, seconds: float,
              pid: int) -> tuple[dict[str, dict[str, float]], list[float]]:
    deadline = time.perf_counter() + seconds
    results: dict[str, tuple[list[float], list[str]]] = {k: ([], []) for k in mixes}
    memory: list[float] = []

    async def sample() -> None:
        while time.perf_counter() < deadline:
            memory.append(rss_mib(pid))
            await asyncio.sleep(max(1.0, seconds / 60))

    tasks = [sample()]
    for kind, share in weights.items():
        clients = max(1, round(10 * share))
        per_kind_rate = rate * share
        for _ in range(clients):
            tasks.append(_client("127.0.0.1", port, mixes[kind], clients / per_kind_rate, deadline, *results[kind]))
    await asyncio.gather(*tasks)
    figures = {}
    for kind, (latencies, errors) in results.items():
        figures[kind] = {"requests": len(latencies), "errors": len(errors),
                         "p50 ms": float(np.percentile(latencies, 50)) if latencies else float("nan"),
                         "p99 ms": float(np.percentile(latencies, 99)) if latencies else float("nan")}
    return figures, memory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--name", default="soak")
    args = parser.parse_args()
    with running_service("hotline-soak-", days=40, seed=9, role="admin") as (work, server, port):
        import csv

        with (work / "calls.csv").open(encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
        words = ["停水", "噪音", "路灯", "垃圾", "物业", "工资", "燃气", "学校"]
        mixes = {
            "route": [_request(port, "/v1/route", {"text": r["transcript"][:400]}) for r in rows[:500]],
            "ingest": [_request(port, "/v1/cases", {"id": f"SOAK-{i}", "text": rows[i % len(rows)]["transcript"][:400],
                                                    "district": rows[i % len(rows)]["district"] or None})
                       for i in range(5000)],
            "search": [_request(port, f"/v1/cases?text={quote(w)}&limit=20", None) for w in words],
            "hotspots": [_request(port, "/v1/hotspots", None)],
        }
        weights = {"route": 0.6, "ingest": 0.2, "search": 0.18, "hotspots": 0.02}
        figures, memory = asyncio.run(run(port, mixes, weights, args.rate, args.seconds, server.pid))
        out: dict[str, object] = {"seconds": args.seconds, "offered requests/s": args.rate}
        for kind, values in figures.items():
            for key, value in values.items():
                out[f"{kind}: {key}"] = value
        warm = memory[min(2, len(memory) - 1)]
        out["service RSS MiB after warm-up"] = warm
        out["service RSS MiB at the end"] = memory[-1]
        out["service RSS growth %"] = 100 * (memory[-1] - warm) / warm
        out["errors"] = sum(v["errors"] for v in figures.values())
        report(args.name, out)
        print(json.dumps({"errors": out["errors"], "rss_growth_pct": out["service RSS growth %"]}))


if __name__ == "__main__":
    main()
