"""What a route needs, through ``Depends``: the services, their parts, and the caller's principal by role.

Routes never reach into ``request.app.state`` themselves, so a test swaps any
of these with ``app.dependency_overrides`` instead of monkey-patching. They
are coroutines on purpose: FastAPI runs a plain function in the thread pool,
a hop that cost routing a third of its time under load.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from api.auth import Principal, require
from api.services import Services
from hotline.store import CaseStore
from search import SearchIndex


async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_store(services: Annotated[Services, Depends(get_services)]) -> CaseStore:
    return services.store


async def get_index(services: Annotated[Services, Depends(get_services)]) -> SearchIndex:
    return services.index


async def get_router(services: Annotated[Services, Depends(get_services)]) -> Any:
    """The active routing model (503 until one is promoted)."""
    return services.models.get()


ServicesDep = Annotated[Services, Depends(get_services)]
StoreDep = Annotated[CaseStore, Depends(get_store)]
IndexDep = Annotated[SearchIndex, Depends(get_index)]
RouterDep = Annotated[Any, Depends(get_router)]

#: The caller, admitted by role (an unknown key is 401, a role that may not is 403).
AnyRole = Annotated[Principal, Depends(require())]
Agent = Annotated[Principal, Depends(require("agent", "admin"))]
Supervisor = Annotated[Principal, Depends(require("supervisor", "admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]
