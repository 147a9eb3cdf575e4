"""The participant protocol (no account; a session token in the path is the credential).

    GET  /studies/{slug}                                 consent text and instructions
    POST /studies/{slug}/sessions                        start or resume -> token
    GET  /sessions/{token}/next                          the next trial, or the completion code
    POST /sessions/{token}/trials/{trial_id}/response    judgment of a detection trial
    POST /sessions/{token}/trials/{trial_id}/annotation  painted mask of an annotation trial
    POST /sessions/{token}/questionnaire                 the study's questionnaire, after the last trial

Answers are idempotent: the same answer again gives 200 and is stored once; a different one gives 409.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, status
from fastapi import Response as HTTPResponse
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from backend.api.deps import SessionDep, get_enqueuer, in_transaction
from backend.api.simulation import check_simulate
from backend.models import Job
from backend.schemas.common import ErrorOut
from backend.schemas.participant import (
    AnnotationOut,
    AnnotationSubmit,
    NextTrial,
    QuestionnaireOut,
    QuestionnaireSubmit,
    ResponseOut,
    ResponseSubmit,
    SessionCreate,
    SessionDone,
    SessionOut,
    StudyPublic,
)
from backend.services import participants as svc
from backend.services import questionnaire
from backend.services.errors import InvalidInputError, NotFoundError, PayloadTooLargeError, ServiceError
from backend.services.masks import MAX_MASK_BYTES
from backend.services.media import MediaCache
from backend.services.rerank import refresh_and_send
from backend.storage import BlobStore
from backend.study.texts import participant_text

router = APIRouter(tags=["participant"])
#: The per-trial routes, the hot path under load: `backend.api` matches them before every other route.
sessions_router = APIRouter(tags=["participant"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Unknown study, session or trial."},
    409: {"model": ErrorOut, "description": "Not possible now (study not open, answered differently, ...)."},
}


@router.get("/studies/{slug}", response_model=StudyPublic, responses={404: _ERRORS[404]})
def read_study(slug: str, session: SessionDep) -> StudyPublic:
    study = svc.get_study(session, slug)
    if study.status == "draft":  # a draft's consent text and set-up are the researcher's until it opens
        raise NotFoundError(f"no study with slug {slug!r}; check the link you were given")
    config = svc.study_config(study)
    return StudyPublic(
        slug=study.slug,
        title=study.title,
        status=study.status,  # type: ignore[arg-type]
        consent_text=participant_text(config.consent_text, config),
        instructions=participant_text(config.instructions, config),
        stimulus_duration_ms=config.stimulus_duration_ms,
    )


@router.post(
    "/studies/{slug}/sessions",
    response_model=SessionOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "model": SessionOut,
            "description": "An existing session of this external id, resumed (new token).",
        },
        **_ERRORS,
        403: {
            "model": ErrorOut,
            "description": "simulate is true on an open study without the dashboard's grant or a researcher's "
            "token (backend.api.simulation).",
        },
        429: {"model": ErrorOut, "description": "Too many session starts; see Retry-After."},
        503: {"model": ErrorOut, "description": "The study is being prepared; see Retry-After."},
    },
)
async def create_session(slug: str, body: SessionCreate, request: Request, response: HTTPResponse) -> SessionOut:
    request.app.state.rate_limits.enrolment(request, slug)  # 429 past the per-client or per-study limit
    client = body.client.model_dump(exclude_none=True)
    client.setdefault("user_agent", request.headers.get("user-agent", "")[:1024])

    def start(session: Session) -> SessionOut:
        if body.simulate:
            check_simulate(request, session, svc.get_study(session, slug), body.simulate_grant)
        enrolment = svc.start_session(
            session,
            slug,
            consent=body.consent,
            external_id=body.external_id,
            recruitment=body.recruitment.model_dump(exclude_none=True) if body.recruitment else None,
            client_info=client,
            simulated=body.simulate,
        )
        token = enrolment.token
        if enrolment.trials is not None:  # new: nothing answered yet, no need to ask the database
            total, answered = enrolment.trials, 0
        else:
            progress = svc.progress(session, token)
            total = progress.total
            answered = progress.total if progress.trial is None else progress.trial.position
        return SessionOut(
            token=token, study_slug=slug, total_trials=total, answered=answered, resumed=not enrolment.created
        )

    out = await in_transaction(request, start, enrolment=True)
    if out.resumed:
        response.status_code = status.HTTP_200_OK
    return out


@sessions_router.get("/sessions/{token}/next", response_model=NextTrial | SessionDone, responses={404: _ERRORS[404]})
async def read_next(token: str, request: Request) -> NextTrial | SessionDone:
    def media_url(key: str) -> str:
        return str(request.app.url_path_for("get_media", media_key=key))

    state = request.app.state
    return await in_transaction(
        request, partial(_next, token=token, storage=state.storage, media=state.media_cache, media_url=media_url)
    )


def _next(
    session: Session, *, token: str, storage: BlobStore, media: MediaCache, media_url: Callable[[str], str]
) -> NextTrial | SessionDone:
    progress = svc.progress(session, token)
    trial = progress.trial
    if trial is None:  # every trial answered: normally the last answer completed the session already
        participant = svc.participant_by_token(session, token)
        svc.finish(session, participant)
        outcome = svc.outcome(participant)
        return SessionDone(
            total=progress.total,
            completion_code=outcome.completion_code,
            redirect_url=outcome.redirect_url,
            questionnaire_pending=bool(progress.config.questionnaire) and participant.questionnaire is None,
        )
    media.remember(trial.media_key, trial.sha256)  # the image request that follows needs no query
    svc.mark_shown(session, trial.id)
    annotate = trial.phase == "annotate"
    width = height = None
    if annotate:
        width, height = svc.stimulus_size(storage, trial.sha256)
    return NextTrial(
        trial_id=trial.id,
        position=trial.position,
        total=progress.total,
        phase="main" if trial.phase == "catch" else trial.phase,  # type: ignore[arg-type]  # catch: unlabelled
        image_url=media_url(trial.media_key),
        question="annotate" if annotate else "perturbed_or_clean",
        class_name=trial.label if annotate else None,
        mask_width=width,
        mask_height=height,
        feedback_expected=trial.expected_judgment if trial.phase == "practice" else None,  # type: ignore[arg-type]
        stimulus_duration_ms=progress.config.stimulus_duration_ms,
    )


@sessions_router.post(
    "/sessions/{token}/trials/{trial_id}/response",
    response_model=ResponseOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ResponseOut, "description": "The same answer was already stored."}, **_ERRORS},
)
async def submit_response(
    token: str, trial_id: int, body: ResponseSubmit, request: Request, response: HTTPResponse
) -> ResponseOut:
    def store(session: Session) -> tuple[ResponseOut, bool]:
        stored, created = svc.submit_response(session, token, trial_id, **body.model_dump())
        return ResponseOut.model_validate(stored), created

    out, created = await in_transaction(request, store)
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


def _enqueuer(request: Request) -> Callable[[Job], object]:
    """The app's `get_enqueuer` (tests override it), resolved only when a job is really sent."""
    override = request.app.dependency_overrides.get(get_enqueuer)

    def send(job: Job) -> object:
        return (override() if override is not None else get_enqueuer(request))(job)

    return send


@sessions_router.post(
    "/sessions/{token}/questionnaire",
    response_model=QuestionnaireOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": QuestionnaireOut, "description": "The same answers were already stored."}, **_ERRORS},
)
async def submit_questionnaire(
    token: str, body: QuestionnaireSubmit, request: Request, response: HTTPResponse
) -> QuestionnaireOut:
    """The study's questionnaire, after the last trial; stored once (see `backend.services.questionnaire`)."""

    def store(session: Session) -> tuple[QuestionnaireOut, bool]:
        stored, created = questionnaire.submit_questionnaire(session, token, body.answers)
        return QuestionnaireOut(answers=stored), created

    out, created = await in_transaction(request, store)
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


#: Largest annotation request: a base64 mask of MAX_MASK_BYTES plus the stroke record and form overhead.
_MAX_ANNOTATION_BODY = (MAX_MASK_BYTES * 4) // 3 + svc.MAX_STROKES_BYTES + 64 * 1024


@dataclass(frozen=True)
class _AnnotationPayload:
    mask_png: bytes
    strokes: Any
    duration_ms: float


class _AnnotationFormFields(BaseModel):
    strokes: list[Any] | dict[str, Any] = Field(default_factory=list)
    duration_ms: float = Field(gt=0, le=86_400_000, allow_inf_nan=False)


async def _annotation_payload(request: Request) -> _AnnotationPayload:
    """The annotation from a JSON body (base64 PNG) or a multipart form (file `mask`, `strokes`, `duration_ms`)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_ANNOTATION_BODY:
        raise PayloadTooLargeError(
            f"the annotation is {declared} bytes, more than {_MAX_ANNOTATION_BODY}; send a smaller mask PNG"
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "multipart/form-data":
            return await _from_form(request)
        if content_type in ("application/json", ""):
            body = AnnotationSubmit.model_validate_json(await request.body())
            return _AnnotationPayload(_decode_png(body.mask_png), body.strokes, body.duration_ms)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    except ServiceError:
        raise
    raise InvalidInputError(f"unsupported content type {content_type!r}; send application/json or multipart/form-data")


async def _from_form(request: Request) -> _AnnotationPayload:
    try:
        form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_MASK_BYTES + 1)
    except HTTPException as exc:  # Starlette's 400 for a form it cannot parse: say which limit, and what to do
        detail = str(exc.detail)
        if "maximum size" in detail:
            raise PayloadTooLargeError(
                f"{detail}: a field is over {MAX_MASK_BYTES} bytes; send a smaller mask PNG or fewer stroke points"
            ) from None
        raise InvalidInputError(
            f"the form cannot be read ({detail}); send the fields 'mask' (PNG file), 'strokes' (JSON) and 'duration_ms'"
        ) from None
    try:
        mask = form.get("mask")
        if not isinstance(mask, UploadFile):
            raise InvalidInputError("the form has no file field 'mask'; attach the PNG mask as 'mask'")
        data = await mask.read(MAX_MASK_BYTES + 1)
        strokes_text = form.get("strokes")
        try:
            strokes = json.loads(strokes_text) if isinstance(strokes_text, str) and strokes_text else []
        except json.JSONDecodeError:
            raise InvalidInputError("the form field 'strokes' is not valid JSON") from None
        except RecursionError:
            raise InvalidInputError(
                "the form field 'strokes' is nested too deeply; send a flat list of strokes"
            ) from None
        fields = _AnnotationFormFields.model_validate({"strokes": strokes, "duration_ms": form.get("duration_ms")})
    finally:
        await form.close()
    return _AnnotationPayload(data, fields.strokes, fields.duration_ms)


def _decode_png(text: str) -> bytes:
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise InvalidInputError("mask_png is a data URL without ';base64'; send canvas.toDataURL('image/png')")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("mask_png is not valid base64; send the PNG's bytes base64-encoded") from None


_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["mask", "duration_ms"],
    "properties": {
        "mask": {"type": "string", "format": "binary", "description": "PNG mask at the image's size."},
        "strokes": {"type": "string", "description": "Stroke record as JSON text."},
        "duration_ms": {"type": "number", "exclusiveMinimum": 0},
    },
}


@sessions_router.post(
    "/sessions/{token}/trials/{trial_id}/annotation",
    response_model=AnnotationOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": AnnotationOut, "description": "The same mask was already stored."}, **_ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": AnnotationSubmit.model_json_schema()},
                "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            },
        }
    },
)
async def submit_annotation(
    token: str,
    trial_id: int,
    payload: Annotated[_AnnotationPayload, Depends(_annotation_payload)],
    request: Request,
    response: HTTPResponse,
    background: BackgroundTasks,
) -> AnnotationOut:
    storage: BlobStore = request.app.state.storage

    def store(session: Session) -> tuple[AnnotationOut, bool]:
        stored, created = svc.submit_annotation(
            session,
            storage,
            token,
            trial_id,
            mask_png=payload.mask_png,
            strokes=payload.strokes,
            duration_ms=payload.duration_ms,
        )
        return AnnotationOut.model_validate(stored), created

    out, created = await in_transaction(request, store)
    if not created:
        response.status_code = status.HTTP_200_OK
    else:  # after the response: the study's ranking may be due (`rerank_every`), never delaying this answer
        background.add_task(refresh_and_send, request.app.state.session_factory, trial_id, _enqueuer(request))
    return out
