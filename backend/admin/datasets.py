"""Datasets: list, upload (the research API's streamed upload and import service), browse images with their
salience maps laid over them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from backend.admin.deps import AdminDep, AdminRoute, UploadAdminDep, render, see_other
from backend.api.deps import SessionDep, SettingsDep, StorageDep
from backend.files.uploads import DatasetUpload, dataset_upload
from backend.services import admin_views as views
from backend.services import dataset_catalog as svc
from backend.services.errors import ServiceError

router = APIRouter(route_class=AdminRoute)

PAGE_SIZE = 24
#: Overlay sources in the order the page shows them; "annotations" is the live mean of the painted masks.
SOURCES = ("annotations", "human_mean", "imported", "gradcam")
SOURCE_NAMES = {
    "annotations": "participants' masks (mean)",
    "human_mean": "human mean (stored)",
    "imported": "imported",
    "gradcam": "Grad-CAM",
}


def _list_page(request: Request, admin: UploadAdminDep, session: SessionDep, **extra: object) -> Response:
    rows, total = svc.list_datasets(session, offset=0, limit=200)
    status_code = int(extra.pop("status_code", 200))  # type: ignore[call-overload]
    return render(
        request,
        admin,
        "datasets.html",
        {"nav": "datasets", "datasets": rows, "total": total, **extra},
        status_code=status_code,
    )


@router.get("/datasets", name="admin_datasets")
def datasets(request: Request, admin: AdminDep, session: SessionDep) -> Response:
    return _list_page(request, admin, session)


@router.post("/datasets", name="admin_upload_dataset")
def upload(
    request: Request,
    admin: UploadAdminDep,
    upload: Annotated[DatasetUpload, Depends(dataset_upload)],
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> Response:
    """The zip of the form, through the same streamed upload and import service as POST /api/v1/datasets."""
    try:
        outcome = svc.upload_dataset(
            session,
            storage,
            upload.file,
            name=upload.dataset_name,
            max_upload_bytes=settings.max_upload_bytes,
            owner=admin.user,
        )
    except ServiceError as exc:
        session.rollback()
        return _list_page(request, admin, session, error=exc.message, status_code=exc.status_code)
    session.commit()
    notice = "uploaded" if outcome.created else "existing"
    return see_other(request.url_for("admin_dataset", dataset_id=outcome.dataset.id).path + f"?notice={notice}")


@router.get("/datasets/{dataset_id}", name="admin_dataset")
def dataset(
    dataset_id: int,
    request: Request,
    admin: AdminDep,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    label: str | None = None,
    split: str | None = None,
    notice: str | None = None,
) -> Response:
    summary = svc.dataset_summary(session, dataset_id)
    label = label or None
    split = split or None
    rows, total = svc.list_images(session, dataset_id, offset=offset, limit=PAGE_SIZE, split=split, label=label)
    painted = views.images_with_annotations(session, [image.id for image, _ in rows])
    images = [
        (image, [s for s in SOURCES if s in sources or (s == "annotations" and image.id in painted)])
        for image, sources in rows
    ]
    return render(
        request,
        admin,
        "dataset.html",
        {
            "nav": "datasets",
            "summary": summary,
            "images": images,
            "source_names": SOURCE_NAMES,
            "total": total,
            "offset": offset,
            "page_size": PAGE_SIZE,
            "label": label,
            "split": split,
            "notice": notice,
        },
    )
