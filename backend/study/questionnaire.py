"""The short questionnaire after the trials: items a study configures, and the check of a participant's answers.

Four kinds, each with a prompt and (for the choice kinds) options that work as they are and that a study may
reword: ``age_range``, ``vision_corrected`` and ``device`` (one option each), and ``free_text`` (up to
``max_length`` characters). Items are optional unless ``required``; an answer is stored under the item's
``id`` (an export column's worth of name), and an answer a study did not ask for is refused, so the stored
object always matches the study's items.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ItemKind = Literal["age_range", "vision_corrected", "device", "free_text"]

DEFAULT_PROMPTS: dict[str, str] = {
    "age_range": "How old are you?",
    "vision_corrected": "Is your vision normal, or corrected to normal (glasses or contact lenses)?",
    "device": "Which device did you use for this study?",
    "free_text": "Anything you would like to tell us about the study (optional)?",
}
DEFAULT_OPTIONS: dict[str, list[str]] = {
    "age_range": ["18-24", "25-34", "35-44", "45-54", "55-64", "65 or older", "Prefer not to say"],
    "vision_corrected": [
        "Normal vision",
        "Corrected to normal (glasses or contact lenses)",
        "Not corrected, or impaired",
        "Prefer not to say",
    ],
    "device": ["Desktop or laptop computer", "Tablet", "Phone", "Other"],
}


class QuestionnaireItem(BaseModel):
    """One question; `prompt` and `options` default to the kind's (`DEFAULT_PROMPTS`, `DEFAULT_OPTIONS`)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="Key of the answer in the stored object and the export (lower case, digits, _).",
    )
    kind: ItemKind
    prompt: str | None = Field(default=None, min_length=1, max_length=500)
    options: list[str] | None = Field(
        default=None, min_length=2, max_length=20, description="Choices of a choice kind; null: the kind's own."
    )
    required: bool = False
    max_length: int = Field(default=1000, ge=1, le=5000, description="Longest free-text answer, in characters.")

    @model_validator(mode="after")
    def _fill_defaults(self) -> QuestionnaireItem:
        if self.prompt is None:
            self.prompt = DEFAULT_PROMPTS[self.kind]
        if self.kind == "free_text":
            if self.options is not None:
                raise ValueError(f"item {self.id!r}: a free_text item has no options")
        elif self.options is None:
            self.options = list(DEFAULT_OPTIONS[self.kind])
        elif any(not o.strip() or len(o) > 200 for o in self.options) or len(set(self.options)) < len(self.options):
            raise ValueError(f"item {self.id!r}: options must be distinct, non-empty and at most 200 characters")
        return self


def check_items(items: list[QuestionnaireItem]) -> list[QuestionnaireItem]:
    """The items, once their ids are known to be distinct (ValueError otherwise)."""
    ids = [item.id for item in items]
    if len(set(ids)) < len(ids):
        raise ValueError(f"questionnaire item ids must be distinct; got {ids}")
    return items


def check_answers(items: list[QuestionnaireItem], answers: dict[str, Any]) -> dict[str, str | None]:
    """`answers` (item id -> option or text) checked against `items`: every id, None for an item left blank.

    Raises ValueError naming the item: an unknown id, a value not among the options, text too long, a
    required item left blank.
    """
    known = {item.id: item for item in items}
    unknown = sorted(set(answers) - set(known))
    if unknown:
        raise ValueError(f"the questionnaire has no item {', '.join(map(repr, unknown))}; send only {sorted(known)}")
    out: dict[str, str | None] = {}
    for item in items:
        value = answers.get(item.id)
        if isinstance(value, str):
            value = value.strip() or None
        if value is None:
            if item.required:
                raise ValueError(f"item {item.id!r} ({item.prompt}) needs an answer")
            out[item.id] = None
            continue
        if not isinstance(value, str):
            raise ValueError(f"item {item.id!r}: send its answer as text; got {type(value).__name__}")
        if item.kind == "free_text":
            if len(value) > item.max_length:
                raise ValueError(f"item {item.id!r}: at most {item.max_length} characters; got {len(value)}")
        elif value not in (item.options or []):
            raise ValueError(f"item {item.id!r}: {value!r} is not one of its options {item.options}")
        out[item.id] = value
    return out
