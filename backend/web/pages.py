"""The participant's page of a study (`/s/{slug}`) and the example images of its instructions.

The page is one HTML document; the ES modules under `/static/js/` run the whole session against the JSON
protocol of `backend.api.participant`. The study's texts travel in a `<script type="application/json">` block
(Jinja's `tojson` escapes `<`, `>`, `&`, `'`), so no inline script is needed and the strict
`backend.security.PAGE_POLICY` holds.

An MTurk study (`config.mturk`, `backend.study.mturk`): a preview (`assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`)
gets the description only; `turkSubmitTo` must be one of MTurk's two hosts (400 page otherwise, so no link can
make the end page post the completion code elsewhere).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from backend.api import API_PREFIX
from backend.api.deps import ParticipantDep, SessionDep, StorageDep
from backend.api.media import NO_STORE_HEADERS
from backend.api.simulation import SIMULATE_REFUSED, may_simulate
from backend.security import page_policy
from backend.services import participants as svc
from backend.services.errors import ForbiddenError, NotFoundError, ServiceError
from backend.services.media import media_type
from backend.study import mturk
from backend.study.mturk import PREVIEW_ASSIGNMENT_ID
from backend.study.texts import participant_text
from backend.web.examples import Which, example_stimulus
from study_frontend import TEMPLATES_DIR

router = APIRouter()
templates = Jinja2Templates(directory=TEMPLATES_DIR)

#: The pages' Content-Security-Policy (`backend.security.PAGE_POLICY`) is set with the other security headers by
#: `backend.security`'s middleware (one place for every response); the pages only add that they must not be cached.
#: An MTurk study's page sets `backend.security.page_policy` with the validated MTurk origin as form target and
#: frame ancestor (MTurk frames the page; its end posts the external-submit form there).
SECURITY_HEADERS = {"Cache-Control": "no-store"}
MAX_SLUG = 64
Slug = Annotated[str, Path(max_length=MAX_SLUG)]


@router.get("/s/{slug}", response_class=HTMLResponse, name="study_page")
def study_page(slug: str, request: Request, session: SessionDep) -> Response:
    """The study's page; a short explanation instead when the study does not exist, is a draft or is broken.

    `slug` is not bounded in the path (a 422 would be bare JSON to a participant with a mangled link): a slug
    longer than any study's is simply unknown. `?simulate=1` runs a robot participant (`static/js/simulate.js`)
    for piloting, also on a draft; only where `backend.api.simulation.may_simulate` allows it (403 page
    otherwise)."""
    if len(slug) > MAX_SLUG:
        return _unknown(request)
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
    headers = SECURITY_HEADERS
    mturk_submit_url = None
    if config.mturk:
        query = request.query_params
        if query.get("assignmentId") == PREVIEW_ASSIGNMENT_ID:
            return _mturk_preview(request, study.title, participant_text(config.consent_text, config))
        if query.get("turkSubmitTo") is not None:
            try:
                mturk_submit_url = mturk.submit_url(query["turkSubmitTo"])
            except ValueError as exc:
                return _message(request, "This study link is broken", str(exc), 400)
            origin = mturk.submit_origin(query["turkSubmitTo"])
            policy = page_policy(form_action=(origin,), frame_ancestors=(origin,))
            headers = {**SECURITY_HEADERS, "Content-Security-Policy": policy}
    page: dict[str, Any] = {
        "slug": study.slug,
        "title": study.title,
        "status": study.status,
        "consent_text": participant_text(config.consent_text, config),
        "instructions": participant_text(config.instructions, config),
        "stimulus_duration_ms": config.stimulus_duration_ms,
        "iti_ms": config.iti_ms,  # the fixation before each detection trial
        "mask_ms": config.mask_ms,  # the backward mask after a timed stimulus
        "require_fullscreen": config.require_fullscreen,
        "card_calibration": config.card_calibration,
        "declined_code": config.declined_code,  # shown (or sent back to Prolific) on declining consent
        "declined_url": config.return_url(config.declined_code) if config.declined_code else None,
        "questionnaire": [item.model_dump() for item in config.questionnaire],
        "viewing_distance": config.viewing_distance,  # the blind-spot test after the card calibration
        "mturk_submit_url": mturk_submit_url,  # the external-submit form's validated target, or null
        "simulate": simulate,
        "simulate_grant": grant,
        "api": API_PREFIX,
        "example_url": str(request.url_for("example_image", slug=study.slug, token="TOKEN", which="WHICH").path),
    }
    return templates.TemplateResponse(request, "study.html", {"page": page, "title": study.title}, headers=headers)


def _mturk_preview(request: Request, title: str, description: str) -> Response:
    """What a worker previewing the HIT sees: the study's description (its consent text), no session, no
    script. The page may be framed by either MTurk host (which one previews is not known: no turkSubmitTo)."""
    policy = page_policy(frame_ancestors=mturk.MTURK_ORIGINS)
    return templates.TemplateResponse(
        request,
        "mturk_preview.html",
        {"title": title, "heading": title, "description": description},
        headers={**SECURITY_HEADERS, "Content-Security-Policy": policy},
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


@router.get("/s", response_class=HTMLResponse)
@router.get("/s/{rest:path}", response_class=HTMLResponse)
def unknown_study_path(request: Request, rest: str = "") -> Response:
    """Any other address under `/s/` (a link cut short, a stray slash, a wrong path) gets the styled page a
    participant can read, not the API's JSON 404. `/s/<slug>/` with a trailing slash goes to the study's page,
    query (the recruitment ids) kept."""
    slug = rest.rstrip("/")
    if rest.endswith("/") and slug and "/" not in slug:
        url = request.url_for("study_page", slug=slug).path
        return RedirectResponse(f"{url}?{request.url.query}" if request.url.query else url, status_code=307)
    return _unknown(request)


def _unknown(request: Request) -> Response:
    return _message(
        request, "This study is not available", "There is no study at this address; check the link you were given.", 404
    )


def _message(request: Request, heading: str, text: str, status_code: int) -> Response:
    return templates.TemplateResponse(
        request,
        "message.html",
        {"title": heading, "heading": heading, "text": text},
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )
