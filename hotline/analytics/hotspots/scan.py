"""Kulldorff's space-time permutation scan statistic (Kulldorff et al. 2005), prospective.

Finds clusters that span neighbouring areas: a burst that is small in each
of three districts but clear across them. Needs no population or baseline
model: the expected count of a cylinder (a set of neighbouring areas × the
last d days) is what the area totals and the day totals imply if where and
when were independent, ``mu = C_zones * C_days / C``. The likelihood ratio
of the most unusual cylinder is compared with the same maximum over tables
whose case dates were randomly permuted (margins fixed), giving a Monte
Carlo p-value. Prospective: only cylinders that end on the evaluated day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cluster:
    zones: tuple[int, ...]
    days: int               # the cylinder covers the last ``days`` days
    observed: int
    expected: float
    llr: float
    p_value: float


def zone_sets(neighbours: Sequence[Sequence[int]], max_zones: int) -> list[tuple[int, ...]]:
    """Candidate spatial zones: each area with its 0 … max_zones-1 nearest neighbours (ordered lists)."""
    zones = set()
    for z, near in enumerate(neighbours):
        ordered = [z, *[n for n in near if n != z]]
        for k in range(1, min(max_zones, len(ordered)) + 1):
            zones.add(tuple(sorted(ordered[:k])))
    return sorted(zones)


def _llr(c: np.ndarray, mu: np.ndarray, total: float) -> np.ndarray:
    """Poisson generalised likelihood ratio for an excess (0 where c <= mu)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = np.where(c > 0, c * np.log(c / mu), 0.0)
        rest = total - c
        outside = np.where(rest > 0, rest * np.log(rest / (total - mu)), 0.0)
        value = inside + outside
    return np.where((c > mu) & (mu > 0), value, 0.0)


def _scores(table: np.ndarray, members: np.ndarray, max_days: int) -> np.ndarray:
    """LLR of every cylinder: [zone set, days 1..max_days] for a (areas × days) table ending today."""
    total = table.sum()
    area_totals = table.sum(axis=1)
    tail = np.cumsum(table[:, ::-1][:, :max_days], axis=1)        # [area, d]: cases in the last d+1 days
    day_tail = np.cumsum(table.sum(axis=0)[::-1][:max_days])       # [d]
    c = members @ tail                                             # [zone set, d]
    mu = (members @ area_totals)[:, None] * day_tail[None, :] / total
    return _llr(c, mu, total)


def scan(table: np.ndarray, neighbours: Sequence[Sequence[int]], max_zones: int = 3, max_days: int = 7,
         simulations: int = 99, rng: np.random.Generator | None = None, alpha: float = 0.05) -> list[Cluster]:
    """Significant clusters ending on the table's last day, most significant first (non-overlapping)."""
    table = np.asarray(table, dtype=np.int64)
    areas, days = table.shape
    total = int(table.sum())
    if total == 0 or days < 2:
        return []
    max_days = min(max_days, days - 1)
    zones = zone_sets(neighbours, max_zones)
    members = np.zeros((len(zones), areas))
    for i, z in enumerate(zones):
        members[i, list(z)] = 1
    observed = _scores(table, members, max_days)
    if observed.max() <= 0:
        return []
    rng = rng or np.random.default_rng(0)
    day_totals = table.sum(axis=0)
    area_totals = table.sum(axis=1)
    null_max = np.empty(simulations)
    for s in range(simulations):
        null_max[s] = _scores(_permuted(area_totals, day_totals, rng), members, max_days).max()
    clusters: list[Cluster] = []
    used: set[int] = set()
    order = np.dstack(np.unravel_index(np.argsort(-observed, axis=None), observed.shape))[0]
    tail = np.cumsum(table[:, ::-1][:, :max_days], axis=1)
    day_tail = np.cumsum(day_totals[::-1][:max_days])
    for zi, d in order:
        llr = observed[zi, d]
        if llr <= 0:
            break
        p = (1 + int((null_max >= llr).sum())) / (simulations + 1)
        if p > alpha:
            break
        if used & set(zones[zi]):
            continue
        used |= set(zones[zi])
        c = float(members[zi] @ tail[:, d])
        mu = float(members[zi] @ area_totals) * float(day_tail[d]) / total
        clusters.append(Cluster(zones[zi], int(d) + 1, int(c), mu, float(llr), p))
    return clusters


def _permuted(area_totals: np.ndarray, day_totals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A table with the same margins, as if each case's date were shuffled among all cases."""
    remaining = day_totals.astype(np.int64).copy()
    table = np.zeros((len(area_totals), len(day_totals)), dtype=np.int64)
    for a, n in enumerate(area_totals):
        if n:
            row = rng.multivariate_hypergeometric(remaining, int(n))
            table[a] = row
            remaining -= row
    return table
