"""Images of the admin pages, same origin and behind the login: source images, stimuli, painted masks, the
maps a ranking job stored, and PNGs computed here (salience overlays, the annotators' mean map, the amplified
perturbation)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from fastapi import APIRouter
from fastapi.responses import Response

from backend.admin import imaging
from backend.admin.deps import AdminDep, AdminRoute
from backend.admin.painting_pool import map_sha
from backend.api.deps import SessionDep, StorageDep
from backend.files.downloads import blob_file
from backend.models import Annotation, Image, Job, Stimulus, Study
from backend.services import admin_views as views
from backend.services.dataset_catalog import salience_map
from backend.services.errors import ConflictError, NotFoundError
from backend.services.lookups import get_or_404
from backend.services.maskstats import decode_map, encode_png, mean_map
from backend.storage import BlobStore

router = APIRouter(route_class=AdminRoute)

#: Computed PNGs change when new annotations or maps arrive: revalidate each time.
COMPUTED = {"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"}
OverlaySource = Literal["imported", "gradcam", "human_mean", "annotations"]


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers=COMPUTED)


@router.get("/images/{image_id}/file", name="admin_image_file")
def image_file(image_id: int, admin: AdminDep, session: SessionDep, storage: StorageDep) -> Response:
    return blob_file(storage, get_or_404(session, Image, image_id).sha256)


@router.get("/stimuli/{stimulus_id}/file", name="admin_stimulus_file")
def stimulus_file(stimulus_id: int, admin: AdminDep, session: SessionDep, storage: StorageDep) -> Response:
    return blob_file(storage, get_or_404(session, Stimulus, stimulus_id).sha256)


@router.get("/annotations/{annotation_id}/mask.png", name="admin_annotation_mask")
def annotation_mask(annotation_id: int, admin: AdminDep, session: SessionDep, storage: StorageDep) -> Response:
    return blob_file(storage, get_or_404(session, Annotation, annotation_id).mask_sha256, kind="image/png")


def _mean_of_masks(storage: BlobStore, masks: list[views.PaintedMask], size: tuple[int, int]) -> np.ndarray:
    return mean_map([decode_map(storage.get(m.annotation.mask_sha256), size) for m in masks])


@router.get("/images/{image_id}/overlay.png", name="admin_image_overlay")
def image_overlay(
    image_id: int, source: OverlaySource, admin: AdminDep, session: SessionDep, storage: StorageDep
) -> Response:
    """The image with a salience map laid over it as heat: a stored map of `source`, or (`annotations`) the
    mean of every unflagged participant's mask of this image, over all studies."""
    image = get_or_404(session, Image, image_id)
    picture = imaging.decode_rgb(storage.get(image.sha256))
    size = (picture.shape[1], picture.shape[0])
    if source == "annotations":
        masks = [m for m in views.painted_masks(session, image_id=image_id) if not m.participant.flagged]
        if not masks:
            raise NotFoundError(f"no participant (left after the catch-trial exclusions) painted image {image_id}")
        salience = _mean_of_masks(storage, masks, size)
    else:
        salience = decode_map(storage.get(salience_map(session, image_id, source).sha256), size)
    return _png(encode_png(imaging.overlay(picture, salience)))


@router.get("/studies/{study_id}/images/{image_id}/mean.png", name="admin_study_mean_map")
def study_mean_map(
    study_id: int, image_id: int, admin: AdminDep, session: SessionDep, storage: StorageDep, overlay: bool = True
) -> Response:
    """The mean of this study's unflagged masks of the image, over the stimulus that was painted on (or, with
    `overlay=false`, the map alone: grayscale, 255 = everyone painted the pixel)."""
    get_or_404(session, Study, study_id)
    masks = [m for m in views.painted_masks(session, study_id=study_id, image_id=image_id) if not m.participant.flagged]
    if not masks:
        raise NotFoundError(f"no unflagged participant of study {study_id} painted image {image_id}")
    first = masks[0].annotation
    size = (first.width, first.height)
    mean = _mean_of_masks(storage, masks, size)
    if not overlay:
        return _png(encode_png(mean))
    background = imaging.decode_rgb(storage.get(first.trial.stimulus.sha256))
    if background.shape[:2] != mean.shape:
        mean = imaging.resize_map(mean, (background.shape[1], background.shape[0]))
    return _png(encode_png(imaging.overlay(background, mean)))


@router.get("/jobs/{job_id}/maps/{sha256}.png", name="admin_ranking_map")
def ranking_map(job_id: int, sha256: str, admin: AdminDep, session: SessionDep, storage: StorageDep) -> Response:
    """A map a `rank_paintings` job stored for a ranked image (predicted, uncertainty, human mean): only the
    blobs its result names, so the route is no window on the whole blob store."""
    job = get_or_404(session, Job, job_id)
    if not map_sha(job, sha256):
        raise NotFoundError(f"job {job_id} stored no map {sha256!r}; the study page links the ones it has")
    return blob_file(storage, sha256, kind="image/png")


@router.get("/stimuli/{stimulus_id}/perturbation.png", name="admin_perturbation")
def perturbation(
    stimulus_id: int, admin: AdminDep, session: SessionDep, storage: StorageDep, signed: bool = False
) -> Response:
    """|x_adv - x| of a stimulus against its clean twin (eps 0, same image and set), scaled to the full range
    so that the largest change is white; the header `X-Linf` gives that largest change in [0, 1] units.
    `signed=true`: x_adv - x instead, grey = unchanged, brighter/darker = up/down (see `signed_difference`)."""
    stimulus = get_or_404(session, Stimulus, stimulus_id)
    clean = views.clean_twin(session, stimulus)
    if clean is None:
        raise NotFoundError(f"stimulus {stimulus_id} has no clean (eps 0) twin in its set to compare with")
    x = imaging.decode_rgb(storage.get(clean.sha256))
    x_adv = imaging.decode_rgb(storage.get(stimulus.sha256))
    if x.shape != x_adv.shape:
        raise ConflictError(f"stimulus {stimulus_id} is {x_adv.shape[:2]} pixels, its clean twin {x.shape[:2]}")
    amplified, peak = imaging.amplified_difference(x, x_adv)
    shown = imaging.signed_difference(x, x_adv) if signed else amplified
    response = _png(encode_png(shown))
    response.headers["X-Linf"] = f"{peak:.6f}"
    return response
