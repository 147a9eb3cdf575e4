"""Stimulus sets: create one with its generation job (the research API's schema and service), follow its job,
see its stimuli side by side: clean, perturbed, and the perturbation amplified to the full range."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.admin.deps import Admin, AdminDep, AdminRoute, FormDep, render, see_other
from backend.admin.forms import checkbox, given, int_field, optional, parse_eps_list, validation_message
from backend.api.deps import EnqueueDep, SessionDep
from backend.models import Dataset, Job, TrainedModel
from backend.schemas.stimulus_sets import StimulusSetCreate
from backend.services import admin_views as views
from backend.services import stimulus_sets as svc
from backend.services.errors import InvalidInputError, ServiceError
from backend.services.job_requests import commit_and_enqueue, submit_job
from backend.vocabulary import STIMULUS_ATTACKS

router = APIRouter(route_class=AdminRoute)

EXAMPLES_PER_PAGE = 12
DEFAULT_EPS = "2/255, 4/255, 8/255, 16/255"


def _choices(session: Session) -> dict[str, Any]:
    """Datasets, and the models to attack: trained ones, and those still in training (by their job)."""
    datasets = list(session.scalars(select(Dataset).order_by(Dataset.id.desc())))
    models = session.execute(
        select(TrainedModel, Job.status).outerjoin(Job, Job.id == TrainedModel.job_id).order_by(TrainedModel.id.desc())
    ).all()
    return {"datasets": datasets, "models": [(m, status) for m, status in models], "attacks": STIMULUS_ATTACKS}


def _list_page(request: Request, admin: Admin, session: Session, *, status_code: int = 200, **extra: Any) -> Response:
    sets, total = svc.list_stimulus_sets(session, offset=0, limit=200)
    context = {"nav": "stimulus_sets", "sets": sets, "total": total, "form": {"eps_levels": DEFAULT_EPS}}
    return render(
        request, admin, "stimulus_sets.html", {**context, **_choices(session), **extra}, status_code=status_code
    )


@router.get("/stimulus-sets", name="admin_stimulus_sets")
def stimulus_sets(request: Request, admin: AdminDep, session: SessionDep) -> Response:
    return _list_page(request, admin, session)


def _create_body(form: dict[str, str]) -> StimulusSetCreate:
    """The form as the research API's `StimulusSetCreate` (422 naming the field when it does not fit)."""
    model = optional(form, "model") or ""
    kind, _, ref = model.partition(":")
    if kind not in ("model", "job") or not ref.isdigit():
        raise InvalidInputError("model: choose the model to attack (a trained one, or one still in training)")
    try:
        eps_levels = parse_eps_list(form.get("eps_levels", ""))
    except ValueError as exc:
        raise InvalidInputError(f"eps levels: {exc}") from None
    values = given(
        {
            "name": form.get("name", "").strip(),
            "dataset_id": int_field(form, "dataset_id", label="dataset"),
            "model_id": int(ref) if kind == "model" else None,
            "train_job_id": int(ref) if kind == "job" else None,
            "attack": optional(form, "attack"),
            "norm": optional(form, "norm"),
            "eps_levels": eps_levels,
            "masked": checkbox(form, "masked"),
            "steps": int_field(form, "steps", label="steps"),
            "split": optional(form, "split"),
            "n_images": int_field(form, "n_images", label="number of images"),
            "seed": int_field(form, "seed", label="seed"),
            "salience_source": optional(form, "salience_source"),
            "catch": checkbox(form, "catch"),
        }
    )
    try:
        return StimulusSetCreate.model_validate(values)
    except ValidationError as exc:
        raise InvalidInputError(validation_message(exc)) from None


@router.post("/stimulus-sets", name="admin_create_stimulus_set")
def create(request: Request, admin: AdminDep, form: FormDep, session: SessionDep, enqueue: EnqueueDep) -> Response:
    """A pending set and its queued generation job: the service of POST /api/v1/stimulus-sets."""
    try:
        body = _create_body(form)
        spec = svc.StimulusSetSpec.of(body)
        sset, job = svc.create_stimulus_set(session, spec, owner=admin.user)
    except ServiceError as exc:
        session.rollback()
        return _list_page(request, admin, session, status_code=exc.status_code, error=exc.message, form=form)
    commit_and_enqueue(session, job, enqueue)
    return see_other(request.url_for("admin_stimulus_set", stimulus_set_id=sset.id).path)


@router.post("/stimulus-sets/{stimulus_set_id}/regenerate", name="admin_regenerate_stimulus_set")
def regenerate(
    stimulus_set_id: int, request: Request, admin: AdminDep, form: FormDep, session: SessionDep, enqueue: EnqueueDep
) -> Response:
    """A new generation job for the set (after a failure): POST /api/v1/jobs with kind generate_stimuli."""
    job = submit_job(session, "generate_stimuli", {"stimulus_set_id": stimulus_set_id}, owner=admin.user)
    commit_and_enqueue(session, job, enqueue)
    return see_other(request.url_for("admin_stimulus_set", stimulus_set_id=stimulus_set_id).path)


@router.get("/stimulus-sets/{stimulus_set_id}", name="admin_stimulus_set")
def stimulus_set(
    stimulus_set_id: int,
    request: Request,
    admin: AdminDep,
    session: SessionDep,
    eps: Annotated[float | None, Query(ge=0)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    summary = svc.stimulus_set_summary(session, stimulus_set_id)
    levels = [row["eps"] for row in summary.per_eps if row["eps"] > 0]
    shown = eps if eps is not None else (max(levels) if levels else None)
    examples, total = (
        views.stimulus_examples(session, stimulus_set_id, shown, offset=offset, limit=EXAMPLES_PER_PAGE)
        if shown is not None
        else ([], 0)
    )
    model = session.get(TrainedModel, summary.stimulus_set.model_id) if summary.stimulus_set.model_id else None
    return render(
        request,
        admin,
        "stimulus_set.html",
        {
            "nav": "stimulus_sets",
            "summary": summary,
            "sset": summary.stimulus_set,
            "dataset": session.get(Dataset, summary.stimulus_set.dataset_id),
            "model": model,
            "levels": levels,
            "shown_eps": shown,
            "examples": examples,
            "total": total,
            "offset": offset,
            "page_size": EXAMPLES_PER_PAGE,
        },
    )
