"""Training as background work: one job at a time, a fine-tuning in a child process, promotion when it wins.

The service and the command line start the same work; what differs is only
who waits for it. Training takes both cores, so jobs run one at a time and
the fine-tuning runs in a process of its own at a lower priority: agents'
routing keeps its latency and a crash cannot take the service down.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from hotline.errors import Conflict, HotlineError, NotFound
from hotline.settings import Settings
from training.registry import Registry

log = logging.getLogger("hotline.training")


@dataclass
class Job:
    id: str
    kind: str
    status: str = "queued"            # queued, running, succeeded, failed
    started: str = ""
    finished: str = ""
    version: str | None = None
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    progress: str = ""                # the last line the work reported (a fine-tuning's progress bar)
    promoted: bool = False            # the result won against the active model and is served now

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Jobs:
    """Background training jobs; one at a time (training takes both cores)."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, work: Callable[[Job], str | None], params: dict[str, Any]) -> Job:
        with self._lock:
            if any(j.status in ("queued", "running") for j in self.jobs.values()):
                raise Conflict("a training job is already running")
            job = Job(uuid.uuid4().hex[:12], kind, params=params)
            self.jobs[job.id] = job

        def run() -> None:
            job.status, job.started = "running", datetime.now().isoformat(sep=" ", timespec="seconds")
            try:
                job.version = work(job)
                job.status = "succeeded"
            except HotlineError as exc:
                job.status, job.error = "failed", str(exc)
            except Exception as exc:  # the job reports; the service stays up
                log.exception("training job %s failed", job.id)
                job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
            job.finished = datetime.now().isoformat(sep=" ", timespec="seconds")

        threading.Thread(target=run, name=f"job-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise NotFound(f"no job {job_id!r}") from None


def gpu_present() -> bool:
    """Whether torch is installed and sees a CUDA device (torch is imported only to ask)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _last_lines(stream: IO[str], job: Job) -> None:
    """Keep the last whole line a child wrote (tqdm redraws with carriage returns) as the job's progress."""
    pending = ""
    for chunk in iter(lambda: stream.read(256), ""):
        *lines, pending = (pending + chunk).replace("\r", "\n").split("\n")
        lines = [line.strip() for line in lines if line.strip()]
        if lines:
            job.progress = lines[-1][-300:]
    if pending.strip():
        job.progress = pending.strip()[-300:]


def fine_tune_in_child(settings: Settings, encoder: Path, by: str, job: Job, since: datetime | None = None,
                       epochs: int | None = None) -> str:
    """Fine-tune ``encoder`` beside a linear model (``hotline retrain --kind ensemble``) in a child process at a
    lower priority, its progress kept as the job's; the candidate's version.

    The child reads the settings it is given, not the parent's environment,
    so what it trains on is what the service serves."""
    command = [sys.executable, "-m", "hotline.cli", "retrain", "--kind", "ensemble", "--base-model", str(encoder),
               "--by", by]
    if since:
        command += ["--since", since.date().isoformat()]
    if epochs:
        command += ["--epochs", str(epochs)]
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}, **settings.environment()}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                             preexec_fn=lambda: os.nice(10))  # noqa: PLW1509 (no threads in the child yet)
    reader = threading.Thread(target=_last_lines, args=(child.stderr, job), daemon=True)
    reader.start()
    out = child.stdout.read() if child.stdout else ""
    status = child.wait()
    reader.join(timeout=5)
    if status != 0:
        raise HotlineError(f"the ensemble training exited with {status}: {job.progress}")
    return str(json.loads(out.strip().splitlines()[-1])["version"])


def promote_if_better(registry: Registry, version: str, by: str) -> bool:
    """Promote the candidate ``version`` when it beat the active model on the held-out cases it was compared on,
    or when no model is active; whether it was."""
    compared = registry.get(version).manifest.get("extra", {}).get("compared_with") or {}
    wins = compared.get("candidate_macro_f1", 0.0) > compared.get("active_macro_f1", 1.0)
    if registry.active() is not None and not wins:
        return False
    try:
        registry.promote(version, by=by)
    except Conflict as exc:  # another model became active meanwhile: compare again first
        log.info("%s stays a candidate: %s", version, exc)
        return False
    return True
