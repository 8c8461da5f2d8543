"""Faults: the service killed (SIGKILL) in the middle of an import, and a store that stops taking writes."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import KeyRing
from api.services import Services
from hotline.case import Case
from hotline.settings import Settings
from tests.api_support import AGENT, KEYS_SETTING, SUPERVISOR
from tests.servers import free_port

KEY = "fault-agent-key-0123456789abcdef"


def body(case: Case) -> dict[str, Any]:
    return {"id": case.id, "received_at": case.received_at.isoformat(), "text": case.text, "title": case.title or None,
            "channel": case.channel.value, "district": case.area.district or None, "street": case.area.street or None,
            "address": case.address or None, "category": case.category.path if case.category else None,
            "departments": list(case.departments) or None, "status": case.status.value}


class Server:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")},
                    "HOTLINE_STORE": f"sqlite:///{root}/store.db", "HOTLINE_MODELS": str(root / "models"),
                    "HOTLINE_API_KEYS": f"fault-agent:agent:{KEY}"}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the service did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.mark.server
def test_sigkill_during_an_import_loses_no_acknowledged_case(tmp_path: Path, demo_cases: list[Case]) -> None:
    cases = demo_cases[:3000]
    batches = [cases[i : i + 100] for i in range(0, len(cases), 100)]
    server = Server(tmp_path)
    server.start()
    acknowledged: list[str] = []
    killed = threading.Event()

    def post_all() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers={"X-API-Key": KEY}, timeout=30) as client:
            for batch in batches:
                try:
                    response = client.post("/v1/cases", json=[body(c) for c in batch])
                except httpx.HTTPError:
                    return  # the connection died with the server: this batch was never acknowledged
                if response.status_code == 200:
                    acknowledged.extend(response.json()["ids"])
                if killed.is_set():
                    return

    worker = threading.Thread(target=post_all)
    worker.start()
    while len(acknowledged) < 800:
        time.sleep(0.01)
    server.kill()
    killed.set()
    worker.join(timeout=60)
    assert 800 <= len(acknowledged) < len(cases)

    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers={"X-API-Key": KEY}, timeout=30) as client:
            total = client.get("/v1/cases", params={"limit": 1}).json()["total"]
            assert total >= len(acknowledged) and total % 100 == 0  # whole batches only: each is one transaction
            for case_id in acknowledged[::37]:
                assert client.get(f"/v1/cases/{case_id}").status_code == 200
            again = client.post("/v1/cases", json=[body(c) for c in batches[0]]).json()
            assert again["unchanged"] == 100  # exactly once: a replay adds nothing
            assert client.get("/v1/cases", params={"limit": 1}).json()["total"] == total
    finally:
        server.stop()


def test_a_store_that_refuses_writes_keeps_serving_reads(service: Services) -> None:
    with TestClient(create_app(service.settings, service)) as client:
        service.store._db.execute("PRAGMA query_only = ON")  # what a read-only file or a full disk looks like
        try:
            refused = client.post("/v1/cases", json={"id": "RO-1", "text": "小区停电了"}, headers=AGENT)
            assert refused.status_code == 503 and refused.headers["content-type"].startswith("application/problem+json")
            assert "cannot take writes" in refused.json()["detail"]
            assert client.get("/v1/cases", params={"limit": 3}, headers=SUPERVISOR).status_code == 200
            assert client.post("/v1/route", json={"text": "市民：小区停电了"}, headers=AGENT).status_code == 200
            assert client.get("/health").status_code == 200
        finally:
            service.store._db.execute("PRAGMA query_only = OFF")
        assert client.post("/v1/cases", json={"id": "RO-1", "text": "小区停电了"}, headers=AGENT).status_code == 200


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB filesystem (tmpfs), unmounted afterwards; skipped where the kernel refuses the mount."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write zeros until the filesystem says ENOSPC."""
    filler = disk / "filler"
    # Unbuffered: a buffered file keeps the part of a write that did not fit and fails again when it closes.
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_refuses_writes_clearly_and_loses_nothing(small_disk: Path, service: Services,
                                                              demo_cases: list[Case]) -> None:
    """The store on a filesystem that fills up: 503 problem+json for writes, reads and routing go on, and once
    space is freed every acknowledged case is there exactly once, the refused batch not at all, the file sound."""
    settings = Settings(store=f"sqlite:///{small_disk}/store.db", models=service.settings.models)
    services = Services(settings, keys=KeyRing.parse(KEYS_SETTING), sync_interval=0.2)
    services.start()  # the session's trained model, read from its registry
    try:
        with TestClient(create_app(settings, services)) as client:
            batches = [demo_cases[i:i + 200] for i in range(0, 4000, 200)]
            assert client.post("/v1/cases", json=[body(c) for c in batches[0]], headers=AGENT).status_code == 200
            filler = fill(small_disk)
            acknowledged = list(batches[0])
            refused: list[Case] = []
            for batch in batches[1:]:  # the WAL may still hold room for a batch or two
                answer = client.post("/v1/cases", json=[body(c) for c in batch], headers=AGENT)
                if answer.status_code == 200:
                    acknowledged += batch
                    continue
                assert answer.status_code == 503
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert "cannot take writes" in answer.json()["detail"]
                refused = batch
                break
            assert refused, "the full disk never refused a write"
            label = client.post(f"/v1/cases/{acknowledged[0].id}/label", headers=AGENT,
                                json={"category": "城乡建设/供水", "departments": ["住建局"]})
            assert label.status_code == 503
            assert client.get("/v1/cases", params={"limit": 3}, headers=SUPERVISOR).status_code == 200
            assert client.get(f"/v1/cases/{acknowledged[-1].id}", headers=AGENT).status_code == 200
            assert client.post("/v1/route", json={"text": "市民：小区停水了"}, headers=AGENT).status_code == 200
            assert client.get("/health").status_code == 200

            filler.unlink()
            again = client.post("/v1/cases", json=[body(c) for c in refused], headers=AGENT)
            assert again.status_code == 200 and again.json()["inserted"] == len(refused)
            total = client.get("/v1/cases", params={"limit": 1}, headers=SUPERVISOR).json()["total"]
            assert total == len(acknowledged) + len(refused)
            assert services.store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            deadline = time.monotonic() + 10
            while services.store.pending_count() and time.monotonic() < deadline:  # the outbox drains again
                time.sleep(0.1)
            assert services.store.pending_count() == 0
    finally:
        services.close()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["transcript", "pii", "import"])
def test_a_bounded_fuzz_run_finds_nothing(target: str) -> None:
    """The full campaigns run from bench/fuzz.py (see RELIABILITY.md); here a few thousand inputs each."""
    root = Path(__file__).resolve().parents[1]
    scratch = set(Path(tempfile.gettempdir()).glob("hotline-fuzz-*"))
    result = subprocess.run([sys.executable, str(root / "bench" / "fuzz.py"), f"--target={target}",
                             "-atheris_runs=3000", "-seed=1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Done 3000" in result.stderr
    assert set(Path(tempfile.gettempdir()).glob("hotline-fuzz-*")) <= scratch  # its scratch folder is gone


@pytest.mark.slow
def test_a_short_soak_of_mixed_traffic_has_no_errors() -> None:
    """Routing, ingest, search and hotspots together from a second process (bench/soak.py runs 10 minutes)."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "bench" / "soak.py"), "--seconds", "15", "--rate", "20",
                             "--name", "soak-test"], capture_output=True, text=True, timeout=400, cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0


def _fake_model(root: Path, version: str) -> Path:
    """A folder the registry takes for a trained model (it reads only the manifest)."""
    folder = root / f"train-{version}"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"version": version, "created": version}), encoding="utf-8")
    return folder


def test_a_promotion_on_a_full_disk_changes_nothing_and_leaves_no_temporary_file(small_disk: Path,
                                                                                  tmp_path: Path) -> None:
    """The record is written (and fsync'd) before the link is swapped: on a full disk the promotion is refused
    whole (503), the link and the record still agree on the old model, and a restart does not go back."""
    from hotline.errors import ReadOnly
    from training.registry import Registry

    registry = Registry(small_disk / "models")
    for version in ("20260101-000000-a", "20260102-000000-b"):
        registry.register(_fake_model(tmp_path, version))
    registry.promote("20260101-000000-a", by="test")
    filler = fill(small_disk)
    with pytest.raises(ReadOnly):
        registry.promote("20260102-000000-b", by="test", force=True)
    assert registry.active() == "20260101-000000-a"
    assert os.readlink(registry.current).endswith("20260101-000000-a")
    assert not [p for p in (small_disk / "models").iterdir() if p.name.endswith(".tmp") or p.name.startswith(".current-")]
    assert registry.recover() == []  # nothing to mend: a restart serves what the registry lists
    filler.unlink()
    registry.promote("20260102-000000-b", by="test", force=True)
    assert registry.active() == "20260102-000000-b" and os.readlink(registry.current).endswith("20260102-000000-b")
