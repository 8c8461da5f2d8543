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


@router.get("/v1/models/{version}/evaluation", summary="A version's evaluation: metrics beside the active model's, "
            "confusion matrix, suspect labels to review, the cases whose prediction changed")
def evaluation(version: str, principal: Supervisor, services: ServicesDep) -> dict[str, Any]:
    return services.registry.evaluation(version)


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
