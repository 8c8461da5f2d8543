from __future__ import annotations

from pathlib import Path

import pytest

from hotline.case import Area, Category
from hotline.errors import InvalidInput, NotFound
from hotline.places import Gazetteer
from hotline.taxonomy import Taxonomy

PLAN_DEPARTMENTS = ["发展改革委", "商务局", "行政审批局", "市场监管局", "教育局", "公安局", "民政局", "人社局", "住建局",
                    "文广旅局", "卫健委", "司法局", "自然资源规划局", "生态环境局", "城管局", "交通运输局", "水利局",
                    "农业农村局", "应急管理局", "信访局", "消防救援支队"]


def test_taizhou_has_its_seven_districts(gazetteer: Gazetteer) -> None:
    assert set(gazetteer.districts) == {"海陵区", "高港区", "姜堰区", "兴化市", "靖江市", "泰兴市", "泰州医药高新区"}
    assert all(len(d.streets) >= 5 for d in gazetteer.districts.values())


@pytest.mark.parametrize(
    ("text", "area"),
    [
        ("我住在海陵区城东街道梅兰新村", Area("海陵区", "城东街道")),
        ("黄桥这边停水了", Area("泰兴市", "黄桥镇")),
        ("姜堰区溱潼镇有人烧秸秆", Area("姜堰区", "溱潼镇")),
        ("兴化的一个小区", Area("兴化市", "")),
        ("药城大道上路灯不亮", Area("泰州医药高新区", "")),
        ("泰州市区有个事", Area("", "")),
    ],
)
def test_area_is_extracted_from_what_the_caller_said(gazetteer: Gazetteer, text: str, area: Area) -> None:
    assert gazetteer.extract(text) == area


def test_a_street_of_another_district_does_not_override_the_named_district(gazetteer: Gazetteer) -> None:
    assert gazetteer.extract("海陵区，之前住在黄桥镇，现在住城东街道").district == "海陵区"


def test_another_city_is_one_file_away(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text(
        'city = "样例市"\n[[districts]]\nname = "东城区"\ncenter = [30.0, 120.0]\nstreets = ["花园街道"]\n'
        '[[districts]]\nname = "西城区"\ncenter = [30.1, 120.1]\nstreets = ["河边镇"]\nneighbors = ["东城区"]\n',
        encoding="utf-8",
    )
    city = Gazetteer.load(path)
    assert city.extract("河边这里有问题") == Area("西城区", "河边镇")
    assert city.offices() == {"东城区": "东城区政府", "西城区": "西城区政府"}
    taxonomy = Taxonomy.load(None, city.offices())
    assert taxonomy.department_id("西城区") == "西城区政府"


def test_broken_gazetteer_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('city = "x"\n[[districts]]\nname = "a"\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="malformed"):
        Gazetteer.load(path)
    with pytest.raises(InvalidInput, match="cannot read"):
        Gazetteer.load(tmp_path / "missing.toml")


def test_taxonomy_has_the_plan_departments_and_district_offices(taxonomy: Taxonomy) -> None:
    assert set(PLAN_DEPARTMENTS) <= set(taxonomy.departments)
    assert "海陵区政府" in taxonomy.departments
    assert len(taxonomy.categories) >= 30
    assert all(spec.departments for spec in taxonomy.categories.values())


def test_taxonomy_lookups(taxonomy: Taxonomy) -> None:
    assert taxonomy.departments_for(Category("城乡建设", "燃气"))[0] == "燃气公司"
    assert taxonomy.department_id("泰州市住房和城乡建设局") == "住建局"
    assert taxonomy.department_id("环保局") == "生态环境局"
    assert taxonomy.resolve(Category("供水")) == Category("城乡建设", "供水")
    with pytest.raises(NotFound):
        taxonomy.resolve(Category("城乡建设", "供暖"))
    with pytest.raises(NotFound):
        taxonomy.department_id("魔法部")
