"""The participant protocol: start (or resume) a session, walk its trials in order, store answers once.

A session's whole schedule is fixed at its start (`backend.study.schedule.build_schedule` with the
participant's 0-based index within the study, which drives the counterbalancing) and stored as `trials` rows
pointing to stimuli. Answers are accepted in schedule order; a repeated identical answer is acknowledged,
a different one refused, so client retries are safe. The completion code exists only once every trial of the
session has its answer stored.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, joinedload

from backend.models import (
    Annotation,
    Participant,
    Response,
    Stimulus,
    StimulusSet,
    Study,
    Trial,
    utcnow,
)
from backend.services.errors import ConflictError, InvalidInputError, NotFoundError, UnavailableError
from backend.services.masks import image_size, normalize_mask
from backend.storage import BlobStore, sha256_hex
from backend.study.analysis import MAX_CATCH_ERRORS
from backend.study.config import StudyConfig
from backend.study.schedule import TrialSpec, build_schedule

#: Seconds a participant's browser should wait before asking again while stimuli are being generated.
PREPARING_RETRY_AFTER_S = 30
#: Largest accepted stroke record of one annotation (compact JSON, bytes).
MAX_STROKES_BYTES = 256 * 1024
_ENROLL_ATTEMPTS = 8
_Answer = TypeVar("_Answer", Response, Annotation)
_EPS_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Outcome:
    """What a participant gets at the end: the code to paste and where to go."""

    completion_code: str
    redirect_url: str | None


# --- studies ---------------------------------------------------------------------------------------------


def get_study(session: Session, slug: str, *, lock: bool = False) -> Study:
    """The study `slug` (404 if none); `lock` holds its row until commit (PostgreSQL; SQLite locks the file)."""
    query = select(Study).where(Study.slug == slug)
    study = session.scalar(query.with_for_update() if lock else query)
    if study is None:
        raise NotFoundError(f"no study with slug {slug!r}; check the link you were given")
    return study


def study_config(study: Study) -> StudyConfig:
    try:
        return StudyConfig.model_validate(study.config)
    except ValidationError as exc:
        raise UnavailableError(
            f"study {study.slug!r} cannot run: its configuration is invalid ({exc.error_count()} errors); "
            "a researcher must fix it"
        ) from None


# --- sessions --------------------------------------------------------------------------------------------


def start_session(
    session: Session,
    slug: str,
    *,
    consent: bool,
    external_id: str | None = None,
    recruitment: dict[str, Any] | None = None,
    client_info: dict[str, Any] | None = None,
) -> tuple[Participant, bool]:
    """A new session of study `slug` with its schedule, or the existing one of `external_id` (created False).

    Raises InvalidInputError without consent, NotFoundError for an unknown slug, ConflictError when the study
    is not open, UnavailableError (503, Retry-After) while its stimuli are being generated. Call it first in
    its transaction: losing an enrolment race rolls the transaction back and tries again.
    """
    if consent is not True:
        raise InvalidInputError("consent must be true: the participant has to accept the consent text first")
    for attempt in range(_ENROLL_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0.005, 0.05) * attempt)
        # Locking the study row serialises enrolments of one study, so indices and external ids do not
        # collide; the retry covers the databases that cannot lock a row (SQLite: stale snapshot errors).
        study = get_study(session, slug, lock=True)
        if external_id is not None:
            existing = session.scalar(
                select(Participant).where(Participant.study_id == study.id, Participant.external_id == external_id)
            )
            if existing is not None:
                return existing, False
        if study.status != "open":
            raise ConflictError(f"study {slug!r} is {study.status}, not open; it does not accept participants now")
        config = study_config(study)
        stimuli = _StimulusIndex.load(session, config.stimulus_set_id)
        highest = session.scalar(select(func.max(Participant.index)).where(Participant.study_id == study.id))
        index = 0 if highest is None else highest + 1
        specs = stimuli.schedule(config, index)
        stimulus_ids = [stimuli.stimulus_id(spec) for spec in specs]
        participant = Participant(
            study_id=study.id,
            token=secrets.token_urlsafe(24),
            external_id=external_id,
            index=index,
            consent=True,
            client_info=client_info or {},
            recruitment=recruitment,
        )
        try:
            session.add(participant)
            session.flush()
            session.add_all(
                Trial(
                    participant_id=participant.id,
                    position=spec.position,
                    phase=spec.phase,
                    stimulus_id=stimulus_id,
                    media_key=secrets.token_urlsafe(18),
                )
                for spec, stimulus_id in zip(specs, stimulus_ids, strict=True)
            )
            session.flush()
            return participant, True
        except (IntegrityError, OperationalError) as exc:
            # Someone enrolled at the same time (same index or same external id): start over and look again.
            session.rollback()
            if not _is_contention(exc):
                raise
    raise ConflictError("too many participants are joining at this moment; try again in a few seconds")


def _is_contention(exc: DBAPIError) -> bool:
    """Whether a failed enrolment lost a race (unique index, SQLite lock) rather than hit a real fault."""
    text = str(exc.orig).lower()
    if isinstance(exc, IntegrityError):
        return "unique" in text or "duplicate" in text
    return any(word in text for word in ("locked", "busy", "could not serialize", "deadlock"))


@dataclass
class _StimulusIndex:
    """The stimuli of one set by (image, role), for turning schedule entries into stimulus ids."""

    stimulus_set: StimulusSet
    by_image: dict[tuple[int, str], list[tuple[float, int]]]

    @classmethod
    def load(cls, session: Session, stimulus_set_id: int) -> _StimulusIndex:
        sset = session.get(StimulusSet, stimulus_set_id)
        if sset is None:
            raise UnavailableError(
                f"study cannot run: its stimulus set {stimulus_set_id} does not exist; a researcher must fix it"
            )
        rows = session.execute(
            select(Stimulus.image_id, Stimulus.role, Stimulus.eps, Stimulus.id).where(
                Stimulus.stimulus_set_id == stimulus_set_id
            )
        ).all()
        if not rows or sset.status in ("pending", "generating"):
            raise UnavailableError(
                "study is being prepared: its images are still being generated; try again shortly",
                retry_after_s=PREPARING_RETRY_AFTER_S,
            )
        by_image: dict[tuple[int, str], list[tuple[float, int]]] = defaultdict(list)
        for image_id, role, eps, stimulus_id in rows:
            by_image[(image_id, role)].append((eps, stimulus_id))
        return cls(sset, dict(by_image))

    def schedule(self, config: StudyConfig, participant_index: int) -> list[TrialSpec]:
        image_ids = sorted({image_id for image_id, role in self.by_image if role == "trial"})
        eps_levels = sorted({0.0, *(float(e) for e in self.stimulus_set.eps_levels)})
        try:
            return build_schedule(
                config, participant_index=participant_index, image_ids=image_ids, eps_levels=eps_levels
            )
        except ValueError as exc:
            raise UnavailableError(f"study cannot run: {exc}; a researcher must fix the study") from None

    def stimulus_id(self, spec: TrialSpec) -> int:
        role = "catch" if spec.phase == "catch" else "trial"
        for eps, stimulus_id in self.by_image.get((spec.image_id, role), []):
            if math.isclose(eps, spec.eps, rel_tol=_EPS_TOLERANCE, abs_tol=_EPS_TOLERANCE):
                return stimulus_id
        raise UnavailableError(
            f"study is being prepared: stimulus set {self.stimulus_set.id} has no {role} stimulus of image "
            f"{spec.image_id} at eps {spec.eps}",
            retry_after_s=PREPARING_RETRY_AFTER_S if self.stimulus_set.status != "ready" else None,
        )


def participant_by_token(session: Session, token: str) -> Participant:
    """The participant of a session token, with its study loaded (one query; every route needs both)."""
    participant = session.scalar(
        select(Participant).options(joinedload(Participant.study)).where(Participant.token == token)
    )
    if participant is None:
        raise NotFoundError("no session with this token; start the study again from its link")
    return participant


def count_trials(session: Session, participant: Participant) -> int:
    return session.scalar(select(func.count()).select_from(Trial).where(Trial.participant_id == participant.id)) or 0


def _unanswered(participant: Participant) -> Select[tuple[Trial]]:
    """The participant's trials with neither a response nor an annotation, by position, stimulus loaded."""
    return (
        select(Trial)
        .outerjoin(Response, Response.trial_id == Trial.id)
        .outerjoin(Annotation, Annotation.trial_id == Trial.id)
        .where(Trial.participant_id == participant.id, Response.id.is_(None), Annotation.id.is_(None))
        .options(joinedload(Trial.stimulus))
        .order_by(Trial.position)
    )


def next_trial(session: Session, participant: Participant) -> Trial | None:
    """The first trial (by position) with neither a response nor an annotation; None when all are answered."""
    return session.scalar(_unanswered(participant).limit(1))


def next_trial_and_total(session: Session, participant: Participant) -> tuple[Trial | None, int]:
    """(`next_trial`, `count_trials`) in one query while trials are left (the `next` route's hot path)."""
    total = select(func.count()).select_from(Trial).where(Trial.participant_id == participant.id).scalar_subquery()
    row = session.execute(_unanswered(participant).add_columns(total).limit(1)).first()
    if row is None:
        return None, count_trials(session, participant)
    return row[0], row[1]


def get_own_trial(session: Session, participant: Participant, trial_id: int) -> Trial:
    """Trial `trial_id` if it belongs to `participant`; otherwise 404 (never reveal others' trials)."""
    trial = session.get(Trial, trial_id)
    if trial is None or trial.participant_id != participant.id:
        raise NotFoundError(f"no trial {trial_id} in this session")
    return trial


def stimulus_size(storage: BlobStore, stimulus: Stimulus) -> tuple[int, int]:
    """(width, height) of a stimulus as displayed (from its PNG header): the size its masks must have."""
    with storage.open(stimulus.sha256) as fh:
        return image_size(fh)


def expected_judgment(trial: Trial) -> str | None:
    """The correct detection answer of a trial ("perturbed" iff its stimulus has eps > 0); None to annotate."""
    if trial.phase == "annotate":
        return None
    return "perturbed" if trial.stimulus.eps > 0 else "clean"


def complete_if_done(session: Session, participant: Participant) -> bool:
    """Mark the session completed (code, flag) once no trial is left unanswered; True when it is complete."""
    if participant.completed_at is not None:
        return True
    if next_trial(session, participant) is not None:
        return False
    _complete(session, participant)
    return True


def outcome(participant: Participant) -> Outcome:
    """The completion code and the redirect (with `{completion_code}` filled in) of a completed session."""
    if participant.completed_at is None or participant.completion_code is None:
        raise ConflictError("the session is not finished; answer the remaining trials first")
    code = participant.completion_code
    redirect = study_config(participant.study).redirect_url
    if redirect is not None:
        redirect = redirect.replace("{completion_code}", quote(code, safe=""))
    return Outcome(completion_code=code, redirect_url=redirect)


def _complete(session: Session, participant: Participant) -> None:
    config = study_config(participant.study)
    participant.completed_at = utcnow()
    participant.completion_code = config.completion_code or secrets.token_hex(4).upper()
    catch = (
        session.execute(
            select(Response.judgment)
            .join(Trial, Trial.id == Response.trial_id)
            .where(Trial.participant_id == participant.id, Trial.phase == "catch")
        )
        .scalars()
        .all()
    )
    misses = sum(1 for judgment in catch if judgment != "perturbed")
    participant.flagged = misses > MAX_CATCH_ERRORS
    session.flush()


def _require_current(session: Session, participant: Participant, trial: Trial) -> bool:
    """Refuse (409) an answer to any trial but the current one; True when more trials follow it."""
    upcoming = session.scalars(_unanswered(participant).limit(2)).all()
    current = upcoming[0] if upcoming else None
    if current is None or current.id != trial.id:
        where = "all trials are answered" if current is None else f"trial {current.id} (position {current.position})"
        raise ConflictError(
            f"trial {trial.id} (position {trial.position}) is not the current trial: {where} comes first; "
            "answer the trials in order"
        )
    return len(upcoming) > 1


# --- answers ---------------------------------------------------------------------------------------------


def submit_response(
    session: Session,
    participant: Participant,
    trial_id: int,
    *,
    judgment: str,
    confidence: int,
    rt_ms: float,
    client_timestamps: dict[str, Any],
) -> tuple[Response, bool]:
    """Store the detection answer of a trial; (stored answer, created). Identical repeats are not stored again."""
    trial = get_own_trial(session, participant, trial_id)
    if trial.phase == "annotate":
        raise ConflictError(
            f"trial {trial_id} is an annotation trial; send its mask to POST .../trials/{trial_id}/annotation instead"
        )
    values = {"judgment": judgment, "confidence": confidence, "rt_ms": rt_ms, "client_timestamps": client_timestamps}
    return _store_once(session, participant, trial, Response, values)


def submit_annotation(
    session: Session,
    storage: BlobStore,
    participant: Participant,
    trial_id: int,
    *,
    mask_png: bytes,
    strokes: Any,
    duration_ms: float,
) -> tuple[Annotation, bool]:
    """Store the painted mask of an annotation trial (blob first, then the row); (stored, created)."""
    trial = get_own_trial(session, participant, trial_id)
    if trial.phase != "annotate":
        raise ConflictError(
            f"trial {trial_id} is a detection trial; send its judgment to POST .../trials/{trial_id}/response instead"
        )
    try:
        strokes_size = len(json.dumps(strokes, separators=(",", ":"), allow_nan=False))
    except ValueError:
        raise InvalidInputError("strokes must be plain JSON without NaN or Infinity") from None
    if strokes_size > MAX_STROKES_BYTES:
        raise InvalidInputError(
            f"strokes take {strokes_size} bytes as JSON, more than {MAX_STROKES_BYTES}; simplify the stroke "
            "paths (fewer points) before sending"
        )
    width, height = stimulus_size(storage, trial.stimulus)
    mask = normalize_mask(mask_png, width=width, height=height)
    values = {"mask_sha256": sha256_hex(mask), "strokes": strokes, "duration_ms": duration_ms}
    return _store_once(
        session,
        participant,
        trial,
        Annotation,
        values,
        extra={"width": width, "height": height},
        before_insert=lambda: storage.put(mask),  # the blob before the row that names it
    )


def _store_once(
    session: Session,
    participant: Participant,
    trial: Trial,
    model: type[_Answer],
    values: dict[str, Any],
    *,
    extra: dict[str, Any] | None = None,
    before_insert: Callable[[], object] | None = None,
) -> tuple[_Answer, bool]:
    """Insert the answer `values` of `trial` once: (stored row, created). An equal stored answer is returned,
    a different one is a 409; a concurrent insert of the same trial is resolved the same way."""
    stored = session.scalar(select(model).where(model.trial_id == trial.id))
    if stored is not None:
        return _same_or_conflict(stored, values, trial.id), False
    more_left = _require_current(session, participant, trial)
    if before_insert is not None:
        before_insert()
    row = model(trial_id=trial.id, **values, **(extra or {}))
    try:
        session.add(row)
        session.flush()
    except IntegrityError:  # answered by a concurrent request in the meantime
        session.rollback()
        stored = session.scalar(select(model).where(model.trial_id == trial.id))
        if stored is None:
            raise
        return _same_or_conflict(stored, values, trial.id), False
    if not more_left and participant.completed_at is None:  # this was the last trial (answers come in order)
        _complete(session, participant)
    return row, True


def _same_or_conflict(stored: _Answer, values: dict[str, Any], trial_id: int) -> _Answer:
    differing = [name for name, value in values.items() if getattr(stored, name) != value]
    if differing:
        raise ConflictError(
            f"trial {trial_id} is already answered with different {', '.join(differing)}; an answer cannot be changed"
        )
    return stored
