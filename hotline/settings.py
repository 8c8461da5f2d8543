"""The one settings object, read from ``HOTLINE_*`` environment variables.

Every component takes what it needs from :func:`get_settings`; tests build a
:class:`Settings` directly instead of patching globals.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hotline.errors import InvalidInput

ROLES = ("agent", "supervisor", "admin")


class Settings(BaseSettings):
    """Deployment settings; each field is ``HOTLINE_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="HOTLINE_", extra="ignore")

    store: str = Field(
        default="sqlite:///var/hotline.db",
        description="Store URL of the system of record (sqlite:///path).",
    )
    index: str = Field(
        default="",
        description="Search index URL: http://host:9200[/alias] for Elasticsearch; empty: the store's own embedded index.",
    )
    models: Path = Field(default=Path("var/models"), description="Model registry directory.")
    api_keys: str = Field(default="", description="API keys with roles: 'key:role,key:role'.")
    gazetteer: Path | None = Field(
        default=None, description="Gazetteer TOML of the city; default: the bundled 泰州 file."
    )
    taxonomy: Path | None = Field(
        default=None, description="Taxonomy TOML; default: the bundled one."
    )
    segmenter: str = Field(default="rjieba", description="'jieba' or 'rjieba' (same tokens, faster).")
    max_text_chars: int = Field(default=20_000, gt=0, description="Longest accepted case text.")
    log_level: str = Field(default="INFO")

    @field_validator("segmenter")
    @classmethod
    def _known_segmenter(cls, value: str) -> str:
        if value not in ("jieba", "rjieba"):
            raise ValueError(f"HOTLINE_SEGMENTER must be 'jieba' or 'rjieba', not {value!r}")
        return value

    @property
    def index_url(self) -> str:
        """The index to use: the configured one, or the store itself."""
        return self.index or self.store

    def api_key_roles(self) -> dict[str, str]:
        """Parse ``api_keys`` into {key: role}; a malformed entry is an error, not a silent skip."""
        roles: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in self.api_keys.split(","))):
            key, sep, role = item.partition(":")
            if not sep or not key or role not in ROLES:
                raise InvalidInput(
                    f"HOTLINE_API_KEYS entry {item!r} is not 'key:role' with role in {ROLES}"
                )
            roles[key] = role
        return roles


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
