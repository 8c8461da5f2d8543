"""Emerging terms: words and phrases that burst against their own history.

A new problem often has no category of its own yet (a new scam, a new
charging-pile rule): no category count moves, but its words do. For a day
D the share of cases using a term is compared with its share over the
``history`` days before; the expected number is smoothed so a word never
seen before still needs several cases, and the upper Poisson tail gives the
score.

Only topic words count (:func:`hotline.text.words.is_topic`): not the callers' spoken frame
("一下", "这边", "希望"), not places (the events say where), nor phrases with either in them.

Phrases are adjacent word pairs of the day. Their history is not kept (a
year of them would be hundreds of millions of rows): a phrase is taken to
have been used at most as often as the rarer of its two words, so it emerges
only when a word of it is itself new there. Glued pairs of common words
("问题泰州医药高新区") therefore never emerge, and the store keeps word
counts only (:meth:`~hotline.store.base.CaseStore.term_counts`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from scipy import stats

from hotline.text.words import is_topic
from hotline.times import shifted


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


def _words(tokens: Sequence[str]) -> list[str]:
    """The tokens that can be terms: two characters or more, not numbers."""
    return [t for t in tokens if len(t) >= 2 and not t.isdigit()]


def case_terms(tokens: Sequence[str]) -> set[str]:
    """Words of two or more characters and adjacent pairs of them (phrases)."""
    words = _words(tokens)
    return set(words) | {a + b for a, b in zip(words, words[1:], strict=False)}


@dataclass
class DayTerms:
    """One day's terms: how many of its cases use each word and phrase, the words each phrase joins, and the
    first cases of each."""

    docs: int = 0
    df: Counter[str] = field(default_factory=Counter)
    parts: dict[str, tuple[str, str]] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, case_id: str, tokens: Sequence[str]) -> None:
        words = _words(tokens)
        terms = set(words)
        for a, b in zip(words, words[1:], strict=False):
            terms.add(a + b)
            self.parts.setdefault(a + b, (a, b))
        self.df.update(terms)
        self.docs += 1
        for term in terms:
            examples = self.examples[term]
            if len(examples) < 5:
                examples.append(case_id)

    @classmethod
    def of(cls, records: Iterable[tuple[str, Sequence[str]]]) -> DayTerms:
        day = cls()
        for case_id, tokens in records:
            day.add(case_id, tokens)
        return day


def emerging(today: DayTerms, history: Callable[[list[str]], dict[str, int]], n_past: int, min_count: int = 3,
             min_ratio: float = 3.0, top: int = 20) -> list[Term]:
    """The terms of a day most above their history (at least ``min_count`` cases and ``min_ratio``×).

    ``history(words)`` gives how many of the ``n_past`` cases before used each
    word; a phrase's history is that of the rarer of its words.
    """
    if not today.docs or not n_past:
        return []  # without history every word is new
    candidates = [term for term, count in today.df.items()  # words and phrases of topic words only
                  if count >= min_count and all(is_topic(w) for w in today.parts.get(term, (term,)))]
    words = {w for term in candidates for w in today.parts.get(term, (term,))}
    past = history(sorted(words)) if words else {}
    found: list[Term] = []
    for term in candidates:
        count = today.df[term]
        used = min(past.get(w, 0) for w in today.parts.get(term, (term,)))
        share = (used + 0.5) / (n_past + 1.0)  # half a case of history for every term
        expected = today.docs * share
        ratio = count / expected
        if ratio < min_ratio:
            continue
        p = float(stats.poisson.sf(count - 1, expected))
        score = -math.log10(max(p, 1e-300))
        found.append(Term(term, count, expected, ratio, score, list(today.examples[term])))
    found.sort(key=lambda t: (-t.score, -len(t.term), t.term))
    # A phrase and its words often burst together: keep the phrase, drop the words it explains.
    kept: list[Term] = []
    for t in found:
        if any(t.term in k.term and t.observed <= k.observed + 1 for k in kept):
            continue
        kept.append(t)
        if len(kept) >= top:
            break
    return kept


def emerging_in_store(store: Any, day: date, history: int = 28, **options: Any) -> list[Term]:
    """Emerging terms of ``day`` from a store: that day's cases, and the daily word counts kept on write for the
    days before (so the cost is a day's cases, whatever the store holds)."""
    first, last = shifted(day, -timedelta(days=history)), shifted(day, -timedelta(days=1))
    return emerging(DayTerms.of(store.day_tokens(day)), lambda words: store.term_counts(first, last, words),
                    store.documents(first, last), **options)


class TermHistory:
    """Per-day word counts held in memory, filled once and queried for any day (as a store keeps them)."""

    def __init__(self) -> None:
        self.days: dict[date, DayTerms] = defaultdict(DayTerms)

    def add(self, day: date, case_id: str, tokens: Sequence[str]) -> None:
        self.days[day].add(case_id, tokens)

    def add_many(self, records: Iterable[tuple[date, str, Sequence[str]]]) -> TermHistory:
        for day, case_id, tokens in records:
            self.add(day, case_id, tokens)
        return self

    def emerging(self, day: date, history: int = 28, **options: Any) -> list[Term]:
        past_days = [self.days[d] for d in (day - timedelta(days=b) for b in range(1, history + 1)) if d in self.days]

        def used(words: list[str]) -> dict[str, int]:
            return {w: sum(d.df.get(w, 0) for d in past_days) for w in words}

        return emerging(self.days.get(day, DayTerms()), used, sum(d.docs for d in past_days), **options)
