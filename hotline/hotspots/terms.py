"""Emerging terms: words and phrases that burst against their own history.

A new problem often has no category of its own yet (a new scam, a new
charging-pile rule): no category count moves, but its words do. For a day
D the share of cases using a term is compared with its share over the
``history`` days before; the expected number is smoothed so a word never
seen before still needs several cases, and the upper Poisson tail gives the
score. Phrases are adjacent word pairs.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from scipy import stats


@dataclass
class Term:
    term: str
    observed: int
    expected: float
    ratio: float
    score: float
    case_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"term": self.term, "observed": self.observed, "expected": round(self.expected, 2),
                "ratio": round(self.ratio, 1), "score": round(self.score, 2), "case_ids": self.case_ids[:5]}


def case_terms(tokens: Sequence[str]) -> set[str]:
    """Words of two or more characters and adjacent pairs of them (phrases)."""
    words = [t for t in tokens if len(t) >= 2 and not t.isdigit()]
    pairs = {a + b for a, b in zip(words, words[1:], strict=False)}
    return set(words) | pairs


class TermHistory:
    """Per-day document frequencies of terms, filled once and queried for any day."""

    def __init__(self) -> None:
        self.df: dict[date, Counter[str]] = defaultdict(Counter)
        self.docs: Counter[date] = Counter()
        self.examples: dict[tuple[date, str], list[str]] = defaultdict(list)

    def add(self, day: date, case_id: str, tokens: Sequence[str]) -> None:
        terms = case_terms(tokens)
        self.df[day].update(terms)
        self.docs[day] += 1
        for term in terms:
            examples = self.examples[(day, term)]
            if len(examples) < 5:
                examples.append(case_id)

    def add_many(self, records: Iterable[tuple[date, str, Sequence[str]]]) -> TermHistory:
        for day, case_id, tokens in records:
            self.add(day, case_id, tokens)
        return self

    def emerging(self, day: date, history: int = 28, min_count: int = 3, min_ratio: float = 3.0,
                 top: int = 20) -> list[Term]:
        """The terms of ``day`` most above their history (at least ``min_count`` cases and ``min_ratio``×)."""
        today, n_today = self.df.get(day, Counter()), self.docs.get(day, 0)
        if not n_today:
            return []
        past: Counter[str] = Counter()
        n_past = 0
        for back in range(1, history + 1):
            d = day - timedelta(days=back)
            past.update(self.df.get(d, Counter()))
            n_past += self.docs.get(d, 0)
        if not n_past:
            return []  # without history every word is new
        found: list[Term] = []
        for term, count in today.items():
            if count < min_count:
                continue
            share = (past.get(term, 0) + 0.5) / (n_past + 1.0)  # half a case of history for every term
            expected = n_today * share
            ratio = count / expected
            if ratio < min_ratio:
                continue
            p = float(stats.poisson.sf(count - 1, expected))
            score = -math.log10(max(p, 1e-300))
            found.append(Term(term, count, expected, ratio, score, list(self.examples[(day, term)])))
        found.sort(key=lambda t: (-t.score, t.term))
        # A phrase and its words often burst together: keep the phrase, drop the words it explains.
        kept: list[Term] = []
        for t in found:
            if any(t.term in k.term and t.observed <= k.observed + 1 for k in kept):
                continue
            kept.append(t)
            if len(kept) >= top:
                break
        return kept
