"""Datasets: upload a zip (ImageFolder or the authors' CSV manifest), list them, summarise, page their images.

The upload is streamed into a temporary file (in memory up to 1 MiB, on disk beyond) and refused with 413 as
soon as it passes `Settings.max_upload_bytes`, before the rest is read; nothing is stored unless the whole
archive is valid.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi import Response as HTTPResponse

from backend.api.deps import CurrentUser, SessionDep, SettingsDep, StorageDep
from backend.files.uploads import MAX_NAME, DatasetUpload, dataset_upload
from backend.models import Dataset
from backend.schemas.common import ErrorOut
from backend.schemas.datasets import DatasetDetail, DatasetOut, DatasetUploaded, ImageOut
from backend.schemas.paging import MAX_LIMIT, Page
from backend.services import dataset_catalog as svc
from backend.services.ownership import owner_scope, require_owner

router = APIRouter(tags=["datasets"])

Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


_UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The dataset zip."},
        "name": {"type": "string", "maxLength": MAX_NAME, "description": "Dataset name (default: the file's)."},
    },
}


@router.post(
    "/datasets",
    response_model=DatasetUploaded,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": DatasetUploaded, "description": "This content was uploaded before: that dataset."},
        413: {"model": ErrorOut, "description": "Larger than SIPAT_MAX_UPLOAD_BYTES."},
        422: {"model": ErrorOut, "description": "Not an acceptable archive; the message says what to fix."},
    },
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _UPLOAD_SCHEMA}}}},
)
def upload_dataset(
    upload: Annotated[DatasetUpload, Depends(dataset_upload)],
    response: HTTPResponse,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> DatasetUploaded:
    """Upload a zip: `<class>/<image>` folders (optionally under train/ test/, with salience/ maps), or a
    `manifest.csv` with image_path,image_class and salience_map_path or bounding_boxes. The dataset is the
    caller's (an identical upload of the caller's own is returned instead, with 200)."""
    outcome = svc.upload_dataset(
        session,
        storage,
        upload.file,
        name=upload.dataset_name,
        max_upload_bytes=settings.max_upload_bytes,
        owner=user,
    )
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    summary = svc.dataset_summary(session, outcome.dataset.id)
    return DatasetUploaded(**_dataset_fields(summary.dataset, summary.n_images), created=outcome.created)


def _dataset_fields(dataset: Any, n_images: int) -> dict[str, Any]:
    return {"id": dataset.id, "name": dataset.name, "created_at": dataset.created_at, "n_images": n_images}


@router.get("/datasets", response_model=Page[DatasetOut])
def list_datasets(session: SessionDep, user: CurrentUser, offset: Offset = 0, limit: Limit = 50) -> Page[DatasetOut]:
    """The caller's datasets (an administrator's: all)."""
    rows, total = svc.list_datasets(session, offset=offset, limit=limit, owner_id=owner_scope(user))
    items = [DatasetOut(**_dataset_fields(dataset, n)) for dataset, n in rows]
    return Page[DatasetOut](items=items, total=total, offset=offset, limit=limit)


_OWNED: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "The dataset belongs to another researcher."}
}


@router.get("/datasets/{dataset_id}", response_model=DatasetDetail, responses={404: {"model": ErrorOut}, **_OWNED})
def read_dataset(dataset_id: int, session: SessionDep, user: CurrentUser) -> DatasetDetail:
    require_owner(session, user, Dataset, dataset_id)
    s = svc.dataset_summary(session, dataset_id)
    return DatasetDetail(
        **_dataset_fields(s.dataset, s.n_images),
        by_label=s.by_label,
        by_split=s.by_split,
        by_label_and_split=s.by_label_and_split,
        salience_images=s.salience_images,
        n_with_salience=s.n_with_salience,
        salience_coverage=s.n_with_salience / s.n_images if s.n_images else 0.0,
    )


@router.get(
    "/datasets/{dataset_id}/images", response_model=Page[ImageOut], responses={404: {"model": ErrorOut}, **_OWNED}
)
def list_images(
    dataset_id: int,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    offset: Offset = 0,
    limit: Limit = 100,
    split: str | None = None,
    label: str | None = None,
) -> Page[ImageOut]:
    require_owner(session, user, Dataset, dataset_id)
    rows, total = svc.list_images(session, dataset_id, offset=offset, limit=limit, split=split, label=label)
    items = [
        ImageOut(
            id=image.id,
            dataset_id=image.dataset_id,
            label=image.label,
            split=image.split,
            filename=image.filename,
            width=image.width,
            height=image.height,
            sha256=image.sha256,
            salience_sources=sources,
            file_url=str(request.app.url_path_for("image_file", image_id=image.id)),
        )
        for image, sources in rows
    ]
    return Page[ImageOut](items=items, total=total, offset=offset, limit=limit)
