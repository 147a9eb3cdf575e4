"""Jobs as the research API takes and shows them; `params` are checked per kind by `job_params`' models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.services.job_params import EvaluateParams, GenerateStimuliParams, RankPaintingsParams, TrainParams

JobKind = Literal["generate_stimuli", "train", "evaluate", "rank_paintings"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
#: Key of a train job's result holding its per-epoch log (epoch, loss, accuracy, lr, eps, seconds; with a
#: validation split val_clean and val_robust): written after every epoch while the job runs, kept at the end.
TRAIN_LOG_KEY = "train_log"


class _JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainJobCreate(_JobCreate):
    """Train one model on a dataset with one method (and the training recipe), then evaluate it."""

    kind: Literal["train"]
    params: TrainParams


class EvaluateJobCreate(_JobCreate):
    """Clean and robust accuracy of a stored model on a dataset's images."""

    kind: Literal["evaluate"]
    params: EvaluateParams


class GenerateStimuliJobCreate(_JobCreate):
    """(Re)generate the stimuli of an existing stimulus set."""

    kind: Literal["generate_stimuli"]
    params: GenerateStimuliParams


class RankPaintingsJobCreate(_JobCreate):
    """Rank a study's unpainted training images for painting next (stored in the job's result)."""

    kind: Literal["rank_paintings"]
    params: RankPaintingsParams


#: The body of `POST /api/v1/jobs`: the params' model is chosen by `kind` (a discriminated union, so the OpenAPI
#: schema lists each kind's parameters, with their defaults and ranges); defaults are filled in and the stored
#: params returned.
JobCreate = Annotated[
    TrainJobCreate | EvaluateJobCreate | GenerateStimuliJobCreate | RankPaintingsJobCreate,
    Field(discriminator="kind", description="A job: its kind and that kind's parameters."),
]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: JobKind
    status: JobStatus
    params: dict[str, Any]
    progress: float = Field(description="Fraction done, 0..1.")
    message: str | None
    eta_s: float | None = Field(description="Estimated seconds left, while running.")
    result: dict[str, Any] | None = Field(
        description="What the job produced; a train job's holds its per-epoch log under `train_log`, written "
        "after every epoch while it runs (then only that key), kept next to the model's metrics at the end."
    )
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    model_id: int | None = Field(default=None, description="The model row a train job fills in.")


class JobDetail(JobOut):
    traceback: str | None = Field(description="Python traceback of a failed job, for researchers.")
    coverage: dict[str, Any] | None = Field(
        default=None,
        description="A train job of a sip_* method: its salience coverage as planned when it was queued "
        "(n_train training images, `human` of them with a human map of >= min_annotators, fallback_count on "
        "the fallback, a low-coverage `warning`); the result's metrics.coverage is the one used.",
    )
