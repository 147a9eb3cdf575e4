"""Studies: create and edit (a form of `StudyConfig`), open and close, the participant and Prolific links,
per-participant progress, withdrawal with a confirmation form, and the data downloads. Every change goes
through `backend.services.studies`, the service of the research API."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend import links
from backend.admin.deps import Admin, AdminDep, AdminRoute, FormDep, render, see_other
from backend.admin.forms import checkbox, given, int_field, optional, validation_message
from backend.admin.painting_pool import paint_next_context
from backend.api.deps import EnqueueDep, SessionDep, SettingsDep, StorageDep
from backend.api.simulation import service_secret, simulate_grant
from backend.files.exports import ExportFile, IncludeSimulated, export_response
from backend.models import Participant, StimulusSet, Study
from backend.schemas.studies import StudyCreate, StudyUpdate
from backend.services import admin_views as views
from backend.services import job_requests
from backend.services import studies as svc
from backend.services.errors import InvalidInputError, ServiceError
from backend.services.lookups import get_child_or_404, get_or_404
from backend.services.study_defaults import image_count
from backend.settings import Settings
from backend.study.config import StudyConfig

router = APIRouter(route_class=AdminRoute)

PARTICIPANTS_PER_PAGE = 100
#: Config fields that may be cleared on the form (empty = null), and those whose empty field keeps the default.
NULLABLE = (
    "stimulus_duration_ms", "mask_ms", "target_participants", "completion_code", "redirect_url", "declined_code",
    "failed_attention_code", "rerank_every",
)  # fmt: skip
NOTICES = {
    "created": "The study was created as a draft. Check its settings, then open it.",
    "saved": "The settings were saved.",
    "opened": "The study is open: participants can take part at its link.",
    "closed": "The study is closed: nobody new can start; sessions already started can be finished.",
    "withdrawn": "The participant's data were deleted.",
    "ranking": "A job ranking the unpainted training images is queued; its top appears below when it is done.",
}


def participant_url(settings: Settings, study: Study) -> str:
    return links.participant_url(settings, study.slug)


def prolific_url(settings: Settings, study: Study) -> str:
    """The study link for Prolific (`backend.links`)."""
    return links.prolific_url(settings, study.slug)


#: The form's label of each StudyConfig field (as `_study_fields.html` writes it): errors name the box to fix.
CONFIG_LABELS = {
    "stimulus_set_id": "Stimulus set",
    "compare_stimulus_set_ids": "Compared with sets",
    "n_main": "Main trials",
    "n_practice": "Practice trials",
    "n_catch": "Catch trials",
    "n_annotate": "Annotation trials",
    "annotation_split": "Images to paint (split)",
    "seed": "Seed",
    "min_annotators": "Annotators per image",
    "painting_pool": "Choice of images to paint",
    "rerank_every": "Re-rank after paintings",
    "stimulus_duration_ms": "Stimulus shown for (ms)",
    "mask_ms": "Noise mask after it (ms)",
    "iti_ms": "Pause between trials (ms)",
    "require_fullscreen": "Ask for fullscreen",
    "card_calibration": "Card calibration",
    "viewing_distance": "Viewing distance",
    "target_participants": "Close after participants",
    "completion_code": "Completion code",
    "redirect_url": "Redirect after the end",
    "prolific": "Runs on Prolific",
    "mturk": "Runs on MTurk",
    "declined_code": "Code for declined consent",
    "failed_attention_code": "Code for failed attention checks",
    "consent_text": "Consent text",
    "instructions": "Instructions",
}
INT_FIELDS = (
    "stimulus_set_id", "n_main", "n_practice", "n_catch", "n_annotate", "seed", "min_annotators",
    "stimulus_duration_ms", "mask_ms", "iti_ms", "target_participants", "rerank_every",
)  # fmt: skip
COMPARE = "compare_stimulus_set_ids"
CHECKBOX_FIELDS = ("prolific", "mturk", "require_fullscreen", "card_calibration", "viewing_distance")
#: Labels by the location pydantic reports (`config.<field>` inside StudyCreate/StudyUpdate), plus the top ones.
FORM_LABELS = {"slug": "Address", "title": "Title", **{f"config.{k}": v for k, v in CONFIG_LABELS.items()}}


def _config_values(form: dict[str, str], *, clearing: bool) -> dict[str, Any]:
    """The StudyConfig fields of the form; with `clearing`, an empty nullable field means null."""
    values: dict[str, Any] = given(
        {
            name: int_field(form, name, label=CONFIG_LABELS[name])
            if name in INT_FIELDS
            else checkbox(form, name)
            if name in CHECKBOX_FIELDS
            else optional(form, name)
            for name in CONFIG_LABELS
            if name != COMPARE
        }
    )
    if clearing:
        for name in NULLABLE:
            values.setdefault(name, None)
    if COMPARE in form:  # a disabled (frozen) field is not sent: the sets stay as they are
        values[COMPARE] = _id_list(form[COMPARE], CONFIG_LABELS[COMPARE])
    return values


def _id_list(text: str, label: str) -> list[int]:
    """`"12, 14"` -> [12, 14]; empty -> [] (a study of one set)."""
    parts = [p for p in text.replace(",", " ").split() if p]
    if not all(p.isdigit() for p in parts):
        raise InvalidInputError(f"{label}: {text.strip()!r} is not a list of set ids; enter ids such as '12, 14'")
    return [int(p) for p in parts]


def _check_main_trials(session: Session, config: StudyConfig) -> None:
    """An explicit number of main trials the chosen set cannot serve is the form's error (each image is shown
    at most once); left empty, the study gets as many as the set has, at most the default."""
    n_main = config.n_main
    sset = session.get(StimulusSet, config.stimulus_set_id)
    if "n_main" not in config.model_fields_set or sset is None:
        return
    n_images = image_count(session, sset)
    if 0 < n_images < n_main:
        raise InvalidInputError(
            f"{CONFIG_LABELS['n_main']}: {n_main} is more than the {n_images} images of stimulus set {sset.id} "
            f"(each image is shown at most once); enter at most {n_images}, or leave it empty"
        )


def _stimulus_sets(session: Session) -> list[StimulusSet]:
    return list(session.scalars(select(StimulusSet).order_by(StimulusSet.id.desc())))


def _set_images(session: Session, sets: list[StimulusSet]) -> dict[int, int]:
    """Images each set offers the main trials (`study_defaults.image_count`), shown beside its name."""
    return {s.id: image_count(session, s) for s in sets}


def _list_page(request: Request, admin: Admin, session: Session, *, status_code: int = 200, **extra: Any) -> Response:
    studies, total = svc.list_studies(session, offset=0, limit=200)
    sets = _stimulus_sets(session)
    progress = views.study_progress(session, [s.id for s in studies])
    context = {
        "nav": "studies",
        "studies": [(s, progress[s.id]) for s in studies],
        "total": total,
        "stimulus_sets": sets,
        "set_images": _set_images(session, sets),
        "defaults": StudyConfig.model_fields,
        "form": {},
        **extra,
    }
    return render(request, admin, "studies.html", context, status_code=status_code)


@router.get("/studies", name="admin_studies")
def studies(request: Request, admin: AdminDep, session: SessionDep) -> Response:
    return _list_page(request, admin, session)


@router.post("/studies", name="admin_create_study")
def create_study(request: Request, admin: AdminDep, form: FormDep, session: SessionDep) -> Response:
    """A draft study (POST /api/v1/studies): its slug, title and config, validated by `StudyCreate`."""
    try:
        try:
            body = StudyCreate.model_validate(
                {
                    "slug": form.get("slug", "").strip(),
                    "title": form.get("title", ""),
                    "config": _config_values(form, clearing=False),
                }
            )
        except ValidationError as exc:
            raise InvalidInputError(validation_message(exc, labels=FORM_LABELS)) from None
        _check_main_trials(session, body.config)
        study = svc.create_study(session, slug=body.slug, title=body.title, config=body.config, owner=admin.user)
    except ServiceError as exc:
        session.rollback()
        return _list_page(request, admin, session, status_code=exc.status_code, error=exc.message, form=form)
    session.commit()
    return see_other(request.url_for("admin_study", study_id=study.id).path + "?notice=created")


def _study_page(
    request: Request,
    admin: Admin,
    session: Session,
    settings: Settings,
    study: Study,
    *,
    offset: int = 0,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    rows, n_participants = svc.list_participants(session, study.id, offset=offset, limit=PARTICIPANTS_PER_PAGE)
    sets = _stimulus_sets(session)
    try:
        readiness = svc.check_ready(session, study)
        problems, preparing = readiness.problems, readiness.preparing
    except InvalidInputError as exc:
        problems, preparing = [exc.message], False
    sset_id = (study.config or {}).get("stimulus_set_id")
    context = {
        "nav": "studies",
        "study": study,
        "config": study.config,
        "progress": views.study_progress(session, [study.id])[study.id],
        "participants": rows,
        "n_participants": n_participants,
        "offset": offset,
        "page_size": PARTICIPANTS_PER_PAGE,
        "problems": problems,
        "preparing": preparing,
        "stimulus_set": session.get(StimulusSet, sset_id) if isinstance(sset_id, int) else None,
        "stimulus_sets": sets,
        "set_images": _set_images(session, sets),
        "participant_url": participant_url(settings, study),
        "prolific_url": prolific_url(settings, study),
        "exports": [f.value for f in ExportFile],
        "schedule_fields": svc.SCHEDULE_FIELDS,
        "form": {},
        **paint_next_context(session, study.id, study.config),
        **extra,
    }
    return render(request, admin, "study.html", context, status_code=status_code)


@router.get("/studies/{study_id}", name="admin_study")
def study_page(
    study_id: int,
    request: Request,
    admin: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    notice: str | None = None,
) -> Response:
    study = get_or_404(session, Study, study_id)
    return _study_page(request, admin, session, settings, study, offset=offset, notice=NOTICES.get(notice or ""))


@router.post("/studies/{study_id}", name="admin_update_study")
def update_study(
    study_id: int, request: Request, admin: AdminDep, form: FormDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """Change the title and config (PATCH /api/v1/studies/{id}); schedule fields are frozen once people started."""
    study = get_or_404(session, Study, study_id)
    try:
        try:
            body = StudyUpdate.model_validate(
                {"title": optional(form, "title"), "config": _config_values(form, clearing=True)}
            )
        except ValidationError as exc:
            raise InvalidInputError(validation_message(exc, labels=FORM_LABELS)) from None
        svc.update_study(session, study_id, title=body.title, config_patch=body.config_patch())
    except ServiceError as exc:
        session.rollback()
        study = get_or_404(session, Study, study_id)
        return _study_page(
            request, admin, session, settings, study, status_code=exc.status_code, error=exc.message, form=form
        )
    session.commit()
    return see_other(request.url_for("admin_study", study_id=study.id).path + "?notice=saved")


@router.post("/studies/{study_id}/open", name="admin_open_study")
def open_study(
    study_id: int, request: Request, admin: AdminDep, form: FormDep, session: SessionDep, settings: SettingsDep
) -> Response:
    try:
        svc.open_study(session, study_id)
    except ServiceError as exc:
        session.rollback()
        study = get_or_404(session, Study, study_id)
        return _study_page(request, admin, session, settings, study, status_code=exc.status_code, error=exc.message)
    session.commit()
    return see_other(request.url_for("admin_study", study_id=study_id).path + "?notice=opened")


@router.post("/studies/{study_id}/rank", name="admin_rank_paintings")
def rank_paintings(
    study_id: int,
    request: Request,
    admin: AdminDep,
    form: FormDep,
    session: SessionDep,
    settings: SettingsDep,
    enqueue: EnqueueDep,
) -> Response:
    """Queue a `rank_paintings` job for the study (POST /api/v1/jobs, kind rank_paintings, default params)."""
    try:
        job = job_requests.submit_job(session, "rank_paintings", {"study_id": study_id})
    except ServiceError as exc:
        session.rollback()
        study = get_or_404(session, Study, study_id)
        return _study_page(request, admin, session, settings, study, status_code=exc.status_code, error=exc.message)
    job_requests.commit_and_enqueue(session, job, enqueue)
    return see_other(request.url_for("admin_study", study_id=study_id).path + "?notice=ranking")


@router.post("/studies/{study_id}/close", name="admin_close_study")
def close_study(study_id: int, request: Request, admin: AdminDep, form: FormDep, session: SessionDep) -> Response:
    svc.close_study(session, study_id)
    session.commit()
    return see_other(request.url_for("admin_study", study_id=study_id).path + "?notice=closed")


@router.get("/studies/{study_id}/participants/{participant_id}/withdraw", name="admin_withdraw")
def withdraw_form(
    study_id: int, participant_id: int, request: Request, admin: AdminDep, session: SessionDep
) -> Response:
    """What withdrawing this participant deletes, and the button that does it."""
    study = get_or_404(session, Study, study_id)
    participant = get_child_or_404(session, Participant, participant_id, parent="study_id", parent_id=study_id)
    counts = views.participant_data(session, participant.id)
    return render(
        request,
        admin,
        "withdraw.html",
        {"nav": "studies", "study": study, "participant": participant, "counts": counts},
    )


@router.post("/studies/{study_id}/participants/{participant_id}/withdraw")
def withdraw(
    study_id: int,
    participant_id: int,
    request: Request,
    admin: AdminDep,
    form: FormDep,
    session: SessionDep,
    storage: StorageDep,
) -> Response:
    """Delete the participant's trials, responses and annotations (DELETE .../participants/{id} of the API);
    their mask files go too unless another annotation uses the same mask."""
    withdrawal = svc.withdraw_participant(session, study_id, participant_id)
    session.commit()  # the rows are gone for good before any blob is removed
    svc.remove_unreferenced_blobs(session, storage, withdrawal.mask_blobs)
    return see_other(request.url_for("admin_study", study_id=study_id).path + "?notice=withdrawn")


@router.get("/studies/{study_id}/simulate", name="admin_simulate")
def simulate(study_id: int, request: Request, admin: AdminDep, session: SessionDep) -> Response:
    """The study's page in simulate mode (a robot participant, for piloting), with a grant for this researcher:
    the dashboard's cookie does not reach the participant page (`backend.api.simulation`)."""
    study = get_or_404(session, Study, study_id)
    query = urlencode({"simulate": "1", "grant": simulate_grant(service_secret(request), study.slug)})
    return see_other(f"{request.url_for('study_page', slug=study.slug).path}?{query}")


@router.get("/studies/{study_id}/export/{file}", name="admin_export")
def export(
    study_id: int,
    file: ExportFile,
    request: Request,
    admin: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    include_simulated: IncludeSimulated = False,
) -> StreamingResponse:
    """The study's data, streamed (the same export as GET /api/v1/studies/{id}/export/{file})."""
    return export_response(study_id, file, request, session, settings, include_simulated=include_simulated)
