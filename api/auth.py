"""API keys with roles (agent, supervisor, admin), sent as ``X-API-Key``; every refusal is logged."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from api.keys import KeyRing
from hotline.errors import Forbidden, Unauthorized
from hotline.settings import ROLES
from hotline.store.rules import Writer

access_log = logging.getLogger("hotline.access")
KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key; its role decides what it may do")

#: Who may see the caller's (masked) number and name fields.
SEES_CALLER = frozenset({"agent", "admin"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (never any part of the key) and its role."""

    name: str
    role: str

    @property
    def sees_caller(self) -> bool:
        return self.role in SEES_CALLER

    def writer(self, channel: str) -> Writer:
        """How this caller writes cases: as ``channel:name``, an admin over any source's cases."""
        return Writer(f"{channel}:{self.name}", privileged=self.role == "admin")


def require(*roles: str):  # noqa: ANN201 (a FastAPI dependency)
    """A dependency that admits keys of the given roles (all roles when none given)."""
    allowed = frozenset(roles or ROLES)

    # async: a plain function would cost every request a trip through the thread pool.
    async def check(request: Request, key: str | None = Depends(KEY_HEADER)) -> Principal:
        return authorise(request, key, allowed)

    return check


def authorise(request: Request, key: object, allowed: frozenset[str]) -> Principal:
    """The principal of ``key`` if its role is ``allowed``; refusals are logged (with the key's name, if any)."""
    ring: KeyRing = request.app.state.services.keys
    where = f"{request.method} {request.url.path}"
    if not key:
        access_log.warning("refused %s: no API key", where)
        raise Unauthorized("send an API key in the X-API-Key header")
    if not isinstance(key, str):
        access_log.warning("refused %s: an API key that is not a string", where)
        raise Unauthorized("the API key must be a string")
    found = ring.find(key)
    if found is None:
        access_log.warning("refused %s: unknown API key", where)
        raise Unauthorized("unknown API key")
    principal = Principal(found.name, found.role)
    if found.role not in allowed:
        access_log.warning("refused %s for %s (%s): needs %s", where, found.name, found.role, "/".join(sorted(allowed)))
        raise Forbidden(f"the {found.role} role may not do this")
    return principal
