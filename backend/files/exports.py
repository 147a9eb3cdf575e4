"""A study export as an HTTP download (CSV, JSON, NDJSON, streamed), for the research API
(`GET /api/v1/studies/{id}/export/{file}`) and the dashboard's export links; the rows are
`backend.services.exports.stream_export`'s.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from backend.models import Study
from backend.services.exports import stream_export
from backend.services.lookups import get_or_404
from backend.settings import Settings

__all__ = ["ExportFile", "IncludeSimulated", "export_response", "mask_url_template"]


class ExportFile(StrEnum):
    responses_csv = "responses.csv"
    responses_json = "responses.json"
    participants_csv = "participants.csv"
    participants_json = "participants.json"
    annotations_csv = "annotations.csv"
    annotations_json = "annotations.json"
    responses_ndjson = "responses.ndjson"
    participants_ndjson = "participants.ndjson"
    annotations_ndjson = "annotations.ndjson"


#: The query parameter that puts simulated sessions (researchers' pilot runs) into an export.
IncludeSimulated = Annotated[
    bool, Query(description="Include simulated sessions (researchers' pilot runs, `?simulate=1`); left out by default.")
]

_MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "ndjson": "application/x-ndjson"}


def mask_url_template(request: Request, settings: Settings) -> str:
    """Absolute URL of an annotation's mask, with `{annotation_id}` to fill in."""
    path = str(request.app.url_path_for("annotation_mask", annotation_id="0"))
    return settings.public_base_url + path.removesuffix("/0/mask") + "/{annotation_id}/mask"


def export_response(
    study_id: int,
    file: ExportFile,
    request: Request,
    session: Session,
    settings: Settings,
    *,
    include_simulated: bool = False,
) -> StreamingResponse:
    """The streamed download of one export table (the dashboard serves the same)."""
    study = get_or_404(session, Study, study_id)
    table, fmt = file.value.split(".")
    chunks = stream_export(
        request.app.state.session_factory,
        study.id,
        table,  # type: ignore[arg-type]
        fmt,  # type: ignore[arg-type]
        mask_url=mask_url_template(request, settings),
        include_simulated=include_simulated,
    )
    headers = {
        "Content-Disposition": f'attachment; filename="{study.slug}-{file.value}"',
        "Cache-Control": "private, no-store",
    }
    return StreamingResponse(chunks, media_type=_MEDIA_TYPES[fmt], headers=headers)
