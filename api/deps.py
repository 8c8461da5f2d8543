"""What a route needs, through ``Depends``: the services, their parts, and the caller's principal by role.

Routes never reach into ``request.app.state`` themselves, so a test swaps any
of these with ``app.dependency_overrides`` instead of monkey-patching. They
are coroutines on purpose: FastAPI runs a plain function in the thread pool,
a hop that cost routing a third of its time under load.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from api.answers import AgentAnswers
from api.auth import Principal, require
from api.services import Services
from api.views import SupervisorViews
from classifiers.router import Router
from hotline.settings import Settings
from hotline.store import CaseStore
from hotline.taxonomy import Taxonomy
from hotline.times import TimeWindow
from search import SearchIndex
from search.sync import Syncer
from training.registry import Registry

T = TypeVar("T")


async def get_services(request: Request) -> Services:
    return request.app.state.services


def _part(pick: Callable[[Services], T]) -> Callable[[Services], Awaitable[T]]:
    """A dependency handing out one part of the services (typed: the checker follows ``pick``)."""
    async def part(services: Annotated[Services, Depends(get_services)]) -> T:
        return pick(services)

    return part


async def get_router(services: Annotated[Services, Depends(get_services)]) -> Router:
    """The active routing model (503 until one is promoted)."""
    return services.models.get()


async def get_router_or_none(services: Annotated[Services, Depends(get_services)]) -> Router | None:
    """The active routing model, None before one is promoted (for what can answer without one)."""
    return services.models.router


ServicesDep = Annotated[Services, Depends(get_services)]
StoreDep = Annotated[CaseStore, Depends(_part(lambda s: s.store))]
IndexDep = Annotated[SearchIndex, Depends(_part(lambda s: s.index))]
RouterDep = Annotated[Router, Depends(get_router)]
MaybeRouterDep = Annotated[Router | None, Depends(get_router_or_none)]
SyncerDep = Annotated[Syncer, Depends(_part(lambda s: s.syncer))]
AnswersDep = Annotated[AgentAnswers, Depends(_part(lambda s: s.answers))]
SettingsDep = Annotated[Settings, Depends(_part(lambda s: s.settings))]
WindowDep = Annotated[TimeWindow, Depends(_part(lambda s: s.window))]
TaxonomyDep = Annotated[Taxonomy, Depends(_part(lambda s: s.taxonomy))]
SupervisorViewsDep = Annotated[SupervisorViews, Depends(_part(lambda s: s.supervisor_views))]
RegistryDep = Annotated[Registry, Depends(_part(lambda s: s.registry))]

#: The caller, admitted by role (an unknown key is 401, a role that may not is 403).
AnyRole = Annotated[Principal, Depends(require())]
Agent = Annotated[Principal, Depends(require("agent", "admin"))]
Supervisor = Annotated[Principal, Depends(require("supervisor", "admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]
