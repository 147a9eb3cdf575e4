"""The participant's page of a study (`/s/{slug}`) and the example images of its instructions.

The page is one HTML document; the ES modules under `/static/js/` run the whole session against the JSON
protocol of `backend.api.participant`. The study's texts travel in a `<script type="application/json">` block
(Jinja's `tojson` escapes `<`, `>`, `&`, `'`), so no inline script is needed and the strict
`backend.security.PAGE_POLICY` holds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from backend.api import API_PREFIX
from backend.api.deps import ParticipantDep, SessionDep, StorageDep
from backend.api.media import NO_STORE_HEADERS
from backend.api.simulation import SIMULATE_REFUSED, may_simulate
from backend.security import PAGE_POLICY
from backend.services import participants as svc
from backend.services.errors import ForbiddenError, NotFoundError, ServiceError
from backend.services.media import media_type
from backend.web.examples import Which, example_stimulus
from study_frontend import TEMPLATES_DIR

router = APIRouter()
templates = Jinja2Templates(directory=TEMPLATES_DIR)

#: The pages' Content-Security-Policy, set with the other security headers by `backend.security`'s middleware
#: (one place for every response); the pages only add that they must not be cached.
CONTENT_SECURITY_POLICY = PAGE_POLICY
SECURITY_HEADERS = {"Cache-Control": "no-store"}
Slug = Annotated[str, Path(max_length=64)]


@router.get("/s/{slug}", response_class=HTMLResponse, name="study_page")
def study_page(slug: Slug, request: Request, session: SessionDep) -> Response:
    """The study's page; a short explanation instead when the study does not exist, is a draft or is broken.

    `?simulate=1` runs a robot participant (`static/js/simulate.js`) for piloting, also on a draft; only where
    `backend.api.simulation.may_simulate` allows it (403 page otherwise)."""
    simulate = request.query_params.get("simulate") == "1"
    grant = request.query_params.get("grant") if simulate else None
    try:
        study = svc.get_study(session, slug)
        if simulate and not may_simulate(request, session, study, grant):
            raise ForbiddenError(SIMULATE_REFUSED)
        if study.status == "draft" and not simulate:
            raise NotFoundError(f"study {slug!r} is not open yet")
        config = svc.study_config(study)
    except ServiceError as exc:
        return _message(request, "This study is not available", exc.message, exc.status_code)
    page: dict[str, Any] = {
        "slug": study.slug,
        "title": study.title,
        "status": study.status,
        "consent_text": config.consent_text,
        "instructions": config.instructions,
        "stimulus_duration_ms": config.stimulus_duration_ms,
        "declined_code": config.declined_code,  # shown (or sent back to Prolific) on declining consent
        "declined_url": config.return_url(config.declined_code) if config.declined_code else None,
        "questionnaire": [item.model_dump() for item in config.questionnaire],
        "simulate": simulate,
        "simulate_grant": grant,
        "api": API_PREFIX,
        "example_url": str(request.url_for("example_image", slug=study.slug, token="TOKEN", which="WHICH").path),
    }
    return templates.TemplateResponse(
        request, "study.html", {"page": page, "title": study.title}, headers=SECURITY_HEADERS
    )


@router.get("/s/{slug}/example/{token}/{which}", name="example_image")
def example_image(
    slug: Slug, which: Which, participant: ParticipantDep, session: SessionDep, storage: StorageDep
) -> Response:
    """The clean or the perturbed image of the instructions' example pair (see `backend.web.examples`)."""
    if participant.study.slug != slug:
        raise NotFoundError("no session with this token in this study")
    stimulus = example_stimulus(session, participant, which)
    with storage.open(stimulus.sha256) as fh:
        data = fh.read()
    return Response(data, media_type=media_type(data[:16]), headers=NO_STORE_HEADERS)


def _message(request: Request, heading: str, text: str, status_code: int) -> Response:
    return templates.TemplateResponse(
        request,
        "message.html",
        {"title": heading, "heading": heading, "text": text},
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )
