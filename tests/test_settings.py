from __future__ import annotations

from pathlib import Path

import pytest

from hotline.errors import InvalidInput
from hotline.settings import Settings


def test_settings_come_from_hotline_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_STORE", "sqlite:////data/h.db")
    monkeypatch.setenv("HOTLINE_INDEX", "http://127.0.0.1:9200")
    monkeypatch.setenv("HOTLINE_MODELS", "/data/models")
    monkeypatch.setenv("HOTLINE_API_KEYS", "k1:agent, k2:admin")
    s = Settings()
    assert s.store == "sqlite:////data/h.db" and s.index == "http://127.0.0.1:9200"
    assert s.models == Path("/data/models")
    assert s.api_key_roles() == {"k1": "agent", "k2": "admin"}


def test_defaults_live_under_var() -> None:
    s = Settings()
    assert s.store == "sqlite:///var/hotline.db" and s.models == Path("var/models") and s.api_key_roles() == {}


@pytest.mark.parametrize("keys", ["k1", "k1:king", ":agent"])
def test_malformed_api_keys_are_errors(keys: str) -> None:
    with pytest.raises(InvalidInput, match="HOTLINE_API_KEYS"):
        Settings(api_keys=keys).api_key_roles()
