"""Labeled examples from the store: imported labels and the labels agents confirmed."""

from __future__ import annotations

from datetime import datetime

from classifiers.dataset import Examples
from hotline.errors import InvalidInput
from hotline.store.base import CaseQuery, CaseStore


def label_of(category: object) -> str:
    """The label a model learns: level 1 / level 2 (level 1 alone where that is all there is)."""
    l1, l2 = getattr(category, "l1", ""), getattr(category, "l2", "")
    return f"{l1}/{l2}" if l2 else l1


def examples_from_store(store: CaseStore, since: datetime | None = None) -> Examples:
    """Every case whose category is ground truth (imported or confirmed), with its departments."""
    out = Examples()
    for case in store.iter_cases(CaseQuery(start=since)):
        if case.category is None or case.category_source is None or not case.category_source.is_truth:
            out.skipped += 1
            continue
        out.texts.append(case.text)
        out.labels.append(label_of(case.category))
        out.ids.append(case.id)
        out.times.append(case.received_at)
        out.districts.append(case.area.district)
        truth = case.departments_source is not None and case.departments_source.is_truth
        out.departments.append(case.departments if truth else ())
        out.rows.append(len(out.texts))
    if not out.texts:
        raise InvalidInput("the store holds no labeled cases to train on")
    return out
