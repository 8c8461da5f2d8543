"""What the running service holds: store, search index, the active model (hot-swappable), jobs, keys, metrics."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

from api.answers import AgentAnswers
from api.keys import KeyRing, service_keys
from api.views import ReadCache, SupervisorViews
from classifiers.encoder import SentenceEncoder
from hotline.analytics.events import EventAssigner, OpenEvents
from hotline.city import City
from hotline.errors import InvalidInput, Unavailable
from hotline.outage import OutageLog
from hotline.settings import Settings
from hotline.store import CaseStore, open_store
from search import SearchIndex, open_index
from search.base import CachedCount
from search.sync import Syncer
from training.jobs import Job, Jobs, fine_tune_in_child, gpu_present, promote_if_better
from training.registry import Registry

log = logging.getLogger("hotline.api")

#: Days of calls a call being taken is matched against for an ongoing event.
#: Cases a view assigns to events itself before listing them, when the background assigner is behind.
EVENT_CATCH_UP = 5_000


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
        self.supervisor_views = SupervisorViews(self.store, self.views, self.window, self.taxonomy, self.gazetteer,
                                                self.catch_up_events)
        self.answers = AgentAnswers(self.store, self.index, OpenEvents(self.events, self.views.ttl, self.catch_up_events),
                                    self.metrics.routed, self.window.city)
        self._stop = threading.Event()
        self.outages = OutageLog(log)
        self._follower = threading.Thread(target=self._follow, name="model-follower", daemon=True)
        self._assigner = threading.Thread(target=self._assign_events, name="event-assigner", daemon=True)

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
        """Notice within a second any change of what the registry's ``current`` names, also one made by
        ``hotline models promote`` in another process (before, the service kept its old model), and load it;
        the old model answers until the new one is loaded (about 4 s for the demo's linear model on an idle
        two-core host, 11 s was measured on a busy one)."""
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
        """Fine-tune the encoder beside a linear model in a child process (:func:`training.jobs.fine_tune_in_child`)
        and serve the result at once when it wins against the active model (or when there is none)."""
        version = fine_tune_in_child(self.settings, self.encoder_directory(), by, job, since, epochs)
        if promote_if_better(self.registry, version, by):
            self.reload_model()
            job.promoted = True
        return version
