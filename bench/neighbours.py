"""Similar cases by meaning against the word match alone: are the neighbours better?

Generated calls (their departments, categories and planted events are the
ground truth) go into one embedded index with the pretrained encoder's
vectors (``hotline encoder fetch``; the fp32 graph and the int8 one the
service uses); each query case asks for its 5 neighbours (itself excluded)
by words alone and by words + meaning fused. Figures: the share of neighbours with the
query's lead department and its category, the share of queries answered,
the other callers of the same planted event found ("duplicates found"),
and the latency of a query.

    python bench/neighbours.py [--days 60] [--queries 600]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import report

from classifiers.encoder import SentenceEncoder, fetch
from hotline.analytics.events import EventClusterer
from hotline.demo.generator import DemoGenerator
from hotline.ingest import CaseBuilder, ColumnMap
from hotline.places import default_gazetteer
from hotline.store.sqlite import SQLiteStore
from hotline.taxonomy import default_taxonomy
from search.embedded import EmbeddedIndex
from search.vectors import case_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--encoder", type=Path, help="encoder directory (default: fetched into the cache)")
    args = parser.parse_args()

    directory = args.encoder or fetch(quiet=True)
    encoders = {"fp32": SentenceEncoder(directory, quantized=False), "int8": SentenceEncoder(directory)}
    gazetteer, taxonomy = default_gazetteer(), default_taxonomy()
    rows, truth = DemoGenerator(gazetteer, taxonomy, seed=7).generate(args.days, date(2026, 1, 1))
    builder = CaseBuilder(gazetteer, taxonomy, max_chars=4000, source="bench.csv")
    columns = ColumnMap().resolve(list(rows[0]))
    cases = [builder.build(row, columns) for row in rows]
    event_of = {case_id: e.id for e in truth.events for case_id in e.case_ids}
    members = {e.id: set(e.case_ids) for e in truth.events}

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(f"sqlite:///{tmp}/store.db")
        store.upsert(cases)
        figures: dict[str, object] = {"cases": len(cases)}
        indexes = {}
        for name, encoder in encoders.items():  # a file each: one deployment keeps one vector per case
            indexes[name] = EmbeddedIndex(f"sqlite:///{tmp}/{name}.db", embedder=encoder)
            started = time.perf_counter()
            indexes[name].index(cases)
            figures[f"{name}: embedding cases/s"] = round(len(cases) / (time.perf_counter() - started), 1)
        words_only = EmbeddedIndex(store.url, store)

        rng = random.Random(0)
        in_events = [c for c in cases if c.id in event_of and len(members[event_of[c.id]]) >= 3]
        queries = rng.sample(in_events, min(len(in_events), args.queries // 2))
        queries += rng.sample([c for c in cases if c.id not in event_of], args.queries - len(queries))
        figures.update(queries=len(queries), event_queries=sum(q.id in event_of for q in queries))
        modes = [("words", words_only, None)] + [(f"fused {name}@0.7", idx, 0.7) for name, idx in indexes.items()]
        for name, idx, threshold in modes:
            if threshold is not None:
                idx.min_meaning = threshold
            same_dept, same_cat, answered, found_dups, possible_dups, times = [], [], 0, 0, 0, []
            for q in queries:
                text = case_text(q)
                t0 = time.perf_counter()
                found = idx.similar(text, k=5, exclude=q.id)
                times.append(time.perf_counter() - t0)
                answered += bool(found)
                lead = q.departments[0] if q.departments else ""
                same_dept += [bool(n.departments) and n.departments[0] == lead for n in found]
                category = q.category.path if q.category else ""
                same_cat += [n.category == category for n in found]
                if q.id in event_of:
                    others = members[event_of[q.id]] - {q.id}
                    found_dups += len({n.case_id for n in found} & others)
                    possible_dups += min(5, len(others))
            figures[name] = {
                "same_department": round(float(np.mean(same_dept)), 3) if same_dept else None,
                "same_category": round(float(np.mean(same_cat)), 3) if same_cat else None,
                "neighbours_per_query": round(len(same_cat) / len(queries), 2),
                "answered": round(answered / len(queries), 3),
                "event_members_found": round(found_dups / max(1, possible_dups), 3),
                "p50_ms": round(1000 * float(np.percentile(times, 50)), 2),
                "p95_ms": round(1000 * float(np.percentile(times, 95)), 2),
            }
        store.close()
    figures.update(event_clustering(cases, truth, encoders["int8"]))
    report("neighbours", figures)


class MeaningClusterer(EventClusterer):
    """The event clusterer with a bonus for a case whose sentence vector is close to its event's mean vector:
    the trial of "vectors in event clustering" (kept out of hotline/analytics/events.py unless it helps)."""

    def __init__(self, *args: object, vectors: dict[str, np.ndarray], bonus: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.vectors = vectors
        self.bonus = bonus
        self.sums: dict[str, np.ndarray] = {}

    def _score(self, vec, places, case, event):
        score = super()._score(vec, places, case, event)
        total = self.sums.get(event.id)
        if total is None or case.id not in self.vectors:
            return score
        meaning = float(self.vectors[case.id] @ total / max(np.linalg.norm(total), 1e-12))
        return score + self.bonus * max(0.0, (meaning - 0.7) / 0.3)

    def _add(self, event, case, vec, places):
        super()._add(event, case, vec, places)
        if case.id in self.vectors:
            self.sums[event.id] = self.sums.get(event.id, 0) + self.vectors[case.id]


def event_clustering(cases: list, truth: object, encoder: SentenceEncoder) -> dict[str, object]:
    """B-cubed F1 of the planted events: words and places alone, and with a meaning bonus of several sizes."""
    from hotline.analytics.events import bcubed
    from hotline.text.segment import default_segmenter

    split = len(cases) // 3
    history, period = cases[:split], cases[split:]
    vectors = dict(zip([c.id for c in period], encoder.encode([case_text(c) for c in period]),
                       strict=True))
    true = {c.id: c.id for c in period}
    for event in truth.events:
        for case_id in event.case_ids:
            if case_id in true:
                true[case_id] = event.id
    tokens, landmarks = default_segmenter().tokens, default_gazetteer().landmarks
    found: dict[str, object] = {}
    for bonus in (0.0, 0.1, 0.2, 0.3):
        clusterer = MeaningClusterer(tokens, landmarks, vectors=vectors, bonus=bonus)
        clusterer.fit(f"{c.title} {c.text}" for c in history)
        assigned = dict(zip([c.id for c in period], clusterer.assign_many(period), strict=True))
        p, r, f1 = bcubed(true, assigned)
        found[f"events, meaning bonus {bonus}"] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4)}
    return found


if __name__ == "__main__":
    main()
