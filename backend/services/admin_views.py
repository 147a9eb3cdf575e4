"""Reads that only the admin dashboard needs (the research API has no page that shows them).

Everything that changes data goes through the same services as the research API (`studies`, `stimulus_sets`,
`dataset_catalog`, `job_requests`, `jobs`); these functions only gather rows for display.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from backend.models import Annotation, Image, Job, Participant, Response, Stimulus, StimulusSet, Trial
from backend.services.lookups import get_or_404

_EPS_TOLERANCE = 1e-9


@dataclass(frozen=True)
class StudyProgress:
    started: int
    completed: int
    flagged: int


def study_progress(session: Session, study_ids: list[int]) -> dict[int, StudyProgress]:
    """Per study: participants who started, who completed, and who were flagged by the catch trials."""
    rows = session.execute(
        select(
            Participant.study_id,
            func.count(Participant.id),
            func.count(Participant.completed_at),
            func.sum(case((Participant.flagged.is_(True), 1), else_=0)),
        )
        .where(Participant.study_id.in_(study_ids))
        .group_by(Participant.study_id)
    ).all()
    found = {sid: StudyProgress(n or 0, done or 0, int(flagged or 0)) for sid, n, done, flagged in rows}
    return {sid: found.get(sid, StudyProgress(0, 0, 0)) for sid in study_ids}


def jobs_by_ids(session: Session, job_ids: list[int]) -> list[Job]:
    """The jobs of `job_ids` that exist, in id order (unknown ids are left out)."""
    if not job_ids:
        return []
    return list(session.scalars(select(Job).where(Job.id.in_(job_ids)).order_by(Job.id)))


def active_jobs(session: Session, *, limit: int = 50) -> list[Job]:
    """Queued and running jobs, oldest first."""
    query = select(Job).where(Job.status.in_(("queued", "running"))).order_by(Job.id).limit(limit)
    return list(session.scalars(query))


@dataclass(frozen=True)
class ParticipantData:
    trials: int
    responses: int
    annotations: int


def participant_data(session: Session, participant_id: int) -> ParticipantData:
    """How many rows a withdrawal of the participant deletes."""
    trials, responses, annotations = session.execute(
        select(func.count(Trial.id), func.count(Response.id), func.count(Annotation.id))
        .outerjoin(Response, Response.trial_id == Trial.id)
        .outerjoin(Annotation, Annotation.trial_id == Trial.id)
        .where(Trial.participant_id == participant_id)
    ).one()
    return ParticipantData(trials or 0, responses or 0, annotations or 0)


# --- stimuli --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StimulusExample:
    image: Image
    clean: Stimulus | None
    perturbed: Stimulus


def stimulus_examples(
    session: Session, stimulus_set_id: int, eps: float, *, offset: int, limit: int
) -> tuple[list[StimulusExample], int]:
    """A page of the set's trial stimuli at `eps`, each with its source image and its clean (eps 0) twin."""
    get_or_404(session, StimulusSet, stimulus_set_id)
    at_eps = (
        select(Stimulus)
        .where(
            Stimulus.stimulus_set_id == stimulus_set_id,
            Stimulus.role == "trial",
            func.abs(Stimulus.eps - eps) < _EPS_TOLERANCE,
        )
        .order_by(Stimulus.image_id)
    )
    total = session.scalar(select(func.count()).select_from(at_eps.subquery())) or 0
    stimuli = list(session.scalars(at_eps.offset(offset).limit(limit)))
    clean = {
        s.image_id: s
        for s in session.scalars(
            select(Stimulus).where(
                Stimulus.stimulus_set_id == stimulus_set_id,
                Stimulus.role == "trial",
                Stimulus.eps == 0,
                Stimulus.image_id.in_([s.image_id for s in stimuli]),
            )
        )
    }
    return [StimulusExample(s.image, clean.get(s.image_id), s) for s in stimuli], total


def clean_twin(session: Session, stimulus: Stimulus) -> Stimulus | None:
    """The clean (eps 0) trial stimulus of the same image in the same set (shown at the same size)."""
    return session.scalar(
        select(Stimulus).where(
            Stimulus.stimulus_set_id == stimulus.stimulus_set_id,
            Stimulus.image_id == stimulus.image_id,
            Stimulus.role == "trial",
            Stimulus.eps == 0,
        )
    )


# --- annotations ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaintedMask:
    annotation: Annotation
    participant: Participant
    image: Image


def painted_masks(session: Session, *, study_id: int | None = None, image_id: int | None = None) -> list[PaintedMask]:
    """The annotations of a study and/or of an image with their participant and source image, ordered by image
    and then annotation; simulated sessions (researchers' pilot runs) are not data and are left out."""
    query = (
        select(Annotation, Participant, Image)
        .join(Trial, Trial.id == Annotation.trial_id)
        .join(Participant, Participant.id == Trial.participant_id)
        .join(Stimulus, Stimulus.id == Trial.stimulus_id)
        .join(Image, Image.id == Stimulus.image_id)
        .where(Participant.simulated.is_(False))
        .order_by(Image.id, Annotation.id)
    )
    if study_id is not None:
        query = query.where(Participant.study_id == study_id)
    if image_id is not None:
        query = query.where(Image.id == image_id)
    return [PaintedMask(a, p, i) for a, p, i in session.execute(query)]


def images_with_annotations(session: Session, image_ids: list[int]) -> set[int]:
    """Those of `image_ids` that some participant painted."""
    if not image_ids:
        return set()
    rows = session.scalars(
        select(Stimulus.image_id)
        .join(Trial, Trial.stimulus_id == Stimulus.id)
        .join(Annotation, Annotation.trial_id == Trial.id)
        .where(Stimulus.image_id.in_(image_ids))
        .distinct()
    )
    return set(rows)
