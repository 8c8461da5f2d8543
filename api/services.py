"""What the running service holds: store, search index, the active model (hot-swappable), jobs, keys, metrics."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

from api.keys import KeyRing, service_keys
from classifiers.encoder import SentenceEncoder
from hotline.errors import Conflict, HotlineError, InvalidInput, NotFound, Unavailable
from hotline.city import City
from hotline.events import EventAssigner
from hotline.outage import OutageLog
from hotline.settings import Settings
from hotline.store import CaseStore, open_store
from hotline.times import format_time
from search import SearchIndex, open_index
from search.base import CachedCount
from search.sync import Syncer
from training.registry import Registry

log = logging.getLogger("hotline.api")

#: Days of calls a call being taken is matched against for an ongoing event.
#: Cases a view assigns to events itself before listing them, when the background assigner is behind.
EVENT_CATCH_UP = 5_000
#: Seconds routing waits for the similar cases' texts from the store before answering without them.
TEXT_BUDGET = 0.025


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

    def count_encoder_calls(self, gate: Any) -> None:
        """Export an :class:`~classifiers.cascade.EncoderGate`'s counts as ``hotline_encoder_calls_total``: unsure
        calls that ran the ensemble's encoder, and those answered by the linear model alone because it was busy."""
        self.registry.register(GateCounts(gate))


class GateCounts:
    """A Prometheus collector reading the gate's own counts when scraped (no second tally on the hot path)."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = CounterMetricFamily("hotline_encoder_calls", "Unsure calls that asked for the ensemble's encoder",
                                     labels=["outcome"])
        counts.add_metric(["ran"], self.gate.asked - self.gate.shed)
        counts.add_metric(["busy"], self.gate.shed)
        yield counts


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

    def __init__(self, registry: Registry, city: City, encoder_calls: int = 0, slots: Path | None = None) -> None:
        from classifiers.cascade import EncoderGate

        self.registry = registry
        self.city = city
        # One gate for the process's life, its slots (a folder on this host) shared by every worker here, which
        # share its cores; its counts are kept across promotions for /metrics.
        self.gate = EncoderGate(encoder_calls, slots=slots)
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
            # Loaded fully before it replaces the old one. One encoder thread: each worker routes one call at a
            # time, and a second thread per worker only fought the other workers for the cores (ensemble at
            # 300 requests/s on two workers: p99 62 ms with onnxruntime's default threads; bench/api_load.py).
            router = make_router(current, self.city, threads=1, gate=self.gate)
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


def _last_lines(stream: Any, job: Job) -> None:
    """Keep the last whole line a child wrote (tqdm redraws with carriage returns) as the job's progress."""
    pending = ""
    for chunk in iter(lambda: stream.read(256), ""):
        *lines, pending = (pending + chunk).replace("\r", "\n").split("\n")
        lines = [line.strip() for line in lines if line.strip()]
        if lines:
            job.progress = lines[-1][-300:]
    if pending.strip():
        job.progress = pending.strip()[-300:]


class ReadCache:
    """Supervisors' views (hotspots, forecasts) kept until the store changes, at most ``ttl`` seconds.

    Each costs about half a second of fitting; a dashboard refreshed by many
    supervisors would otherwise hold the worker that agents' routing needs.
    A view is computed again once any process has written to the store
    since (the store's write mark, one cheap read), but not more often than
    every ``settle`` seconds: while calls keep coming in, a few seconds of
    staleness is nothing next to a daily count.
    """

    def __init__(self, ttl: float = 60.0, settle: float = 5.0, size: int = 256) -> None:
        self.ttl = ttl
        self.settle = settle
        self.size = size
        self._items: dict[Any, tuple[float, Any, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], Any], mark: Any = None) -> Any:
        """The value of ``key``, computed again when older than ``ttl``, or than ``settle`` with another ``mark``."""
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            age = now - hit[0]
            if age < self.settle or (age < self.ttl and hit[1] == mark):
                return hit[2]
        value = compute()
        with self._lock:
            if len(self._items) >= self.size:
                self._items.clear()
            self._items[key] = (now, mark, value)
        return value


class Services:
    """Everything a request may need, opened once per process."""

    def __init__(self, settings: Settings, keys: KeyRing | None = None, sync_interval: float = 1.0) -> None:
        self.settings = settings
        self.window = settings.time_window()
        self.city = City.from_settings(settings).serve()
        tokens = self.city.segmenter.tokens
        self.store: CaseStore = open_store(settings.store, tokenize=tokens, zone=settings.timezone)
        self.embedder = SentenceEncoder(settings.encoder) if settings.encoder else None
        self.index: SearchIndex = open_index(settings.index_url, self.store, tokenize=tokens, embedder=self.embedder)
        self.taxonomy = self.city.taxonomy
        self.gazetteer = self.city.gazetteer
        self.registry = Registry(settings.models)
        self.models = ModelHolder(self.registry, self.city, settings.encoder_calls, settings.encoder_slot_dir())
        self.jobs = Jobs()
        self.metrics = Metrics()
        self.metrics.count_encoder_calls(self.models.gate)
        self.views = ReadCache()
        self.keys = keys if keys is not None else service_keys(settings)[0]
        self.syncer = Syncer(self.store, self.index, interval=sync_interval)
        # What /health reports, reused for two seconds: a load balancer polling every process many times a
        # second must not send each poll on to Elasticsearch (p99 160 ms at 300 polls/s on two cores).
        self.case_count = CachedCount(self.index.count, ttl=2.0)
        self.follow_interval = 1.0
        # Small batches: on SQLite each holds the file's one writer while it runs.
        self.events = EventAssigner(self.store, tokens, self.gazetteer.landmarks, batch=250)
        self._events: tuple[Any, float, Any] | None = None  # (day, when, clusterer) of the events open now
        self._events_lock = threading.Lock()
        self._stop = threading.Event()
        self.outages = OutageLog(log)
        self._follower = threading.Thread(target=self._follow, name="model-follower", daemon=True)
        self._assigner = threading.Thread(target=self._assign_events, name="event-assigner", daemon=True)

    def with_texts(self, neighbours: list[Any]) -> list[dict[str, Any]]:
        """Routing's neighbours (from the model's own index, in memory: routing never waits on a search query)
        as agents see them, with their text, district and event from the store (a key lookup each)."""
        from search.base import neighbour

        shown = []
        for n in neighbours:
            try:
                shown.append(neighbour(self.store.get(n.case_id), n.similarity, n.meaning).to_dict())
            except NotFound:  # a training case from a file, never stored
                shown.append(n.to_dict())
            except Unavailable:  # the store is away: the model's own neighbour, without the stored text
                shown.append(n.to_dict())
        return shown

    async def similar_with_texts(self, neighbours: list[Any]) -> list[dict[str, Any]]:
        """The neighbours as agents see them. Models carry their neighbours' texts; for one saved before they
        did, :meth:`with_texts` off the event loop and within :data:`TEXT_BUDGET`: the store's text is
        decoration, and routing must not wait on a database that is slow or down (it froze every agent for 15 s)."""
        if not neighbours:
            return []
        if all(n.text for n in neighbours):  # the model carries their texts: no store needed
            return [n.to_dict() for n in neighbours]
        try:
            return await asyncio.wait_for(run_in_threadpool(self.with_texts, neighbours), TEXT_BUDGET)
        except (TimeoutError, Unavailable):
            return [n.to_dict() for n in neighbours]

    def similar_cases(self, text: str, k: int, exclude: str = "", district: str = "") -> list[dict[str, Any]]:
        """What routing shows beside this text first, then the search index's other cases (today's calls, and
        by meaning with an encoder), so a case's similar cases always include what routing found for it."""
        from classifiers.router import NEIGHBOUR_DAYS, SHOWN_NEIGHBOURS

        router = self.models.router
        first = []
        if router is not None and router.similar is not None:
            since = datetime.now() - timedelta(days=NEIGHBOUR_DAYS)  # as routing asks
            found = router.similar.similar(text, k=SHOWN_NEIGHBOURS + 1, district=district, since=since)
            first = [n for n in found if n.case_id != exclude][:min(k, SHOWN_NEIGHBOURS)]
        shown = self.with_texts(first)
        seen = {n["case_id"] for n in shown}
        try:
            more = self.index.similar(text, k=k, exclude=exclude, district=district)
        except Unavailable as exc:
            log.warning("similar cases from the model's index alone: %s", exc)
            more = []
        shown += [n.to_dict() for n in more if n.case_id not in seen]
        return shown[:k]

    def recent_event(self, routing: Any, at: datetime | None) -> dict[str, Any] | None:
        """The open event a call being taken would join ("属于事件 X，已有 N 位市民反映"), or None.

        The events of the last days are clustered in the background at most
        once a minute (the supervisors' clustering, over the store), so no
        call waits for it; the call is matched against them without becoming
        part of them.
        """
        from hotline.case import Case, Category, LabelKind, LabelSource

        if not routing.text or not routing.category:
            return None
        now = at or datetime.now()
        clusterer = self._recent_events(now)
        if clusterer is None:
            return None
        call = Case(id="call", received_at=now, text=routing.text, area=routing.area,
                    category=Category.parse(routing.category),
                    category_source=LabelSource(LabelKind.PREDICTED, routing.model_version, now))
        event = clusterer.match(call)
        if event is None or event.size < 2:
            return None
        return {"id": event.id, "title": event.title, "size": event.size,
                "first_seen": format_time(event.first_seen), "last_seen": format_time(event.last_seen)}

    def _recent_events(self, now: datetime) -> Any:
        """The events open at ``now`` (kept by the assigner), read again in the background when stale."""
        held = self._events
        fresh = held is not None and held[0] == now.date() and time.monotonic() - held[1] < self.views.ttl
        if not fresh and self._events_lock.acquire(blocking=False):
            def load() -> None:
                try:
                    self.catch_up_events()
                    self._events = (now.date(), time.monotonic(), self.events.open_at(now))
                except Exception:  # the next call tries again; routing goes on without events
                    log.exception("could not read the open events")
                finally:
                    self._events_lock.release()

            threading.Thread(target=load, name="open-events", daemon=True).start()
        return held[2] if held is not None and held[0] == now.date() else None

    def catch_up_events(self, limit: int = EVENT_CATCH_UP) -> None:
        """Give the cases still waiting their events before a view lists them (what the background assigner
        has not reached yet: a few seconds' worth, or a bounded part of a large import's)."""
        try:
            self.events.run(max_cases=limit)
        except Unavailable:
            log.warning("could not assign events before listing them; listing what is kept")

    def _assign_events(self) -> None:
        """Every case gets its event soon after it is stored, whichever process or import stored it."""
        while not self._stop.wait(self.follow_interval):
            try:
                self.events.run(max_cases=10 * EVENT_CATCH_UP)
            except Unavailable as exc:  # a store that is away now is retried on the next tick, and said once
                self.outages.failed("the event assigner's store", exc)
            except Exception:
                log.exception("could not assign events")
            else:
                self.outages.succeeded("the event assigner's store")

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
        self._assigner.start()
        self._fine_tune_where_fast()

    def _fine_tune_where_fast(self) -> None:
        """With an encoder configured and a GPU present, fine-tune an ensemble once, by itself.

        On a GPU that takes minutes; on a laptop's CPU it would hold both cores
        for most of an hour, so there an admin starts it (/models) or
        ``hotline retrain --kind ensemble`` does.
        """
        if self.settings.encoder is None or any(e.manifest.get("kind") == "ensemble" for e in self.registry.entries()):
            return
        if not gpu_present():
            return
        log.info("a GPU is present: fine-tuning an ensemble candidate in the background")
        self.jobs.start("train", lambda job: self.train_ensemble(job, "service"), {"kind": "ensemble", "by": "service"})

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
        for thread in (self._follower, self._assigner):
            if thread.is_alive():
                thread.join(timeout=5)
        self.syncer.stop()
        self.index.close()
        self.store.close()
        self.models.gate.close()

    def train(self, by: str, since: datetime | None = None, promote_if_first: bool = True, review: bool = False,
              job: Job | None = None) -> str:
        """Retrain from the store's labels; the first model is activated, later ones wait as candidates."""
        from training.retrain import RetrainRequest, retrain

        request = RetrainRequest(since=since, segmenter=self.settings.segmenter, review=review)
        entry = retrain(self.registry, request, self.store, by=by, city=self.city)
        if promote_if_first and self.registry.active() is None:
            self.registry.promote(entry.version, by=by)
            self.reload_model()
            if job is not None:
                job.promoted = True
        return entry.version

    def encoder_directory(self) -> Path:
        """The pretrained encoder an ensemble is fine-tuned from; refused at once when none is configured."""
        if self.settings.encoder is None:
            raise InvalidInput("HOTLINE_ENCODER is not set: run `hotline encoder fetch` and set it to the directory "
                               "printed last")
        return self.settings.encoder

    def train_ensemble(self, job: Job, by: str, since: datetime | None = None, epochs: int | None = None) -> str:
        """Fine-tune the encoder beside a linear model (``hotline retrain --kind ensemble``) in a child process.

        Fine-tuning holds both cores for many minutes; in a process of its own
        at a lower priority, agents' routing keeps its latency and a crash
        cannot take the service down. The result is a candidate like any
        other, compared on the same held-out cases, and served at once when
        it wins (or when there is no active model).
        """
        command = [sys.executable, "-m", "hotline.cli", "retrain", "--kind", "ensemble",
                   "--base-model", str(self.encoder_directory()), "--by", by]
        if since:
            command += ["--since", since.date().isoformat()]
        if epochs:
            command += ["--epochs", str(epochs)]
        environment = {**{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")},
                       **self.settings.environment()}
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                                 preexec_fn=lambda: os.nice(10))  # noqa: PLW1509 (no threads in the child yet)
        reader = threading.Thread(target=_last_lines, args=(child.stderr, job), daemon=True)
        reader.start()
        out = child.stdout.read() if child.stdout else ""
        status = child.wait()
        reader.join(timeout=5)
        if status != 0:
            raise HotlineError(f"the ensemble training exited with {status}: {job.progress}")
        version = json.loads(out.strip().splitlines()[-1])["version"]
        entry = self.registry.get(version)
        compared = entry.manifest.get("extra", {}).get("compared_with") or {}
        wins = compared.get("candidate_macro_f1", 0.0) > compared.get("active_macro_f1", 1.0)
        if self.registry.active() is None or wins:
            try:
                self.registry.promote(version, by=by)
            except Conflict as exc:  # another model became active during the fine-tuning: compare again first
                log.info("ensemble %s stays a candidate: %s", version, exc)
                return version
            self.reload_model()
            job.promoted = True
        return version
