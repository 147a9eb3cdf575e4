"""The researcher-facing settings of one study (validated once, stored as JSON on the study row).

`StudyConfig` is what `backend.study.schedule.build_schedule` turns into one participant's trial list; its
field descriptions show up in the OpenAPI schema of the research API.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend.study.analysis import MAX_CATCH_ERRORS
from backend.study.questionnaire import QuestionnaireItem, check_items

#: At most this many stimulus sets in one study: each set takes a share of a participant's main trials.
MAX_COMPARED_SETS = 4

DEFAULT_CONSENT_TEXT = (
    "You are invited to take part in a research study on how people perceive small changes to images. "
    "You will see a series of images and judge whether each one has been digitally altered, and you may be "
    "asked to mark the parts of some images that matter most for recognising them. The study takes about "
    "{minutes} minutes. Participation is voluntary and you may stop at any time without giving a reason. We record "
    "your answers, response times and markings, but no name or contact details; the anonymised data may be "
    "published for research. By continuing you confirm that you are at least 18 years old and agree to take "
    "part."
)

DEFAULT_INSTRUCTIONS = (
    "Some of the images you will see are unchanged originals; others have had a faint, carefully computed "
    "pattern of noise added to them. For each image, decide whether it has been altered ('perturbed') or "
    "not ('clean'), and say how confident you are. Answer as accurately as you can; speed matters less. "
    "The first few trials are practice and tell you whether you were right. At the end you will paint over "
    "the regions of a few images that you used to recognise what they show."
)


#: Where Prolific takes participants back; `?cc=<code>` tells it the outcome (complete, declined, failed checks).
PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete"
_PROLIFIC_HOSTS = ("prolific.com", "prolific.co", "prolific.ac")


def prolific_return_url(code: str) -> str:
    """Prolific's return link for `code` (`...?cc=CODE`): built here so the researcher need not type it."""
    return f"{PROLIFIC_COMPLETE_URL}?cc={quote(code, safe='')}"


def _goes_to_prolific(url: str | None) -> bool:
    host = (urlsplit(url).hostname or "").lower() if url else ""
    return any(host == h or host.endswith("." + h) for h in _PROLIFIC_HOSTS)


class ExclusionRules(BaseModel):
    """Who and what the results leave out (the results page shows how many each rule excludes).

    Rules are applied at analysis time, never by deleting data: a changed rule re-analyses the same answers.
    """

    model_config = ConfigDict(extra="forbid")

    max_catch_errors: int = Field(
        default=MAX_CATCH_ERRORS,
        ge=0,
        description="Participants who miss more attention-check (catch) trials than this.",
    )
    min_rt_ms: float | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="Main-phase responses faster than this (ms) are dropped: too fast to have looked; null keeps all.",
    )
    max_fast_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Participants whose share of responses faster than min_rt_ms exceeds this are excluded.",
    )
    min_completion_s: float | None = Field(
        default=None,
        ge=0,
        description="Participants who completed the session in less than this (seconds) are excluded.",
    )
    max_focus_lost_trials: int | None = Field(
        default=None,
        ge=0,
        description="Participants with more than this many detection trials (main and catch) during which the "
        "window lost focus or the page was hidden are excluded (the page counts both per trial); null: none.",
    )


class StudyConfig(BaseModel):
    """How many trials of each kind a participant gets, how they are shown, and where they go afterwards.

    Counts are per participant. The main phase shows each source image at most once, with the stimulus set's
    eps levels balanced within a participant and rotated across participants (see `build_schedule`).
    """

    model_config = ConfigDict(extra="forbid")

    stimulus_set_id: int = Field(
        description="Id of the stimulus set (source images and their perturbed versions at graded eps) to show. "
        "With compare_stimulus_set_ids it is the first of the compared sets, and the one practice, catch and "
        "annotation trials come from."
    )
    compare_stimulus_set_ids: list[int] = Field(
        default_factory=list,
        max_length=MAX_COMPARED_SETS - 1,
        description="Further stimulus sets whose main trials are interleaved with those of stimulus_set_id "
        "(e.g. the same images and model, masked and unmasked), for results that compare the sets side by side. "
        "Every set must come from the same dataset with the same norm and eps levels; the main phase uses the "
        "source images all sets have, and shows each of them at most once per participant, in one of the sets "
        "(counterbalanced across participants, see backend.study.schedule). n_main counts the trials of all "
        "sets together. Empty: a study of one set.",
    )
    n_main: int = Field(
        default=40,
        ge=1,
        description="Main (scored) detection trials per participant; each source image appears at most once, "
        "so this cannot exceed the number of images in the stimulus set. Left out when a study is created: 40, "
        "or the set's number of images if it has fewer.",
    )
    clean_share: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Share of main trials that show the clean image (0..1, exclusive); null: as many clean "
        "trials as trials at each eps level. Realised as c clean slots beside the L - 1 perturbed levels in the "
        "rotation, c = max(1, round(share * (L - 1) / (1 - share))), so the share is c / (c + L - 1).",
    )
    n_practice: int = Field(
        default=4,
        ge=0,
        description="Practice trials shown first, with feedback (right/wrong); they alternate clean and the "
        "largest eps and are not scored.",
    )
    n_catch: int = Field(
        default=4,
        ge=0,
        description="Attention-check trials with an obviously visible perturbation, interspersed among the "
        "main trials; participants who miss too many are flagged for exclusion.",
    )
    n_annotate: int = Field(
        default=5,
        ge=0,
        description="Salience-annotation trials at the end: the participant paints the regions that matter "
        "for the class of a clean image (preferably one seen in the main phase).",
    )
    annotation_split: str | None = Field(
        default="train",
        max_length=64,
        description="Split of the stimulus set's dataset whose clean images the annotation trials show (the "
        "annotation pool): by default 'train', the images SIP-AT training uses, so the paintings become its "
        "salience maps. Detection trials keep the stimulus set's own images. Null, or a split without images, "
        "paints clean images of the stimulus set instead (those are usually held-out test images, which "
        "training never sees).",
    )
    stimulus_duration_ms: int | None = Field(
        default=None,
        ge=50,
        le=10_000,
        description="How long each stimulus stays on screen in milliseconds (50..10000); null shows it until "
        "the participant answers.",
    )
    iti_ms: int = Field(
        default=500,
        ge=0,
        le=10_000,
        description="Inter-trial interval in milliseconds (0..10000): the fixation cross shown before each "
        "detection trial, at least this long (the next image loads meanwhile, so a slow load can lengthen it; "
        "the page records the real interval as client_timestamps.iti_ms).",
    )
    mask_ms: int | None = Field(
        default=None,
        ge=16,
        le=2_000,
        description="Backward mask in milliseconds (16..2000): a fresh random-noise pattern of the stimulus's "
        "size shown right after a timed stimulus disappears, so no afterimage extends the viewing time; needs "
        "stimulus_duration_ms. Null: no mask.",
    )
    require_fullscreen: bool = Field(
        default=False,
        description="The page asks the participant to switch to fullscreen before the trials (and again before "
        "a trial after they left it); exits are counted per trial (responses' fullscreen_exits).",
    )
    card_calibration: bool = Field(
        default=False,
        description="Before the session starts, the participant resizes a rectangle on screen to a credit card "
        "(85.60 mm wide): the page stores CSS px per mm (client_info.px_per_mm, exported), so a stimulus's size "
        "in mm, and at a known viewing distance in degrees of visual angle, can be computed.",
    )
    viewing_distance: bool = Field(
        default=False,
        description="After the card calibration, the blind-spot test of the virtual chinrest (Li et al. 2020): "
        "5 sweeps of a dot moving away from a fixation square give the viewing distance (client_info."
        "viewing_distance_mm, checked by the service), so each stimulus's size is known in degrees of visual "
        "angle (exports, results page). Needs card_calibration.",
    )
    target_participants: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Close the study automatically once this many real participants completed it without "
        "failing the attention checks (completed, not simulated, not flagged). Sessions already started may "
        "still finish, so the final count can exceed it by the sessions in progress. Null: close by hand.",
    )
    completion_code: str | None = Field(
        default=None,
        max_length=200,
        description="Code shown on the final page, e.g. for a crowd-sourcing platform to confirm completion.",
    )
    redirect_url: str | None = Field(
        default=None,
        max_length=2000,
        description="http(s) URL the participant is sent to after finishing (e.g. the recruiting platform's "
        "completion link; `{completion_code}` is replaced by their code); null shows a thank-you page instead, "
        "or with `prolific` set, Prolific's return link with `?cc=<code>`. A Prolific URL needs completion_code.",
    )
    prolific: bool = Field(
        default=False,
        description="The study runs on Prolific: participants go back to Prolific's return link with "
        "`?cc=<code>` of their outcome (completion_code; failed_attention_code; declined_code), built from the "
        "codes, so redirect_url stays null. Needs completion_code.",
    )
    mturk: bool = Field(
        default=False,
        description="The study runs as an MTurk ExternalQuestion HIT: the page may be framed by MTurk, a preview "
        "(assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE) shows the study's description without starting, and the end "
        "page posts assignmentId and completion_code to `<turkSubmitTo>/mturk/externalSubmit` (turkSubmitTo must "
        "be www.mturk.com or workersandbox.mturk.com). Not with prolific or redirect_url.",
    )
    declined_code: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="Code for participants who decline consent (Prolific: 'no consent', the submission is "
        "returned); with `prolific` they are sent back with it, else it is shown. Null: a thank-you page only.",
    )
    failed_attention_code: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="Code given instead of completion_code to participants who miss more attention checks "
        "than exclusions.max_catch_errors (Prolific: 'failed attention checks', to reject or return them).",
    )
    seed: int = Field(
        default=0,
        description="Seed of the schedules: the same config, seed and participant index give the same trials.",
    )
    consent_text: str = Field(
        default=DEFAULT_CONSENT_TEXT,
        min_length=1,
        description="Consent text the participant must accept before the first trial; '{minutes}' in it "
        "(and in the instructions) is shown as the session's estimated length in minutes, computed from the trial "
        "counts and stimulus duration (backend.study.texts).",
    )
    instructions: str = Field(
        default=DEFAULT_INSTRUCTIONS,
        min_length=1,
        description="Instructions shown after consent and before the practice trials.",
    )
    exclusions: ExclusionRules = Field(
        default_factory=ExclusionRules, description="Exclusion rules applied when the results are analysed."
    )
    questionnaire: list[QuestionnaireItem] = Field(
        default_factory=list,
        max_length=20,
        description="A short questionnaire shown after the trials (items of kind age_range, vision_corrected, "
        "device, free_text; see backend.study.questionnaire); its answers are stored with the session and "
        "exported. Empty: none.",
    )
    min_annotators: int = Field(
        default=1,
        ge=1,
        description="Annotations an image needs before its averaged salience map is used for SIP-AT training.",
    )

    painting_pool: Literal["random", "active"] = Field(
        default="random",
        description="How the annotation trials choose the images to paint: 'random' (a seeded sample of the "
        "annotation pool per participant) or 'active' (the newest finished rank_paintings ranking of this study, "
        "in pick order, skipping images that already have min_annotators paintings; random until a ranking "
        "exists). Active needs annotation_split: the ranking lists training images.",
    )
    rerank_every: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Queue a rank_paintings job for this study each time its accepted paintings pass a multiple "
        "of this number (at most one queued or running at a time); null: never, a researcher ranks by hand.",
    )

    @field_validator("questionnaire")
    @classmethod
    def _distinct_items(cls, value: list[QuestionnaireItem]) -> list[QuestionnaireItem]:
        return check_items(value)

    @property
    def stimulus_set_ids(self) -> list[int]:
        """Every set of the study, the first (stimulus_set_id) first; the schedule's set index points here."""
        return [self.stimulus_set_id, *self.compare_stimulus_set_ids]

    @field_validator("compare_stimulus_set_ids", mode="before")
    @classmethod
    def _none_is_no_set(cls, value: object) -> object:
        return [] if value is None else value  # PATCH {"compare_stimulus_set_ids": null}: back to one set

    @model_validator(mode="after")
    def _distinct_sets(self) -> StudyConfig:
        ids = self.stimulus_set_ids
        if len(set(ids)) < len(ids):
            raise ValueError(
                f"stimulus sets {ids} name a set twice; compare_stimulus_set_ids lists the sets other than "
                "stimulus_set_id, each once"
            )
        return self

    @model_validator(mode="after")
    def _mask_needs_timing(self) -> StudyConfig:
        if self.mask_ms is not None and self.stimulus_duration_ms is None:
            raise ValueError(
                "mask_ms needs stimulus_duration_ms: a backward mask follows a timed stimulus; set a stimulus "
                "duration or leave mask_ms null"
            )
        return self

    @model_validator(mode="after")
    def _distance_needs_the_card(self) -> StudyConfig:
        if self.viewing_distance and not self.card_calibration:
            raise ValueError(
                "viewing_distance needs card_calibration: the blind-spot offset is converted to mm with the "
                "card's px per mm; set card_calibration too"
            )
        return self

    @model_validator(mode="after")
    def _active_needs_a_pool(self) -> StudyConfig:
        if self.painting_pool == "active" and not self.annotation_split:
            raise ValueError(
                "painting_pool 'active' paints the training images a ranking lists, so it needs annotation_split "
                "(e.g. 'train'); set it, or use painting_pool 'random'"
            )
        return self

    @model_validator(mode="after")
    def _prolific_needs_a_code(self) -> StudyConfig:
        if (self.prolific or _goes_to_prolific(self.redirect_url)) and not self.completion_code:
            raise ValueError(
                "a study that sends participants back to Prolific needs a fixed completion_code (the one "
                "Prolific shows in the study's settings), else nobody's submission can be confirmed"
            )
        if self.prolific and self.redirect_url is not None:
            raise ValueError(
                "with prolific set, leave redirect_url null: the return link (?cc=<code>) is built from the codes"
            )
        if self.mturk and (self.prolific or self.redirect_url is not None):
            raise ValueError(
                "with mturk set, leave prolific false and redirect_url null: an MTurk HIT ends with the "
                "external-submit form to MTurk, not a redirect"
            )
        codes = [c for c in (self.completion_code, self.declined_code, self.failed_attention_code) if c]
        if len(set(codes)) < len(codes):
            raise ValueError("completion_code, declined_code and failed_attention_code must differ from each other")
        return self

    def return_url(self, code: str) -> str | None:
        """Where a participant with `code` goes afterwards: Prolific's return link, the redirect_url with
        `{completion_code}` filled in, or None (a thank-you page)."""
        if self.prolific:
            return prolific_return_url(code)
        if self.redirect_url is None:
            return None
        return self.redirect_url.replace("{completion_code}", quote(code, safe=""))

    @field_validator("redirect_url")
    @classmethod
    def _check_redirect_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
            raise ValueError(
                f"redirect_url must be an absolute http:// or https:// URL such as "
                f"'https://example.org/done?code=XYZ'; got {value!r}"
            )
        return value
