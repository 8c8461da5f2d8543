"""A city is one context built from the settings and passed down: another city is a data file away, and a model
trained for one city is refused under another rather than served with the wrong words and offices."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.services import Services
from hotline.city import City
from hotline.errors import Conflict
from hotline.settings import Settings
from tests.api_support import KEYS_SETTING

YANGZHOU = """
city = "扬州市"
area_code = "0514"
plate_prefix = "苏K"

[[districts]]
name = "广陵区"
office = "广陵区政府"
center = [32.394, 119.436]
streets = ["东关街道", "汶河街道"]
roads = ["东关街", "文昌中路"]
communities = ["个园社区"]

[[districts]]
name = "邗江区"
office = "邗江区政府"
center = [32.377, 119.398]
streets = ["蒋王街道"]
roads = ["扬子江北路"]
communities = ["新城花园"]
"""


@pytest.fixture()
def yangzhou(tmp_path: Path) -> Path:
    path = tmp_path / "yangzhou.toml"
    path.write_text(YANGZHOU, encoding="utf-8")
    return path


def test_another_city_is_a_gazetteer_file_and_the_settings_that_name_it(tmp_path: Path, yangzhou: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_GAZETTEER", str(tmp_path / "nowhere.toml"))  # read by nothing below the entry point
    settings = Settings(store=f"sqlite:///{tmp_path}/store.db", models=tmp_path / "models", gazetteer=yangzhou,
                        api_keys=KEYS_SETTING)
    services = Services(settings)
    services.start()
    try:
        assert services.gazetteer.city == "扬州市" and "广陵区政府" in services.taxonomy.departments
        assert services.gazetteer.extract("东关街道个园社区门口垃圾没人清").district == "广陵区"
        assert "东关街道" in services.city.segmenter.tokens("东关街道个园社区门口垃圾没人清")
        assert City.bundled().gazetteer.city == "泰州市"  # the bundled city never reads the environment
    finally:
        services.close()
        City.bundled().serve()


def test_a_model_is_refused_under_another_city_context(service: Services, yangzhou: Path) -> None:
    from classifiers.kinds import make_router

    current = service.registry.current
    assert make_router(current, service.city).model_version  # its own city
    other = City.from_settings(Settings(gazetteer=yangzhou))
    with pytest.raises(Conflict, match="another city context .*gazetteer"):
        make_router(current, other)
