"""A study's salience annotations: per image the participants' masks, their mean map, the inter-annotator
agreement (mean pairwise IoU of the masks binarised at 50 %) and the time spent; a zip export (PNGs + COCO)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from backend.admin.deps import AdminDep, AdminRoute, render
from backend.admin.figures import Table
from backend.api.deps import SessionDep, StorageDep
from backend.models import Image, Study
from backend.services import admin_views as views
from backend.services.coco import ImageMasks, annotations_zip, group_masks
from backend.services.lookups import get_or_404
from backend.services.maskstats import mean_pairwise_iou

router = APIRouter(route_class=AdminRoute)

IMAGES_PER_PAGE = 20


@dataclass(frozen=True)
class Agreement:
    """One image: its masks, and over the unflagged annotators the mean pairwise IoU and the painting time."""

    group: ImageMasks
    n_kept: int
    iou: float | None
    mean_duration_s: float | None

    @property
    def image(self) -> Image:
        """The source image (of the first mask; all masks of a group are of one image)."""
        return self.group.masks[0][0].image


def agreements(grouped: list[ImageMasks]) -> list[Agreement]:
    out = []
    for g in grouped:
        kept = [(p, m) for p, m in g.masks if not p.participant.flagged]
        durations = [p.annotation.duration_ms / 1000 for p, _ in kept]
        out.append(
            Agreement(
                group=g,
                n_kept=len(kept),
                iou=mean_pairwise_iou([m for _, m in kept]),
                mean_duration_s=float(np.mean(durations)) if durations else None,
            )
        )
    return out


def agreement_table(rows: list[Agreement]) -> Table:
    return Table(
        ["image_id", "filename", "label", "annotations", "annotators_kept", "mean_pairwise_iou", "mean_duration_s"],
        [
            [a.group.image_id, a.image.filename, a.image.label, len(a.group.masks), a.n_kept, a.iou, a.mean_duration_s]
            for a in rows
        ],
        "Agreement per image",
    )


@router.get("/studies/{study_id}/annotations", name="admin_annotations")
def annotations_page(
    study_id: int,
    request: Request,
    admin: AdminDep,
    session: SessionDep,
    storage: StorageDep,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    study = get_or_404(session, Study, study_id)
    rows = agreements(group_masks(views.painted_masks(session, study_id=study_id), storage.get))
    ious = [a.iou for a in rows if a.iou is not None]
    durations = [a.mean_duration_s for a in rows if a.mean_duration_s is not None]
    return render(
        request,
        admin,
        "annotations.html",
        {
            "nav": "studies",
            "study": study,
            "rows": rows[offset : offset + IMAGES_PER_PAGE],
            "table": agreement_table(rows),
            "n_images": len(rows),
            "n_annotations": sum(len(a.group.masks) for a in rows),
            "mean_iou": float(np.mean(ious)) if ious else None,
            "n_with_iou": len(ious),
            "mean_duration_s": float(np.mean(durations)) if durations else None,
            "offset": offset,
            "page_size": IMAGES_PER_PAGE,
        },
    )


@router.get("/studies/{study_id}/annotations/agreement.csv", name="admin_agreement_csv")
def agreement_csv(study_id: int, admin: AdminDep, session: SessionDep, storage: StorageDep) -> Response:
    study = get_or_404(session, Study, study_id)
    rows = agreements(group_masks(views.painted_masks(session, study_id=study_id), storage.get))
    return Response(
        agreement_table(rows).csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{study.slug}-agreement.csv"'},
    )


@router.get("/studies/{study_id}/annotations.zip", name="admin_annotations_zip")
def annotations_export(study_id: int, admin: AdminDep, session: SessionDep, storage: StorageDep) -> Response:
    """Every mask as PNG, each image's mean map, and a COCO-style annotations.json with RLE segmentations."""
    study = get_or_404(session, Study, study_id)
    data = annotations_zip(study, views.painted_masks(session, study_id=study_id), storage.get)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{study.slug}-annotations.zip"'},
    )
