"""Progress: a session's current trial (the `next` route's hot path), its completion and its outcome.

Answers are accepted in schedule order (`answers`), so the current trial is the first unanswered one. The
completion code exists only once every trial of the session has its answer stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload

from backend.auth import token_hash
from backend.models import (
    Participant,
    Response,
    Study,
    Trial,
    utcnow,
)
from backend.services.errors import ConflictError, NotFoundError
from backend.services.masks import image_size
from backend.services.participants.enrolment import study_config, validated_config
from backend.services.participants.statements import MARK_SHOWN, PROGRESS
from backend.storage import BlobStore
from backend.study.analysis import catch_exclusions
from backend.study.config import StudyConfig

UNKNOWN_TOKEN = "no session with this token; start the study again from its link"


@dataclass(frozen=True)
class Outcome:
    """What a participant gets at the end: the code to paste and where to go."""

    completion_code: str
    redirect_url: str | None


def participant_by_token(session: Session, token: str) -> Participant:
    """The participant of a session token, with its study loaded (one query; every route needs both)."""
    participant = session.scalar(
        select(Participant).options(joinedload(Participant.study)).where(Participant.token_hash == token_hash(token))
    )
    if participant is None:
        raise NotFoundError(UNKNOWN_TOKEN)
    return participant


@dataclass(frozen=True)
class CurrentTrial:
    """What the `next` route shows of a session's current trial; plain values, read with Core (hot path)."""

    id: int
    position: int
    phase: str
    media_key: str
    eps: float
    sha256: str
    label: str | None

    @property
    def expected_judgment(self) -> str | None:
        """The correct detection answer ("perturbed" iff eps > 0); None for an annotation trial."""
        return None if self.phase == "annotate" else ("perturbed" if self.eps > 0 else "clean")


@dataclass(frozen=True)
class Progress:
    """A session as the `next` route needs it: its current trial (None when all are answered) and size."""

    participant_id: int
    config: StudyConfig
    total: int
    trial: CurrentTrial | None


def progress(session: Session, token: str) -> Progress:
    """The session of `token` with its current trial and trial count, in one query (404 for an unknown token).

    The `next` route's hot path under load: one round trip and no ORM objects (the ORM's bookkeeping was the
    largest share of the service's CPU time in `benchmarks/load/`).
    """
    row = session.execute(PROGRESS, {"token_hash": token_hash(token)}).first()
    if row is None:
        raise NotFoundError(UNKNOWN_TOKEN)
    trial = None
    if row.trial_id is not None:
        trial = CurrentTrial(row.trial_id, row.position, row.phase, row.media_key, row.eps, row.sha256, row.label)
    return Progress(row.id, validated_config(row.config, row.slug), row.total or 0, trial)


def mark_shown(session: Session, trial_id: int) -> None:
    """Count one more showing of the trial (the `next` route hands it out; a reload shows it again)."""
    session.execute(MARK_SHOWN, {"trial_id": trial_id})


def stimulus_size(storage: BlobStore, sha256: str) -> tuple[int, int]:
    """(width, height) of a stimulus image as displayed (from its header): the size its masks must have."""
    with storage.open(sha256) as fh:
        return image_size(fh)


def finish(session: Session, participant: Participant) -> None:
    """Mark a session whose trials are all answered completed (code, catch-trial flag), unless it already is."""
    if participant.completed_at is None:
        _complete(session, participant)


def outcome(participant: Participant) -> Outcome:
    """The completion code and the redirect (with `{completion_code}` filled in) of a completed session."""
    if participant.completed_at is None or participant.completion_code is None:
        raise ConflictError("the session is not finished; answer the remaining trials first")
    code = participant.completion_code
    return Outcome(completion_code=code, redirect_url=study_config(participant.study).return_url(code))


def _complete(session: Session, participant: Participant) -> None:
    config = study_config(participant.study)
    participant.completed_at = utcnow()
    # The study's own rule (`ExclusionRules.max_catch_errors`) through the one function that defines a miss
    # and the limit, so the completion flag and the results page's exclusion can never disagree.
    catch = session.execute(
        select(Trial.participant_id, Response.judgment, Trial.phase)
        .join(Response, Response.trial_id == Trial.id)
        .where(Trial.participant_id == participant.id, Trial.phase == "catch")
    ).all()
    rows = [{"participant_id": pid, "judgment": judgment, "phase": phase} for pid, judgment, phase in catch]
    participant.flagged = bool(catch_exclusions(rows, max_catch_errors=config.exclusions.max_catch_errors))
    if participant.flagged and config.failed_attention_code:  # Prolific's separate code for failed checks
        participant.completion_code = config.failed_attention_code
    else:
        participant.completion_code = config.completion_code or secrets.token_hex(4).upper()
    session.flush()
    if config.target_participants is not None and not participant.simulated and not participant.flagged:
        close_when_full(session, participant.study_id, config.target_participants)


def close_when_full(session: Session, study_id: int, target: int) -> bool:
    """Close the open study `study_id` once `target` real participants completed it without failing the
    attention checks; whether it was closed now.

    Counted: completed, not simulated (a pilot is no data), not flagged (a failed attention check is usually
    rejected and replaced on the platform, so it should not take a place). The other exclusion rules (too-fast
    responses, completion time) are applied at analysis time and can change afterwards, so they cannot decide
    a close. The close is one conditional UPDATE (open -> closed), so two completions at once close it once;
    enrolment already refuses a study that is not open (`TAKE_INDEX`), and sessions in progress can finish.
    """
    done = session.scalar(
        select(func.count(Participant.id)).where(
            Participant.study_id == study_id,
            Participant.completed_at.is_not(None),
            Participant.simulated.is_(False),
            Participant.flagged.is_(False),
        )
    )
    if (done or 0) < target:
        return False
    closed = session.execute(
        update(Study)
        .where(Study.id == study_id, Study.status == "open")
        .values(status="closed")
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(closed, "rowcount", 0))
