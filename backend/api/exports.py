"""Study data downloads, streamed: responses, participants and annotations, as CSV or a JSON array.

GET /studies/{id}/export/responses.csv     one row per detection response (main, catch, practice)
GET /studies/{id}/export/participants.json one row per participant, with progress and catch misses
GET /studies/{id}/export/annotations.csv   one row per painted mask, with its URL and sha256
GET /studies/{id}/annotations/{aid}/strokes the stroke record of one painted mask
GET /studies/{id}/annotations.zip          the masks as PNGs, mean maps and COCO annotations.json (as the dashboard)
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from backend.api.deps import SessionDep, SettingsDep, StorageDep
from backend.files.exports import ExportFile, IncludeSimulated, export_response
from backend.models import Study
from backend.schemas.common import ErrorOut
from backend.schemas.studies import AnnotationStrokesOut
from backend.services import admin_views as views
from backend.services.coco import annotations_zip
from backend.services.exports import annotation_strokes
from backend.services.lookups import get_or_404

router = APIRouter(tags=["exports"])


_TEXT = {"schema": {"type": "string"}}
_ARRAY = {"schema": {"type": "array", "items": {"type": "object"}}}


@router.get(
    "/studies/{study_id:int}/export/{file}",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": _TEXT, "application/json": _ARRAY, "application/x-ndjson": _TEXT},
            "description": "The table, streamed: CSV with a header line, a JSON array of objects, or NDJSON "
            "(one object per line).",
        },
        404: {"model": ErrorOut},
    },
)
def export(
    study_id: int,
    file: ExportFile,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    include_simulated: IncludeSimulated = False,
) -> StreamingResponse:
    """One table of the study's data, streamed in constant memory."""
    return export_response(study_id, file, request, session, settings, include_simulated=include_simulated)


@router.get(
    "/studies/{study_id:int}/annotations/{annotation_id:int}/strokes",
    response_model=AnnotationStrokesOut,
    responses={404: {"model": ErrorOut, "description": "No such annotation in this study."}},
)
def read_annotation_strokes(study_id: int, annotation_id: int, session: SessionDep) -> AnnotationStrokesOut:
    """How a mask was painted: its stroke record (the mask itself is `/annotations/{annotation_id}/mask`)."""
    get_or_404(session, Study, study_id)
    return AnnotationStrokesOut.model_validate(annotation_strokes(session, study_id, annotation_id))


@router.get(
    "/studies/{study_id:int}/annotations.zip",
    response_class=Response,
    responses={
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "annotations.json (COCO: images, categories = the image labels, annotations with RLE "
            "segmentations), masks/<annotation id>.png as painted, mean/<image id>.png over the unflagged "
            "annotators, README.txt.",
        },
        404: {"model": ErrorOut},
    },
)
def annotations_archive(study_id: int, session: SessionDep, storage: StorageDep) -> Response:
    """The study's salience annotations as the dashboard's zip (`backend.services.coco`), for scripts."""
    study = get_or_404(session, Study, study_id)
    data = annotations_zip(study, views.painted_masks(session, study_id=study_id), storage.get)
    headers = {
        "Content-Disposition": f'attachment; filename="{study.slug}-annotations.zip"',
        "Cache-Control": "private, no-store",
    }
    return Response(data, media_type="application/zip", headers=headers)
