"""Studies, their participants and withdrawals as the research API takes and shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model
from pydantic.fields import FieldInfo

from backend.study.config import StudyConfig

Slug = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$"),
    Field(
        description="Lower-case letters, digits, '-' and '_', starting with a letter (at most 64): the study's "
        "public address."
    ),
]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class StudyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug
    title: Title
    config: StudyConfig


def _optional(field: FieldInfo) -> Any:
    """The field's annotation, made optional (`X | None`)."""
    if field.annotation is None:
        raise TypeError("a StudyConfig field has no annotation")
    return field.annotation | None


#: Every StudyConfig field optional: a PATCH names only what changes; the merged config is validated whole.
StudyConfigPatch = create_model(  # type: ignore[call-overload]
    "StudyConfigPatch",
    __config__=ConfigDict(extra="forbid"),
    **{
        name: (_optional(field), Field(default=None, description=field.description))
        for name, field in StudyConfig.model_fields.items()
    },
)


class StudyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    config: StudyConfigPatch | None = Field(  # type: ignore[valid-type]
        default=None,
        description="Config fields to change. Fields that shape the schedules (stimulus_set_id, "
        "compare_stimulus_set_ids, n_main, n_practice, n_catch, n_annotate, seed, clean_share, annotation_split) "
        "cannot change once participants have started.",
    )

    def config_patch(self) -> dict[str, Any] | None:
        return None if self.config is None else self.config.model_dump(exclude_unset=True)


class StudyOut(BaseModel):
    id: int
    slug: str
    title: str
    status: Literal["draft", "open", "closed"]
    config: dict[str, Any] = Field(description="The StudyConfig.")
    created_at: datetime
    n_participants: int
    n_completed: int
    stimulus_set_status: str | None = Field(
        description="Status of the study's stimulus set (pending, generating, ready, failed); null if missing."
    )
    participant_url: str = Field(description="Where participants take part.")


class ParticipantStatusOut(BaseModel):
    id: int
    index: int = Field(description="0-based enrolment order; drives counterbalancing.")
    external_id: str | None
    started_at: datetime
    completed_at: datetime | None
    completed: bool
    flagged: bool = Field(description="Missed too many catch trials (set at completion).")
    trials_total: int
    trials_answered: int
    catch_trials: int
    catch_errors: int


class WithdrawalOut(BaseModel):
    participant_id: int
    deleted_trials: int
    deleted_responses: int
    deleted_annotations: int
    deleted_mask_blobs: int = Field(description="Mask files removed (those no other row used).")


class AnnotationStrokesOut(BaseModel):
    """The stroke record of one painted mask, as the participant's page sent it."""

    annotation_id: int
    study_id: int
    participant_id: int
    trial_id: int
    image_id: int
    width: int = Field(description="The mask's width in pixels (the image's natural width).")
    height: int = Field(description="The mask's height in pixels.")
    duration_ms: float = Field(description="Time from the painting screen's onset to 'Done'.")
    strokes_length: int = Field(description="Paint and erase strokes in the record ('clear' actions left out).")
    strokes: list[Any] | dict[str, Any] = Field(
        description="The record: the painter's object (`actions`: {mode: paint|erase, size, pointer, points: "
        "[[x, y, t_ms], ...]} in image pixels, undone strokes left out; {mode: clear, t}) or, from older "
        "clients and the JSON API, a plain list of strokes."
    )
