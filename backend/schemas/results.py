"""A study's detection results as the research API shows them (see `backend.services.results`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EpsRow(BaseModel):
    """Main-phase detection statistics at one eps (and masked/unmasked perturbation)."""

    eps: float = Field(description="Perturbation size in [0, 1] pixel units; 0 = clean.")
    masked: bool | None = Field(description="Whether the perturbation spared the salient pixels; null for clean.")
    n: int = Field(description="Main-phase responses at this level.")
    n_participants: int
    n_perturbed_judgments: int
    detection_rate: float = Field(description="Share judged perturbed.")
    ci_low: float = Field(description="Wilson 95% interval of the detection rate, lower end.")
    ci_high: float
    hit_rate: float | None = Field(description="= detection rate for eps > 0; null for clean.")
    false_alarm_rate: float | None = Field(description="Share of clean trials judged perturbed.")
    dprime: float | None = Field(description="z(H) - z(F) with the log-linear correction; null for clean.")
    mean_rt_ms: float | None
    median_rt_ms: float | None
    mean_confidence: float | None = Field(description="1 = guessing .. 4 = certain.")


class PsychometricOut(BaseModel):
    """P(judged perturbed) = guess + (1 - guess - lapse) / (1 + (alpha / eps) ** beta), fitted by maximum
    likelihood; intervals by parametric bootstrap (null bounds: not reached within the resamples)."""

    alpha: float | None
    beta: float | None
    guess: float | None
    lapse: float | None
    eps50: float | None = Field(description="Eps at which half the images are judged perturbed.")
    eps75: float | None = Field(description="Eps at which three quarters are judged perturbed.")
    log_likelihood: float | None
    n_trials: int
    n_boot: int
    ci: dict[str, list[float | None]] = Field(description="name -> [low, high], 95% percentile intervals.")
    grid_eps: list[float] = Field(description="The fitted curve, for plotting: eps ...")
    grid_p: list[float] = Field(description="... and P(judged perturbed).")


class ExcludedParticipantOut(BaseModel):
    participant_id: int
    index: int
    external_id: str | None
    catch_trials: int = Field(description="Catch trials answered.")
    catch_errors: int = Field(description="Catch trials answered 'clean'.")


class ResultsOut(BaseModel):
    study_id: int
    stimulus_set_id: int | None
    masked: bool | None = Field(description="Whether the study's stimulus set spares the salient pixels.")
    attack: str | None
    norm: str | None
    exclusions_applied: bool = Field(description="False with ?include_excluded=true.")
    max_catch_errors: int = Field(description="Participants missing more catch trials than this are excluded.")
    excluded: list[ExcludedParticipantOut] = Field(description="Who fails the catch criterion (applied or not).")
    n_participants: int = Field(description="Participants with at least one main or catch response.")
    n_participants_included: int
    n_main_responses: int = Field(description="Main-phase responses counted below.")
    eps: list[EpsRow]
    psychometric: PsychometricOut | None
    psychometric_reason: str | None = Field(description="Why there is no fit, when there is none.")
