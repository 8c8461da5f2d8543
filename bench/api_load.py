"""Load on the service from a second process: 50 concurrent clients on /v1/route for 30 s, bounded.

Sets up its own store (generated calls) and model, starts ``uvicorn`` with
the app on a free 127.0.0.1 port (``--workers``), and drives it from this
process: 50 keep-alive connections offering ``--rate`` requests/s in all
(open loop, so a slow answer shows as latency instead of hiding as a lower
offer), written with bare asyncio streams so the load generator takes little
of the two cores. Baseline in the same run: the same load on ``/health``.

    python bench/api_load.py [--clients 50] [--seconds 30] [--workers 2] [--stores sqlite,postgresql]
                             [--kind linear|ensemble] [--epochs 1] [--texts generated|real]
                             [--encoder-calls 1]

With ``--kind ensemble`` the model served is the cascade (the linear model
alone where sure, the int8 encoder and the stacker elsewhere), fine-tuned
here from bge-small-zh (``hotline encoder fetch``) for ``--epochs`` on the
generated calls; the share of the requests' texts that reach the encoder is
reported beside the latencies.

With ``--texts real`` the model is trained on four fifths of the real labeled
messages in ``../shared/data`` (the first fold of ``bench/encoder.py``'s split)
and the requests carry the other fifth: on generated calls the linear model is
sure of most texts and few reach the encoder, on real messages many more do,
which is what a city's load looks like. The store still holds generated calls.

With ``--stores sqlite,postgresql`` the same load runs once on each store in
the same run (PostgreSQL and the Elasticsearch node it needs started here on
free 127.0.0.1 ports, and removed after).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import report

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-agent-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hotline(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "hotline.cli", *args], env=env, check=True, cwd=env["WORK"],
                   stdout=subprocess.DEVNULL)


@functools.lru_cache(maxsize=1)
def _busy_marks() -> tuple[bytes, bytes]:
    """The encoder-busy note as a JSON body may carry it (escaped or not)."""
    from classifiers.router import ENCODER_BUSY

    return ENCODER_BUSY.encode(), json.dumps(ENCODER_BUSY)[1:-1].encode()


async def _client(host: str, port: int, requests: list[bytes], interval: float, deadline: float,
                  latencies: list[float], errors: list[str], busy: list[int] | None = None) -> None:
    """One keep-alive connection sending a request every ``interval`` seconds (open loop) until the deadline."""
    reader, writer = await asyncio.open_connection(host, port)
    due = time.perf_counter() + random.uniform(0, interval)
    try:
        while due < deadline and time.perf_counter() < deadline:  # a backlog past the deadline is dropped
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            started = time.perf_counter()
            writer.write(random.choice(requests))
            await writer.drain()
            status = (await reader.readline()).split(b" ", 2)[1]
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if busy is not None and any(mark in body for mark in _busy_marks()):
                busy.append(1)
            if status != b"200":
                errors.append(status.decode())
            due += interval
    except (OSError, asyncio.IncompleteReadError, IndexError) as exc:
        errors.append(type(exc).__name__)
    finally:
        writer.close()


def _request(port: int, path: str, body: dict | None) -> bytes:
    if body is None:
        return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {KEY}\r\n\r\n").encode()
    payload = json.dumps(body, ensure_ascii=False).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    return head + payload


async def drive(port: int, path: str, bodies: list[dict] | None, clients: int, seconds: float,
                rate: float) -> dict[str, float]:
    """``clients`` connections offering ``rate`` requests/s in all (open loop: a slow answer does not slow the offer)."""
    requests = [_request(port, path, b) for b in (bodies or [None])]
    latencies: list[float] = []
    errors: list[str] = []
    busy: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_client("127.0.0.1", port, requests, clients / rate, deadline, latencies, errors, busy)
                           for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {"offered requests/s": rate, "requests": len(latencies), "errors": len(errors),
            "requests/s": len(latencies) / elapsed, "p50 ms": float(np.percentile(latencies, 50)),
            "p99 ms": float(np.percentile(latencies, 99)),
            "share answered by the linear model alone, encoder busy": len(busy) / max(len(latencies), 1)}


@contextmanager
def city_backends(work: Path) -> Iterator[dict[str, str]]:
    """A PostgreSQL server and an Elasticsearch node in ``work``: the settings of a city's deployment."""
    from hotline.settings import Settings
    from hotline.store.pgserver import Server
    from search.node import Node

    server = Server(work / "pg", port=free_port()).start()
    node = Node(work / "es", port=free_port(), heap="512m", cache=Settings().cache)
    try:
        node.start()
        yield {"HOTLINE_STORE": server.url, "HOTLINE_INDEX": f"{node.url}/bench"}
    finally:
        node.stop()
        server.remove()


@contextmanager
def running_service(prefix: str, days: int, seed: int, role: str, workers: int = 1,
                    store: str = "sqlite", kind: str = "linear", epochs: int = 1,
                    labeled: Path | None = None, encoder_calls: int = 1) -> Iterator[tuple[Path, subprocess.Popen, int]]:
    """A work directory with generated calls imported and a model trained, and uvicorn serving it (healthy);
    stopped and removed afterwards. ``store="postgresql"``: on PostgreSQL and Elasticsearch started here.
    ``kind="ensemble"``: the model is the cascade, the encoder fine-tuned for ``epochs`` (at 128 tokens on the
    generated calls). ``labeled``: the model is trained on that file's ``text`` and ``label`` columns instead
    (at the product's 256 tokens)."""
    from contextlib import ExitStack

    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)  # the servers' own users must reach their directories under it
    backends = ExitStack()
    stores = {"HOTLINE_STORE": f"sqlite:///{work}/store.db"}
    if store == "postgresql":
        stores = backends.enter_context(city_backends(work))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}, "WORK": str(work), **stores,
           "HOTLINE_MODELS": str(work / "models"), "HOTLINE_API_KEYS": f"bench-{role}:{role}:{KEY}",
           "HOTLINE_ENCODER_CALLS": str(encoder_calls), "HOTLINE_ENCODER_SLOTS": str(work / "slots"),
           "PYTHONPATH": str(ROOT)}
    hotline(env, "generate", "--days", str(days), "--seed", str(seed), "--start", "2025-05-01", "--out", "calls.csv")
    hotline(env, "ingest", "calls.csv")
    data = ["--data", str(labeled), "--text-col", "text", "--label-col", "label"] if labeled else ["--data", "calls.csv"]
    if kind == "ensemble":
        from classifiers import encoder

        hotline(env, "retrain", "--no-store", *data, "--promote", "--kind", "ensemble",
                "--base-model", str(encoder.fetch(quiet=True)), "--epochs", str(epochs),
                *([] if labeled else ["--max-length", "128"]))
    else:
        hotline(env, "retrain", "--no-store", *data, "--promote")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        for _ in range(240):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit("the service did not come up: " + server.stderr.read().decode()[-2000:])
        yield work, server, port
    finally:
        server.terminate()
        server.wait(timeout=30)
        backends.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=300.0, help="requests per second offered by all clients together")
    parser.add_argument("--stores", default="sqlite", help="comma-separated: sqlite, postgresql (each in turn)")
    parser.add_argument("--kind", default="linear", choices=("linear", "ensemble"), help="the model served")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (--kind ensemble)")
    parser.add_argument("--encoder-calls", type=int, default=1,
                        help="HOTLINE_ENCODER_CALLS of the service (0: the encoder's queue unbounded)")
    parser.add_argument("--texts", default="generated", choices=("generated", "real"),
                        help="what the model learns and the requests carry: generated calls, or real messages")
    args = parser.parse_args()
    figures: dict[str, object] = {"clients": args.clients, "seconds": args.seconds, "workers": args.workers,
                                  "model": args.kind, "texts": args.texts, "encoder calls at once": args.encoder_calls}
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="hotline-bench-real-") as split:
        labeled, held_out = real_split(Path(split)) if args.texts == "real" else (None, [])
        for store in stores:
            with running_service("hotline-bench-api-", days=60, seed=5, role="agent", workers=args.workers,
                                 store=store, kind=args.kind, epochs=args.epochs, labeled=labeled,
                                 encoder_calls=args.encoder_calls) as (work, _, port):
                run_load(args, figures, work, port, store if len(stores) > 1 else "", held_out)
    name = "api_load" if stores == ["sqlite"] else "api_load_stores"
    name = name if args.kind == "linear" else f"{name}_{args.kind}"
    report(name if args.texts == "generated" else f"{name}_real", figures)


def real_split(directory: Path) -> tuple[Path, list[str]]:
    """Four fifths of the real labeled messages written for training (a temporary file, removed after the run),
    and the other fifth's texts for the requests: bench/encoder.py's first fold."""
    import csv

    from _common import five_folds, labeled_rows

    rows = labeled_rows()
    train, test = five_folds([r["label"] for r in rows])[0]
    path = directory / "labeled.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": rows[i]["text"], "label": rows[i]["label"]} for i in train)
    return path, [rows[i]["text"] for i in test]


def run_load(args: argparse.Namespace, figures: dict[str, object], work: Path, port: int, store: str,
             held_out: list[str]) -> None:
    """The warm-up, then the baseline and /v1/route under the same offered load; figures prefixed by the store."""
    import csv

    if held_out:
        bodies = [{"text": text[:400]} for text in held_out][:2000]
    else:
        with (work / "calls.csv").open(encoding="utf-8-sig") as fh:
            bodies = [{"text": row["transcript"][:400]} for row in csv.DictReader(fh)][:2000]
    prefix = f"{store}: " if store else ""
    if args.kind == "ensemble":
        figures[f"{prefix}share of the requests' texts reaching the encoder, int8 graph"] = \
            encoder_share(work / "models", bodies)
    asyncio.run(drive(port, "/v1/route", bodies[:200], 10, 5, 100))  # warm-up, every worker
    for name, path, payload in (("baseline GET /health", "/health", None), ("POST /v1/route", "/v1/route", bodies)):
        for key, value in asyncio.run(drive(port, path, payload, args.clients, args.seconds, args.rate)).items():
            figures[f"{prefix}{name}: {key}"] = value


def encoder_share(models: Path, bodies: list[dict]) -> str:
    """Share of the texts the active cascade would send to the encoder (as the router prepares them), and
    which int8 graph its export chose."""
    from classifiers.dataset import prepare_text
    from classifiers.kinds import load_parts
    from training.registry import Registry

    registry = Registry(models)
    _, cascade, manifest = load_parts(registry.path(registry.active()))
    int8 = manifest.extra["transformer"]["int8"]
    share = cascade.encoder_share([prepare_text(b["text"]) or b["text"] for b in bodies])
    return f"{share:.3f}, {int8['graph']} ({int8['tried']})"


if __name__ == "__main__":
    main()
