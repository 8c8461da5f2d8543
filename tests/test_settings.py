from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from api.keys import ApiKey, KeyRing, digest
from hotline.errors import InvalidInput
from hotline.settings import Settings


def test_settings_come_from_hotline_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_STORE", "sqlite:////data/h.db")
    monkeypatch.setenv("HOTLINE_INDEX", "http://127.0.0.1:9200")
    monkeypatch.setenv("HOTLINE_MODELS", "/data/models")
    monkeypatch.setenv("HOTLINE_API_KEYS", f"zhang:agent:{'k' * 24}, li:admin:{'q' * 30}")
    monkeypatch.setenv("HOTLINE_TIMEZONE", "Asia/Urumqi")
    s = Settings()
    assert s.store == "sqlite:////data/h.db" and s.index == "http://127.0.0.1:9200"
    assert s.models == Path("/data/models") and s.timezone == "Asia/Urumqi"
    assert [(k.name, k.role) for k in KeyRing.from_settings(s)] == [("zhang", "agent"), ("li", "admin")]


def test_defaults_live_under_var() -> None:
    s = Settings()
    assert s.store == "sqlite:///var/hotline.db" and s.models == Path("var/models")
    assert len(KeyRing.from_settings(s)) == 0 and s.earliest_day == date(2000, 1, 1) and s.timezone == "Asia/Shanghai"


SECRET = "s3cr3t-0123456789abcdefghij"


@pytest.mark.parametrize(("keys", "message"), [
    ("k1", "not name:role:key"), (f"{SECRET}:agent", "not name:role:key"), (f"a:king:{SECRET}", "role 'king'"),
    (f":agent:{SECRET}", "key name ''"), ("a:agent:short-admin", "key 'a' has 11 characters; keys need at least 24"),
    (f"a:agent:{SECRET},a:admin:{SECRET}x", "used twice"),
])
def test_malformed_or_short_api_keys_stop_the_start_without_showing_the_key(keys: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as refused:
        KeyRing.from_settings(Settings(api_keys=keys))
    assert SECRET not in str(refused.value) and "short-admin" not in str(refused.value)


def test_a_keys_file_of_digests_and_constant_time_lookup(tmp_path: Path) -> None:
    key = "k" * 32
    (tmp_path / "keys").write_text(f"# the hotline's keys\nwang:supervisor:sha256:{digest(key).hex()}\n", encoding="utf-8")
    ring = KeyRing.from_settings(Settings(api_keys_file=tmp_path / "keys"))
    assert ring.find(key) == ApiKey("wang", "supervisor", digest(key)) and ring.find("k" * 31) is None
    assert key not in (tmp_path / "keys").read_text(encoding="utf-8")


def test_an_unknown_time_zone_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings(timezone="Mars/Olympus")


def test_the_encoder_slots_are_the_hosts_own_and_shared_by_its_workers_of_one_models_folder(tmp_path: Path) -> None:
    """Hosts may mount one models folder; a lock there would bound the encoder city-wide, not per host's cores."""
    import tempfile

    one, again = Settings(models=tmp_path / "a"), Settings(models=tmp_path / "a")
    assert one.encoder_slot_dir() == again.encoder_slot_dir()  # every worker of this host finds the same slots
    assert one.encoder_slot_dir().parent == Path(tempfile.gettempdir())
    assert Settings(models=tmp_path / "b").encoder_slot_dir() != one.encoder_slot_dir()
    assert Settings(models=tmp_path / "a", encoder_slots=tmp_path / "run").encoder_slot_dir() == tmp_path / "run"
