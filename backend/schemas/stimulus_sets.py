"""Stimulus sets and stimuli as the research API takes and shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend.schemas.jobs import JobOut
from backend.services.job_params import StimulusSetOptions
from backend.vocabulary import StimulusAttack

Eps = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class StimulusSetCreate(StimulusSetOptions):
    """A set of stimuli to generate: the dataset's images (`split`, `n_images` drawn with `seed`) attacked at
    each eps against a model. Eps are in [0, 1] pixel units (8/255 = 0.0314); 0 (the clean image) is always
    included."""

    name: str = Field(default="", max_length=255)
    dataset_id: int
    model_id: int | None = Field(default=None, description="A trained model to attack.")
    train_job_id: int | None = Field(
        default=None, description="Instead of model_id: a train job still running; generation waits for it."
    )
    attack: StimulusAttack = Field(
        default="pgd", description="pgd (L-inf or L2), fgsm, apgd (APGD-CE), square (black box; L-inf only)."
    )
    norm: Literal["linf", "l2"] = "linf"
    eps_levels: list[Eps] = Field(min_length=1, max_length=32, description="Perturbation sizes; 0 is added.")
    masked: bool = Field(default=False, description="Spare the salient pixels (SIP-AT's masked attack).")
    steps: int = Field(
        default=10, ge=1, le=1000, description="Attack iterations (pgd, apgd); model queries per image (square)."
    )

    @field_validator("eps_levels")
    @classmethod
    def _with_clean(cls, value: list[float]) -> list[float]:
        return sorted({0.0, *(float(v) for v in value)})

    @model_validator(mode="after")
    def _one_model(self) -> StimulusSetCreate:
        if (self.model_id is None) == (self.train_job_id is None):
            raise ValueError("give exactly one of model_id (a trained model) or train_job_id (a model in training)")
        return self

    def options(self) -> StimulusSetOptions:
        return StimulusSetOptions.model_validate(self.model_dump(include=set(StimulusSetOptions.model_fields)))


class StimulusSetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    dataset_id: int
    model_id: int | None
    attack: str
    norm: str
    eps_levels: list[float]
    masked: bool
    steps: int
    status: Literal["pending", "generating", "ready", "failed"]
    params: dict[str, Any] = Field(description="Image selection and attack details (StimulusSetOptions).")
    job_id: int | None
    created_at: datetime


class EpsCount(BaseModel):
    eps: float
    n: int = Field(description="Trial stimuli at this eps.")
    mean_linf: float | None = Field(description="Mean achieved L-inf norm of the stored perturbations.")
    mean_l2: float | None


class StimulusSetDetail(StimulusSetOut):
    job: JobOut | None = Field(description="The latest generation job.")
    n_images: int = Field(description="Source images with at least one trial stimulus.")
    n_stimuli: int
    n_catch: int
    per_eps: list[EpsCount]


class StimulusSetCreated(StimulusSetOut):
    job: JobOut


class StimulusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    stimulus_set_id: int
    image_id: int
    label: str
    eps: float
    role: Literal["trial", "catch"]
    sha256: str
    linf: float | None
    l2: float | None
    pred_before: str | None
    pred_after: str | None
    file_url: str
