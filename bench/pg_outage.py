"""PostgreSQL killed under load: agents' routing latency, other endpoints' answers, and what was acknowledged.

A `hotline serve` process on a PostgreSQL and an Elasticsearch of its own
(both started here, on 127.0.0.1, removed at the end) takes routing calls at
a steady rate, case reads and department lists beside them, and case writes.
The PostgreSQL postmaster is killed with SIGKILL, left down, then started
again. Reported per phase (before, down, back): routing p50/p99 and errors,
the slowest answer of the other endpoints, and after the run whether every
acknowledged write is in the store. Baseline: the same routing before the kill,
in the same run.

    python bench/pg_outage.py [--rate 50] [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the search package, not bench/search.py

from _common import report

from hotline.city import City
from hotline.demo.generator import DemoGenerator
from hotline.ingest import CaseBuilder, ColumnMap
from hotline.settings import Settings
from hotline.store import open_store
from hotline.store.pgserver import Server as PgServer
from search.node import Node

AGENT_KEY = "agent-key-bench-0123456789abcdef"
KEYS = f"bench-agent:agent:{AGENT_KEY},bench-admin:admin:admin-key-bench-0123456789abcdef"
CALLS = ["小区门口的路灯坏了，晚上很黑", "楼下的垃圾三天没人清理了", "小区停水了一整天", "工地晚上施工太吵了"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Phase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.route: list[float] = []
        self.route_errors = 0
        self.other: list[tuple[str, int, float]] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="routing calls a second")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of each phase")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hotline-bench-outage-"))
    root.chmod(0o755)  # the servers run as their own users
    pg = PgServer(root / "pg", port=free_port()).start()
    es = Node(root / "es", port=free_port(), heap="512m", cache=Settings().cache).start()
    serve = None
    try:
        url = pg.database("outage")
        city = City.from_settings(Settings())
        rows, _ = DemoGenerator(city.gazetteer, city.taxonomy, seed=7).generate(30, date.today() - timedelta(days=32))
        builder = CaseBuilder(city.gazetteer, city.taxonomy, max_chars=4000, source="bench.csv")
        columns = ColumnMap().resolve(list(rows[0]))
        store = open_store(url)
        store.upsert([builder.build(row, columns) for row in rows[:2000]])
        store.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update(HOTLINE_STORE=url, HOTLINE_INDEX=f"{es.url}/outage", HOTLINE_MODELS=str(root / "models"),
                   HOTLINE_API_KEYS=KEYS)
        port = free_port()
        log = (root / "serve.log").open("w")
        serve = subprocess.Popen([sys.executable, "-m", "hotline.cli", "serve", "--host", "127.0.0.1", "--port",
                                  str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or serve.poll() is not None:
                sys.exit(f"bench: the service did not start: {(root / 'serve.log').read_text()[-2000:]}")
            time.sleep(1)
        headers = {"X-API-Key": AGENT_KEY}
        some_id = rows[0]["id"]
        acknowledged: list[str] = []
        phases = [Phase("before"), Phase("down"), Phase("back")]
        current = [phases[0]]
        stop = threading.Event()

        def routing() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                i = 0
                next_at = time.monotonic()
                while not stop.is_set():
                    next_at += 1 / args.rate
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    phase = current[0]
                    started = time.perf_counter()
                    answer = client.post("/v1/route", json={"text": CALLS[i % len(CALLS)]})
                    phase.route.append(time.perf_counter() - started)
                    phase.route_errors += answer.status_code != 200
                    i += 1

        def others() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                n = 0
                while not stop.is_set():
                    phase = current[0]
                    for name, call in (("GET /v1/cases/{id}", lambda: client.get(f"/v1/cases/{some_id}")),
                                       ("GET /v1/departments", lambda: client.get("/v1/departments")),
                                       ("POST /v1/cases", lambda: client.post("/v1/cases", json={
                                           "id": f"OUT-{n}", "text": "凤凰路的路灯坏了，晚上很黑"})),
                                       ("GET /health", lambda: client.get("/health"))):
                        started = time.perf_counter()
                        answer = call()
                        phase.other.append((name, answer.status_code, time.perf_counter() - started))
                        if name == "POST /v1/cases" and answer.status_code == 200:
                            acknowledged.append(f"OUT-{n}")
                    n += 1
                    time.sleep(0.2)

        threads = [threading.Thread(target=routing), threading.Thread(target=routing), threading.Thread(target=others)]
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        pid = int((pg.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        current[0] = phases[1]
        time.sleep(args.seconds)
        pg.start()
        current[0] = phases[2]
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        store = open_store(url)
        missing = [case_id for case_id in acknowledged if not _exists(store, case_id)]
        store.close()
        figures: dict[str, object] = {"routing offered": f"{args.rate * 2:.0f} requests/s"}
        for phase in phases:
            took = np.array(phase.route) * 1000
            figures[f"routing {phase.name}: p50 / p99 / errors"] = (
                f"{np.percentile(took, 50):.1f} / {np.percentile(took, 99):.1f} ms / {phase.route_errors} of {len(took)}")
            for name in sorted({o[0] for o in phase.other}):
                answers = [(code, t) for n, code, t in phase.other if n == name]
                codes = sorted({code for code, _ in answers})
                figures[f"{name} {phase.name}: slowest, answers"] = (
                    f"{max(t for _, t in answers) * 1000:.0f} ms, {'/'.join(map(str, codes))}")
        figures["writes acknowledged"] = len(acknowledged)
        figures["acknowledged writes missing after"] = len(missing)
        report("pg_outage", figures)
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=30)
        es.stop()
        pg.remove()
        shutil.rmtree(root, ignore_errors=True)


def _exists(store, case_id: str) -> bool:
    from hotline.errors import NotFound

    try:
        store.get(case_id)
        return True
    except NotFound:
        return False


if __name__ == "__main__":
    main()
