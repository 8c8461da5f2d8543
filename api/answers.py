"""The agent's answer, assembled in one place: the routing, the similar cases as agents see them, the open event.

``POST /v1/route`` and a case's similar cases both come here, so what an
agent sees beside a call and beside a stored case is built the same way.
Nothing here waits on the store for long: routing's similar cases live in
the model, their stored texts are decoration fetched within
:data:`TEXT_BUDGET`, and the open events are matched from memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter

from classifiers.router import Router
from hotline.analytics.events import OpenEvents
from hotline.case import Area, Neighbour
from hotline.errors import NotFound, Unavailable
from hotline.store import CaseStore
from hotline.times import city_now
from search import SearchIndex
from search.base import neighbour

log = logging.getLogger("hotline.api")

#: Seconds routing waits for the similar cases' texts from the store before answering without them.
TEXT_BUDGET = 0.025
#: Texts longer than this are routed in the thread pool (a 200-character call takes ~2 ms on the loop).
LONG_TEXT = 2000


class AgentAnswers:
    """What agents are answered, from the store, the search index, the open events and the routed counter."""

    def __init__(self, store: CaseStore, index: SearchIndex, open_events: OpenEvents, routed: Counter,
                 zone: ZoneInfo) -> None:
        self.store, self.index, self.open_events, self.routed, self.zone = store, index, open_events, routed, zone

    async def route(self, model: Router, text: str, district: str = "", at: datetime | None = None) -> dict[str, Any]:
        """Category, departments, reasons, similar cases and the open event of a transcript.

        On the event loop, not the thread pool: routing is ~2 ms of CPU with
        nothing to wait for, so a thread hop would only add latency and GIL
        hand-offs. Except where the model asks an encoder: onnxruntime lets go
        of the GIL, so the loop serves other agents meanwhile.
        """
        started = time.perf_counter()
        area = Area(district) if district else None
        if len(text) > LONG_TEXT or model.runs_encoder:  # tens of ms of parsing or encoder: off the loop
            routing = await run_in_threadpool(model.route, text, area=area, at=at)
        else:
            routing = model.route(text, area=area, at=at)
        self.routed.labels(str(routing.auto_dispatch).lower()).inc()
        similar = await self.similar_with_texts(routing.similar)
        event = self.open_events.match(routing.text, routing.area, routing.category, routing.model_version,
                                       at or city_now(self.zone))
        return {**routing.to_dict(), "similar": similar, "event": event.brief() if event else None,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 2)}

    def with_texts(self, neighbours: list[Neighbour]) -> list[dict[str, Any]]:
        """Neighbours as agents see them, with their text, district and event from the store (a key lookup
        each); a neighbour the store does not hold, or a store that is away, leaves the model's own."""
        shown = []
        for n in neighbours:
            try:
                shown.append(neighbour(self.store.get(n.case_id), n.similarity, n.meaning).to_dict())
            except (NotFound, Unavailable):  # a training case from a file, never stored; or the store is away
                shown.append(n.to_dict())
        return shown

    async def similar_with_texts(self, neighbours: list[Neighbour]) -> list[dict[str, Any]]:
        """The neighbours as agents see them. Models carry their neighbours' texts; for one saved before they
        did, :meth:`with_texts` off the event loop and within :data:`TEXT_BUDGET`: routing must not wait on a
        database that is slow or down (it froze every agent for 15 s)."""
        if not neighbours:
            return []
        if all(n.text for n in neighbours):  # the model carries their texts: no store needed
            return [n.to_dict() for n in neighbours]
        try:
            return await asyncio.wait_for(run_in_threadpool(self.with_texts, neighbours), TEXT_BUDGET)
        except (TimeoutError, Unavailable):
            return [n.to_dict() for n in neighbours]

    def similar_cases(self, router: Router | None, text: str, k: int, exclude: str = "",
                      district: str = "") -> list[dict[str, Any]]:
        """What routing shows beside this text first, then the search index's other cases (today's calls, and
        by meaning with an encoder), so a case's similar cases always include what routing found for it."""
        first = (router.shown_neighbours(text, k, district=district, exclude=exclude, at=city_now(self.zone))
                 if router is not None else [])
        shown = self.with_texts(first)
        seen = {n["case_id"] for n in shown}
        try:
            more = self.index.similar(text, k=k, exclude=exclude, district=district)
        except Unavailable as exc:
            log.warning("similar cases from the model's index alone: %s", exc)
            more = []
        shown += [n.to_dict() for n in more if n.case_id not in seen]
        return shown[:k]
