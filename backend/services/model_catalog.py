"""Trained models for the research API: listing, and the checkpoint of a model (once its training stored one); for
the worker's jobs the rows they read and write (`find_model`, `train_job_of`, `store_trained_model`,
`record_evaluation`), so that the worker holds no SQL of its own."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Job, TrainedModel
from backend.services.errors import ConflictError
from backend.services.lookups import get_or_404


def list_models(
    session: Session,
    *,
    offset: int,
    limit: int,
    dataset_id: int | None = None,
    method: str | None = None,
    owner_id: int | None = None,
) -> tuple[list[tuple[TrainedModel, str | None]], int]:
    """(model, status of its train job or None) newest first, and the total count; optional filters (`owner_id`:
    a researcher's own)."""
    query = select(TrainedModel, Job.status).outerjoin(Job, Job.id == TrainedModel.job_id)
    if owner_id is not None:
        query = query.where(TrainedModel.owner_id == owner_id)
    if dataset_id is not None:
        query = query.where(TrainedModel.dataset_id == dataset_id)
    if method is not None:
        query = query.where(TrainedModel.method == method)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(TrainedModel.id.desc()).offset(offset).limit(limit)).all()
    return [(model, status) for model, status in rows], total


def get_model(session: Session, model_id: int) -> tuple[TrainedModel, str | None]:
    model = get_or_404(session, TrainedModel, model_id)
    job = session.get(Job, model.job_id) if model.job_id is not None else None
    return model, job.status if job else None


def checkpoint_sha256(session: Session, model_id: int) -> tuple[TrainedModel, str]:
    """The model and its checkpoint blob; 409 saying why while there is none (training queued, running,
    failed)."""
    model, job_status = get_model(session, model_id)
    if model.checkpoint_sha256 is None:
        if job_status is None:
            raise ConflictError(f"model {model_id} has no checkpoint: no train job of this platform made it")
        raise ConflictError(
            f"model {model_id} has no checkpoint yet: its train job {model.job_id} is {job_status}; "
            f"see GET /jobs/{model.job_id}"
        )
    return model, model.checkpoint_sha256


def record_evaluation(session: Session, model_id: int, key: str, metrics: dict[str, Any]) -> bool:
    """Keep `metrics` as `metrics["evaluations"][key]` of model `model_id`, beside its other evaluations (a new
    dict is assigned, so the JSON column is written); False if the model no longer exists."""
    row = session.get(TrainedModel, model_id)
    if row is None:
        return False
    merged = dict(row.metrics or {})
    merged["evaluations"] = {**merged.get("evaluations", {}), key: metrics}
    row.metrics = merged
    return True


def find_model(session: Session, model_id: int) -> TrainedModel | None:
    """The model row, or None: a job words the refusal itself (a 404 is the API's answer, not a job's)."""
    return session.get(TrainedModel, model_id)


def train_job_of(session: Session, model: TrainedModel) -> Job | None:
    """The train job that makes (or made) `model`'s checkpoint; None for a model no job of ours trains."""
    return session.get(Job, model.job_id) if model.job_id is not None else None


def store_trained_model(
    session: Session,
    job_id: int,
    *,
    name: str | None,
    default_name: str,
    arch: str,
    method: str,
    dataset_id: int,
    checkpoint_sha256: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> int:
    """Give the train job's model row (made with the job, or here when it has none) its checkpoint and metrics;
    returns its id. One row per job, however often the job runs, so a re-delivered job overwrites its own row.
    The name: `name`, else the row's own, else `default_name`."""
    row = session.scalar(select(TrainedModel).where(TrainedModel.job_id == job_id))
    if row is None:
        row = TrainedModel(job_id=job_id, name="")
        session.add(row)
    row.name = name or row.name or default_name
    row.arch, row.method, row.dataset_id, row.checkpoint_sha256 = arch, method, dataset_id, checkpoint_sha256
    row.config = config
    row.metrics = metrics
    session.flush()
    return row.id
