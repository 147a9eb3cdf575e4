"""Studies for the research API: create, edit, open and close them; their participants; withdrawal.

A study's schedule depends on a few config fields (`SCHEDULE_FIELDS`); once a participant has started,
changing one would give later participants another design than earlier ones, so such edits are refused.
Opening checks that the stimulus set can serve the configured trials; a set still being generated is
accepted (participants get 503 "being prepared" until it is ready).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import case, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.db import rowcount
from backend.models import (
    Annotation,
    Image,
    Participant,
    Response,
    Stimulus,
    StimulusSet,
    Study,
    Trial,
    User,
)
from backend.services.blob_refs import unreferenced
from backend.services.derived import delete_maps_derived_from
from backend.services.errors import ConflictError, InvalidInputError
from backend.services.lookups import get_child_or_404, get_or_404
from backend.services.ownership import require_owner
from backend.services.study_defaults import fit_defaults, has_catch_stimuli, set_levels
from backend.services.study_sets import field_of, referenced_sets, sets_state
from backend.storage import BlobStore
from backend.study.config import StudyConfig
from backend.study.schedule import build_schedule

#: Config fields that change the trials participants get (see `backend.study.schedule.build_schedule`).
SCHEDULE_FIELDS = (
    "stimulus_set_id",
    "compare_stimulus_set_ids",
    "n_main",
    "n_practice",
    "n_catch",
    "n_annotate",
    "seed",
    "clean_share",
    "annotation_split",
)
_EPS_TOLERANCE = 1e-9


def _validated(config: dict[str, Any]) -> StudyConfig:
    try:
        return StudyConfig.model_validate(config)
    except ValidationError as exc:
        problems = "; ".join(
            f"config.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise InvalidInputError(f"invalid study config: {problems}") from None


def create_study(session: Session, *, slug: str, title: str, config: StudyConfig, owner: User | None = None) -> Study:
    """A draft study owned by `owner`; 409 when the slug is taken, 403 when the config names a stimulus set
    `owner` may not use, 422 when it names no existing one. Trial counts the caller left out fit the set
    (`study_defaults.fit_defaults`).
    Call it first in its transaction: losing a race for the slug rolls the transaction back."""
    sset, *_ = referenced_sets(session, config, owner)
    config = fit_defaults(session, sset, config)
    if session.scalar(select(Study.id).where(Study.slug == slug)) is not None:
        raise ConflictError(f"slug {slug!r} is taken by another study; choose another one")
    study = Study(
        slug=slug,
        title=title,
        status="draft",
        config=config.model_dump(mode="json"),
        owner_id=owner.id if owner is not None else None,
    )
    session.add(study)
    try:
        session.flush()
    except IntegrityError:  # taken by a concurrent request since the check above
        session.rollback()
        raise ConflictError(f"slug {slug!r} is taken by another study; choose another one") from None
    return study


def count_participants(session: Session, study_id: int) -> tuple[int, int]:
    """(participants, of them completed) of a study."""
    total, completed = session.execute(
        select(func.count(Participant.id), func.count(Participant.completed_at)).where(Participant.study_id == study_id)
    ).one()
    return total or 0, completed or 0


def list_studies(session: Session, *, offset: int, limit: int, owner_id: int | None = None) -> tuple[list[Study], int]:
    """A page of studies, newest first; only those of `owner_id` when given (a researcher's own)."""
    where = [] if owner_id is None else [Study.owner_id == owner_id]
    total = session.scalar(select(func.count(Study.id)).where(*where)) or 0
    page = select(Study).where(*where).order_by(Study.id.desc()).offset(offset).limit(limit)
    return list(session.scalars(page)), total


def update_study(
    session: Session, study_id: int, *, title: str | None = None, config_patch: dict[str, Any] | None = None
) -> Study:
    """Change the title and/or some config fields (merged into the stored config, then validated as a whole).

    409 when a field of `SCHEDULE_FIELDS` changes after participants have started; 403 for a stimulus set the
    study's owner may not use (whoever asks: an administrator cannot hand a researcher's study another's set);
    422 for an invalid result.
    """
    study = get_or_404(session, Study, study_id)
    if config_patch:
        merged = _validated({**study.config, **config_patch})
        old = _validated(study.config)
        sets_changed = merged.stimulus_set_ids != old.stimulus_set_ids
        if sets_changed:  # the owner rule before anything else is told
            owner = session.get(User, study.owner_id) if study.owner_id is not None else None
            for position, set_id in enumerate(merged.stimulus_set_ids):
                if owner is not None:
                    require_owner(session, owner, StimulusSet, set_id, field=field_of(position))
        changed = [name for name in SCHEDULE_FIELDS if getattr(old, name) != getattr(merged, name)]
        n_participants, _ = count_participants(session, study.id)
        if changed and n_participants:
            raise ConflictError(
                f"{', '.join(changed)} cannot change: {n_participants} participants have started with the current "
                "schedule; create a new study for the new design (display texts, timing and redirect may change)"
            )
        if sets_changed:
            referenced_sets(session, merged, None)
        study.config = merged.model_dump(mode="json")
    if title is not None:
        study.title = title
    session.flush()
    return study


# --- opening and closing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readiness:
    """Whether a study's stimulus set can serve its config; `problems` say what is missing."""

    stimulus_set: StimulusSet | None
    problems: list[str]
    preparing: bool


def check_ready(session: Session, study: Study) -> Readiness:
    """Whether the study's sets (all of them, `backend.services.study_sets`) can serve its config."""
    config = _validated(study.config)
    state = sets_state(session, config)
    sset = state.first
    if sset is None or (state.problems and not state.images):
        return Readiness(sset, state.problems, False)
    levels = set_levels(sset)
    catch = state.preparing or _has_catch(session, sset, config)
    problems = state.problems + _schedule_problems(config, state.images, levels, catch=catch)
    return Readiness(sset, problems, state.preparing)


def _has_catch(session: Session, sset: StimulusSet, config: StudyConfig) -> bool:
    return config.n_catch == 0 or has_catch_stimuli(session, sset)


def _schedule_problems(config: StudyConfig, image_ids: list[int], levels: list[float], *, catch: bool) -> list[str]:
    problems = []
    if not catch:
        problems.append(f"n_catch={config.n_catch} but the stimulus set has no catch stimuli; set n_catch to 0")
    if not image_ids:
        return [*problems, "the stimulus set has no image with a stimulus at every eps level"]
    try:
        build_schedule(config, participant_index=0, image_ids=image_ids, eps_levels=levels)
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def open_study(session: Session, study_id: int) -> tuple[Study, Readiness]:
    """Open a draft or closed study (idempotent for an open one) once `check_ready` finds nothing missing;
    409 listing what is missing otherwise."""
    study = get_or_404(session, Study, study_id)
    readiness = check_ready(session, study)
    if readiness.problems:
        raise ConflictError(f"study {study.slug!r} cannot open: " + "; ".join(readiness.problems))
    ensure_annotation_pool(session, study)
    study.status = "open"
    session.flush()
    return study, readiness


def ensure_annotation_pool(session: Session, study: Study) -> int:
    """Give the study's stimulus set an `annotate` stimulus for every image of the study's annotation pool
    (`StudyConfig.annotation_split` of the set's dataset) that has none; returns how many there are.

    The stimulus is the image's own blob (clean, at its own size), so a painted mask has the image's size and
    training reads it as it reads the image. Without a pool (null split, or a split without images) the
    annotation trials keep showing the set's clean detection images. Idempotent; call it before participants
    start (`open_study` does; so does the demo's seeding)."""
    config = _validated(study.config)
    sset = session.get(StimulusSet, config.stimulus_set_id)
    if sset is None or config.annotation_split is None:
        return 0
    images = session.execute(
        select(Image.id, Image.sha256).where(
            Image.dataset_id == sset.dataset_id, Image.split == config.annotation_split
        )
    ).all()
    have = set(
        session.scalars(
            select(Stimulus.image_id).where(Stimulus.stimulus_set_id == sset.id, Stimulus.role == "annotate")
        )
    )
    session.add_all(
        Stimulus(stimulus_set_id=sset.id, image_id=image_id, eps=0.0, role="annotate", sha256=sha)
        for image_id, sha in images
        if image_id not in have
    )
    session.flush()
    return len(images)


def close_study(session: Session, study_id: int) -> Study:
    """Stop enrolling participants; sessions already started can still be finished. Idempotent."""
    study = get_or_404(session, Study, study_id)
    study.status = "closed"
    session.flush()
    return study


# --- participants -----------------------------------------------------------------------------------------


def participant_counts(study_id: int) -> Any:
    """Per participant of the study: trials, answered trials, catch trials and catch trials answered "clean"
    (a subquery with columns pid, total, answered, catch_trials, catch_errors)."""
    return (
        select(
            Trial.participant_id.label("pid"),
            func.count(Trial.id).label("total"),
            (func.count(Response.id) + func.count(Annotation.id)).label("answered"),
            func.sum(case((Trial.phase == "catch", 1), else_=0)).label("catch_trials"),
            func.sum(case(((Trial.phase == "catch") & (Response.judgment == "clean"), 1), else_=0)).label(
                "catch_errors"
            ),
        )
        .outerjoin(Response, Response.trial_id == Trial.id)
        .outerjoin(Annotation, Annotation.trial_id == Trial.id)
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.study_id == study_id)
        .group_by(Trial.participant_id)
        .subquery("counts")
    )


@dataclass(frozen=True)
class ParticipantStatus:
    participant: Participant
    trials_total: int
    trials_answered: int
    catch_trials: int
    catch_errors: int


def list_participants(
    session: Session, study_id: int, *, offset: int, limit: int
) -> tuple[list[ParticipantStatus], int]:
    """A page of the study's participants in enrolment order, with answered/total trials and catch misses."""
    get_or_404(session, Study, study_id)
    counts = participant_counts(study_id)
    rows = session.execute(
        select(Participant, counts.c.total, counts.c.answered, counts.c.catch_trials, counts.c.catch_errors)
        .outerjoin(counts, counts.c.pid == Participant.id)
        .where(Participant.study_id == study_id)
        .order_by(Participant.index)
        .offset(offset)
        .limit(limit)
    ).all()
    total, _ = count_participants(session, study_id)
    return [ParticipantStatus(p, t or 0, a or 0, int(ct or 0), int(ce or 0)) for p, t, a, ct, ce in rows], total


@dataclass(frozen=True)
class Withdrawal:
    participant_id: int
    trials: int
    responses: int
    annotations: int
    mask_blobs: list[str]


def withdraw_participant(session: Session, study_id: int, participant_id: int) -> Withdrawal:
    """Delete a participant of the study with their trials, responses and annotations (not committed).

    The `human_mean` salience maps of the images they annotated go too (`backend.services.derived`).
    Returns the mask blobs their annotations named, and the derived maps' blobs; remove them after the commit with
    `remove_unreferenced_blobs` (only those no other row names), so a rollback never leaves a row without its
    blob.
    """
    participant = get_child_or_404(session, Participant, participant_id, parent="study_id", parent_id=study_id)
    trial_ids = select(Trial.id).where(Trial.participant_id == participant.id).scalar_subquery()
    masks = sorted(set(session.scalars(select(Annotation.mask_sha256).where(Annotation.trial_id.in_(trial_ids)))))
    masks += delete_maps_derived_from(session, trial_ids)  # mean maps that included their masks
    n_annotations = rowcount(session.execute(delete(Annotation).where(Annotation.trial_id.in_(trial_ids))))
    n_responses = rowcount(session.execute(delete(Response).where(Response.trial_id.in_(trial_ids))))
    n_trials = rowcount(session.execute(delete(Trial).where(Trial.participant_id == participant.id)))
    session.delete(participant)
    session.flush()
    return Withdrawal(participant_id, n_trials, n_responses, n_annotations, masks)


def remove_unreferenced_blobs(session: Session, storage: BlobStore, shas: list[str]) -> list[str]:
    """Delete the blobs of `shas` that no row names any more (run after the commit that dropped the rows);
    returns the ones deleted."""
    removed = []
    for sha in unreferenced(session, shas):
        storage.delete(sha)
        removed.append(sha)
    return removed
