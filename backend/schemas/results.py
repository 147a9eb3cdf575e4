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
    reasons: list[str] = Field(
        description="Rules that exclude them: catch, fast_responses, completion_time, focus_losses."
    )


class RuleOut(BaseModel):
    rule: str = Field(
        description="max_catch_errors | min_rt_ms | max_fast_share | min_completion_s | max_focus_lost_trials"
    )
    setting: float | None = Field(description="The study's setting; null: the rule is off.")
    participants: int = Field(description="Participants this rule excludes on its own (rules overlap).")
    responses: int = Field(description="Main-phase responses it removes on its own.")


class ResultsOut(BaseModel):
    study_id: int
    stimulus_set_id: int | None
    masked: bool | None = Field(description="Whether the study's stimulus set spares the salient pixels.")
    attack: str | None
    norm: str | None
    exclusions_applied: bool = Field(description="False with ?include_excluded=true.")
    max_catch_errors: int = Field(description="Participants missing more catch trials than this are excluded.")
    excluded: list[ExcludedParticipantOut] = Field(description="Who the exclusion rules exclude (applied or not).")
    rules: list[RuleOut] = Field(default_factory=list, description="Each exclusion rule and how much it excludes.")
    n_participants: int = Field(description="Participants with at least one main or catch response.")
    n_participants_included: int
    n_main_responses: int = Field(description="Main-phase responses counted below.")
    eps: list[EpsRow]
    psychometric: PsychometricOut | None
    psychometric_reason: str | None = Field(description="Why there is no fit, when there is none.")
    participants: ParticipantLevelOut | None = Field(
        default=None, description="The participant-level view; the fields above are the pooled 'trials view'."
    )
    model: ModelOut | None = None
    sets: SetComparisonOut | None = Field(
        default=None,
        description="A study of several stimulus sets (config.compare_stimulus_set_ids): the sets side by side "
        "with participant-bootstrap intervals, and each set's threshold difference from the first, paired by "
        "participant. Null for a study of one set.",
    )


# --- the participant-level view (backend.study.participants, backend.study.model) ------------------------------

Interval = list[float | None]


class WarningOut(BaseModel):
    code: str = Field(description="few_participants, few_trials_per_level, fit_at_bound, extrapolated, ...")
    message: str


class ParticipantLevelRow(BaseModel):
    """One (eps, masked) level with intervals from the participant bootstrap."""

    eps: float
    masked: bool | None
    n: int
    n_participants: int
    min_trials_per_participant: int
    detection_rate: float
    ci: Interval = Field(description="Participant-bootstrap 95% interval of the detection rate.")
    dprime: float | None
    dprime_ci: Interval


class ThresholdOut(BaseModel):
    condition: str = Field(description="all | unmasked | masked")
    eps50: float | None
    eps75: float | None
    eps50_ci: Interval = Field(description="Participant-bootstrap 95% interval; null high end: unbounded.")
    eps75_ci: Interval
    share_not_reached: float | None = Field(description="Share of resamples whose curve never reaches 50%.")
    at_bound: list[str] = Field(description="Fit parameters that ended at a bound of their range.")
    reason: str | None


class DifferenceOut(BaseModel):
    """Masked minus unmasked threshold, paired within each resample of participants."""

    eps50: float | None
    eps75: float | None
    eps50_ci: Interval
    eps75_ci: Interval
    n_resamples_used: int


class IndividualFitOut(BaseModel):
    eps50: float | None
    eps75: float | None
    at_bound: list[str]
    reason: str | None


class ParticipantOut(BaseModel):
    participant_id: int
    n_trials: int
    n_clean: int
    false_alarm_rate: float | None
    hit_rate: float | None = Field(description="Over all their perturbed trials.")
    dprime: float | None = Field(description="All their perturbed trials vs their clean ones (log-linear).")
    fits: dict[str, IndividualFitOut] = Field(description="condition -> their own psychometric fit.")


class ParticipantLevelOut(BaseModel):
    """Statistics that treat the participant, not the trial, as the unit (bootstrap over people)."""

    n_participants: int
    n_boot: int
    within: bool = Field(description="Trials were resampled within each resampled participant too.")
    levels: list[ParticipantLevelRow]
    thresholds: list[ThresholdOut]
    difference: DifferenceOut | None
    per_participant: list[ParticipantOut]
    warnings: list[WarningOut]


class CoefficientOut(BaseModel):
    term: str
    estimate: float | None
    se: float | None
    z: float | None
    p: float | None
    ci: Interval


class EstimateOut(BaseModel):
    estimate: float | None
    ci: Interval
    p: float | None = None


class ModelOut(BaseModel):
    """GEE logistic model of the perturbed trials in log eps and condition, participants as clusters."""

    reason: str | None = Field(default=None, description="Why there is no model, when there is none.")
    method: str | None = None
    n_trials: int | None = None
    n_participants: int | None = None
    eps_ref: float | None = Field(default=None, description="log eps is centred at this eps.")
    working_correlation: float | None = None
    coefficients: list[CoefficientOut] = Field(default_factory=list)
    masked_odds_ratio: EstimateOut | None = Field(default=None, description="Odds ratio masked/unmasked at eps_ref.")
    eps50: dict[str, EstimateOut] = Field(default_factory=dict, description="condition -> the model's 50% point.")
    eps50_ratio: EstimateOut | None = Field(default=None, description="Masked / unmasked 50% point.")
    warnings: list[WarningOut] = Field(default_factory=list)


# --- several stimulus sets side by side (backend.study.sets) ------------------------------------------------------


class SetLevelOut(BaseModel):
    """One eps level of one set; d' is against that set's own clean trials."""

    eps: float
    n: int
    n_participants: int
    detection_rate: float
    ci: Interval = Field(description="Participant-bootstrap 95% interval of the detection rate.")
    dprime: float | None
    dprime_ci: Interval


class SetOut(BaseModel):
    stimulus_set_id: int
    name: str
    masked: bool
    n_participants: int
    n_trials: int
    levels: list[SetLevelOut]
    eps50: float | None
    eps75: float | None
    eps50_ci: Interval = Field(description="Participant-bootstrap 95% interval; null high end: unbounded.")
    eps75_ci: Interval
    share_not_reached: float | None
    at_bound: list[str]
    reason: str | None = Field(description="Why there is no fit, when there is none.")


class SetDifferenceOut(BaseModel):
    """Threshold of set `stimulus_set_id` minus that of the first set, paired within each resample."""

    stimulus_set_id: int
    name: str
    minus_stimulus_set_id: int
    minus_name: str
    eps50: float | None
    eps75: float | None
    eps50_ci: Interval
    eps75_ci: Interval
    n_resamples_used: int


class SetComparisonOut(BaseModel):
    n_participants: int
    n_boot: int
    within: bool
    sets: list[SetOut] = Field(description="In the study's order: stimulus_set_id first.")
    differences: list[SetDifferenceOut]


ResultsOut.model_rebuild()
