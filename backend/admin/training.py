"""Training: queue SIP-AT or a baseline (the research API's job service), follow the jobs, compare the models
(clean and robust accuracy against eps, per method and seed) in one table and one plot."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.admin.comparison import ModelRow, models_figure
from backend.admin.deps import Admin, AdminDep, AdminRoute, FormDep, render, see_other
from backend.admin.forms import float_field, given, int_field, optional, parse_eps_list
from backend.api.deps import EnqueueDep, SessionDep
from backend.models import Dataset, StimulusSet, Study
from backend.services import job_requests, model_catalog
from backend.services.errors import InvalidInputError, ServiceError
from backend.services.job_params import STUDY_SOURCES, TrainParams
from backend.services.training_coverage import compute_coverage
from backend.vocabulary import ARCHITECTURES, DEFAULT_EVAL_EPS, EVAL_ATTACKS

router = APIRouter(route_class=AdminRoute)

METHODS = {
    "sip_at": "SIP-AT (masked adversarial training)",
    "sip_trades": "SIP-TRADES",
    "pgd_at": "PGD-AT (Madry)",
    "trades": "TRADES",
    "standard": "standard (no attack)",
}
SALIENCE = {
    "annotations": "this study's annotations (mean of the participants' masks)",
    "predicted": "this study's annotations, a predictor trained on them for the other images",
    "gradcam": "Grad-CAM of a reference model",
    "imported": "imported with the dataset",
    "none": "none",
}
#: The recipe's fields of `TrainParams`, in the order of the form's "advanced" fold.
RECIPE_FIELDS = (
    "eps_ramp_epochs",
    "warmup_epochs",
    "grad_clip",
    "weight_decay",
    "augment",
    "crop_padding",
    "val_share",
    "val_steps",
    "patience",
)
#: What a text field accepts for "switched off" where the param takes null (grad_clip, patience).
_OFF = ("none", "off", "no")
#: The form's augmentation select -> `TrainParams`' augment and flip: one choice, because the flip exists only
#: with the crop ("crop" is the crop alone, for digits and oriented textures, which a mirror image changes).
AUGMENTATIONS: dict[str, dict[str, bool]] = {
    "true": {"augment": True, "flip": True},
    "crop": {"augment": True, "flip": False},
    "false": {"augment": False},
}


def _shown(value: Any) -> str:
    """A default as the form shows it: null as "none", booleans as the select's values."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


DEFAULTS = {
    "method": "sip_at",
    "epochs": str(TrainParams.model_fields["epochs"].default),
    "eps": "8/255",
    "alpha": "1/255",
    "steps": "10",
    "seed": "0",
    "batch_size": "32",
    "lr": "0.1",
    "eval_eps": ", ".join(f"{round(e * 255)}/255" if e else "0" for e in DEFAULT_EVAL_EPS),
    "eval_steps": "20",
    "salience": "imported",
    "fallback": "none",
    "predictor_epochs": str(TrainParams.model_fields["predictor_epochs"].default),
    # The training recipe (advanced fold): `TrainParams`' defaults, i.e. `sipat.train_config.RECIPE`.
    **{name: _shown(TrainParams.model_fields[name].default) for name in RECIPE_FIELDS},
}
if DEFAULTS["augment"] == "true" and not TrainParams.model_fields["flip"].default:
    DEFAULTS["augment"] = "crop"


EVAL_DEFAULTS = {
    "eps": DEFAULTS["eval_eps"],
    "split": "test",
    "steps": "20",
    "apgd_steps": "100",
    "square_queries": "5000",
    "attack:pgd": "on",
    "attack:apgd": "on",
}


def model_rows(session: Session) -> list[ModelRow]:
    """Every model (newest first) with its train job's status and its seed, for the comparison."""
    rows, _ = model_catalog.list_models(session, offset=0, limit=500)
    return [
        ModelRow(
            id=m.id,
            name=m.name,
            method=m.method,
            arch=m.arch,
            seed=((m.config or {}).get("params") or {}).get("seed"),
            dataset_id=m.dataset_id,
            status=status,
            metrics=m.metrics,
            params=(m.config or {}).get("params"),
            planned_coverage=(m.config or {}).get("coverage"),
        )
        for m, status in rows
    ]


def _page(request: Request, admin: Admin, session: Session, *, status_code: int = 200, **extra: Any) -> Response:
    jobs, _ = job_requests.list_jobs(session, offset=0, limit=30)
    models = model_rows(session)
    context = {
        "nav": "training",
        "datasets": list(session.scalars(select(Dataset).order_by(Dataset.id.desc()))),
        "studies": list(session.scalars(select(Study).order_by(Study.id.desc()))),
        "methods": METHODS,
        "architectures": ARCHITECTURES,
        "salience_sources": SALIENCE,
        "jobs": jobs,
        "job_models": job_requests.models_of_jobs(session, [j.id for j in jobs]),
        "models_figure": models_figure(models),
        "form": {**DEFAULTS, **extra.pop("form", {})},
        "eval_form": {**EVAL_DEFAULTS, **extra.pop("eval_form", {})},
        "eval_attacks": EVAL_ATTACKS,
        "trained_models": models,  # one still in training can be named too: its evaluation waits for it
        **extra,
    }
    return render(request, admin, "training.html", context, status_code=status_code)


@router.get("/training/models.csv", name="admin_models_csv")
def models_csv(admin: AdminDep, session: SessionDep) -> Response:
    """The models table: clean and robust accuracy of every model, per attack and eps."""
    return Response(
        models_figure(model_rows(session)).tables[0].csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="models.csv"'},
    )


@router.get("/training", name="admin_training")
def training(request: Request, admin: AdminDep, session: SessionDep, study_id: int | None = None) -> Response:
    """The form; `?study_id=` preselects that study's annotations and shows their coverage of its dataset's
    training images before anything is queued."""
    if study_id is None:
        return _page(request, admin, session, form={})
    dataset_id = _study_dataset(session, study_id)
    form = {"salience": "annotations", "study_id": str(study_id)}
    coverage = None
    if dataset_id is not None:
        form["dataset_id"] = str(dataset_id)
        params = {"method": "sip_at", "dataset_id": dataset_id, "salience": "annotations", "study_id": study_id}
        try:
            coverage = compute_coverage(session, params)
        except ServiceError:  # e.g. a dataset too small to hold images out: the form's submit says so
            coverage = None
    return _page(request, admin, session, form=form, coverage=coverage, coverage_dataset_id=dataset_id)


def _study_dataset(session: Session, study_id: int) -> int | None:
    """The dataset of the study's stimulus set (None for an unknown study or set)."""
    study = session.get(Study, study_id)
    set_id = (study.config or {}).get("stimulus_set_id") if study is not None else None
    sset = session.get(StimulusSet, set_id) if set_id is not None else None
    return sset.dataset_id if sset is not None else None


def train_params(form: dict[str, str]) -> dict[str, Any]:
    """The form as `train` job params (validated afterwards by `TrainParams` in `submit_job`)."""
    try:
        eval_eps = parse_eps_list(form["eval_eps"]) if optional(form, "eval_eps") else None
    except ValueError as exc:
        raise InvalidInputError(f"evaluation eps: {exc}") from None
    salience = optional(form, "salience") or "none"
    arch = optional(form, "arch")
    return given(
        {
            "dataset_id": int_field(form, "dataset_id", label="dataset"),
            "method": optional(form, "method"),
            "arch": None if arch in (None, "auto") else arch,
            "epochs": int_field(form, "epochs", label="epochs"),
            "eps": float_field(form, "eps", label="eps", eps=True),
            "alpha": float_field(form, "alpha", label="step size", eps=True),
            "steps": int_field(form, "steps", label="steps"),
            "seed": int_field(form, "seed", label="seed"),
            "batch_size": int_field(form, "batch_size", label="batch size"),
            "lr": float_field(form, "lr", label="learning rate"),
            "salience": salience,
            "study_id": int_field(form, "study_id", label="study") if salience in STUDY_SOURCES else None,
            "predictor_epochs": int_field(form, "predictor_epochs", label="predictor epochs")
            if salience == "predicted"
            else None,
            "fallback": optional(form, "fallback"),
            "eval_eps": eval_eps,
            "eval_steps": int_field(form, "eval_steps", label="evaluation steps"),
            "name": optional(form, "name"),
        }
    ) | _recipe_params(form)


def _recipe_params(form: dict[str, str]) -> dict[str, Any]:
    """The advanced fold's recipe knobs; empty = the default, "none" = off for grad_clip and patience."""
    values: dict[str, Any] = {}
    for name in ("grad_clip", "patience"):
        text = optional(form, name)
        if text is not None and text.lower() in _OFF:
            values[name] = None
    augment = optional(form, "augment")
    if augment is not None:
        if augment.lower() not in AUGMENTATIONS:
            raise InvalidInputError(
                f"augmentation: choose crop and flip (true), crop only (crop) or none (false); got {augment!r}"
            )
        values.update(AUGMENTATIONS[augment.lower()])
    numbers = {
        "eps_ramp_epochs": int_field(form, "eps_ramp_epochs", label="eps ramp (epochs)"),
        "warmup_epochs": int_field(form, "warmup_epochs", label="learning-rate warm-up (epochs)"),
        "weight_decay": float_field(form, "weight_decay", label="weight decay"),
        "crop_padding": int_field(form, "crop_padding", label="crop padding"),
        "val_share": float_field(form, "val_share", label="validation share"),
        "val_steps": int_field(form, "val_steps", label="validation attack steps"),
    }
    if "grad_clip" not in values:
        numbers["grad_clip"] = float_field(form, "grad_clip", label="gradient-norm clip")
    if "patience" not in values:
        numbers["patience"] = int_field(form, "patience", label="patience (epochs)")
    return {**values, **given(numbers)}


@router.post("/training", name="admin_queue_training")
def queue_training(
    request: Request, admin: AdminDep, form: FormDep, session: SessionDep, enqueue: EnqueueDep
) -> Response:
    """A `train` job and its model row: the service of POST /api/v1/jobs (kind train)."""
    try:
        if "dataset_id" not in form or not form["dataset_id"].strip():
            raise InvalidInputError("dataset: choose the dataset to train on")
        job = job_requests.submit_job(session, "train", train_params(form), owner=admin.user)
    except ServiceError as exc:
        session.rollback()
        return _page(request, admin, session, status_code=exc.status_code, error=exc.message, form=form)
    job_requests.commit_and_enqueue(session, job, enqueue)
    return see_other(request.url_for("admin_job", job_id=job.id).path)


def evaluate_params(form: dict[str, str]) -> dict[str, Any]:
    """The evaluate form as `evaluate` job params (validated afterwards by `EvaluateParams` in `submit_job`):
    one checkbox per attack of the registry (`attack:<name>`), the budgets as numbers."""
    try:
        eps = parse_eps_list(form["eps"]) if optional(form, "eps") else None
    except ValueError as exc:
        raise InvalidInputError(f"evaluation eps: {exc}") from None
    attacks = [a for a in EVAL_ATTACKS if form.get(f"attack:{a}") == "on"]
    if not attacks:
        raise InvalidInputError("attacks: tick at least one attack")
    return given(
        {
            "model_id": int_field(form, "model_id", label="model"),
            "attacks": attacks,
            "eps": eps,
            "split": optional(form, "split"),
            "steps": int_field(form, "steps", label="PGD steps"),
            "apgd_steps": int_field(form, "apgd_steps", label="APGD steps"),
            "square_queries": int_field(form, "square_queries", label="Square queries"),
            "masked": form.get("masked") == "on",
        }
    )


@router.post("/training/evaluate", name="admin_queue_evaluation")
def queue_evaluation(
    request: Request, admin: AdminDep, form: FormDep, session: SessionDep, enqueue: EnqueueDep
) -> Response:
    """An `evaluate` job for a trained model: the service of POST /api/v1/jobs (kind evaluate)."""
    try:
        if not optional(form, "model_id"):
            raise InvalidInputError("model: choose the model to evaluate")
        job = job_requests.submit_job(session, "evaluate", evaluate_params(form), owner=admin.user)
    except ServiceError as exc:
        session.rollback()
        return _page(request, admin, session, status_code=exc.status_code, error=exc.message, eval_form=form)
    job_requests.commit_and_enqueue(session, job, enqueue)
    return see_other(request.url_for("admin_job", job_id=job.id).path)
