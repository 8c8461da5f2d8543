"""Event clustering: many calls about one burst main are one event.

Cases are assigned one at a time, as they arrive, to the open event they
most resemble or to a new one. An event is open while its last case is
within ``window`` of the new case and, when both areas are known, in the same
district. Callers describe one incident in their own words (half the pairs of
calls about one burst main share almost no word), but they name the same
place and it is the same kind of problem. So resemblance is the cosine
between the case's TF-IDF words and the event's summed words, plus, only
where the case is *at* the event (the same road or community named, or
coordinates within ``near_km``), bonuses for that place and for the same
category. Elsewhere only near-copies join an event. Defaults were chosen on
generated data (seed 3) and checked on other seeds (B-cubed F1 0.985–0.987).

The word weights (idf) are learnt from history with :meth:`EventClusterer.fit`;
words in more than ``max_df`` of the cases (我, 小区, 反映) carry no weight.
Events can be merged and split by a supervisor; each has a title (its place
and key words), area, first and last seen, and its cases.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import itemgetter
from typing import Any

from hotline.analytics.hotspots.cells import cell_area, cell_category, stored_cell
from hotline.analytics.hotspots.episodes import Episode
from hotline.case import Area, Case, Category, LabelKind, LabelSource, Location
from hotline.errors import InvalidInput, NotFound
from hotline.text.words import is_topic
from hotline.times import format_time, shifted

log = logging.getLogger("hotline.analytics.events")

#: Earth radius for the haversine distance.
_EARTH_KM = 6371.0


def distance_km(a: Location, b: Location) -> float:
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass
class Event:
    """One incident and the cases about it (kept as the clusterer's working state)."""

    id: str
    district: str
    street: str
    first_seen: datetime
    last_seen: datetime
    case_ids: list[str] = field(default_factory=list)  # of a kept event read back: those read with it
    size: int = 0
    words: dict[str, float] = field(default_factory=dict)
    places: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    lat_sum: float = 0.0
    lon_sum: float = 0.0
    located: int = 0
    norm2: float = 0.0

    @property
    def location(self) -> Location | None:
        return Location(self.lat_sum / self.located, self.lon_sum / self.located) if self.located else None

    def key_terms(self, k: int = 5) -> list[str]:
        return [w for w, _ in heapq.nlargest(k, self.words.items(), key=lambda kv: kv[1])]

    @property
    def place(self) -> str:
        return self.places.most_common(1)[0][0] if self.places else ""

    @property
    def category(self) -> str:
        """The most frequent category (the first seen of equals, as ``most_common(1)``; read for every score)."""
        return max(self.categories.items(), key=itemgetter(1))[0] if self.categories else ""

    @property
    def title(self) -> str:
        """What a supervisor reads: where, and the event's key words."""
        where = "".join(dict.fromkeys(p for p in (self.district, self.street, self.place) if p))
        terms = [t for t in self.key_terms(12) if t not in where and is_topic(t)]  # what, not where or "怎么"
        return f"{where or '未知地点'}：{'、'.join(terms[:3])}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "size": self.size, "district": self.district, "street": self.street,
            "place": self.place, "category": self.category, "key_terms": self.key_terms(),
            "first_seen": self.first_seen.isoformat(sep=" "), "last_seen": self.last_seen.isoformat(sep=" "),
            "case_ids": list(self.case_ids),
        }

    def brief(self) -> dict[str, Any]:
        """What an agent taking a call is shown of the event the call would join."""
        return {"id": self.id, "title": self.title, "size": self.size, "first_seen": format_time(self.first_seen),
                "last_seen": format_time(self.last_seen)}

    def to_row(self) -> dict[str, Any]:
        """The event as the store keeps it: what the views show, and the clusterer's state to go on from."""
        state = {"words": {w: round(v, 6) for w, v in self.words.items()}, "places": dict(self.places),
                 "categories": dict(self.categories), "lat_sum": self.lat_sum, "lon_sum": self.lon_sum,
                 "located": self.located, "norm2": self.norm2}
        return {"id": self.id, "district": self.district, "street": self.street, "first_seen": self.first_seen,
                "last_seen": self.last_seen, "size": self.size, "category": self.category, "place": self.place,
                "title": self.title, "state": json.dumps(state, ensure_ascii=False)}

    @classmethod
    def from_row(cls, row: dict[str, Any], case_ids: Sequence[str] = ()) -> Event:
        state = json.loads(row["state"])
        return cls(row["id"], row["district"], row["street"], row["first_seen"], row["last_seen"],
                   case_ids=list(case_ids), size=int(row["size"]), words=state["words"],
                   places=Counter(state["places"]), categories=Counter(state["categories"]),
                   lat_sum=state["lat_sum"], lon_sum=state["lon_sum"], located=state["located"],
                   norm2=state["norm2"])


class EventClusterer:
    """Incremental event assignment; ``assign`` is the online step, ``fit`` learns word weights.

    ``threshold`` 0.85 (was 0.8): at a city's density (5,480 calls a day) a district's two days hold several
    ordinary calls about one common problem near each other, and the place, nearness and category bonuses
    grouped them as "events". Chosen on seed 7 of bench/hotspots.py --events, where 0.85 was the best at both
    densities (B-cubed F1 0.991 and 0.885, ARI 0.935 and 0.612, against 0.989, 0.850, 0.933, 0.566 at 0.8);
    0.9 and 0.95 raise the city's F1 further (0.909, 0.928) but split the demo's large events (ARI 0.81, 0.78).

    ``max_span`` (3 days): an event takes no call once it began that long ago. The 48-hour window alone let a
    place's steady calls chain for as long as they kept coming: at a city's density a community's water or
    property calls became one "event" of the whole year (thousands of calls; the views read them all). An
    incident's calls come in its first hours to days (the generator's: 99% within three days), and a
    problem still called about after that is a new event, found beside it by place. Over 12 days at a city's
    density (seed 31): B-cubed F1 0.817 → 0.840, ARI 0.39 → 0.54, the largest event 61 → 40 calls; at the
    demo's density the same events (ARI 0.915 → 0.918). Raising the bar for words instead (bonuses only
    above a cosine of 0.2–0.4) split the demo's incidents, whose callers share the place more than words.
    """

    def __init__(
        self,
        tokenize: Callable[[str], list[str]],
        landmarks: Iterable[str] = (),
        threshold: float = 0.85,
        window: timedelta = timedelta(hours=48),
        place_bonus: float = 0.3,
        near_bonus: float = 0.3,
        category_bonus: float = 0.3,
        near_km: float = 0.6,
        max_df: float = 0.05,
        new_id: Callable[[Case], str] | None = None,
        query_words: int = 12,
        max_span: timedelta | None = timedelta(days=3),
    ) -> None:
        self.tokenize = tokenize
        self.landmarks = frozenset(landmarks)
        self.threshold = threshold
        self.window = window
        self.place_bonus = place_bonus
        self.near_bonus = near_bonus
        self.category_bonus = category_bonus
        self.near_km = near_km
        self.max_df = max_df
        self.new_id = new_id
        self.query_words = query_words
        self.max_span = max_span
        self.idf_: dict[str, float] = {}
        self.common_: frozenset[str] = frozenset()
        self.default_idf_ = 1.0
        self.events: dict[str, Event] = {}
        self.case_event: dict[str, str] = {}
        # (district, word, place or grid square) -> open events that have it. Keyed by district too: a call
        # never joins another district's event, and at a city's density one word is in hundreds of open events
        # across the city. An event without a district yet is under "" (every call looks there as well).
        self._open: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._districts: set[str] = {""}
        self._serial = 0
        self._last_time: datetime | None = None

    # ------------------------------------------------------------ learning
    def fit(self, texts: Iterable[str]) -> EventClusterer:
        """Word weights from past cases: idf, with the commonest words dropped."""
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            df.update(set(self.tokenize(text)))
            n += 1
        if n == 0:
            raise InvalidInput("fitting the event clusterer needs at least one text")
        return self.fit_counts(df, n)

    def fit_counts(self, df: Mapping[str, int], n: int) -> EventClusterer:
        """The same from document frequencies already counted (the store's daily term counts): ``n`` cases,
        ``df[word]`` of them with the word. Without any case every word weighs the same."""
        limit = self.max_df * n if n >= 100 else n
        self.idf_ = {w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in df.items() if c <= limit}
        self.common_ = frozenset(w for w, c in df.items() if c > limit)
        self.default_idf_ = math.log(1 + n) + 1.0  # an unseen word is as rare as can be
        return self

    def weighted_like(self, fitted: EventClusterer) -> EventClusterer:
        """Take the word weights another clusterer learnt (fitted once, shared by every clusterer of a day)."""
        self.idf_, self.common_, self.default_idf_ = fitted.idf_, fitted.common_, fitted.default_idf_
        return self

    def _vector(self, text: str, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, float]:
        """Unit-length TF-IDF words of a text; common words are left out, unseen ones weigh most."""
        counts = Counter(self.tokenize(text))
        vec = {w: (1 + math.log(c)) * self.idf_.get(w, self.default_idf_)
               for w, c in counts.items() if w not in self.common_ and w not in exclude}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {w: v / norm for w, v in vec.items()}

    def _features(self, case: Case) -> tuple[dict[str, float], set[str]]:
        """What the case is about (words, place names left out) and where (roads, communities named)."""
        tokens = self.tokenize(f"{case.title} {case.text} {case.address}")
        places = {w for w in tokens if w in self.landmarks}
        return self._vector(f"{case.title} {case.text}", exclude=places), places

    # ------------------------------------------------------------ assignment
    def assign(self, case: Case) -> str:
        """The event of ``case``: an open event it resembles enough, or a new one. Cases arrive in time order."""
        if case.id in self.case_event:
            return self.case_event[case.id]
        if self._last_time and case.received_at < shifted(self._last_time, -self.window):
            raise InvalidInput(f"case {case.id} at {case.received_at} is older than the open window; re-cluster instead")
        self._last_time = max(self._last_time or case.received_at, case.received_at)
        vec, places = self._features(case)
        best = self._best(vec, places, case)
        if best is None:
            self._serial += 1
            event_id = self.new_id(case) if self.new_id else f"EV{case.received_at:%Y%m%d}-{self._serial:06d}"
            best = Event(event_id, case.area.district, case.area.street, case.received_at, case.received_at)
            self.events[best.id] = best
        self._add(best, case, vec, places)
        return best.id

    def match(self, case: Case) -> Event | None:
        """The open event ``case`` would join, leaving every event as it is (a call being taken, not yet a case)."""
        vec, places = self._features(case)
        return self._best(vec, places, case)

    def _best(self, vec: dict[str, float], places: set[str], case: Case) -> Event | None:
        """The candidate scoring highest, at least the threshold; of equals (the bonuses alone, no shared word)
        the larger event, then the first id: the same whatever order the candidates come in, which follows
        string hashes that differ from process to process, so a rebuild finds the events it found before.

        A candidate is scored only when the most it could score reaches the best so far: at a city's density
        most candidates share the call's place or grid square and few of its words, and their category decides
        (81 candidates a call, 63 of them left unscored; the same events, assigned a third faster)."""
        best, best_score = None, self.threshold
        category = (case.category.l2 or case.category.l1) if case.category else ""
        for event, reach in self._candidates(vec, places, case):
            same_place = bool(places) and any(p in event.places for p in places)
            may_be_near = case.location is not None and event.located > 0
            if same_place or may_be_near:  # the bonuses may apply
                most = reach + self.place_bonus * same_place + self.near_bonus * may_be_near
                if most < best_score and (most + self.category_bonus < best_score or event.category != category
                                          or not category):
                    continue
            elif reach < best_score:
                continue
            score = self._score(vec, places, case, event)
            if score > best_score or score == best_score and (
                    best is None or (event.size, best.id) > (best.size, event.id)):
                best, best_score = event, score
        return best

    def assign_many(self, cases: Iterable[Case]) -> list[str]:
        return [self.assign(case) for case in sorted(cases, key=lambda c: (c.received_at, c.id))]

    def _keys(self, vec: Iterable[str], places: set[str], location: Location | None, around: bool = False) -> list[str]:
        """What an open event is found by: its words, its places, and the grid square of its calls (``around``:
        that square and the eight next to it, for a case looking for events near it)."""
        keys = list(vec)
        keys.extend(f"@place:{p}" for p in places)
        if location is not None:
            row, col = int(location.lat // (self.near_km / 111.0)), int(location.lon // (self.near_km / 94.0))
            steps = (-1, 0, 1) if around else (0,)
            keys.extend(f"@grid:{row + dr}/{col + dc}" for dr in steps for dc in steps)
        return keys

    def _candidates(self, vec: dict[str, float], places: set[str], case: Case) -> list[tuple[Event, float]]:
        """The open events the call may join, each with the most its cosine can be."""
        since = shifted(case.received_at, -self.window)
        found: dict[str, Event] = {}
        # An open event is found by the case's weightiest words (a copy shares them; an event that shares only
        # its lighter words cannot reach the threshold by words), by the places named, and by the grid squares
        # around the call (the only events the nearness bonus can reach): a city's two days hold thousands of
        # open events, and every word of a long call, or its district and category, would bring hundreds.
        heavy = [w for w, _ in heapq.nlargest(self.query_words, vec.items(), key=lambda kv: kv[1])]
        until = shifted(case.received_at, self.window)
        began = shifted(case.received_at, -self.max_span) if self.max_span else None
        districts = ("", case.area.district) if case.area.district else tuple(self._districts)
        shared: dict[str, float] = defaultdict(float)  # event id -> squared weight of the heavy words it shares
        anchored: set[str] = set()  # found by a place or a grid square: the bonuses may lift it
        for key in self._keys(heavy, places, case.location, around=True):
            weight = vec.get(key)
            for district in districts:
                ids = self._open.get((district, key))
                if not ids:
                    continue
                for event_id in list(ids):
                    if event_id in found:  # found by another key already: it passed the checks below
                        if weight is None:
                            anchored.add(event_id)
                        else:
                            shared[event_id] += weight * weight
                        continue
                    event = self.events.get(event_id)
                    if event is None or event.last_seen < since:
                        ids.discard(event_id)  # closed: its window has passed
                        continue
                    if event.first_seen > until:
                        continue  # a late case, from before this event began
                    if began is not None and event.first_seen < began:
                        continue  # began too long ago: a place's steady calls, not one incident
                    if case.area.district and event.district and event.district != case.area.district:
                        continue  # registered before it had a district
                    found[event_id] = event
                    if weight is None:
                        anchored.add(event_id)
                    else:
                        shared[event_id] += weight * weight
        # An event found by words alone scores its cosine, at most the length of the call's vector over the words
        # it can share (Cauchy–Schwarz): the heavy ones it was found by and every lighter one. Below the threshold
        # it cannot be chosen, and is not scored (at a city's density most candidates share one common word).
        light = max(0.0, 1.0 - sum(vec[w] ** 2 for w in heavy))
        reach = self.threshold**2
        return [(e, math.sqrt(min(1.0, shared[i] + light)) + 1e-4)  # (kept events hold words to 6 decimals)
                for i, e in found.items() if i in anchored or shared[i] + light >= reach]

    def _score(self, vec: dict[str, float], places: set[str], case: Case, event: Event) -> float:
        words = event.words  # the shared words only (a set intersection in C): most candidates share a few
        dot = sum(vec[w] * words[w] for w in vec.keys() & words.keys())
        cosine = dot / math.sqrt(event.norm2) if event.norm2 > 0 else 0.0
        same_place = bool(places) and any(p in event.places for p in places)
        where = event.location
        near = bool(case.location and where and distance_km(case.location, where) <= self.near_km)
        if not (same_place or near):  # elsewhere, only words as alike as a copy tie two calls together
            return cosine
        category = (case.category.l2 or case.category.l1) if case.category else ""
        same_category = bool(category) and event.category == category
        return cosine + self.place_bonus * same_place + self.near_bonus * near + self.category_bonus * same_category

    def _add(self, event: Event, case: Case, vec: dict[str, float], places: set[str]) -> None:
        for w, v in vec.items():
            old = event.words.get(w, 0.0)
            event.words[w] = old + v
            event.norm2 += (old + v) ** 2 - old * old
        if not event.district and case.area.district:
            event.district = case.area.district
        self._register(event, self._keys(vec, places, case.location))
        event.places.update(places)
        if case.category:
            event.categories[case.category.l2 or case.category.l1] += 1
        if case.location:
            event.lat_sum += case.location.lat
            event.lon_sum += case.location.lon
            event.located += 1
        if not event.street and case.area.street:
            event.street = case.area.street
        event.first_seen = min(event.first_seen, case.received_at)
        event.last_seen = max(event.last_seen, case.received_at)
        event.case_ids.append(case.id)
        event.size += 1
        self.case_event[case.id] = event.id

    def restore(self, events: Iterable[Event]) -> EventClusterer:
        """Go on from events kept before (the store's): new cases may join them as if they had never left."""
        for event in events:
            self.events[event.id] = event
            self._register(event, self._keys(event.words, set(event.places), event.location))
        return self

    def _register(self, event: Event, keys: Iterable[str]) -> None:
        """Make ``event`` findable by ``keys`` (under its district)."""
        self._districts.add(event.district)
        for key in keys:
            self._open[(event.district, key)].add(event.id)

    # ------------------------------------------------------------ supervisors' corrections
    def merge(self, keep: str, other: str, cases: dict[str, Case]) -> Event:
        """Fold event ``other`` into ``keep`` (two reports of one incident)."""
        a, b = self._event(keep), self._event(other)
        if a is b:
            raise InvalidInput("an event cannot be merged with itself")
        del self.events[b.id]
        for case_id in b.case_ids:
            self.case_event.pop(case_id, None)
            self._reassign(a, cases[case_id])
        return a

    def split(self, event_id: str, case_ids: Sequence[str], cases: dict[str, Case]) -> Event:
        """Move ``case_ids`` out of an event into a new one (two incidents taken for one)."""
        source = self._event(event_id)
        moving = set(case_ids)
        if not moving or not moving <= set(source.case_ids) or moving == set(source.case_ids):
            raise InvalidInput("split needs some, but not all, of the event's cases")
        staying = [c for c in source.case_ids if c not in moving]
        del self.events[source.id]
        rebuilt = []
        for group in (staying, sorted(moving, key=lambda c: cases[c].received_at)):
            first = cases[group[0]]
            self._serial += 1
            event = Event(f"EV{first.received_at:%Y%m%d}-{self._serial:06d}", first.area.district, first.area.street,
                          first.received_at, first.received_at)
            self.events[event.id] = event
            for case_id in group:
                self.case_event.pop(case_id, None)
                self._reassign(event, cases[case_id])
            rebuilt.append(event)
        return rebuilt[1]

    def _reassign(self, event: Event, case: Case) -> None:
        self._add(event, case, *self._features(case))

    def _event(self, event_id: str) -> Event:
        try:
            return self.events[event_id]
        except KeyError:
            raise NotFound(f"no event {event_id!r}") from None

    def largest(self, min_size: int = 3, since: datetime | None = None) -> list[Event]:
        """Events with at least ``min_size`` cases (one call is not an event), largest first."""
        chosen = [e for e in self.events.values() if e.size >= min_size and (since is None or e.last_seen >= since)]
        return sorted(chosen, key=lambda e: (-e.size, e.first_seen))


def cluster_period(cases: Iterable[Case], start: date, tokenize: Callable[[str], list[str]],
                   landmarks: Iterable[str] = (), weights: EventClusterer | None = None) -> EventClusterer:
    """Events among the cases received from ``start`` on, in order of arrival.

    Word weights are learnt from the cases before ``start`` (or, without
    any, from the period itself), or taken from ``weights``, a clusterer
    fitted before (the service refits once a day and re-clusters the last
    days every minute).
    """
    ordered = sorted(cases, key=lambda c: (c.received_at, c.id))
    period = [c for c in ordered if c.received_at.date() >= start]
    clusterer = EventClusterer(tokenize, landmarks)
    if weights is not None:
        clusterer.weighted_like(weights)
    else:
        history = [f"{c.title} {c.text}" for c in ordered if c.received_at.date() < start]
        clusterer.fit(history or [f"{c.title} {c.text}" for c in period] or [""])
    clusterer.assign_many(period)
    return clusterer


class EventAssigner:
    """Keeps every case's event as it arrives: the store queues each new case, and this takes the queue a
    batch at a time, in order of arrival, going on from the events the store keeps.

    The views then read events rather than re-clustering their period. Word
    weights come from the store's daily term counts of the ``history_days``
    before each case's day (refitted once a day, as the service did), so
    assignment reads no case but the ones it assigns. A case that arrives
    late (received days ago) joins the events around its own time. One
    assigner works at a time; the others find the queue taken.

    ``batch``: cases taken in one transaction. A backfill (an import, a rebuild) takes 5,000: each batch
    loads and restores the events open around it once, so at a city's density 5,000 assign a fifth faster
    than 1,000; the service takes a few hundred, to hold the queue briefly.
    """

    def __init__(self, store: Any, tokenize: Callable[[str], list[str]], landmarks: Iterable[str] = (),
                 history_days: int = 28, batch: int = 5000, **params: Any) -> None:
        self.store = store
        self.tokenize = tokenize
        self.landmarks = frozenset(landmarks)
        self.history_days = history_days
        self.batch = batch
        self.params = params
        self._weights: dict[date, EventClusterer] = {}
        self._lock = threading.Lock()

    def _clusterer(self) -> EventClusterer:
        return EventClusterer(self.tokenize, self.landmarks, new_id=_event_id, **self.params)

    def weights(self, day: date) -> EventClusterer:
        """A clusterer with the word weights of the days before ``day`` (and of ``day`` itself while the history
        is short: the first days of a new store)."""
        fitted = self._weights.get(day)
        if fitted is None:
            first = shifted(day, -timedelta(days=self.history_days))
            last = shifted(day, -timedelta(days=1))
            documents = self.store.documents(first, last)
            if documents < 100:
                last = day
                documents = self.store.documents(first, last)
            fitted = self._clusterer().fit_counts(self.store.term_counts(first, last), documents)
            with self._lock:  # the service's assigner, a view catching up and the routing's matcher share these
                while len(self._weights) >= 4:
                    self._weights.pop(min(self._weights))
                self._weights[day] = fitted
        return fitted

    def open_at(self, at: datetime) -> EventClusterer:
        """The kept events of two calls or more still open at ``at``, with the word weights of its day: what a
        call being taken is matched against ("属于事件 X，已有 N 位市民反映") without joining them."""
        clusterer = self._weighted(at.date())
        since = shifted(at, -clusterer.window)
        kept = self.store.events(since.date(), at.date(), min_size=2, limit=100_000)
        return clusterer.restore(Event.from_row(row, case_ids) for row, case_ids in kept
                                 if row["last_seen"] >= since)

    def _weighted(self, day: date) -> EventClusterer:
        """An empty clusterer with the word weights of ``day``."""
        return self._clusterer().weighted_like(self.weights(day))

    def run_once(self) -> int:
        """Assign one batch of waiting cases; how many were taken (0: none waiting, or another assigner busy)."""
        return self.store.assign_events(self._work, self.batch)

    def run(self, max_cases: int | None = None) -> int:
        """Assign waiting cases until none is left (or ``max_cases`` were)."""
        done = 0
        while max_cases is None or done < max_cases:
            taken = self.run_once()
            if not taken:
                break
            done += taken
        return done

    def _work(self, cases: list[Case], load: Callable[[datetime, datetime], list[dict[str, Any]]]
              ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        ordered = sorted(cases, key=lambda c: (c.received_at, c.id))
        window = self._clusterer().window
        loaded: dict[str, Event] = {}
        assigned: dict[str, str] = {}
        touched: set[str] = set()
        segment: list[Case] = []
        for case in [*ordered, None]:
            if segment and (case is None or case.received_at.date() != segment[0].received_at.date()
                            or case.received_at - segment[-1].received_at > window):
                # One day's cases that follow each other: one set of weights, the events around them.
                since, until = shifted(segment[0].received_at, -window), shifted(segment[-1].received_at, window)
                for row in load(since, until):
                    if row["id"] not in loaded:
                        loaded[row["id"]] = Event.from_row(row)
                clusterer = self._weighted(segment[0].received_at.date())
                clusterer.restore(e for e in loaded.values() if e.last_seen >= since and e.first_seen <= until)
                for member in segment:
                    assigned[member.id] = clusterer.assign(member)
                    touched.add(assigned[member.id])
                loaded.update(clusterer.events)
                segment = []
            if case is not None:
                segment.append(case)
        return [loaded[event_id].to_row() for event_id in sorted(touched)], assigned


def _event_id(case: Case) -> str:
    """A kept event's id: its first day and a digest of its first case (unique across assigners and restarts)."""
    return f"EV{case.received_at:%Y%m%d}-{hashlib.blake2b(case.id.encode(), digest_size=5).hexdigest()}"


def kept_events(store: Any, start: date, end: date, min_size: int = 3, top: int = 20) -> list[Event]:
    """The largest events the store keeps that were active from ``start`` to ``end`` (surges are linked to
    events by :func:`link_events`, which reads their own cells')."""
    return [Event.from_row(row, case_ids) for row, case_ids in store.events(start, end, min_size, top)]


class OpenEvents:
    """The events open at the moment, for the calls being taken: which one a call would join ("属于事件 X，已有 N
    位市民反映"), answered from memory.

    The open events are read from the store in the background at most once
    per ``ttl`` seconds (the supervisors' clustering, over the store), so no
    call waits for it; a call is matched against them without becoming part
    of them, and until the first read a call is answered without an event.
    """

    def __init__(self, assigner: EventAssigner, ttl: float, catch_up: Callable[[], None] = lambda: None) -> None:
        self.assigner, self.ttl, self.catch_up = assigner, ttl, catch_up
        self._held: tuple[date, float, EventClusterer] | None = None  # (day, when read, clusterer)
        self._lock = threading.Lock()

    def match(self, text: str, area: Area, category: str, model_version: str, at: datetime) -> Event | None:
        """The open event of two calls or more that a call of ``text`` at ``at`` would join, or None."""
        if not text or not category:
            return None
        clusterer = self._clusterer(at)
        if clusterer is None:
            return None
        call = Case(id="call", received_at=at, text=text, area=area, category=Category.parse(category),
                    category_source=LabelSource(LabelKind.PREDICTED, model_version, at))
        event = clusterer.match(call)
        return event if event is not None and event.size >= 2 else None

    def expire(self) -> None:
        """Forget what was read, so the next call reads the open events again (after a bulk import)."""
        self._held = None

    def _clusterer(self, at: datetime) -> EventClusterer | None:
        held = self._held
        fresh = held is not None and held[0] == at.date() and time.monotonic() - held[1] < self.ttl
        if not fresh and self._lock.acquire(blocking=False):
            threading.Thread(target=self._load, args=(at,), name="open-events", daemon=True).start()
        return held[2] if held is not None and held[0] == at.date() else None

    def _load(self, at: datetime) -> None:
        try:
            self.catch_up()
            self._held = (at.date(), time.monotonic(), self.assigner.open_at(at))
        except Exception:  # the next call tries again; routing goes on without events
            log.exception("could not read the open events")
        finally:
            self._lock.release()


def link_events(store: Any, found: Sequence[Episode], start: date, end: date, min_size: int = 3) -> None:
    """Link each surge to the kept events of its cell and days, read by cell: a surge's events of a few calls
    are found however many larger ones the city has."""
    rows: dict[str, dict[str, Any]] = {}
    asked: set[tuple[str, str, date, date]] = set()  # a street's events are read with its district's, and matched to it by street
    for episode in found:
        district, _, category = stored_cell(episode.area, episode.category)
        asked.add((district, category, max(start, episode.start), min(end, episode.end)))
    for district, category, first, last in sorted(asked):
        for row in store.cell_events(district, category, first, last, min_size):
            rows[row["id"]] = row
    attach_events(found, [Event.from_row(row) for row in rows.values()])


def attach_events(found: Sequence[Episode], events: Iterable[Event]) -> None:
    """Give each surge the events of its cell (the district's, and the street's when the event has one) that
    overlap its days."""
    by_cell: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in events:
        category = cell_category(event.category)
        by_cell[(cell_area(event.district), category)].append(event)
        if event.street:
            by_cell[(cell_area(event.district, event.street), category)].append(event)
    for episode in found:
        for event in by_cell.get((episode.area, episode.category), []):
            if event.first_seen.date() <= episode.end and event.last_seen.date() >= episode.start:
                episode.events.append({"id": event.id, "title": event.title, "size": event.size})


def bcubed(truth: dict[str, str], found: dict[str, str]) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 of a clustering against the true one (item -> cluster)."""
    items = [i for i in truth if i in found]
    if not items:
        raise InvalidInput("no common items to score")
    by_true: dict[str, set[str]] = defaultdict(set)
    by_found: dict[str, set[str]] = defaultdict(set)
    for i in items:
        by_true[truth[i]].add(i)
        by_found[found[i]].add(i)
    precision = recall = 0.0
    for i in items:
        t, f = by_true[truth[i]], by_found[found[i]]
        both = len(t & f)
        precision += both / len(f)
        recall += both / len(t)
    p, r = precision / len(items), recall / len(items)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def adjusted_rand(truth: dict[str, str], found: dict[str, str]) -> float:
    """Adjusted Rand index of two clusterings (item -> cluster), from the contingency table."""
    items = [i for i in truth if i in found]
    pairs = Counter((truth[i], found[i]) for i in items)
    comb = lambda n: n * (n - 1) / 2  # noqa: E731
    sum_cells = sum(comb(n) for n in pairs.values())
    sum_true = sum(comb(n) for n in Counter(truth[i] for i in items).values())
    sum_found = sum(comb(n) for n in Counter(found[i] for i in items).values())
    expected = sum_true * sum_found / comb(len(items)) if len(items) > 1 else 0.0
    top = (sum_true + sum_found) / 2
    return (sum_cells - expected) / (top - expected) if top != expected else 1.0
