"""The overview (studies with their progress, jobs at work) and the jobs: detail, cancel, live progress JSON."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from backend.admin.comparison import ModelRow, models_figure
from backend.admin.deps import AdminDep, AdminRoute, FormDep, render, see_other
from backend.admin.evaluations import accuracy_table, evaluation_figure, warnings_of
from backend.admin.trainlog import job_train_log, train_log_figure
from backend.api.deps import SessionDep, SettingsDep
from backend.models import Job, TrainedModel
from backend.services import admin_views as views
from backend.services import job_requests
from backend.services import studies as study_svc
from backend.services.errors import NotFoundError
from backend.services.jobs import request_cancel
from backend.services.lookups import get_or_404

router = APIRouter(route_class=AdminRoute)

#: Most jobs one progress poll may ask about.
MAX_POLLED_JOBS = 100


def job_state(job: Job) -> dict[str, Any]:
    """What the page's progress bars show of a job (the JSON of `/admin/jobs/progress.json`)."""
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "eta_s": job.eta_s,
        "error": job.error,
        "finished": job.status in ("succeeded", "failed", "cancelled"),
    }


@router.get("", name="admin_overview")
def overview(request: Request, admin: AdminDep, session: SessionDep, settings: SettingsDep) -> Response:
    studies, _ = study_svc.list_studies(session, offset=0, limit=100)
    progress = views.study_progress(session, [s.id for s in studies])
    recent, _ = job_requests.list_jobs(session, offset=0, limit=10)
    return render(
        request,
        admin,
        "overview.html",
        {
            "nav": "overview",
            "studies": [(s, progress[s.id]) for s in studies],
            "active_jobs": views.active_jobs(session),
            "recent_jobs": [j for j in recent if j.status not in ("queued", "running")],
            "base_url": settings.public_base_url,
        },
    )


@router.get("/jobs/progress.json", name="admin_job_progress")
def job_progress(
    admin: AdminDep,
    session: SessionDep,
    ids: Annotated[str, Query(max_length=1000, description="Comma-separated job ids.")] = "",
) -> JSONResponse:
    """Status and progress of the jobs `ids` (polled every 2 s by `static/admin/admin.js`)."""
    wanted = [int(p) for p in ids.split(",") if p.strip().isdigit()][:MAX_POLLED_JOBS]
    return JSONResponse({"jobs": [job_state(j) for j in views.jobs_by_ids(session, wanted)]})


@router.get("/jobs/{job_id}", name="admin_job")
def job_page(job_id: int, request: Request, admin: AdminDep, session: SessionDep) -> Response:
    job = get_or_404(session, Job, job_id)
    model_id = job_requests.models_of_jobs(session, [job.id]).get(job.id)
    model = session.get(TrainedModel, model_id) if model_id is not None else None
    coverage, figure, checks = None, None, []
    train_log = job_train_log(job.result, model.metrics if model is not None else None)
    curves = None
    if job.kind == "train" and train_log:
        best = (model.metrics or {}).get("best_epoch") if model is not None else None
        eps = job.params.get("eps")
        curves = train_log_figure(train_log, best_epoch=best, target_eps=eps if isinstance(eps, int | float) else None)
    if model is not None:  # a readable result: salience coverage, accuracy table and curve (raw JSON folded)
        coverage = ((model.metrics or {}).get("coverage")) or (model.config or {}).get("coverage")
        row = ModelRow(
            id=model.id,
            name=model.name,
            method=model.method,
            arch=model.arch,
            seed=((model.config or {}).get("params") or {}).get("seed"),
            dataset_id=model.dataset_id,
            status=job.status,
            metrics=model.metrics,
            params=(model.config or {}).get("params"),
            planned_coverage=(model.config or {}).get("coverage"),
        )
        figure = models_figure([row]) if model.metrics and "clean_acc" in model.metrics else None
        checks = warnings_of(model.metrics)
    evaluation = _evaluation_metrics(job)
    if evaluation is not None:
        checks = warnings_of(evaluation)
    return render(
        request,
        admin,
        "job.html",
        {
            "nav": "training" if job.kind != "generate_stimuli" else "stimulus_sets",
            "job": job,
            "model_id": model_id,
            "coverage": coverage,
            "coverage_final": bool(model is not None and (model.metrics or {}).get("coverage")),
            "model_figure": figure,
            "evaluation_figure": evaluation_figure(evaluation) if evaluation is not None else None,
            "evaluation_key": (job.result or {}).get("key") if evaluation is not None else None,
            "check_warnings": checks,
            "train_log_figure": curves,
            "params_json": json.dumps(job.params, indent=2, sort_keys=True),
            "result_json": json.dumps(job.result, indent=2, sort_keys=True) if job.result is not None else None,
        },
    )


def _evaluation_metrics(job: Job) -> dict[str, Any] | None:
    """The metrics an evaluate job stored in its result (None for other jobs and unfinished ones)."""
    metrics = (job.result or {}).get("metrics") if job.kind == "evaluate" else None
    return metrics if isinstance(metrics, dict) and "clean_acc" in metrics else None


@router.get("/jobs/{job_id}/evaluation.csv", name="admin_evaluation_csv")
def evaluation_csv(job_id: int, admin: AdminDep, session: SessionDep) -> Response:
    """An evaluate job's accuracy table (one row per attack column, one column per eps) as CSV."""
    metrics = _evaluation_metrics(get_or_404(session, Job, job_id))
    if metrics is None:
        raise NotFoundError(f"job {job_id} holds no evaluation result")
    return Response(
        accuracy_table(metrics).csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="evaluation-job{job_id}.csv"'},
    )


@router.get("/jobs/{job_id}/train_log.csv", name="admin_job_train_log")
def job_train_log_csv(job_id: int, admin: AdminDep, session: SessionDep) -> Response:
    """A train job's per-epoch log as CSV (the columns of `sipat train`'s train_log.csv)."""
    job = get_or_404(session, Job, job_id)
    model_id = job_requests.models_of_jobs(session, [job.id]).get(job.id)
    model = session.get(TrainedModel, model_id) if model_id is not None else None
    rows = job_train_log(job.result, model.metrics if model is not None else None)
    return Response(
        train_log_figure(rows).tables[0].csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="job-{job.id}-train_log.csv"'},
    )


@router.post("/jobs/{job_id}/cancel", name="admin_cancel_job")
def cancel_job(job_id: int, request: Request, admin: AdminDep, form: FormDep, session: SessionDep) -> Response:
    """A queued job stops at once, a running one at its next progress point (same service as the API)."""
    request_cancel(session, get_or_404(session, Job, job_id))
    return see_other(request.url_for("admin_job", job_id=job_id).path)
