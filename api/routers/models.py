"""The model registry for maintainers: versions, background retraining, promotion and rollback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from api import schemas
from api.auth import require
from api.deps import Admin, RegistryDep, ServicesDep

#: Supervisors read the registry; training, promotion and rollback take an admin's key.
router = APIRouter(prefix="/v1/models", dependencies=[Depends(require("supervisor", "admin"))], tags=["models"])


@router.get("", response_model=list[schemas.ModelOut], summary="Every model version")
def models(registry: RegistryDep) -> list[dict[str, Any]]:
    return [e.to_dict() for e in registry.entries()]


@router.post("/train", response_model=schemas.JobOut, status_code=202,
             summary="Retrain from the store's labels in the background (a candidate; the first model is activated)")
def train(principal: Admin, services: ServicesDep, body: schemas.TrainIn | None = None) -> dict[str, Any]:
    body = body or schemas.TrainIn()
    since = body.since.replace(tzinfo=None) if body.since else None
    params = {"since": since.isoformat() if since else None, "by": principal.name, "kind": body.kind}
    if body.kind == "ensemble":
        services.encoder_directory()  # refused now, not as a failed job minutes later
        job = services.jobs.start("train", lambda job: services.train_ensemble(job, principal.name, since, body.epochs),
                                  {**params, "epochs": body.epochs})
    else:
        job = services.jobs.start("train", lambda job: services.train(principal.name, since, review=body.review, job=job),
                                  {**params, "review": body.review})
    return job.to_dict()


@router.get("/{version}/evaluation", summary="A version's evaluation: metrics beside the active model's, "
            "confusion matrix, suspect labels to review, the cases whose prediction changed")
def evaluation(version: str, registry: RegistryDep) -> dict[str, Any]:
    return registry.evaluation(version)


@router.get("/jobs/{job_id}", response_model=schemas.JobOut, summary="A training job")
def job(job_id: str, principal: Admin, services: ServicesDep) -> dict[str, Any]:
    return services.jobs.get(job_id).to_dict()


@router.post("/{version}/promote", response_model=schemas.ModelOut,
             summary="Activate a version (refused if it scored worse than the active one, unless forced)")
def promote(version: str, principal: Admin, services: ServicesDep, force: bool = False) -> dict[str, Any]:
    entry = services.registry.promote(version, by=principal.name, force=force)
    services.reload_model()
    return entry.to_dict()


@router.post("/rollback", response_model=schemas.ModelOut, summary="Return to the previously active version")
def rollback(principal: Admin, services: ServicesDep) -> dict[str, Any]:
    entry = services.registry.rollback(by=principal.name)
    services.reload_model()
    return entry.to_dict()
