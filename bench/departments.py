"""Departments on generated calls: top-1, top-3, and how often the lead is one the category usually has.

A routing model (categories, departments, similar cases) is trained on the
first 80% of 120 days of generated calls and routes the last 20% as agents
would (area and time known). The baseline in the same run is the department
classifier alone (its 属地 class resolved to the case's district office), the
part the router's department answer used to lean on most.

    python bench/departments.py
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import report


def main() -> None:
    from classifiers.dataset import prepare_text
    from classifiers.model import LOCAL, CaseModel
    from classifiers.router import Router
    from hotline.case import Area
    from hotline.demo.generator import DemoGenerator
    from hotline.places import default_gazetteer
    from hotline.taxonomy import default_taxonomy

    gazetteer, taxonomy = default_gazetteer(), default_taxonomy()
    rows, _ = DemoGenerator(gazetteer, taxonomy, seed=7).generate(120, date(2025, 3, 1))
    cut = int(len(rows) * 0.8)
    train, test = rows[:cut], rows[cut:]
    texts = [prepare_text(r["transcript"]) for r in train]
    model = CaseModel().fit(
        texts, [f"{r['category_l1']}/{r['category_l2']}" for r in train],
        departments=[tuple(r["department"].split("|")) for r in train], ids=[r["id"] for r in train],
        times=[datetime.fromisoformat(r["received_at"]) for r in train], districts=[r["district"] for r in train],
        district_offices=list(gazetteer.offices().values()),
    )
    router = Router(model, taxonomy, gazetteer)
    offices = gazetteer.offices()
    top1 = top3 = usual_first = unclear = 0
    base1 = base3 = 0
    for r in test:
        truth = r["department"].split("|")[0]
        routing = router.route(r["transcript"], area=Area(r["district"]), at=datetime.fromisoformat(r["received_at"]))
        if routing.unclear:
            unclear += 1
            continue
        named = [d.department for d in routing.departments]
        top1 += named[:1] == [truth]
        top3 += truth in named
        usual = {offices.get(r["district"], d) if d == LOCAL else d for d in model.usual_departments(routing.category)}
        usual_first += named[0] in usual
        classes, proba = model.department_scores(model.features(prepare_text(r["transcript"])))
        ranked = [offices.get(r["district"], str(c)) if c == LOCAL else str(c) for c in classes[np.argsort(-proba)[:3]]]
        base1 += ranked[:1] == [truth]
        base3 += truth in ranked
    n = len(test)
    report("departments", {
        "calls routed (last 20% of 120 generated days)": n,
        "baseline, department classifier alone: top-1": base1 / n,
        "baseline, department classifier alone: top-3": base3 / n,
        "router: top-1": top1 / n,
        "router: top-3": top3 / n,
        "router: first department among the category's usual ones": usual_first / n,
        "router: answered unclear": unclear / n,
    })


if __name__ == "__main__":
    main()
