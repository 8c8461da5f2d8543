from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

# Tests never read the developer's own settings or store.
for key in [k for k in os.environ if k.startswith("HOTLINE_")]:
    del os.environ[key]

from hotline.demo.generator import DemoGenerator, Truth  # noqa: E402
from hotline.ingest import CaseBuilder  # noqa: E402
from hotline.places import Gazetteer, default_gazetteer  # noqa: E402
from hotline.store.sqlite import SQLiteStore  # noqa: E402
from hotline.taxonomy import Taxonomy, default_taxonomy  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    return default_gazetteer()


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return default_taxonomy()


@pytest.fixture(scope="session")
def demo(gazetteer: Gazetteer, taxonomy: Taxonomy) -> tuple[list[dict[str, Any]], Truth]:
    """Ninety days of generated calls over a summer (plum rain) and the August school rush."""
    return DemoGenerator(gazetteer, taxonomy, seed=7).generate(90, date(2025, 6, 1))


@pytest.fixture()
def builder(gazetteer: Gazetteer, taxonomy: Taxonomy) -> CaseBuilder:
    return CaseBuilder(gazetteer, taxonomy, max_chars=2000, source="test.csv")


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(f"sqlite:///{tmp_path}/store.db")
    yield s
    s.close()
