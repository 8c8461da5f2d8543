"""Hotspots: detection against EARS C2 on injected outbreaks, event clustering, forecasts, a full run's time.

Detection: outbreaks of known start and size are injected into
(a) real baseline counts (the timed competition messages; area from the
title or text, category from a classifier trained on the labeled messages)
and (b) generated counts without surges or events. Every method's threshold
is set so that it raises 1 false alarm per 100 cell-days on the days without
an outbreak; then sensitivity (outbreaks flagged on one of their days) and
detection delay are compared at that same false-alarm rate.

Episodes (``--episodes`` runs only these): on generated years with their
planted surges and events, the list a supervisor reads for a month (each cell's
consecutive alert days as one episode, most excess calls first) against the
ground truth: precision@10, and whether every planted surge of 10 excess
calls or more is in the top 20; baseline in the same run: the alerts
ranked by score, as the report listed them before.

    python bench/hotspots.py [--detection | --episodes | --ramps | --streets | --events] [--replicates=10]
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import labeled_rows, peak_rss_mib, report, shared_rows

from hotline.analytics import reports
from hotline.analytics.events import EventAssigner, EventClusterer, adjusted_rand, bcubed
from hotline.analytics.hotspots.baseline import cusum
from hotline.analytics.hotspots.cells import UNCATEGORISED, cell_area
from hotline.analytics.hotspots.detect import DETECTORS, NegativeBinomial, detect, eligible, scores
from hotline.analytics.hotspots.forecast import backtest, forecast
from hotline.analytics.hotspots.series import CountTable
from hotline.demo.generator import DemoGenerator
from hotline.ingest import CaseBuilder, ColumnMap, parse_time
from hotline.places import default_gazetteer
from hotline.store.sqlite import SQLiteStore
from hotline.taxonomy import default_taxonomy
from hotline.text.segment import default_segmenter

FALSE_ALARMS = 0.01  # per cell-day
WARMUP = 42           # days every method gets before it is scored


def real_table() -> CountTable:
    from classifiers.linear import TextClassifier

    labeled = labeled_rows()
    model = TextClassifier().fit([r["text"] for r in labeled], [r["label"] for r in labeled])
    rows = [r for r in shared_rows("messages_timed.csv") if r["time"] >= "2019/1" or r["time"] >= "2019-01"]
    categories = model.predict([f"{r['title']} {r['text']}" for r in rows])
    records = []
    for row, category in zip(rows, categories, strict=True):
        day = parse_time(row["time"]).date()
        if not date(2019, 1, 1) <= day <= date(2019, 12, 31):
            continue
        text = row["title"] + row["text"]
        match = re.search(r"[A-Z]\d+[区县市]", text) or re.search(r"[A-Z][区县市]", text)
        records.append((day, match.group() if match else "未知", str(category)))
    return CountTable.from_records(records, start=date(2019, 1, 1), end=date(2019, 12, 31))


def generated_table(seed: int) -> CountTable:
    rows, _ = DemoGenerator(default_gazetteer(), default_taxonomy(), seed=seed, events_per_day=0.0,
                            surges_per_month=0.0).generate(240, date(2025, 1, 6))
    return CountTable.from_records((datetime.fromisoformat(r["received_at"]).date(), r["district"] or "未知",
                                    r["category_l1"]) for r in rows)


def inject(table: CountTable, rng: np.random.Generator, n: int,
           scale: tuple[float, float] = (1.5, 3.5)) -> tuple[CountTable, list[tuple[int, int, int]]]:
    """``n`` outbreaks in distinct cells: (cell, first day, days) over 1–3 days.

    The size scales with the noise of the cell, as in the surveillance
    literature: ``max(2, round(U(1.5, 3.5) * sqrt(mean * days + 1)))`` extra
    cases, so a quiet cell gets 2–4 and a busy one enough to stand out of its
    own variation, never a trivial jump.
    """
    means = table.counts.mean(axis=1)
    counts = table.counts.copy()
    cells, days = counts.shape
    outbreaks = []
    busy = np.zeros_like(counts, dtype=bool)
    while len(outbreaks) < n:
        cell, start, length = rng.integers(cells), rng.integers(WARMUP + 7, days - 4), rng.integers(1, 4)
        if busy[cell, start - 7 : start + length + 7].any():
            continue
        extra = max(2, int(round(rng.uniform(*scale) * np.sqrt(means[cell] * length + 1))))
        split = rng.multinomial(extra, np.ones(length) / length)
        counts[cell, start : start + length] += split
        busy[cell, start - 7 : start + length + 7] = True
        outbreaks.append((int(cell), int(start), int(length)))
    return CountTable(table.cells, table.start, counts), outbreaks


def calibrate(quiet_scores: np.ndarray, rate: float = FALSE_ALARMS) -> float:
    """The lowest threshold whose false alarms on quiet cell-days stay within ``rate`` (ties kept together;
    +inf marks a cell-day flagged whatever the threshold, and takes its share of the budget first)."""
    values = np.sort(quiet_scores[np.isfinite(quiet_scores)])[::-1]
    budget = int(rate * quiet_scores.size) - int(np.isposinf(quiet_scores).sum())
    if budget < 0:
        return float("inf")
    if values.size <= budget:
        return float(values[-1]) if values.size else float("inf")
    candidate = values[budget]  # flagging >= this would exceed the budget by one (or more, with ties)
    above = values[values > candidate]
    return float(above[-1]) if above.size else float("inf")


def evaluate(table: CountTable, outbreaks: list[tuple[int, int, int]]) -> dict[str, dict[str, float]]:
    counts = table.counts
    quiet = np.ones_like(counts, dtype=bool)
    quiet[:, :WARMUP] = False
    for cell, start, length in outbreaks:
        quiet[cell, start : start + length + 7] = False
    results = {}
    for method in (name for name, d in DETECTORS.items() if d.per_cell and getattr(d, "fdr", None) is None):
        score, _, _, default = scores(table, method)
        values = np.where(eligible(counts, method), np.nan_to_num(score, nan=-np.inf), -np.inf)
        as_shipped = values >= default  # what `hotline hotspots` flags with its default threshold
        shipped = {"false alarms per 100 cell-days at the default threshold": 100 * float(as_shipped[quiet].mean()),
                   "sensitivity at the default threshold": float(np.mean([as_shipped[c, s : s + n].any()
                                                                          for c, s, n in outbreaks]))}
        threshold = calibrate(values[quiet])
        flagged = values >= threshold
        fa = float(flagged[quiet].mean())
        found, delays = 0, []
        for cell, start, length in outbreaks:
            hits = np.flatnonzero(flagged[cell, start : start + length])
            if hits.size:
                found += 1
                delays.append(int(hits[0]))
        results[method] = {"threshold": threshold, "false alarms per 100 cell-days": 100 * fa,
                           "sensitivity": found / len(outbreaks),
                           "median delay (days)": float(np.median(delays)) if delays else float("nan"), **shipped}
    return results


RAMP_DAYS = (5, 7)


def inject_ramps(table: CountTable, rng: np.random.Generator, n: int) -> tuple[CountTable, list[tuple[int, int, int]]]:
    """``n`` outbreaks in distinct cells, half 1–3-day bursts (as :func:`inject`) and half steady rises.

    A rise lasts 5 or 7 days and adds ``round(j * s)`` calls on its day ``j`` (1, 2, …) with a slope ``s`` of
    ``U(0.5, 1.0) * sqrt(mean + 1)`` — half to one standard deviation of the cell's day more each day: a quiet
    cell gets 1, 1, 2, 2, 3 … extra calls, a busy one proportionally more, so day 3 of a rise is still within
    two or three standard deviations of normal while the week adds up to far more than any burst.
    """
    means = table.counts.mean(axis=1)
    counts = table.counts.copy()
    cells, days = counts.shape
    outbreaks: list[tuple[int, int, int]] = []
    busy = np.zeros_like(counts, dtype=bool)
    while len(outbreaks) < n:
        ramp = len(outbreaks) % 2 == 1
        length = int(rng.choice(RAMP_DAYS)) if ramp else int(rng.integers(1, 4))
        cell, start = int(rng.integers(cells)), int(rng.integers(WARMUP + 7, days - length - 1))
        if busy[cell, start - 7 : start + length + 7].any():
            continue
        if ramp:
            slope = rng.uniform(0.5, 1.0) * np.sqrt(means[cell] + 1)
            counts[cell, start : start + length] += np.round(slope * np.arange(1, length + 1)).astype(counts.dtype)
        else:
            extra = max(2, int(round(rng.uniform(1.5, 3.5) * np.sqrt(means[cell] * length + 1))))
            counts[cell, start : start + length] += rng.multinomial(extra, np.ones(length) / length)
        busy[cell, start - 7 : start + length + 7] = True
        outbreaks.append((cell, start, length))
    return CountTable(table.cells, table.start, counts), outbreaks


def ramp_candidates() -> dict[str, tuple[NegativeBinomial, float]]:
    """The variants the default was chosen among, each with the CUSUM's share of the false-alarm budget."""
    return {"nb (1–3-day tests, CUSUM k=0.5 with 0.2 of the budget)": (NegativeBinomial("nb"), 0.2),
            "nb, CUSUM with 0.4 of the budget": (NegativeBinomial("nb"), 0.4),
            "nb, CUSUM k=1": (NegativeBinomial("nb", cusum_k=1.0), 0.2),
            "nb, no CUSUM": (NegativeBinomial("nb", slow=False), 0.0),
            "nb, 1–7-day tests": (NegativeBinomial("nb", windows=(2, 3, 5, 7)), 0.2)}


def evaluate_ramps(table: CountTable, outbreaks: list[tuple[int, int, int]]) -> dict[str, dict[str, Any]]:
    """Per method: sensitivity and median delay for bursts and for 5- and 7-day rises, every method's threshold
    set for 1 false alarm per 100 quiet cell-days (for the NB detectors, the tail tests' threshold with the
    CUSUM's alarms counted in the budget first)."""
    from hotline.analytics.hotspots.baseline import fit
    from hotline.analytics.hotspots.detect import MIN_COUNT

    counts = table.counts
    quiet = np.ones_like(counts, dtype=bool)
    quiet[:, :WARMUP] = False
    for cell, start, length in outbreaks:
        quiet[cell, start : start + length + 7] = False
    flags: dict[str, np.ndarray] = {}
    for method in ("ears-c1", "ears-c2", "ears-c3"):
        score = scores(table, method).score
        values = np.nan_to_num(score, nan=-np.inf)
        flags[method] = values >= calibrate(values[quiet])
    base = fit(counts, *table.calendar())
    bounds: dict[str, float] = {}
    for label, (candidate, share) in ramp_candidates().items():
        values = np.where(candidate.eligible(counts), np.nan_to_num(candidate.scores(table, base).score, nan=-np.inf),
                          -np.inf)
        if candidate.slow:  # the CUSUM's bound set for its share of the budget (no reset: conservative), the tail
            cs = cusum(counts.astype(float), base.mu, base.size, candidate.cusum_k, np.inf)  # tests' for the rest
            cs = np.where(candidate.slow_eligible(counts), cs, -np.inf)
            bound = calibrate(cs[quiet], share * FALSE_ALARMS)
            values = np.where(cs >= bound, np.inf, values)
            bounds[label] = bound
        flags[label] = values >= calibrate(values[quiet])
    flags["nb as shipped (α = 0.01, CUSUM bound 6)"] = DETECTORS["nb"].flag(table, None, MIN_COUNT, base)[0]
    results: dict[str, dict[str, Any]] = {}
    kinds = {"bursts": lambda n: n <= 3, **{f"{d}-day rises": (lambda n, d=d: n == d) for d in RAMP_DAYS}}
    for method, flagged in flags.items():
        row = {"false alarms per 100 cell-days": 100 * float(flagged[quiet].mean())}
        if method in bounds:
            row["CUSUM bound"] = bounds[method]
        found_all = []
        for kind, chosen in kinds.items():
            hits = [np.flatnonzero(flagged[c, s : s + n]) for c, s, n in outbreaks if chosen(n)]
            found = [h[0] for h in hits if h.size]
            found_all += [h.size > 0 for h in hits]
            row[f"{kind}: sensitivity"] = len(found) / len(hits)
            row[f"{kind}: median delay (days)"] = float(np.median(found)) if found else float("nan")
            row[f"{kind}: flagged by its third day"] = sum(1 for d in found if d <= 2) / len(hits)
            row[f"{kind}: delays"] = found  # type: ignore[assignment]  # pooled over the replicates below
        row["sensitivity, all"] = float(np.mean(found_all))
        results[method] = row
    return results


def ramps(name: str, table_of: Callable[[int], CountTable], replicates: int) -> dict[str, object]:
    """Bursts and steady rises over ``replicates`` injections: each method's mean with a 95% interval."""
    runs = []
    for k in range(replicates):
        table = table_of(k)
        injected, outbreaks = inject_ramps(table, np.random.default_rng(3026 + k), n=min(300, len(table.cells) * 2))
        runs.append(evaluate_ramps(injected, outbreaks))
    figures: dict[str, object] = {f"{name}: replicates": replicates}
    for method in runs[0]:
        for key in runs[0][method]:
            if key.endswith(": delays"):  # every detected outbreak of every replicate: the median delay itself
                pooled = [d for run in runs for d in run[method][key]]
                figures[f"{name} {method}: {key[: -len(': delays')]}: median delay, all replicates"] = (
                    float(np.median(pooled)) if pooled else float("nan"))
                continue
            values = np.array([run[method][key] for run in runs])
            figures[f"{name} {method}: {key} (mean)"] = float(np.nanmean(values))
    for method in ramp_candidates():
        gains = 100 * np.array([run[method]["sensitivity, all"] - run["ears-c2"]["sensitivity, all"] for run in runs])
        half = 1.96 * gains.std(ddof=1) / np.sqrt(len(gains)) if len(gains) > 1 else float("nan")
        figures[f"{name} {method}: gain over EARS C2, all (points; 95% interval)"] = (
            f"{gains.mean():.1f} ({gains.mean() - half:.1f} to {gains.mean() + half:.1f})")
    return figures


def street_rates() -> tuple[list[tuple[str, str]], np.ndarray]:
    """Street × level-2 cells and their daily rates, from 120 generated days at the demo's 150 calls a day."""
    rows, _ = DemoGenerator(default_gazetteer(), default_taxonomy(), seed=21, events_per_day=0.0,
                            surges_per_month=0.0).generate(120, date(2025, 1, 6))
    table = CountTable.from_records((datetime.fromisoformat(r["received_at"]).date(),
                                     cell_area(r["district"], r["street"]), r["category_l2"] or UNCATEGORISED)
                                    for r in rows)
    return table.cells, table.counts.mean(axis=1)


def noise_table(cells: list[tuple[str, str]], rates: np.ndarray, rng: np.random.Generator,
                days: int = 200) -> CountTable:
    """Pure noise: Poisson counts at each cell's rate, weekends at 60% (nothing to find)."""
    from hotline.calendar import day_features

    start = date(2025, 3, 3)
    dow, _ = day_features([start + timedelta(days=i) for i in range(days)])
    return CountTable(cells, start, rng.poisson(np.outer(rates, np.where(dow >= 5, 0.6, 1.0))))


def streets(replicates: int) -> dict[str, object]:
    """Street-level false alarms on pure noise (every alert is false: the share of days with any alert is
    what a false discovery rate of 5% promises to keep under 5%), then the realised false discovery rate and
    the sensitivity with outbreaks injected, of the usual size (as :func:`inject`) and large (5–10 standard
    deviations); per cell (nb) against across cells (nb-fdr)."""
    from hotline.analytics.hotspots.baseline import fit
    from hotline.analytics.hotspots.detect import FDR, MIN_COUNT

    cells, rates = street_rates()
    figures: dict[str, object] = {"street cells": len(cells), "promised false discovery rate": FDR}
    for density, scale in (("demo density (150 calls a day)", 1.0), ("city density (5,500 calls a day)", 5500 / 150)):
        runs: dict[str, list[dict[str, float]]] = {"nb": [], "nb-fdr": []}
        for k in range(replicates):
            rng = np.random.default_rng(4026 + k)
            noise = noise_table(cells, rates * scale, rng)
            noise_base = fit(noise.counts, *noise.calendar())
            row: dict[str, dict[str, float]] = {}
            for method in runs:
                flagged = DETECTORS[method].flag(noise, None, MIN_COUNT, noise_base)[0][:, WARMUP:]
                row[method] = {"pure noise: days with any alert (%)": 100 * float(flagged.any(axis=0).mean()),
                               "pure noise: alerts per day": float(flagged.sum(axis=0).mean())}
            for size, scale_sd in (("usual outbreaks", (1.5, 3.5)), ("large outbreaks", (5.0, 10.0))):
                injected, outbreaks = inject(noise, rng, n=300, scale=scale_sd)
                true = np.zeros_like(injected.counts, dtype=bool)
                quiet = np.ones_like(injected.counts, dtype=bool)
                for cell, start, length in outbreaks:
                    true[cell, start : start + length] = True
                    quiet[cell, start : start + length + 7] = False
                quiet[:, :WARMUP] = False
                base = fit(injected.counts, *injected.calendar())
                for method in runs:
                    hit = DETECTORS[method].flag(injected, None, MIN_COUNT, base)[0]
                    false, found = int((hit & quiet).sum()), int((hit & true).sum())
                    row[method][f"{size}: realised false discovery rate"] = (
                        false / (false + found) if false + found else float("nan"))
                    row[method][f"{size}: sensitivity"] = float(np.mean([hit[c, s : s + n].any()
                                                                         for c, s, n in outbreaks]))
            for method in runs:
                runs[method].append(row[method])
        for method, rows in runs.items():
            for key in rows[0]:
                values = np.array([r[key] for r in rows])
                values = values[np.isfinite(values)]  # a realised FDR needs an alert
                half = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
                figures[f"{density} {method}: {key}"] = f"{values.mean():.3f} (± {half:.3f})"
    return figures


def detection(name: str, table_of: Callable[[int], CountTable], replicates: int) -> dict[str, object]:
    """Sensitivity of every method over ``replicates`` independent injections (and, for generated data,
    independently generated tables): one draw of a few hundred outbreaks moves the gain by ±5 points."""
    figures: dict[str, object] = {}
    runs: list[dict[str, dict[str, float]]] = []
    for k in range(replicates):
        table = table_of(k)
        injected, outbreaks = inject(table, np.random.default_rng(2026 + k), n=min(300, len(table.cells) * 2))
        runs.append(evaluate(injected, outbreaks))
        if k == 0:
            figures[f"{name}: cells × days"] = f"{len(table.cells)} × {table.counts.shape[1]}"
            figures[f"{name}: mean cases per cell-day"] = float(table.counts.mean())
            figures[f"{name}: outbreaks injected per replicate"] = len(outbreaks)
    figures[f"{name}: replicates"] = replicates
    for method in runs[0]:
        for key in runs[0][method]:
            figures[f"{name} {method}: {key} (mean)"] = float(np.nanmean([run[method][key] for run in runs]))
    gains = 100 * np.array([run["nb"]["sensitivity"] - run["ears-c2"]["sensitivity"] for run in runs])
    half = 1.96 * gains.std(ddof=1) / np.sqrt(len(gains)) if len(gains) > 1 else float("nan")
    figures[f"{name}: sensitivity gain over EARS C2 (points, mean)"] = float(gains.mean())
    figures[f"{name}: gain 95% interval"] = f"{gains.mean() - half:.1f} to {gains.mean() + half:.1f}"
    figures[f"{name}: gain lowest / highest replicate"] = f"{gains.min():.1f} / {gains.max():.1f}"
    return figures


def episode_ranking(seeds: Sequence[int]) -> dict[str, object]:
    """Precision@10 of the episode list and of the alerts by score, and the big planted surges in the top 20."""
    from hotline.analytics.hotspots.baseline import fit
    from hotline.analytics.hotspots.episodes import episodes

    gazetteer, taxonomy = default_gazetteer(), default_taxonomy()
    p10, p10_alerts, big_found, big_total, lists = [], [], 0, 0, []
    for seed in seeds:
        rows, truth = DemoGenerator(gazetteer, taxonomy, seed=seed).generate(240, date(2025, 1, 6))
        day_of = {r["id"]: date.fromisoformat(r["received_at"][:10]) for r in rows}
        table = CountTable.from_records((day_of[r["id"]], cell_area(r["district"]), r["category_l2"] or r["category_l1"])
                                        for r in rows)
        end = table.days[-1]
        start = end - timedelta(days=89)
        truths: list[tuple[tuple[str, str], date, date, float]] = []  # (cell, first, last, excess calls)
        for s in truth.surges:
            first, last = date.fromisoformat(s.start), date.fromisoformat(s.end)
            if last < start or (cell_area(s.district), s.category_l2) not in table.cells:
                continue
            row = table.cells.index((cell_area(s.district), s.category_l2))
            t0 = table.day_index(first)
            normal = float(table.counts[row, max(0, t0 - 28) : t0].mean()) if t0 else 0.0
            truths.append(((cell_area(s.district), s.category_l2), first, last,
                           len(s.case_ids) - normal * ((last - first).days + 1)))
        planted = list(truths)
        for e in truth.events:
            days = sorted(day_of[c] for c in e.case_ids if c in day_of)
            if len(days) >= 5 and days[-1] >= start:
                truths.append(((cell_area(e.district), e.category_l2), days[0], days[-1], float(len(days))))

        def true(cell: tuple[str, str], first: date, last: date) -> bool:
            return any(cell == c and first <= b + timedelta(days=2) and last >= a - timedelta(days=2)
                       for c, a, b, _ in truths)

        for month in range(3):  # three months' lists, as a monthly report shows them
            first_day, last_day = start + timedelta(days=30 * month), start + timedelta(days=30 * month + 29)
            base = fit(table.counts, *table.calendar())
            alerts = detect(table, first_day, last_day, baseline=base)
            found = episodes(alerts, table=table, expected=base.mu)
            p10.append(sum(true((e.area, e.category), e.start, e.end) for e in found[:10]) / 10)
            by_score = sorted(alerts, key=lambda a: -a.score)[:10]
            p10_alerts.append(sum(true((a.area, a.category), a.date, a.date) for a in by_score) / 10)
            for cell, first, last, excess in planted:
                if excess >= 10 and first_day <= first and last <= last_day:  # planted within this month
                    big_total += 1
                    big_found += any((e.area, e.category) == cell and e.start <= last + timedelta(days=2)
                                     and e.end >= first - timedelta(days=2) for e in found[:20])
            lists.append(len(found))
    return {"episodes: seeds × months": f"{len(seeds)} × 3", "episodes: precision@10 (mean)": float(np.mean(p10)),
            "episodes: precision@10 (min)": float(np.min(p10)),
            "episodes: baseline, alerts by score: precision@10 (mean)": float(np.mean(p10_alerts)),
            "episodes: planted surges of 10+ excess calls in the top 20": f"{big_found} of {big_total}",
            "episodes: episodes per month (mean)": float(np.mean(lists))}


def event_clustering() -> dict[str, object]:
    """Event clustering on generated data (a seed the defaults were not chosen on), at the demo's density and at a
    city of five million's (5,480 calls a day, and 36 times as many incidents among them); over 12 days of the
    city also without the events' maximum span (the baseline: a place's steady calls chain while they come)."""
    figures: dict[str, object] = {}
    gazetteer, taxonomy = default_gazetteer(), default_taxonomy()
    builder = CaseBuilder(gazetteer, taxonomy, max_chars=4000, source="bench.csv")
    tokenize = default_segmenter().tokens
    # (label, calls a day, days generated, the share of them that is history, the clusterer's settings)
    runs = (("events", 150.0, 90, 1 / 3, {}), ("events at a city's density", 5480.0, 4, 1 / 3, {}),
            ("events at a city's density, 12 days", 5480.0, 14, 1 / 7, {}),
            ("baseline: 12 days without a maximum span", 5480.0, 14, 1 / 7, {"max_span": None}))
    for label, rate, days, history_share, params in runs:
        rows, truth = DemoGenerator(gazetteer, taxonomy, seed=31, rate=rate,  # incidents grow with the city
                                    events_per_day=rate / 150.0).generate(days, date(2025, 4, 1))
        columns = ColumnMap().resolve(list(rows[0]))
        cases = [builder.build(r, columns) for r in rows]
        cut = int(len(cases) * history_share)
        history, period = cases[:cut], cases[cut:]
        clusterer = EventClusterer(tokenize, gazetteer.landmarks, **params).fit(f"{c.title} {c.text}" for c in history)
        started = time.perf_counter()
        assigned = clusterer.assign_many(period)
        elapsed = time.perf_counter() - started
        found = dict(zip([c.id for c in sorted(period, key=lambda c: (c.received_at, c.id))], assigned, strict=True))
        true = {c.id: c.id for c in period}
        for event in truth.events:
            for case_id in event.case_ids:
                if case_id in true:
                    true[case_id] = event.id
        p, r, f1 = bcubed(true, found)
        figures.update({f"{label}: calls a day": rate, f"{label}: B-cubed precision": p,
                        f"{label}: B-cubed recall": r, f"{label}: B-cubed F1": f1,
                        f"{label}: ARI": adjusted_rand(true, found), f"{label}: assignment cases/s": len(period) / elapsed,
                        f"{label}: true events": sum(1 for e in truth.events if e.case_ids and e.case_ids[0] in true),
                        f"{label}: found events of 3+ cases": len(clusterer.largest(3)),
                        f"{label}: the largest found event (calls)": max(e.size for e in clusterer.events.values())})

    return figures


def main() -> None:
    replicates = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--replicates=")), 10)
    if "--episodes" in sys.argv:
        report("hotspots-episodes", episode_ranking(range(51, 51 + replicates)))
        return
    if "--events" in sys.argv:
        report("hotspots-events", event_clustering())
        return
    if "--streets" in sys.argv:
        report("hotspots-streets", streets(replicates))
        return
    real = real_table()
    figures: dict[str, object] = {}
    if "--ramps" in sys.argv:
        figures.update(ramps("real", lambda k: real, replicates))
        figures.update(ramps("generated", lambda k: generated_table(seed=21 + k), replicates))
        report("hotspots-ramps", figures)
        return
    figures.update(detection("real", lambda k: real, replicates))
    figures.update(detection("generated", lambda k: generated_table(seed=21 + k), replicates))
    if "--detection" in sys.argv:
        report("hotspots-detection", figures)
        return

    figures.update(event_clustering())
    gazetteer, taxonomy = default_gazetteer(), default_taxonomy()
    builder = CaseBuilder(gazetteer, taxonomy, max_chars=4000, source="bench.csv")
    tokenize = default_segmenter().tokens

    # Forecasts: rolling origins over more than a year of generated calls (so last year's season is there).
    long_rows, _ = DemoGenerator(gazetteer, taxonomy, seed=41).generate(430, date(2024, 9, 2))
    table = CountTable.from_records((datetime.fromisoformat(r["received_at"]).date(), r["district"] or "未知",
                                     r["category_l1"]) for r in long_rows)
    result = backtest(table, horizon=14, step=7, first=70)
    figures.update({"forecast: cells": len(table.cells), "forecast: origins": result.origins,
                    "forecast: MASE": result.mase, "forecast: MASE seasonal naive (baseline)": result.mase_seasonal_naive,
                    "forecast: 80% interval coverage": result.coverage})

    # A full run over one year of ~100 cells: detection for every day, forecast, report.
    columns = ColumnMap().resolve(list(long_rows[0]))
    year_cases = [builder.build(r, columns) for r in long_rows if r["received_at"] >= "2024-10-01"]
    year = CountTable.from_records((c.received_at.date(), cell_area(c.area.district), c.category.l1 if c.category else UNCATEGORISED)
                                   for c in year_cases)
    year = CountTable(year.cells, year.start, year.counts[:, -365:]) if year.counts.shape[1] > 365 else year
    # The report reads what a store keeps on write (counts, word counts, events assigned as calls arrive):
    # filled here, outside the timing, as the service fills it while the calls come in.
    work = Path(tempfile.mkdtemp(prefix="hotline-bench-hotspots-"))
    store = SQLiteStore(f"sqlite:///{work}/year.db", tokenize=tokenize)
    store.upsert(year_cases)
    EventAssigner(store, tokenize, gazetteer.landmarks).run()
    started = time.perf_counter()
    alerts = detect(year, year.days[0], year.days[-1])
    forecast(year, horizon=14)
    end = year.days[-1]
    page = reports.render(reports.build(store, end - timedelta(days=27), end, taxonomy.level1_of,
                                        centers=gazetteer.centers()))
    figures["full run: cells × days"] = f"{len(year.cells)} × {year.counts.shape[1]}"
    figures["full run: alerts over the year"] = len(alerts)
    figures["full run: detection + forecast + report seconds"] = time.perf_counter() - started
    figures["full run: report KiB"] = len(page.encode()) / 1024
    store.close()
    shutil.rmtree(work, ignore_errors=True)
    figures["peak RSS MiB"] = peak_rss_mib()
    report("hotspots", figures)


if __name__ == "__main__":
    main()
