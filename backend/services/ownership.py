"""The owner rule, written once for every owned row: studies, datasets, stimulus sets, trained models, jobs.

A researcher sees, uses and changes only the rows they created; an administrator reaches all. Rows created
before owners were recorded (migrations 0006 and 0012) have no owner and are the administrators'. Rows that
belong to an owned row inherit its owner: an image or salience map its dataset's, a stimulus its set's, a
participant, trial or painted mask its study's.

The answer for another researcher's row is 403 naming the rule (as the study routes did first), and for an id
that does not exist the caller's usual 404/422: a 403 reveals only that the id exists, which ids in sequence
reveal anyway, and it tells a researcher who mistyped an id what happened.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from backend.models import (
    Annotation,
    Dataset,
    Image,
    Job,
    Participant,
    Stimulus,
    StimulusSet,
    Study,
    TrainedModel,
    Trial,
    User,
)
from backend.services.errors import ForbiddenError

#: The tables with an `owner_id`, and how messages name their rows.
OWNED: dict[type[Any], str] = {
    Study: "study",
    Dataset: "dataset",
    StimulusSet: "stimulus set",
    TrainedModel: "model",
    Job: "job",
}


def may_use(user: User, owner_id: int | None) -> bool:
    """The rule itself: an administrator may use every row, a researcher the rows they own (not unowned ones)."""
    return user.is_admin or (owner_id is not None and owner_id == user.id)


def owner_filter(model: type[Any], user: User) -> list[ColumnElement[bool]]:
    """WHERE clauses that keep the rows of `model` that `user` may see (none for an administrator)."""
    return [] if user.is_admin else [model.owner_id == user.id]


def owner_scope(user: User) -> int | None:
    """The `owner_id` a listing is narrowed to for `user` (None: an administrator, no narrowing)."""
    return None if user.is_admin else user.id


def _refuse(name: str, row_id: object, field: str | None) -> ForbiddenError:
    where = f"{field}: " if field else ""
    return ForbiddenError(
        f"{where}{name} {row_id} belongs to another researcher; use one of your own, or ask its owner or an "
        "administrator"
    )


def require_owner(session: Session, user: User, model: type[Any], row_id: object, *, field: str | None = None) -> None:
    """403 unless `user` may use row `row_id` of `model` (one of `OWNED`); an unknown id passes, so the caller
    answers its own 404 (a URL) or 422 (a request body, named by `field`)."""
    if user.is_admin:
        return
    row = session.execute(select(model.owner_id).where(model.id == row_id)).first()
    if row is not None and not may_use(user, row.owner_id):
        raise _refuse(OWNED[model], row_id, field)


#: Rows that belong to an owned row: how to reach the owner's id from the row's id.
_PARENT_OWNER = {
    Image: (Dataset, select(Dataset.owner_id).join(Image, Image.dataset_id == Dataset.id), Image.id),
    Stimulus: (
        StimulusSet,
        select(StimulusSet.owner_id).join(Stimulus, Stimulus.stimulus_set_id == StimulusSet.id),
        Stimulus.id,
    ),
    Annotation: (
        Study,
        select(Study.owner_id)
        .join(Participant, Participant.study_id == Study.id)
        .join(Trial, Trial.participant_id == Participant.id)
        .join(Annotation, Annotation.trial_id == Trial.id),
        Annotation.id,
    ),
}

#: How messages name the rows of `_PARENT_OWNER`.
_CHILD_NAMES: dict[type[Any], str] = {Image: "image", Stimulus: "stimulus", Annotation: "annotation"}


def require_owner_of_parent(session: Session, user: User, model: type[Any], row_id: int) -> None:
    """403 unless `user` may use the owned row that row `row_id` of `model` (an image, stimulus or painted
    mask) belongs to; an unknown id passes (the caller's 404)."""
    if user.is_admin:
        return
    _, query, key = _PARENT_OWNER[model]
    row = session.execute(query.where(key == row_id)).first()
    if row is not None and not may_use(user, row.owner_id):
        raise _refuse(_CHILD_NAMES[model], row_id, None)
