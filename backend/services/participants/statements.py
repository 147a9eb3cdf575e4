"""The participant protocol's prebuilt SQL statements, in one place.

The hot paths (`next`, an answer) run Core statements built once, at import: building a statement costs more
than running it, and the ORM's bookkeeping was the largest share of the service's CPU time in
`benchmarks/load/`. Each statement is documented where it is built; the modules that run them are
`enrolment` (TAKE_INDEX), `progress` (PROGRESS, MARK_SHOWN) and `answers` (TARGET).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, func, select, update

from backend.models import (
    Annotation,
    Image,
    Participant,
    Response,
    Stimulus,
    Study,
    Trial,
)

#: Hands out the next participant index of a study in one of `statuses` (open; for a simulated session, draft
#: too): the row is locked for this statement and its commit.
TAKE_INDEX = (
    update(Study)
    .where(Study.id == bindparam("study_id"), Study.status.in_(bindparam("statuses", expanding=True)))
    .values(next_index=Study.next_index + 1)
    .returning(Study.next_index, Study.config)
    .execution_options(synchronize_session=False)
)


def unanswered(participant_id: Any) -> Select[tuple[int]]:
    """Ids of the trials of `participant_id` (a value or an outer column) without an answer, by position."""
    t = Trial.__table__.alias()
    return (
        select(t.c.id)
        .where(
            t.c.participant_id == participant_id,
            ~exists().where(Response.trial_id == t.c.id),
            ~exists().where(Annotation.trial_id == t.c.id),
        )
        .order_by(t.c.position)
    )


#: The first unanswered trial and the number of unanswered trials of the outer query's participant.
CURRENT = unanswered(Participant.id).limit(1).correlate(Participant).scalar_subquery()
LEFT = select(func.count()).select_from(unanswered(Participant.id).order_by(None).correlate(Participant).subquery())
TOTAL = select(func.count()).where(Trial.__table__.alias().c.participant_id == Participant.id).correlate(Participant)

PROGRESS = (
    select(
        Participant.id,
        Study.slug,
        Study.config,
        TOTAL.scalar_subquery().label("total"),
        Trial.id.label("trial_id"),
        Trial.position,
        Trial.phase,
        Trial.media_key,
        Stimulus.eps,
        Stimulus.sha256,
        Image.label,
    )
    .select_from(Participant)
    .join(Study, Study.id == Participant.study_id)
    .outerjoin(Trial, Trial.id == CURRENT)
    .outerjoin(Stimulus, Stimulus.id == Trial.stimulus_id)
    .outerjoin(Image, Image.id == Stimulus.image_id)
    .where(Participant.token_hash == bindparam("token_hash"))
)


MARK_SHOWN = (
    update(Trial)
    .where(Trial.id == bindparam("trial_id"))
    .values(shown_count=Trial.shown_count + 1)
    .execution_options(synchronize_session=False)
)


#: The columns of each kind of answer that the routes return (the ones an identical repeat is compared on are
#: those the submission gives).
ANSWER_COLUMNS: dict[type[Response | Annotation], tuple[str, ...]] = {
    Response: (
        "judgment",
        "confidence",
        "rt_ms",
        "client_timestamps",
        "focus_losses",
        "visibility_losses",
        "fullscreen_exits",
        "created_at",
    ),
    Annotation: ("mask_sha256", "strokes", "duration_ms", "width", "height", "created_at"),
}


def target_query(model: type[Response | Annotation]) -> Select[Any]:
    return (
        select(
            Participant.id.label("participant_id"),
            Trial.id.label("trial_id"),
            Trial.position,
            Trial.phase,
            Stimulus.sha256,
            CURRENT.label("current_id"),
            LEFT.scalar_subquery().label("left"),
            model.id.label("stored_id"),
            *(getattr(model, name).label(f"stored_{name}") for name in ANSWER_COLUMNS[model]),
        )
        .select_from(Participant)
        .outerjoin(Trial, and_(Trial.id == bindparam("trial_id"), Trial.participant_id == Participant.id))
        .outerjoin(Stimulus, Stimulus.id == Trial.stimulus_id)
        .outerjoin(model, model.trial_id == Trial.id)
        .where(Participant.token_hash == bindparam("token_hash"))
    )


TARGET = {model: target_query(model) for model in ANSWER_COLUMNS}
