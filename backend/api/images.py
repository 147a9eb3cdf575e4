"""Researcher downloads of image bytes: source images, their salience maps, stimuli and painted masks.

Unlike `/media/{key}` (participants: opaque keys, nothing revealed), these name rows by id and are only
served with a researcher's token.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from backend.api.deps import CurrentUser, SessionDep, StorageDep
from backend.files.downloads import IMAGE_TYPES, REVALIDATE, blob_file, file_responses
from backend.models import Annotation, Image, Stimulus
from backend.schemas.common import ErrorOut
from backend.services.dataset_catalog import salience_map
from backend.services.lookups import get_or_404
from backend.services.ownership import require_owner_of_parent

router = APIRouter(tags=["images"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "Its dataset, stimulus set or study belongs to another researcher."},
    404: {"model": ErrorOut},
}


@router.get(
    "/images/{image_id}/file",
    name="image_file",
    response_class=FileResponse,
    responses={**file_responses(*IMAGE_TYPES, description="The image file as uploaded."), **_NOT_FOUND},
)
def image_file(image_id: int, session: SessionDep, storage: StorageDep, user: CurrentUser) -> Response:
    require_owner_of_parent(session, user, Image, image_id)  # its dataset's owner rule
    return blob_file(storage, get_or_404(session, Image, image_id).sha256)


@router.get(
    "/images/{image_id}/salience",
    response_class=FileResponse,
    responses={
        **file_responses("image/png", description="8-bit grayscale PNG at the image's size, 255 = salient."),
        **_NOT_FOUND,
    },
)
def image_salience(
    image_id: int,
    session: SessionDep,
    storage: StorageDep,
    user: CurrentUser,
    source: Literal["imported", "gradcam", "human_mean"] | None = None,
) -> Response:
    """The newest salience map of `source`; without one: human_mean, else imported, else gradcam."""
    require_owner_of_parent(session, user, Image, image_id)
    return blob_file(storage, salience_map(session, image_id, source).sha256, kind="image/png", cache=REVALIDATE)


@router.get(
    "/stimuli/{stimulus_id}/file",
    name="stimulus_file",
    response_class=FileResponse,
    responses={**file_responses("image/png", description="The stimulus as shown to participants."), **_NOT_FOUND},
)
def stimulus_file(stimulus_id: int, session: SessionDep, storage: StorageDep, user: CurrentUser) -> Response:
    require_owner_of_parent(session, user, Stimulus, stimulus_id)  # its stimulus set's owner rule
    return blob_file(storage, get_or_404(session, Stimulus, stimulus_id).sha256)


@router.get(
    "/annotations/{annotation_id}/mask",
    name="annotation_mask",
    response_class=FileResponse,
    responses={
        **file_responses("image/png", description="The painted mask: 8-bit grayscale PNG, 255 = salient."),
        **_NOT_FOUND,
    },
)
def annotation_mask(annotation_id: int, session: SessionDep, storage: StorageDep, user: CurrentUser) -> Response:
    require_owner_of_parent(session, user, Annotation, annotation_id)  # its study's owner rule
    return blob_file(storage, get_or_404(session, Annotation, annotation_id).mask_sha256, kind="image/png")
