"""The one settings object, read from ``HOTLINE_*`` environment variables.

Only entry points (the CLI's ``main``, ``create_app``) call :func:`get_settings`;
they turn it into explicit objects (a :class:`hotline.city.City`, a store, keys)
and pass those down, so nothing below reads the environment. Tests build a
:class:`Settings` directly instead of patching globals.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hotline.maven import DEFAULT_CACHE
from hotline.times import DEFAULT_EARLIEST, DEFAULT_ZONE, TimeWindow, zone

ROLES = ("agent", "supervisor", "admin")


class Settings(BaseSettings):
    """Deployment settings; each field is ``HOTLINE_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="HOTLINE_", extra="ignore")

    store: str = Field(
        default="sqlite:///var/hotline.db",
        description="Store URL of the system of record: sqlite:///path (one machine) or "
                    "postgresql://user[:password]@host:port/db (a city; then HOTLINE_INDEX must be Elasticsearch).",
    )
    index: str = Field(
        default="",
        description="Search index URL: http://host:9200[/alias] for Elasticsearch; empty: the store's own embedded index "
                    "(SQLite stores only).",
    )
    models: Path = Field(default=Path("var/models"), description="Model registry directory.")
    cache: Path = Field(default=DEFAULT_CACHE,
                        description="Downloads shared by every clone on this machine: the Elasticsearch zip and the "
                                    "encoder's jar, each checked against its pinned SHA-1.")
    api_keys: str = Field(default="", description="API keys: 'name:role:key' entries (or name:role:sha256:HEX), comma separated.")
    client_key: str = Field(default="", description="The key `hotline route --url` sends to a running service "
                                                    "(an agent's).")
    api_keys_file: Path | None = Field(default=None, description="A file of such entries, one per line (digests keep keys out of it).")
    gazetteer: Path | None = Field(
        default=None, description="Gazetteer TOML of the city; default: the bundled 泰州 file."
    )
    taxonomy: Path | None = Field(
        default=None, description="Taxonomy TOML; default: the bundled one."
    )
    routing_rules: Path | None = Field(
        default=None, description="Keyword routing rules TOML of the city; default: the bundled ones."
    )
    encoder: Path | None = Field(
        default=None,
        description="Directory of the pretrained sentence encoder (the last line of `hotline encoder fetch`): "
                    "similar cases by meaning, and the base model of ensembles trained from /models; "
                    "empty: similar cases by words alone.",
    )
    encoder_calls: int = Field(
        default=1, ge=0,
        description="Calls the service's workers on one host (those serving one models folder) let run the "
                    "ensemble's encoder at once; past that an unsure call is answered by the linear model alone and "
                    "marked for a person, so a burst cannot queue every call behind the encoder (0: no bound).",
    )
    encoder_slots: Path | None = Field(
        default=None,
        description="A folder on this host's own disk where its workers hold the encoder's slots (one locked file "
                    "per running call; not the models folder, which hosts may share); default: one under the "
                    "system's temporary folder, named after the models folder.",
    )
    segmenter: str = Field(default="rjieba", description="'jieba' or 'rjieba' (same tokens, faster).")
    max_text_chars: int = Field(default=20_000, gt=0, description="Longest accepted case text.")
    earliest_day: date = Field(
        default=DEFAULT_EARLIEST, description="Cases dated before this day are refused (the latest is now + 1 day)."
    )
    timezone: str = Field(default=DEFAULT_ZONE, description="The city's time zone; times with an offset are converted to it.")
    open311_public: bool = Field(default=False, description="Open311 reads (masked cases, no caller fields) without a key.")
    open311_jurisdiction: str = Field(default="", description="Open311 jurisdiction_id served; empty: any is accepted.")
    log_level: str = Field(default="INFO")

    @field_validator("segmenter")
    @classmethod
    def _known_segmenter(cls, value: str) -> str:
        if value not in ("jieba", "rjieba"):
            raise ValueError(f"HOTLINE_SEGMENTER must be 'jieba' or 'rjieba', not {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    def environment(self) -> dict[str, str]:
        """These settings as ``HOTLINE_*`` variables, for a child process (a training job) to read the same ones.

        Keys stay out: a training job needs none.
        """
        return {f"HOTLINE_{name.upper()}": str(value) for name, value in self.model_dump().items()
                if value is not None and name not in ("api_keys", "api_keys_file")}

    def time_window(self) -> TimeWindow:
        """The window a case's time must fall in, in the city's zone."""
        return TimeWindow(earliest=self.earliest_day, city=zone(self.timezone))

    def encoder_slot_dir(self) -> Path:
        """Where this host's workers serving ``models`` share the encoder's slots."""
        import hashlib
        import tempfile

        if self.encoder_slots is not None:
            return self.encoder_slots
        digest = hashlib.sha1(str(self.models.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"hotline-encoder-slots-{digest}"

    @property
    def index_url(self) -> str:
        """The index to use: the configured one, or the store itself."""
        return self.index or self.store


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
