"""What the running service holds: store, search index, the active model (hot-swappable), jobs, keys, metrics."""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from api.keys import KeyRing, service_keys
from hotline.errors import Conflict, HotlineError, NotFound, Unavailable
from hotline.city import City
from hotline.settings import Settings
from hotline.store import CaseStore, open_store
from search import SearchIndex, open_index
from search.sync import Syncer
from training.registry import Registry

log = logging.getLogger("hotline.api")


class Metrics:
    """Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("hotline_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("hotline_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
                                 buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.routed = Counter("hotline_routed_cases", "Cases routed", ["auto_dispatch"], registry=self.registry)
        self.outbox = Gauge("hotline_index_outbox", "Cases waiting for the search index", registry=self.registry)
        self.model = Gauge("hotline_model_info", "The active model", ["version"], registry=self.registry)


def settle_heap() -> None:
    """Collect once, then freeze what survives (the model, the gazetteer) out of the collector's reach.

    A model holds ~300,000 objects the cyclic collector would otherwise walk
    on every full collection: a 140 ms pause in some request's p99, at random.
    The old model, unfrozen first, is collected here rather than leaked.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelHolder:
    """The active router; promotion swaps it between requests, so no request sees half a model."""

    def __init__(self, registry: Registry, city: City) -> None:
        self.registry = registry
        self.city = city
        self.router: Any = None
        self.version: str | None = None
        self.target: str | None = None  # the folder `current` named when the router was loaded
        self._lock = threading.Lock()

    def changed(self) -> bool:
        """Whether ``current`` names another folder than the one being served (one readlink)."""
        current = self.registry.current
        return current.exists() and current.resolve().name != self.target

    def reload(self) -> str | None:
        """Load what ``current`` names (if it changed) and swap it in."""
        from classifiers.kinds import make_router

        with self._lock:
            current = self.registry.current
            if not current.exists():
                return None
            target = current.resolve().name
            if target == self.target and self.router is not None:
                return self.version
            router = make_router(current, self.city)  # loaded fully before it replaces the old one
            self.router, self.version, self.target = router, router.model_version or target, target
            settle_heap()
            log.info("serving model %s", self.version)
            return self.version

    def get(self) -> Any:
        router = self.router
        if router is None:
            raise Unavailable("no active model yet: train one (POST /v1/models/train) and promote it")
        return router


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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Jobs:
    """Background training jobs; one at a time (training takes both cores)."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, work: Any, params: dict[str, Any]) -> Job:
        with self._lock:
            if any(j.status in ("queued", "running") for j in self.jobs.values()):
                raise Conflict("a training job is already running")
            job = Job(uuid.uuid4().hex[:12], kind, params=params)
            self.jobs[job.id] = job

        def run() -> None:
            job.status, job.started = "running", datetime.now().isoformat(sep=" ", timespec="seconds")
            try:
                job.version = work()
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


class ReadCache:
    """Supervisors' views (hotspots, events, forecasts, reports) kept for ``ttl`` seconds.

    Each is a pass over the whole store that takes most of a second; a
    dashboard refreshed by many supervisors would otherwise hold the worker
    that agents' routing needs. A minute of staleness is nothing next to a
    daily count.
    """

    def __init__(self, ttl: float = 60.0, size: int = 256) -> None:
        self.ttl = ttl
        self.size = size
        self._items: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
        value = compute()
        with self._lock:
            if len(self._items) >= self.size:
                self._items.clear()
            self._items[key] = (now, value)
        return value


class Services:
    """Everything a request may need, opened once per process."""

    def __init__(self, settings: Settings, keys: KeyRing | None = None, sync_interval: float = 1.0) -> None:
        self.settings = settings
        self.window = settings.time_window()
        self.city = City.from_settings(settings).serve()
        tokens = self.city.segmenter.tokens
        self.store: CaseStore = open_store(settings.store, tokenize=tokens)
        self.index: SearchIndex = open_index(settings.index_url, self.store, tokenize=tokens)
        self.taxonomy = self.city.taxonomy
        self.gazetteer = self.city.gazetteer
        self.registry = Registry(settings.models)
        self.models = ModelHolder(self.registry, self.city)
        self.jobs = Jobs()
        self.metrics = Metrics()
        self.views = ReadCache()
        self.keys = keys if keys is not None else service_keys(settings)[0]
        self.syncer = Syncer(self.store, self.index, interval=sync_interval)
        self.follow_interval = 1.0
        self._stop = threading.Event()
        self._follower = threading.Thread(target=self._follow, name="model-follower", daemon=True)

    def reload_model(self) -> str | None:
        """Serve what the registry's ``current`` names, and say so in the metrics."""
        version = self.models.reload()
        self.metrics.model.clear()
        if version:
            self.metrics.model.labels(version).set(1)
        return version

    def start(self) -> None:
        for note in self.registry.recover(by="service"):
            log.warning("model registry: %s", note)
        self.reload_model()
        self.syncer.start()
        self._follower.start()

    def _follow(self) -> None:
        """Serve what the registry's ``current`` names within a second of any change, also one made by
        ``hotline models promote`` in another process (before, the service kept its old model)."""
        while not self._stop.wait(self.follow_interval):
            try:
                if self.models.changed():
                    self.reload_model()
            except Exception:  # a half-written model is retried on the next tick; serving goes on
                log.exception("could not load the model the registry names")

    def close(self) -> None:
        self._stop.set()
        if self._follower.is_alive():
            self._follower.join(timeout=5)
        self.syncer.stop()
        self.index.close()
        self.store.close()

    def train(self, by: str, since: datetime | None = None, promote_if_first: bool = True) -> str:
        """Retrain from the store's labels; the first model is activated, later ones wait as candidates."""
        from training.retrain import RetrainRequest, retrain

        request = RetrainRequest(since=since, segmenter=self.settings.segmenter)
        entry = retrain(self.registry, request, self.store, by=by, city=self.city)
        if promote_if_first and self.registry.active() is None:
            self.registry.promote(entry.version, by=by)
            self.reload_model()
        return entry.version
