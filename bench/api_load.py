"""Load on the service from a second process: 50 concurrent clients on /v1/route for 30 s (bounded).

Sets up its own store (generated calls) and model, starts ``uvicorn`` with
the app on a free 127.0.0.1 port (``--workers``), and drives it with asyncio
+ httpx. Baseline in the same run: the same clients on ``/health`` (what the
HTTP stack alone gives on this machine).

    python bench/api_load.py [--clients 50] [--seconds 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-agent-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hotline(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "hotline.cli", *args], env=env, check=True, cwd=env["WORK"],
                   stdout=subprocess.DEVNULL)


async def drive(url: str, path: str, bodies: list[dict] | None, clients: int, seconds: float,
                limit: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    sent = 0

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while time.perf_counter() < deadline and sent < limit:
            sent += 1
            started = time.perf_counter()
            try:
                if bodies is None:
                    response = await session.get(path)
                else:
                    response = await session.post(path, json=random.choice(bodies))
                if response.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, limits=limits, timeout=10) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "errors": errors, "requests/s": len(latencies) / elapsed,
            "p50 ms": float(np.percentile(latencies, 50)), "p99 ms": float(np.percentile(latencies, 99))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=100_000, help="at most this many requests per phase")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hotline-bench-api-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}, "WORK": str(work),
           "HOTLINE_STORE": f"sqlite:///{work}/store.db", "HOTLINE_MODELS": str(work / "models"),
           "HOTLINE_API_KEYS": f"{KEY}:agent", "PYTHONPATH": str(ROOT)}
    hotline(env, "generate", "--days", "60", "--seed", "5", "--start", "2025-05-01", "--out", "calls.csv")
    hotline(env, "ingest", "calls.csv")
    hotline(env, "retrain", "--no-store", "--data", "calls.csv", "--promote")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(args.workers), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/health", timeout=1).json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit("the service did not come up: " + server.stderr.read().decode()[-2000:])
        import csv

        with (work / "calls.csv").open(encoding="utf-8-sig") as fh:
            bodies = [{"text": row["transcript"][:400]} for row in csv.DictReader(fh)][:2000]
        asyncio.run(drive(url, "/v1/route", bodies[:200], 10, 3, 2000))  # warm-up, every worker
        figures: dict[str, object] = {"clients": args.clients, "seconds": args.seconds, "workers": args.workers}
        for name, path, payload in (("baseline GET /health", "/health", None), ("POST /v1/route", "/v1/route", bodies)):
            for key, value in asyncio.run(drive(url, path, payload, args.clients, args.seconds, args.limit)).items():
                figures[f"{name}: {key}"] = value
        report("api_load", figures)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
