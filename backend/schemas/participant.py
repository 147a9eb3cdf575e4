"""The participant protocol's bodies: session start, the next trial, answers (judgments and masks)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from backend.services.masks import MAX_MASK_BYTES
from backend.study.mturk import PREVIEW_ASSIGNMENT_ID
from backend.study.visual_angle import DISTANCE_RANGE_MM, SWEEPS, check_blind_spot

RecruitmentId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")]
ShortStr = Annotated[str, StringConstraints(max_length=64)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Recruitment(BaseModel):
    """Ids handed over by the recruiting platform in the study link's query string (Prolific or MTurk).

    An unreplaced placeholder such as ``{{%PROLIFIC_PID%}}`` is refused (422) so broken links show up early.
    """

    model_config = ConfigDict(extra="forbid")

    PROLIFIC_PID: RecruitmentId | None = None
    STUDY_ID: RecruitmentId | None = None
    SESSION_ID: RecruitmentId | None = None
    workerId: RecruitmentId | None = None  # MTurk's names
    assignmentId: RecruitmentId | None = None
    hitId: RecruitmentId | None = None

    @field_validator("assignmentId")
    @classmethod
    def _not_a_preview(cls, value: str | None) -> str | None:
        if value == PREVIEW_ASSIGNMENT_ID:
            raise ValueError(
                "assignmentId is ASSIGNMENT_ID_NOT_AVAILABLE: this is an MTurk preview; accept the HIT to start"
            )
        return value


class ClientInfo(BaseModel):
    """The participant's display, recorded because it changes what a perturbation looks like."""

    model_config = ConfigDict(extra="forbid")

    user_agent: Annotated[str, StringConstraints(max_length=1024)] | None = None
    screen_width: int | None = Field(default=None, ge=1, le=100_000, description="CSS pixels")
    screen_height: int | None = Field(default=None, ge=1, le=100_000, description="CSS pixels")
    viewport_width: int | None = Field(default=None, ge=1, le=100_000, description="CSS pixels")
    viewport_height: int | None = Field(default=None, ge=1, le=100_000, description="CSS pixels")
    device_pixel_ratio: float | None = Field(default=None, gt=0, le=16, allow_inf_nan=False)
    refresh_rate_hz: float | None = Field(default=None, gt=0, le=1000, allow_inf_nan=False)
    px_per_mm: float | None = Field(
        default=None,
        ge=0.5,
        le=100,
        allow_inf_nan=False,
        description="CSS pixels per mm from the card calibration (a credit card, 85.60 mm wide); null: none.",
    )
    blind_spot_px: list[FiniteFloat] | None = Field(
        default=None,
        max_length=SWEEPS,
        description=f"The blind-spot test's {SWEEPS} sweeps: CSS px from the fixation square to the dot when it "
        "disappeared (backend.study.visual_angle); needs px_per_mm. Null: no test.",
    )
    viewing_distance_mm: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Viewing distance (mm) from the blind-spot sweeps; recomputed and checked by the service "
        f"(422 outside {DISTANCE_RANGE_MM[0]:.0f}..{DISTANCE_RANGE_MM[1]:.0f} mm or when it disagrees with them).",
    )
    language: Annotated[str, StringConstraints(max_length=64)] | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None

    @model_validator(mode="after")
    def _distance_from_the_sweeps(self) -> ClientInfo:
        if self.blind_spot_px is None:
            if self.viewing_distance_mm is not None:
                raise ValueError(
                    "viewing_distance_mm needs blind_spot_px, the sweeps it was computed from (the service checks it)"
                )
            return self
        self.viewing_distance_mm = check_blind_spot(self.blind_spot_px, self.px_per_mm, self.viewing_distance_mm)
        return self


class SessionCreate(BaseModel):
    """Start (or resume, with the same external id) a session; `consent` must be true. Resuming issues a new
    token; the session's previous token stops working."""

    model_config = ConfigDict(extra="forbid")

    consent: bool = Field(description="The participant accepted the study's consent text; must be true.")
    external_id: RecruitmentId | None = Field(
        default=None, description="Recruiting platform's participant id; derived from `recruitment` when absent."
    )
    recruitment: Recruitment | None = None
    client: ClientInfo = Field(default_factory=ClientInfo)
    simulate: bool = Field(
        default=False,
        description="A researcher's pilot run (`?simulate=1`): allowed while the study is a draft or for a "
        "logged-in researcher (403 otherwise); the session is marked and left out of results and exports.",
    )
    simulate_grant: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="The grant of the dashboard's 'Pilot' link (`backend.api.simulation`)."
    )

    @field_validator("consent")
    @classmethod
    def _consent_given(cls, value: bool) -> bool:
        if value is not True:
            raise ValueError("consent must be true: the participant has to accept the consent text to take part")
        return value

    @model_validator(mode="after")
    def _derive_external_id(self) -> SessionCreate:
        if self.recruitment is None:
            return self
        derived = self.recruitment.PROLIFIC_PID or self.recruitment.workerId
        if self.external_id is None:
            self.external_id = derived
        elif derived is not None and derived != self.external_id:
            raise ValueError(
                f"external_id {self.external_id!r} differs from the recruitment id {derived!r}; send only one"
            )
        return self


class SessionOut(BaseModel):
    token: str = Field(
        description="Secret of this session, needed for every later request; shown only here (the service keeps "
        "its hash). Resuming the session by its external id issues a new one and revokes this one."
    )
    study_slug: str
    total_trials: int
    answered: int
    resumed: bool = Field(
        description="True when an existing session of this external id was resumed (under a new token)."
    )


class StudyPublic(BaseModel):
    """What a participant sees before starting."""

    slug: str
    title: str
    status: Literal["draft", "open", "closed"]
    consent_text: str
    instructions: str
    stimulus_duration_ms: int | None


class NextTrial(BaseModel):
    done: Literal[False] = False
    trial_id: int
    position: int = Field(description="0-based position in the session")
    total: int
    phase: Literal["practice", "main", "annotate"] = Field(
        description="Attention-check (catch) trials come as 'main': a label would tell the participant."
    )
    image_url: str = Field(description="Opaque URL of the image; it reveals nothing about the stimulus.")
    question: Literal["perturbed_or_clean", "annotate"]
    class_name: str | None = Field(default=None, description="The image's class (annotation trials).")
    mask_width: int | None = Field(default=None, description="Width the mask must have (annotation trials).")
    mask_height: int | None = Field(default=None, description="Height the mask must have (annotation trials).")
    feedback_expected: Literal["perturbed", "clean"] | None = Field(
        default=None, description="The correct answer, for feedback (practice trials only)."
    )
    stimulus_duration_ms: int | None = Field(description="Show the image this long; null: until answered.")


class SessionDone(BaseModel):
    done: Literal[True] = True
    total: int
    completion_code: str
    redirect_url: str | None
    questionnaire_pending: bool = Field(
        default=False, description="The study's questionnaire comes now (POST .../questionnaire), before the code."
    )


class QuestionnaireSubmit(BaseModel):
    """Answers to the study's questionnaire: item id -> the chosen option or the text; null or absent: blank."""

    model_config = ConfigDict(extra="forbid")

    answers: dict[
        Annotated[str, StringConstraints(max_length=32)], Annotated[str, StringConstraints(max_length=5000)] | None
    ] = Field(max_length=20)


class QuestionnaireOut(BaseModel):
    answers: dict[str, str | None]


class ResponseSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judgment: Literal["perturbed", "clean"]
    confidence: int = Field(ge=1, le=4, description="1 = guessing .. 4 = certain")
    rt_ms: float = Field(gt=0, le=3_600_000, allow_inf_nan=False, description="From stimulus onset, ms")
    client_timestamps: dict[ShortStr, FiniteFloat | ShortStr | None] = Field(
        default_factory=dict,
        max_length=32,
        description="Client-side event times, e.g. {'onset': performance.now(), 'answer': ...}",
    )
    focus_losses: int | None = Field(
        default=None, ge=0, le=10_000, description="Times the window lost focus (blur) during the trial."
    )
    visibility_losses: int | None = Field(
        default=None, ge=0, le=10_000, description="Times the page was hidden (visibilitychange) during the trial."
    )
    fullscreen_exits: int | None = Field(
        default=None, ge=0, le=10_000, description="Times fullscreen was left during the trial."
    )


class ResponseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    trial_id: int
    judgment: Literal["perturbed", "clean"]
    confidence: int
    rt_ms: float
    client_timestamps: dict[str, Any]
    focus_losses: int | None = None
    visibility_losses: int | None = None
    fullscreen_exits: int | None = None
    created_at: datetime


class AnnotationSubmit(BaseModel):
    """A painted mask as base64 PNG (a `data:image/png;base64,` prefix is accepted), strokes, duration."""

    model_config = ConfigDict(extra="forbid")

    mask_png: str = Field(
        max_length=(MAX_MASK_BYTES * 4) // 3 + 64,
        description="Base64 PNG at the image's size: grayscale (value = salience) or RGBA (alpha = salience).",
    )
    strokes: list[Any] | dict[str, Any] = Field(default_factory=list, description="Stroke record (JSON).")
    duration_ms: float = Field(gt=0, le=86_400_000, allow_inf_nan=False, description="Painting time, ms")


class AnnotationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    trial_id: int
    width: int
    height: int
    duration_ms: float
    created_at: datetime
