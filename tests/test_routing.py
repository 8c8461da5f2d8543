"""Routing as an agent meets it: a model trained on demo calls, saved, loaded, asked about a call."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifiers import persist
from classifiers.dataset import prepare_text
from classifiers.evaluate import dispatch_threshold, evaluation
from classifiers.model import LOCAL, CaseModel
from classifiers.router import Router, RoutingRules
from hotline.case import Area
from hotline.errors import InvalidInput, NotFound
from hotline.places import Gazetteer
from hotline.taxonomy import Taxonomy


@pytest.fixture(scope="module")
def trained(demo: tuple[list[dict[str, Any]], Any], gazetteer: Gazetteer) -> CaseModel:
    rows = demo[0][:5000]
    texts = [prepare_text(r["transcript"]) for r in rows]
    return CaseModel().fit(
        texts,
        [f"{r['category_l1']}/{r['category_l2']}" for r in rows],
        departments=[tuple(r["department"].split("|")) for r in rows],
        ids=[r["id"] for r in rows],
        times=[datetime.fromisoformat(r["received_at"]) for r in rows],
        districts=[r["district"] for r in rows],
        district_offices=list(gazetteer.offices().values()),
    )


@pytest.fixture(scope="module")
def router(trained: CaseModel, taxonomy: Taxonomy, gazetteer: Gazetteer) -> Router:
    return Router(trained, taxonomy, gazetteer, model_version="test-1", threshold=0.6)


@pytest.mark.slow
def test_district_offices_are_learned_as_jurisdiction(trained: CaseModel) -> None:
    assert LOCAL in trained.departments_.classes_
    assert not any(str(c).endswith(("区政府", "市政府")) for c in trained.departments_.classes_)


def test_route_a_transcript(router: Router) -> None:
    assert not router.runs_encoder  # the linear model routes on the service's event loop
    call = "坐席：您好，12345热线\n市民：喂，我们海陵区城东街道梅兰新村停水了，一点水都没得，我电话13812345678\n坐席：好的"
    routing = router.route(call, at=datetime(2025, 9, 1))
    assert routing.category == "城乡建设/供水"
    assert routing.area == Area("海陵区", "城东街道")
    assert routing.departments[0].department == "自来水公司"
    assert abs(sum(d.probability for d in routing.departments) - 1.0) <= 0.3
    assert routing.terms and routing.similar
    assert all(n.case_id.startswith("TZ") for n in routing.similar)
    assert "13812345678" not in json.dumps(routing.to_dict(), ensure_ascii=False)
    assert routing.model_version == "test-1"


def test_jurisdiction_goes_to_the_office_of_the_area(router: Router, gazetteer: Gazetteer) -> None:
    routing = router.route("溱潼镇那边有人私自搭建棚子，违章搭建，城管来过一次又继续搭")
    names = [d.department for d in routing.departments]
    assert routing.area.district == "姜堰区"
    assert gazetteer.offices()["姜堰区"] in names


def test_gas_leak_rule_leads_and_is_urgent(router: Router) -> None:
    routing = router.route("楼道里一股很重的煤气味，好像燃气泄漏了")
    assert {d.department for d in routing.departments[:2]} == {"燃气公司", "应急管理局"}
    assert routing.urgent and not routing.auto_dispatch
    assert "燃气泄漏" in routing.rules
    assert any("规则「燃气泄漏」" in r for d in routing.departments for r in d.reasons)


def test_low_confidence_needs_a_person(router: Router) -> None:
    routing = router.route("我想问一下")
    assert not routing.auto_dispatch and routing.needs_person


def test_batch_routing_matches_single(router: Router) -> None:
    calls = ["小区电梯又坏了，物业不管", "公交车等了半个小时都不来"]
    batch = router.route_many(calls)
    single = [router.route(c) for c in calls]
    assert [b.category for b in batch] == [s.category for s in single]
    assert [b.departments[0].department for b in batch] == [s.departments[0].department for s in single]


@pytest.mark.parametrize("bad", ["", "   ", "坐席：您好，请讲"])
def test_nothing_to_route_is_a_clear_error(router: Router, bad: str) -> None:
    with pytest.raises(InvalidInput):
        router.route(bad)


def test_saved_model_predicts_the_same_after_loading(trained: CaseModel, tmp_path: Path) -> None:
    manifest = persist.Manifest.new("linear", data_size=5000, metrics={"macro_f1": 0.9})
    persist.save(tmp_path / "m", trained, manifest)
    loaded, read = persist.load(tmp_path / "m")
    texts = ["小区停水了", "楼下烧烤油烟太大", "工资拖了三个月没发"]
    np.testing.assert_array_equal(loaded.category_.predict_proba(texts), trained.category_.predict_proba(texts))
    np.testing.assert_array_equal(loaded.department_proba(loaded.category_.transform_texts(texts)),
                                  trained.department_proba(trained.category_.transform_texts(texts)))
    assert read.version == manifest.version and read.libraries["scikit-learn"]


def test_loading_refuses_foreign_types_and_missing_models(tmp_path: Path) -> None:
    import collections

    import skops.io

    target = tmp_path / "evil"
    target.mkdir()
    skops.io.dump({"f": collections.OrderedDict, "x": Path("/etc")}, target / persist.MODEL_FILE)
    (target / persist.MANIFEST_FILE).write_text(json.dumps({"kind": "linear", "version": "v", "created": "now"}))
    with pytest.raises(InvalidInput, match="do not load"):
        persist.load(target)
    with pytest.raises(NotFound):
        persist.load(tmp_path / "nothing")


def test_routing_rules_are_data(taxonomy: Taxonomy) -> None:
    rules = RoutingRules.load()
    assert "违法建设" in taxonomy.jurisdiction
    assert [r.name for r, _ in rules.hits("家里着火了，还闻到煤气味")] == ["燃气泄漏", "火情"]


def test_dispatch_threshold_finds_the_precise_share() -> None:
    confidence = np.array([0.99, 0.98, 0.97, 0.9, 0.6, 0.5])
    correct = np.array([True, True, True, True, False, True])
    threshold, share = dispatch_threshold(correct, confidence, precision=0.98)
    assert threshold == 0.9 and share == pytest.approx(4 / 6)
    assert dispatch_threshold(np.array([False]), np.array([0.9])) == (1.0, 0.0)


def test_evaluation_report_has_what_maintainers_compare() -> None:
    classes = np.array(["a", "b", "c"], dtype=object)
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2]])
    report = evaluation(["a", "b", "c"], proba, classes)
    assert report["accuracy"] == pytest.approx(2 / 3) and report["top3_accuracy"] == 1.0
    assert set(report["per_class"]) == {"a", "b", "c"}
    assert report["confusion_matrix"]["matrix"][2] == [1, 0, 0]


def test_the_router_needs_only_the_routing_model_protocol(taxonomy, gazetteer) -> None:
    """Any model with features, category and department scores, explanations and leads can route (a transformer
    or an ensemble tomorrow); this one knows two categories and no departments, so the taxonomy's defaults lead."""
    from classifiers.router import Router, RoutingModel

    class TwoCategories:
        similar_ = None

        def features(self, text: str) -> str:
            return text

        def batch_features(self, texts: list[str]) -> list[str]:
            return list(texts)

        def category_scores(self, features: str) -> tuple[np.ndarray, np.ndarray]:
            water = 0.9 if "水" in features else 0.2
            return np.asarray(["城乡建设/供水", "城乡建设/道路设施"], dtype=object), np.asarray([water, 1 - water])

        def department_scores(self, features: str) -> None:
            return None

        def explain(self, features: str, category: str, k: int = 6) -> list[tuple[str, float]]:
            return [("水", 1.0)] if "水" in features else []

        def lead(self, departments: list[str]) -> str:
            return departments[0] if departments else ""

        def unclear(self, features: str) -> bool:
            return features == "hello"

        def usual_departments(self, category: str) -> dict[str, float]:
            return {}

        def co_handlers(self, category: str) -> dict[str, float]:
            return {}

    model = TwoCategories()
    typed: RoutingModel = model  # a Protocol: structural, nothing to inherit
    routing = Router(typed, taxonomy, gazetteer).route("市民：海陵区梅兰新村停水了")
    assert routing.category == "城乡建设/供水" and routing.terms == [("水", 1.0)]
    assert routing.departments[0].department == taxonomy.categories["供水"].departments[0]
    assert [r.category for r in Router(model, taxonomy, gazetteer).route_many(["停水", "路灯坏了"])] == \
        ["城乡建设/供水", "城乡建设/道路设施"]
    unclear = Router(model, taxonomy, gazetteer).route("hello")
    assert unclear.unclear and unclear.category == "" and not unclear.departments and not unclear.auto_dispatch


def test_a_new_model_kind_is_one_row_of_the_kinds_table(demo_cases, tmp_path: Path) -> None:
    """A kind says which parts a model holds; fitting, saving, loading and routing read the table, nothing else."""
    from classifiers.dataset import Examples
    from classifiers.fit import fit_model, holdout_split
    from classifiers.kinds import KINDS, ModelKind, load_category_classifier, make_router

    KINDS["linear-lite"] = ModelKind("linear-lite", linear=True, transformer=False)
    try:
        cases = [c for c in demo_cases[:900] if c.category]
        data = Examples(texts=[c.text for c in cases], labels=[c.category.l1 for c in cases],
                        ids=[c.id for c in cases], times=[c.received_at for c in cases],
                        districts=[c.area.district for c in cases], departments=[c.departments for c in cases],
                        rows=list(range(len(cases))))
        train, test = holdout_split(data.labels, 0.1, 0)
        model, parts, manifest = fit_model(data, train, test, kind="linear-lite", departments=False)
        persist.save(tmp_path / "lite", model, manifest, parts)
        assert persist.read_manifest(tmp_path / "lite").kind == "linear-lite"
        assert len(load_category_classifier(tmp_path / "lite").classes_) > 5
        assert make_router(tmp_path / "lite").route("小区停水两天了").category
    finally:
        del KINDS["linear-lite"]


#: Content-free and off-topic calls that are not in hotline/data/content_free.txt (what the model learns from).
HELD_OUT_CONTENT_FREE = ["喂喂喂", "您好，请问是热线吗", "我想了解一点事情", "有件事想请你们帮忙", "你好，我这边想问问",
                         "哈喽", "你们吃饭了吗", "我想问问你们的上班时间", "那个，怎么说呢", "我打这个电话是想说一下",
                         "对对对", "好的谢谢你", "请帮我转人工", "你们领导在吗", "周末去哪里玩比较好"]


def test_calls_that_say_nothing_yet_are_unclear_not_confident(router: Router, demo: tuple) -> None:
    for text in ("hello", "我想问个事", "喂，你好"):
        routing = router.route(text)
        assert routing.unclear and routing.category == "" and not routing.departments and not routing.auto_dispatch
        assert routing.to_dict()["unclear"] is True and "询问来电人" in routing.needs_person[0]
    held_out = [router.route(t).unclear for t in HELD_OUT_CONTENT_FREE]
    assert np.mean(held_out) >= 0.6, held_out
    # Opening like a content-free phrase does not hide a problem that is named.
    for text in ("我想咨询一下关于小区停水两天一直没人修的事", "我想问个事，楼下烧烤店油烟太大了"):
        assert not router.route(text).unclear, text
    calls = [r["transcript"] for r in demo[0][5000:5300]]
    assert sum(routing.unclear for routing in router.route_many(calls)) <= 3  # ≤ 1% of real calls


def test_the_category_s_own_department_is_always_offered_and_leads_mostly(router: Router, trained: CaseModel,
                                                                         demo: tuple) -> None:
    rows = demo[0][5000:5400]
    first_usual = 0
    for routing in router.route_many([r["transcript"] for r in rows]):
        if routing.unclear:
            continue
        usual = trained.usual_departments(routing.category)
        offices = {router._resolve_local(d, routing.area) for d in usual}
        named = [d.department for d in routing.departments]
        assert router._resolve_local(next(iter(usual)), routing.area) in named or routing.rules, (routing.text, named)
        assert routing.departments[0].role == "主办" and {d.role for d in routing.departments} <= {"主办", "协办", "备选"}
        first_usual += named[0] in offices
    assert first_usual / len(rows) >= 0.95


def test_a_weak_neighbour_of_another_category_barely_moves_the_departments(trained: CaseModel, taxonomy: Taxonomy,
                                                                          gazetteer: Gazetteer) -> None:
    from hotline.case import Neighbour

    class OneStrayNeighbour:
        def similar(self, text: str, **kw: Any) -> list[Neighbour]:
            return [Neighbour("x-1", 0.22, ("人社局",), "劳动和社会保障/欠薪", datetime(2025, 8, 1), "海陵区")]

    text = "市民：我们小区有一条流浪狗，见人就咬，小孩都不敢下楼了"
    alone = Router(trained, taxonomy, gazetteer, similar=None, similar_weight=0).route(text, at=datetime(2025, 9, 1))
    nudged = Router(trained, taxonomy, gazetteer, similar=OneStrayNeighbour()).route(text, at=datetime(2025, 9, 1))
    before = {d.department: d.probability for d in alone.departments}
    after = {d.department: d.probability for d in nudged.departments}
    assert [d.department for d in nudged.departments][0] == [d.department for d in alone.departments][0]
    assert after.get("人社局", 0.0) <= before.get("人社局", 0.0) + 0.05


def test_every_department_offered_has_a_reason_in_words_and_honest_figures(router: Router) -> None:
    """Agents were shown "好像", "的好像", "气了，" as reasons, a department with no reason at all, and an
    abstention reading "最高 99%，阈值 99%" (0.9899 against 0.9913)."""
    from classifiers.router import percent, percents, readable_terms
    from hotline.text.words import reason_term

    assert readable_terms([("好像", 3.0), ("的好像", 2.0), ("气了，", 2.0), ("个洞，", 1.5), ("井盖", 1.0),
                           ("的井盖", 0.5), ("水", 0.4)]) == [("井盖", 1.5), ("水", 0.4)]
    assert percents(0.9899, 0.9913) == ("99.0%", "99.1%") and percents(0.5, 0.98) == ("50%", "98%")
    assert percent(0.003) == "不足 1%" and percent(0.0) == "0%"
    for text in ("市民：公司拖欠我三个月工资，老板好像一直不接电话", "市民：路上有个洞，好像井盖没了，气死了",
                 "市民：楼下烧烤店油烟太大了"):
        routing = router.route(text)
        assert routing.departments and all(d.reasons for d in routing.departments), routing.departments
        assert routing.terms and all(reason_term(t) == t for t, _ in routing.terms), routing.terms
        assert not any("好像" in t for t, _ in routing.terms)
