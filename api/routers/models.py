"""The model registry for maintainers: versions, background retraining, promotion and rollback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import schemas
from api.deps import Admin, ServicesDep, Supervisor

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=list[schemas.ModelOut], summary="Every model version")
def models(principal: Supervisor, services: ServicesDep) -> list[dict[str, Any]]:
    return [e.to_dict() for e in services.registry.entries()]


@router.post("/v1/models/train", response_model=schemas.JobOut, status_code=202,
             summary="Retrain from the store's labels in the background (a candidate; the first model is activated)")
def train(principal: Admin, services: ServicesDep, body: schemas.TrainIn | None = None) -> dict[str, Any]:
    since = body.since.replace(tzinfo=None) if body and body.since else None
    job = services.jobs.start("train", lambda: services.train(principal.name, since),
                              {"since": since.isoformat() if since else None, "by": principal.name})
    return job.to_dict()


@router.get("/v1/models/jobs/{job_id}", response_model=schemas.JobOut, summary="A training job")
def job(job_id: str, principal: Admin, services: ServicesDep) -> dict[str, Any]:
    return services.jobs.get(job_id).to_dict()


@router.post("/v1/models/{version}/promote", response_model=schemas.ModelOut,
             summary="Activate a version (refused if it scored worse than the active one, unless forced)")
def promote(version: str, principal: Admin, services: ServicesDep, force: bool = False) -> dict[str, Any]:
    entry = services.registry.promote(version, by=principal.name, force=force)
    services.reload_model()
    return entry.to_dict()


@router.post("/v1/models/rollback", response_model=schemas.ModelOut, summary="Return to the previously active version")
def rollback(principal: Admin, services: ServicesDep) -> dict[str, Any]:
    entry = services.registry.rollback(by=principal.name)
    services.reload_model()
    return entry.to_dict()
