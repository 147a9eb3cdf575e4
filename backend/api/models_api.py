"""Trained models: list, details (config, metrics), checkpoint download."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from backend.api.deps import CurrentUser, SessionDep, StorageDep
from backend.files.downloads import blob_file, file_responses
from backend.models import TrainedModel
from backend.schemas.common import ErrorOut
from backend.schemas.paging import MAX_LIMIT, Page
from backend.schemas.trained_models import ModelDetail, ModelOut
from backend.services import model_catalog as svc
from backend.services.ownership import owner_scope, require_owner

router = APIRouter(tags=["models"])


def _fields(model: TrainedModel, job_status: str | None) -> dict[str, Any]:
    return {
        "id": model.id,
        "name": model.name,
        "arch": model.arch,
        "method": model.method,
        "dataset_id": model.dataset_id,
        "job_id": model.job_id,
        "job_status": job_status,
        "has_checkpoint": model.checkpoint_sha256 is not None,
        "checkpoint_sha256": model.checkpoint_sha256,
        "created_at": model.created_at,
    }


@router.get("/models", response_model=Page[ModelOut])
def list_models(
    session: SessionDep,
    user: CurrentUser,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    dataset_id: int | None = None,
    method: str | None = None,
) -> Page[ModelOut]:
    """The caller's models (an administrator's: all)."""
    rows, total = svc.list_models(
        session, offset=offset, limit=limit, dataset_id=dataset_id, method=method, owner_id=owner_scope(user)
    )
    return Page[ModelOut](items=[ModelOut(**_fields(m, s)) for m, s in rows], total=total, offset=offset, limit=limit)


_OWNED: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "The model belongs to another researcher."}
}


@router.get("/models/{model_id}", response_model=ModelDetail, responses={404: {"model": ErrorOut}, **_OWNED})
def read_model(model_id: int, session: SessionDep, user: CurrentUser) -> ModelDetail:
    require_owner(session, user, TrainedModel, model_id)
    model, job_status = svc.get_model(session, model_id)
    return ModelDetail(**_fields(model, job_status), config=model.config or {}, metrics=model.metrics)


@router.get(
    "/models/{model_id}/checkpoint",
    response_class=FileResponse,
    responses={
        **file_responses("application/octet-stream", description="The checkpoint (torch.save file)."),
        **_OWNED,
        404: {"model": ErrorOut},
        409: {"model": ErrorOut, "description": "No checkpoint yet (training queued, running or failed)."},
    },
)
def download_checkpoint(model_id: int, session: SessionDep, storage: StorageDep, user: CurrentUser) -> Response:
    require_owner(session, user, TrainedModel, model_id)
    model, sha = svc.checkpoint_sha256(session, model_id)
    return blob_file(storage, sha, filename=f"model-{model.id}.pt", kind="application/octet-stream")
