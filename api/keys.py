"""API keys: each has a name and a role, is kept as a SHA-256 digest, and is compared in constant time.

A key used to be known by its first six characters, and those went into the
logs and into label provenance that every role can read: a six-character admin
key was shown whole to agents. Now a key is known by its *name* everywhere
(logs, provenance, audit), no response carries key material, and a key
shorter than :data:`MIN_KEY_CHARS` is refused at start.

Entries (``HOTLINE_API_KEYS``, comma or newline separated, or one per line of
``HOTLINE_API_KEYS_FILE``)::

    name:role:key                 the key itself (at least 24 characters)
    name:role:sha256:<64 hex>     only its digest: a keys file can then be read without revealing a key

``hotline keys new NAME ROLE`` makes a key and prints both lines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hotline.errors import InvalidInput
from hotline.settings import ROLES, Settings

MIN_KEY_CHARS = 24
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DIGEST = re.compile(r"^sha256:([0-9a-fA-F]{64})$")


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    digest: bytes

    @classmethod
    def parse(cls, entry: str, where: str = "HOTLINE_API_KEYS") -> ApiKey:
        """One ``name:role:key`` or ``name:role:sha256:HEX`` entry; anything else is refused, naming the entry's name."""
        parts = entry.split(":", 2)
        if len(parts) != 3:  # the message shows no part of it: the entry may be a bare key
            raise InvalidInput(f"{where}: an entry is not name:role:key (keys have names since this version: "
                               f"give each one, e.g. zhang-agent:agent:KEY)")
        name, role, secret = (p.strip() for p in parts)
        if not _NAME.match(name):
            raise InvalidInput(f"{where}: key name {name[:64]!r} must be letters, digits, '.', '_', '-' or '@'")
        if role not in ROLES:
            raise InvalidInput(f"{where}: key {name!r} has role {role[:20]!r}; use one of {', '.join(ROLES)}")
        hashed = _DIGEST.match(secret)
        if hashed:
            return cls(name, role, bytes.fromhex(hashed.group(1)))
        if len(secret) < MIN_KEY_CHARS:
            raise InvalidInput(f"{where}: key {name!r} has {len(secret)} characters; keys need at least "
                               f"{MIN_KEY_CHARS} (make one with `hotline keys new {name} {role}`)")
        return cls(name, role, digest(secret))


class KeyRing:
    """The keys a service accepts; looks a presented key up without revealing, by timing, which one matched."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self.keys = tuple(keys)
        names = [k.name for k in self.keys]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise InvalidInput(f"API key name {duplicate!r} is used twice")
        seen: dict[bytes, str] = {}
        for key in self.keys:  # one secret under two names authenticated as whichever came last
            if key.digest in seen:
                raise InvalidInput(f"API keys {seen[key.digest]!r} and {key.name!r} are the same key: give each "
                                   "name its own (make one with `hotline keys new NAME ROLE`)")
            seen[key.digest] = key.name

    @classmethod
    def parse(cls, text: str, where: str = "HOTLINE_API_KEYS") -> KeyRing:
        entries = (e.strip() for e in re.split(r"[,\n]", text))
        return cls(ApiKey.parse(e, where) for e in entries if e and not e.startswith("#"))

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """``HOTLINE_API_KEYS`` and ``HOTLINE_API_KEYS_FILE`` together; bad entries stop the start with one line."""
        keys = list(cls.parse(settings.api_keys).keys)
        if settings.api_keys_file is not None:
            try:
                text = Path(settings.api_keys_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise InvalidInput(f"cannot read HOTLINE_API_KEYS_FILE {settings.api_keys_file}: {exc.strerror}") from None
            keys += cls.parse(text, f"HOTLINE_API_KEYS_FILE {settings.api_keys_file}").keys
        return cls(keys)

    def find(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, comparing its digest with every key's (no early exit)."""
        wanted = digest(presented)
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, wanted):
                found = key
        return found

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self.keys)


def new_key() -> str:
    return secrets.token_urlsafe(24)  # 32 characters


def generated_keys(path: Path) -> list[dict[str, str]]:
    """Demo keys, one per role, made once and kept (0600) where no keys are configured; ``make demo`` prints them.

    A file from an older version (``{key: role}``) is read and given names.
    """
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return [{"name": f"demo-{role}", "role": role, "key": key} for key, role in data.items()]
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = [{"name": f"demo-{role}", "role": role, "key": new_key()} for role in ROLES]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(keys, fh, indent=1)
    return keys


def service_keys(settings: Settings) -> tuple[KeyRing, list[dict[str, str]]]:
    """The configured keys, or the generated demo keys (also returned, to be shown once) when none are set."""
    ring = KeyRing.from_settings(settings)
    if len(ring):
        return ring, []
    generated = generated_keys(Path(settings.models).parent / "api-keys.json")
    return KeyRing(ApiKey.parse(f"{k['name']}:{k['role']}:{k['key']}", "api-keys.json") for k in generated), generated
