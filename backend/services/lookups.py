"""Row lookups by id, written once: 404 for a resource named in the URL, 422 for one named in a request body.

"Does it exist" (and, for nested resources, "does it belong to its parent") is answered here; "may this
caller use it" is the owner rule of `backend.services.ownership`, checked before these lookups.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from backend.models import (
    Annotation,
    Base,
    Dataset,
    Image,
    Job,
    Participant,
    Stimulus,
    StimulusSet,
    Study,
    TrainedModel,
)
from backend.services.errors import InvalidInputError, NotFoundError

Row = TypeVar("Row", bound=Base)

#: How error messages name each table's rows.
_NAMES: dict[type[Base], str] = {
    Dataset: "dataset",
    Image: "image",
    TrainedModel: "model",
    StimulusSet: "stimulus set",
    Stimulus: "stimulus",
    Study: "study",
    Participant: "participant",
    Annotation: "annotation",
    Job: "job",
}


def name_of(model: type[Base]) -> str:
    return _NAMES.get(model, model.__tablename__)


def get_or_404(session: Session, model: type[Row], row_id: int) -> Row:
    """The row `row_id` of `model`, or `NotFoundError` (404) naming what is missing."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFoundError(f"no {name_of(model)} with id {row_id}; list them with GET /{model.__tablename__}")
    return row


def get_referenced(session: Session, model: type[Row], row_id: int, *, field: str) -> Row:
    """The row a request body refers to in `field`, or `InvalidInputError` (422) naming the field."""
    row = session.get(model, row_id)
    if row is None:
        raise InvalidInputError(f"{field}: no {name_of(model)} with id {row_id}; pass the id of an existing one")
    return row


def get_child_or_404(session: Session, model: type[Row], row_id: int, *, parent: str, parent_id: int) -> Row:
    """A row of `model` that must belong to its parent (`getattr(row, parent) == parent_id`); 404 otherwise,
    worded the same either way so ids of other parents reveal nothing."""
    row = session.get(model, row_id)
    if row is None or getattr(row, parent) != parent_id:
        raise NotFoundError(f"no {name_of(model)} with id {row_id} in {parent.removesuffix('_id')} {parent_id}")
    return row
