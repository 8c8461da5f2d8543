"""API keys with roles (agent, supervisor, admin), sent as ``X-API-Key``; every refusal is logged."""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from hotline.errors import HotlineError
from hotline.settings import ROLES

access_log = logging.getLogger("hotline.access")
KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key; its role decides what it may do")

#: Who may see the caller's (masked) number and name fields.
SEES_CALLER = frozenset({"agent", "admin"})


class Unauthorized(HotlineError):
    """No key, or a key nobody issued."""


class Forbidden(HotlineError):
    """A key whose role may not do this."""


@dataclass(frozen=True)
class Principal:
    key_id: str   # never the key itself: its first characters, for logs and audit
    role: str

    @property
    def sees_caller(self) -> bool:
        return self.role in SEES_CALLER

    @property
    def name(self) -> str:
        return f"{self.role}:{self.key_id}"


def generated_keys(path: Path) -> dict[str, str]:
    """Keys for each role, made once and kept (0600) when none are configured; ``make demo`` prints them."""
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = {secrets.token_urlsafe(24): role for role in ROLES}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(keys, fh)
    return keys


def require(*roles: str):  # noqa: ANN201 (a FastAPI dependency)
    """A dependency that admits keys of the given roles (all roles when none given)."""
    allowed = frozenset(roles or ROLES)

    # async: a plain function would cost every request a trip through the thread pool.
    async def check(request: Request, key: str | None = Depends(KEY_HEADER)) -> Principal:
        keys: dict[str, str] = request.app.state.services.keys
        where = f"{request.method} {request.url.path}"
        if not key:
            access_log.warning("refused %s: no API key", where)
            raise Unauthorized("send an API key in the X-API-Key header")
        role = keys.get(key)
        if role is None:
            access_log.warning("refused %s: unknown API key", where)
            raise Unauthorized("unknown API key")
        principal = Principal(key[:6], role)
        if role not in allowed:
            access_log.warning("refused %s for %s: needs %s", where, principal.name, "/".join(sorted(allowed)))
            raise Forbidden(f"the {role} role may not do this")
        return principal

    return check
