"""Department routing: the model, similar past cases and the city's rules, combined.

For one case the router answers what an agent needs in the moment: the
category, the top departments with probabilities, why (weighted terms,
similar case ids, rule hits, jurisdiction), whether it is urgent, and whether
it is confident enough to dispatch without a person.

The department distribution is a mixture: the department classifier (or,
without one, the category's default departments) half, and half the
departments that led the training cases of the likely categories, so a
department that never handled a category cannot lead it on the strength of
a few words. Similar past cases then vote, each by its similarity, its
recency (half-life ``half_life_days``) and how well its category agrees
with this call's; their share of the mass grows with the evidence, so one
weak neighbour moves little. The 属地 class is resolved to the office of the
case's district. Keyword rules (燃气泄漏 → gas company and emergency
management) then take half of the mass, so their departments always lead;
urgent rules never auto-dispatch. The first department leads (主办); those
that co-handled the category's cases are marked 协办.

A call in which no category finds its words ("hello", "我想问个事") is
*unclear*: no category, no department, ask the caller.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from classifiers.dataset import prepare_text
from classifiers.model import LOCAL
from classifiers.similar import Neighbour
from hotline.case import Area
from hotline.datafiles import toml_data
from hotline.errors import InvalidInput
from hotline.places import Gazetteer
from hotline.taxonomy import Taxonomy
from hotline.text import transcript
from hotline.text.transcript import Speaker
from hotline.text.words import reason_term

#: Similar cases a routing answer shows (the rest of the ten that vote stay inside).
SHOWN_NEIGHBOURS = 5
#: How far back similar cases are looked for: departments and practice change.
NEIGHBOUR_DAYS = 365 * 2


class SimilarFinder(Protocol):
    def similar(self, text: str, k: int = 5, district: str = "", since: datetime | None = None,
                exclude: str = "") -> list[Neighbour]: ...


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    keywords: tuple[str, ...]
    departments: tuple[str, ...]
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class RoutingRules:
    rules: tuple[Rule, ...]

    @classmethod
    def load(cls, path: Path | None = None) -> RoutingRules:
        with toml_data(path, "routing_rules.toml", "routing rules") as data:
            rules = tuple(Rule(r["name"], tuple(r["keywords"]), tuple(r["departments"]), bool(r.get("urgent", False)))
                          for r in data.get("rules", []))
        return cls(rules)

    def hits(self, text: str) -> list[tuple[Rule, str]]:
        """Each rule whose keyword occurs in ``text``, with the first keyword found."""
        found = []
        for rule in self.rules:
            keyword = next((k for k in rule.keywords if k in text), None)
            if keyword:
                found.append((rule, keyword))
        return found


LEAD, CO_HANDLER, ALTERNATIVE = "主办", "协办", "备选"
#: A department that co-handled at least this share of a category's cases is suggested as 协办.
CO_HANDLING_SHARE = 0.2
UNCLEAR = "诉求不明确：请询问来电人具体反映什么问题"
#: The encoder was busy (the service bounds its queue): the linear model answered an unsure call alone.
ENCODER_BUSY = "编码器繁忙：仅按词语模型判断，请人工确认"
#: Where 属地 goes when the case's district is not known.
UNKNOWN_OFFICE = "属地（待确认区县）"


@dataclass
class DepartmentSuggestion:
    department: str
    probability: float
    reasons: list[str] = field(default_factory=list)
    role: str = ALTERNATIVE


@dataclass
class Routing:
    """The answer for one case."""

    text: str
    area: Area
    category: str
    category_probability: float
    categories: list[tuple[str, float]]
    departments: list[DepartmentSuggestion]
    terms: list[tuple[str, float]]
    similar: list[Neighbour]
    rules: list[str]
    urgent: bool
    auto_dispatch: bool
    needs_person: list[str]
    model_version: str
    chars_read: int = 0
    chars_total: int = 0
    unclear: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "area": {"district": self.area.district, "street": self.area.street},
            "category": self.category,
            "category_probability": round(self.category_probability, 4),
            "categories": [{"category": c, "probability": round(p, 4)} for c, p in self.categories],
            "departments": [{"department": d.department, "probability": round(d.probability, 4), "reasons": d.reasons,
                             "role": d.role} for d in self.departments],
            "unclear": self.unclear,
            "terms": [{"term": t, "weight": round(w, 4)} for t, w in self.terms],
            "similar": [n.to_dict() for n in self.similar],
            "rules": self.rules,
            "urgent": self.urgent,
            "auto_dispatch": self.auto_dispatch,
            "needs_person": self.needs_person,
            "model_version": self.model_version,
            "read": {"chars": self.chars_read, "of": self.chars_total, "truncated": self.chars_read < self.chars_total},
        }


class RoutingModel(Protocol):
    """What the router needs of a model; the linear :class:`CaseModel` implements it, and so can a transformer
    or an ensemble, without the router knowing how features, probabilities or explanations are made."""

    similar_: Any

    def features(self, text: str) -> Any: ...

    def batch_features(self, texts: Sequence[str]) -> list[Any]: ...

    def category_scores(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
        """(classes, probabilities) of the categories."""
        ...

    def department_scores(self, features: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """(departments, probabilities) of the lead department, or None when the model has no department part."""
        ...

    def explain(self, features: Any, category: str, k: int = 6) -> list[tuple[str, float]]: ...

    def lead(self, departments: Sequence[str]) -> str: ...

    def unclear(self, features: Any) -> bool:
        """No category finds its words in the text."""
        ...

    def usual_departments(self, category: str) -> dict[str, float]:
        """Share of the category's past cases each department led."""
        ...

    def co_handlers(self, category: str) -> dict[str, float]:
        """Share of the category's past cases each department co-handled."""
        ...


class Router:
    """Routes one case at a time (and batches) with any :class:`RoutingModel`."""

    def __init__(
        self,
        model: RoutingModel,
        taxonomy: Taxonomy,
        gazetteer: Gazetteer,
        rules: RoutingRules | None = None,
        similar: SimilarFinder | None = None,
        model_version: str = "",
        threshold: float = 0.9,
        top_k: int = 3,
        similar_weight: float = 0.3,
        half_life_days: float = 180.0,
        read_chars: int = 3000,
    ) -> None:
        self.model = model
        self.taxonomy = taxonomy
        self.gazetteer = gazetteer
        self.rules = rules or RoutingRules.load()
        self.similar = similar if similar is not None else model.similar_
        self.model_version = model_version
        self.threshold = threshold
        self.top_k = top_k
        self.similar_weight = similar_weight
        self.half_life_days = half_life_days
        self.read_chars = read_chars
        self.offices = gazetteer.offices()

    def prepare(self, raw: str) -> tuple[str, Area, int]:
        """A transcript or message → the caller's masked account (at most ``read_chars``), its area, its length.

        A 20,000-character account cost ~100 ms of the service's one event
        loop and moved every other agent's p99 from 19 to 500 ms; what decides
        a category is said early (and the request at the end), so the head and
        the tail are read, and the answer says how much.
        """
        text = prepare_text(raw)
        if not text.strip():
            said = any(t.speaker is Speaker.CALLER and t.text.strip() for t in transcript.parse(raw).turns)
            if not said:
                raise InvalidInput("the transcript has no words from the caller")
            return "", Area(""), 0  # only greetings and fillers ("喂，你好"): unclear, ask the caller
        total = len(text)
        if total > self.read_chars:
            head = self.read_chars * 3 // 4
            text = f"{text[:head]}\n…\n{text[total - (self.read_chars - head):]}"
        return text, self.gazetteer.extract(text), total

    @property
    def runs_encoder(self) -> bool:
        """Whether some calls wait for a fine-tuned encoder (milliseconds to tens of them, outside the GIL)."""
        return bool(getattr(self.model, "runs_encoder", False))

    def route(self, raw: str, area: Area | None = None, at: datetime | None = None) -> Routing:
        text, found, total = self.prepare(raw)
        return self._route(text, area if area else found, at or datetime.now(),
                           self.model.features(text) if text else None, total)

    def route_many(self, raws: list[str]) -> list[Routing]:
        """Batch routing: the classifiers see the whole batch at once."""
        prepared = [self.prepare(raw) for raw in raws]
        features = self.model.batch_features([t for t, _, _ in prepared])
        now = datetime.now()
        return [self._route(text, area, now, features[i], total) for i, (text, area, total) in enumerate(prepared)]

    def _route(self, text: str, area: Area, at: datetime, features: Any, account_chars: int) -> Routing:
        if not text or self.model.unclear(features):
            return Routing(text=text, area=area, category="", category_probability=0.0, categories=[], departments=[],
                           terms=[], similar=[], rules=[], urgent=False, auto_dispatch=False, needs_person=[UNCLEAR],
                           model_version=self.model_version, chars_read=min(account_chars, self.read_chars),
                           chars_total=account_chars, unclear=True)
        classes, category_proba = self.model.category_scores(features)
        department_proba = self.model.department_scores(features)
        order = np.argsort(-category_proba)[:3]
        categories = [(str(classes[i]), float(category_proba[i])) for i in order]
        best = categories[0][0]
        reasons: dict[str, list[str]] = defaultdict(list)
        scores = self._model_scores(categories, classes, category_proba, department_proba, reasons)
        scores = self._with_usual(scores, categories, reasons)

        neighbours = self._neighbours(text, at)
        if neighbours:
            agreement = {str(c): float(p) for c, p in zip(classes, category_proba, strict=True)}
            top = max(agreement.values())
            votes: dict[str, float] = defaultdict(float)
            voters: dict[str, int] = defaultdict(int)
            for n in neighbours:
                if n.departments:
                    age = (at - n.received_at).days if n.received_at else 0
                    agree = 1.0 if n.category == best else min(1.0, agreement.get(n.category, 0.0) / top)
                    lead = self.model.lead(n.departments)
                    votes[lead] += n.similarity * agree * math.exp(-math.log(2) * max(age, 0) / self.half_life_days)
                    voters[lead] += 1
            total = sum(votes.values())
            if total > 0:
                share = self.similar_weight * total / (total + 1.0)
                scores = {d: (1 - share) * p for d, p in scores.items()}
                for d, v in votes.items():
                    scores[d] = scores.get(d, 0.0) + share * v / total
                    reasons[d].append(f"相似工单 {voters[d]} 件")

        needs_person: list[str] = [ENCODER_BUSY] if getattr(features, "shed", False) else []
        if LOCAL in scores:
            office = self.offices.get(area.district)
            p = scores.pop(LOCAL)
            if office:
                scores[office] = scores.get(office, 0.0) + p
                reasons[office].append(f"属地管辖：{area.district}")
            else:
                if p >= max(scores.values(), default=0.0):
                    needs_person.append("属地不明：请确认所在区县")
                scores[UNKNOWN_OFFICE] = p

        hits = self.rules.hits(text)
        urgent = any(rule.urgent for rule, _ in hits)
        if hits:
            rule_departments = list(dict.fromkeys(d for rule, _ in hits for d in rule.departments))
            scores = {d: 0.5 * p for d, p in scores.items()}
            for d in rule_departments:
                scores[d] = scores.get(d, 0.0) + 0.5 / len(rule_departments)
            for rule, keyword in hits:
                for d in rule.departments:
                    reasons[d].append(f"规则「{rule.name}」：{keyword}")
        if urgent:
            needs_person.append("紧急事项：请立即电话转派")

        total = sum(scores.values()) or 1.0
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        shown = ranked[: self.top_k]
        usual = next(iter(self.model.usual_departments(best)), None)
        usual = self._resolve_local(usual, area) if usual else None
        if usual and usual in scores and all(d != usual for d, _ in shown):
            shown = [*shown[: self.top_k - 1], (usual, scores[usual])]  # the category's own department is always offered
        co = self.model.co_handlers(best)
        for d, p in shown:  # every department offered says why: at least the weight all the evidence gave it
            if not reasons.get(d):
                reasons[d].append(f"综合各项依据 {percent(p / total)}")
        departments = [DepartmentSuggestion(d, float(p / total), reasons.get(d, []),
                                            LEAD if i == 0 else CO_HANDLER if co.get(d, 0.0) >= CO_HANDLING_SHARE else ALTERNATIVE)
                       for i, (d, p) in enumerate(shown)]
        confident = bool(departments) and departments[0].probability >= self.threshold
        if not confident:
            if departments:
                best_shown, needed = percents(departments[0].probability, self.threshold)
                needs_person.append(f"把握不足：最高 {best_shown}，阈值 {needed}")
            else:
                needs_person.append("没有可选部门")
        return Routing(
            text=text, area=area, category=best, category_probability=categories[0][1], categories=categories,
            departments=departments, terms=readable_terms(self.model.explain(features, best, k=16)), similar=neighbours[:SHOWN_NEIGHBOURS],
            rules=[rule.name for rule, _ in hits], urgent=urgent, auto_dispatch=confident and not needs_person,
            needs_person=needs_person, model_version=self.model_version,
            chars_read=min(account_chars, self.read_chars), chars_total=account_chars,
        )

    def _model_scores(self, categories: list[tuple[str, float]], classes: np.ndarray, category_proba: np.ndarray,
                      department_proba: tuple[np.ndarray, np.ndarray] | None,
                      reasons: dict[str, list[str]]) -> dict[str, float]:
        if department_proba is not None:
            departments, proba = department_proba
            given = {str(d): float(p) for d, p in zip(departments, proba, strict=True)}
            for d, p in sorted(given.items(), key=lambda kv: -kv[1])[:3]:
                reasons[d].append(f"模型 {percent(p)}")
            return given
        scores: dict[str, float] = defaultdict(float)
        for label, p in zip(classes, category_proba, strict=True):
            l2 = str(label).split("/")[-1]
            defaults = list(self.taxonomy.categories[l2].departments) if l2 in self.taxonomy.categories else []
            if l2 in self.taxonomy.jurisdiction:
                defaults.insert(0, LOCAL)
            for rank, d in enumerate(defaults):
                scores[d] += p * (0.7 if rank == 0 else 0.3 / max(1, len(defaults) - 1))
        for d in sorted(scores, key=lambda k: -scores[k])[:1]:
            reasons[d].append(f"类别「{categories[0][0]}」的默认承办单位")
        return dict(scores)

    def _with_usual(self, scores: dict[str, float], categories: list[tuple[str, float]],
                    reasons: dict[str, list[str]]) -> dict[str, float]:
        """Half the model's department scores, half the departments that led the likely categories' cases."""
        usual: dict[str, float] = defaultdict(float)
        for category, p in categories:
            for d, share in self.model.usual_departments(category).items():
                usual[d] += p * share
        if not usual:
            return scores
        mass = sum(usual.values())
        mixed = {d: 0.5 * p for d, p in scores.items()}
        for d, p in usual.items():
            mixed[d] = mixed.get(d, 0.0) + 0.5 * p / mass
        category, _ = categories[0]
        for d, share in list(self.model.usual_departments(category).items())[:2]:
            reasons[d].append(f"「{category.split('/')[-1]}」类工单 {share:.0%} 由其承办")
        return mixed

    def _resolve_local(self, department: str, area: Area) -> str:
        return self.offices.get(area.district, UNKNOWN_OFFICE) if department == LOCAL else department

    def shown_neighbours(self, text: str, k: int = SHOWN_NEIGHBOURS, district: str = "", exclude: str = "",
                         at: datetime | None = None) -> list[Neighbour]:
        """The past cases routing shows beside ``text`` (a case's page asks for the same, less the case itself)."""
        if self.similar is None:
            return []
        since = (at or datetime.now()) - timedelta(days=NEIGHBOUR_DAYS)
        found = self.similar.similar(text, k=SHOWN_NEIGHBOURS + 1, district=district, since=since)
        return [n for n in found if n.case_id != exclude][:min(k, SHOWN_NEIGHBOURS)]

    def _neighbours(self, text: str, at: datetime) -> list[Neighbour]:
        if self.similar is None or self.similar_weight <= 0:
            return []
        return self.similar.similar(text, k=10, since=at - timedelta(days=NEIGHBOUR_DAYS))


def readable_terms(terms: Sequence[tuple[str, float]], k: int = 6) -> list[tuple[str, float]]:
    """The model's terms an agent can use as reasons (:func:`hotline.text.words.reason_term`), at most ``k``:
    "好像", "的好像" and "气了，" are features of a linear model, not reasons."""
    kept: dict[str, float] = {}
    for term, weight in terms:
        shown = reason_term(term)
        if shown is not None:
            kept[shown] = kept.get(shown, 0.0) + weight
    return sorted(kept.items(), key=lambda kv: -kv[1])[:k]


def percent(p: float) -> str:
    """A probability as a percentage that does not claim what it is not: "不足 1%" rather than "0%"."""
    return "不足 1%" if 0 < p < 0.005 else f"{p:.0%}"


def percents(a: float, b: float) -> tuple[str, str]:
    """Two probabilities with as many decimals as it takes to tell them apart (0.9899 against 0.9913 is
    "99.0%" against "99.1%", not "99%" against "99%")."""
    for digits in range(3):
        shown = f"{100 * a:.{digits}f}%", f"{100 * b:.{digits}f}%"
        if shown[0] != shown[1] or a == b:
            return shown
    return f"{100 * a:.2f}%", f"{100 * b:.2f}%"
