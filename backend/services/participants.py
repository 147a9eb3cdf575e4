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
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pydantic import ValidationError
from sqlalchemy import Select, Table, and_, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, joinedload

from backend.auth import token_hash
from backend.models import (
    Annotation,
    Image,
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
from backend.services.resume import check_resume
from backend.storage import BlobStore, sha256_hex
from backend.study.analysis import catch_exclusions
from backend.study.config import StudyConfig
from backend.study.schedule import TrialSpec, build_schedule

#: Seconds a participant's browser should wait before asking again while stimuli are being generated (the
#: demo's take well under a minute: a participant should not wait 30 s after they are ready).
PREPARING_RETRY_AFTER_S = 5
#: Largest accepted stroke record of one annotation (compact JSON, bytes).
MAX_STROKES_BYTES = 256 * 1024
_ENROLL_ATTEMPTS = 8
_Answer = TypeVar("_Answer", Response, Annotation)
_EPS_TOLERANCE = 1e-9
_UNKNOWN_TOKEN = "no session with this token; start the study again from its link"


@dataclass(frozen=True)
class Outcome:
    """What a participant gets at the end: the code to paste and where to go."""

    completion_code: str
    redirect_url: str | None


# --- studies ---------------------------------------------------------------------------------------------


def get_study(session: Session, slug: str) -> Study:
    """The study `slug` (404 if none)."""
    study = session.scalar(select(Study).where(Study.slug == slug))
    if study is None:
        raise NotFoundError(f"no study with slug {slug!r}; check the link you were given")
    return study


def study_config(study: Study) -> StudyConfig:
    return _validated_config(study.config, study.slug)


def _validated_config(config: dict[str, Any], slug: str) -> StudyConfig:
    try:
        return StudyConfig.model_validate(config)
    except ValidationError as exc:
        raise UnavailableError(
            f"study {slug!r} cannot run: its configuration is invalid ({exc.error_count()} errors); "
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
    simulated: bool = False,
) -> Enrolment:
    """A new session of study `slug` with its schedule, or the existing one of `external_id` (created False).

    Raises InvalidInputError without consent, NotFoundError for an unknown slug, ConflictError when the study
    is not open, UnavailableError (503, Retry-After) while its stimuli are being generated.

    Commits twice: the participant index is taken from the study's counter (`_take_index`) in a transaction
    of its own, so the study's row, which every enrolment of the study must lock, is locked for one UPDATE;
    then the session and its trials are written in the caller's transaction. An index whose session could not
    be written (a failure, or a race with a simultaneous start of the same external id) is not reused: indices
    are unique and increasing, with rare gaps, which shift the rotation as a dropout does.

    `simulated`: a researcher's pilot run (the caller checked who may: `backend.api.simulation`); it may also
    start while the study is a draft, and its session is marked so results and exports leave it out. It takes
    an index like any session (a pilot on an open study shifts the rotation as a dropout does).
    """
    if consent is not True:
        raise InvalidInputError("consent must be true: the participant has to accept the consent text first")
    for attempt in range(_ENROLL_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0.005, 0.05) * attempt)
        study = get_study(session, slug)
        if external_id is not None:
            existing = session.scalar(
                select(Participant).where(Participant.study_id == study.id, Participant.external_id == external_id)
            )
            if existing is not None and existing.simulated != simulated:
                kind = "a simulated" if existing.simulated else "a real participant's"
                raise ConflictError(f"external id {external_id!r} belongs to {kind} session; use another id")
            if existing is not None:  # a new token: only its hash is stored, and the old one stops working
                check_resume(session, existing)  # 409 while the session is in progress (backend.services.resume)
                token = secrets.token_urlsafe(24)
                existing.token_hash = token_hash(token)
                return Enrolment(existing, token, created=False)
        statuses = _SIMULATE_STATUSES if simulated else ("open",)
        if study.status not in statuses:
            raise ConflictError(f"study {slug!r} is {study.status}, not open; it does not accept participants now")
        stimuli = _StimulusIndex.load(session, study_config(study).stimulus_set_id)  # 503 before taking an index
        try:
            index, config = _take_index(session, study, statuses)
            if config.stimulus_set_id != stimuli.stimulus_set.id:  # changed in the meantime
                stimuli = _StimulusIndex.load(session, config.stimulus_set_id)
            specs = stimuli.schedule(config, index)
            stimulus_ids = [stimuli.stimulus_id(spec) for spec in specs]
            token = secrets.token_urlsafe(24)
            participant = Participant(
                study_id=study.id,
                token_hash=token_hash(token),
                external_id=external_id,
                index=index,
                consent=True,
                client_info=client_info or {},
                recruitment=recruitment,
                simulated=simulated,
            )
            session.add(participant)
            session.flush()
            session.execute(  # one executemany, no ORM objects
                insert(cast(Table, Trial.__table__)),
                [
                    {
                        "participant_id": participant.id,
                        "position": spec.position,
                        "phase": spec.phase,
                        "stimulus_id": stimulus_id,
                        "media_key": secrets.token_urlsafe(18),
                    }
                    for spec, stimulus_id in zip(specs, stimulus_ids, strict=True)
                ],
            )
            return Enrolment(participant, token, created=True, trials=len(specs))
        except (IntegrityError, OperationalError) as exc:
            # A simultaneous start of the same external id won (or SQLite was busy): start over and look again.
            session.rollback()
            if not _is_contention(exc):
                raise
    raise ConflictError("too many participants are joining at this moment; try again in a few seconds")


#: Where a simulated session may start: a researcher pilots a draft before opening it.
_SIMULATE_STATUSES = ("open", "draft")

#: Hands out the next participant index of a study in one of `statuses` (open; for a simulated session, draft
#: too): the row is locked for this statement and its commit.
_TAKE_INDEX = (
    update(Study)
    .where(Study.id == bindparam("study_id"), Study.status.in_(bindparam("statuses", expanding=True)))
    .values(next_index=Study.next_index + 1)
    .returning(Study.next_index, Study.config)
    .execution_options(synchronize_session=False)
)


def _take_index(session: Session, study: Study, statuses: tuple[str, ...]) -> tuple[int, StudyConfig]:
    """(index, configuration) for a new participant of `study`, committed at once (see `start_session`)."""
    row = session.execute(_TAKE_INDEX, {"study_id": study.id, "statuses": list(statuses)}).first()
    session.commit()
    if row is None:
        raise ConflictError(f"study {study.slug!r} was closed just now; it does not accept participants now")
    return row.next_index - 1, _validated_config(row.config, study.slug)


@dataclass(frozen=True)
class Enrolment:
    """What `start_session` did: the session, its token (known only here: the database keeps its hash),
    whether it is new, and (when new) its number of trials."""

    participant: Participant
    token: str
    created: bool
    trials: int | None = None


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
    #: split -> image ids of the set's `annotate` stimuli (the annotation pools, see StudyConfig)
    pools: dict[str | None, list[int]] = field(default_factory=dict)

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
                "This study is being prepared: its images are still being made. This page tries again by itself "
                "in a few seconds.",
                retry_after_s=PREPARING_RETRY_AFTER_S,
            )
        by_image: dict[tuple[int, str], list[tuple[float, int]]] = defaultdict(list)
        for image_id, role, eps, stimulus_id in rows:
            by_image[(image_id, role)].append((eps, stimulus_id))
        pools: dict[str | None, list[int]] = defaultdict(list)
        for image_id, split in session.execute(
            select(Stimulus.image_id, Image.split)
            .join(Image, Image.id == Stimulus.image_id)
            .where(Stimulus.stimulus_set_id == stimulus_set_id, Stimulus.role == "annotate")
        ):
            pools[split].append(image_id)
        return cls(sset, dict(by_image), dict(pools))

    def schedule(self, config: StudyConfig, participant_index: int) -> list[TrialSpec]:
        image_ids = sorted({image_id for image_id, role in self.by_image if role == "trial"})
        eps_levels = sorted({0.0, *(float(e) for e in self.stimulus_set.eps_levels)})
        try:
            return build_schedule(
                config,
                participant_index=participant_index,
                image_ids=image_ids,
                eps_levels=eps_levels,
                annotate_image_ids=self.pools.get(config.annotation_split) if config.annotation_split else None,
            )
        except ValueError as exc:
            raise UnavailableError(f"study cannot run: {exc}; a researcher must fix the study") from None

    def stimulus_id(self, spec: TrialSpec) -> int:
        role = "catch" if spec.phase == "catch" else "trial"
        if spec.phase == "annotate" and (spec.image_id, "annotate") in self.by_image:
            role = "annotate"  # an image of the annotation pool (one also in the detection set: its pool row)
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
        select(Participant).options(joinedload(Participant.study)).where(Participant.token_hash == token_hash(token))
    )
    if participant is None:
        raise NotFoundError(_UNKNOWN_TOKEN)
    return participant


def _unanswered(participant_id: Any) -> Select[tuple[int]]:
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


#: The first unanswered trial and the number of unanswered trials of the outer query's participant.
_CURRENT = _unanswered(Participant.id).limit(1).correlate(Participant).scalar_subquery()
_LEFT = select(func.count()).select_from(_unanswered(Participant.id).order_by(None).correlate(Participant).subquery())
_TOTAL = select(func.count()).where(Trial.__table__.alias().c.participant_id == Participant.id).correlate(Participant)

# The hot-path statements are built once, at import: building a statement costs more than running it.
_PROGRESS = (
    select(
        Participant.id,
        Study.slug,
        Study.config,
        _TOTAL.scalar_subquery().label("total"),
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
    .outerjoin(Trial, Trial.id == _CURRENT)
    .outerjoin(Stimulus, Stimulus.id == Trial.stimulus_id)
    .outerjoin(Image, Image.id == Stimulus.image_id)
    .where(Participant.token_hash == bindparam("token_hash"))
)


def progress(session: Session, token: str) -> Progress:
    """The session of `token` with its current trial and trial count, in one query (404 for an unknown token).

    The `next` route's hot path under load: one round trip and no ORM objects (the ORM's bookkeeping was the
    largest share of the service's CPU time in `benchmarks/load.py`).
    """
    row = session.execute(_PROGRESS, {"token_hash": token_hash(token)}).first()
    if row is None:
        raise NotFoundError(_UNKNOWN_TOKEN)
    trial = None
    if row.trial_id is not None:
        trial = CurrentTrial(row.trial_id, row.position, row.phase, row.media_key, row.eps, row.sha256, row.label)
    return Progress(row.id, _validated_config(row.config, row.slug), row.total or 0, trial)


_MARK_SHOWN = (
    update(Trial)
    .where(Trial.id == bindparam("trial_id"))
    .values(shown_count=Trial.shown_count + 1)
    .execution_options(synchronize_session=False)
)


def mark_shown(session: Session, trial_id: int) -> None:
    """Count one more showing of the trial (the `next` route hands it out; a reload shows it again)."""
    session.execute(_MARK_SHOWN, {"trial_id": trial_id})


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


# --- answers ---------------------------------------------------------------------------------------------


def submit_response(
    session: Session,
    token: str,
    trial_id: int,
    *,
    judgment: str,
    confidence: int,
    rt_ms: float,
    client_timestamps: dict[str, Any],
) -> tuple[dict[str, Any], bool]:
    """Store the detection answer of a trial; (stored answer, created). Identical repeats are not stored again."""
    values = {"judgment": judgment, "confidence": confidence, "rt_ms": rt_ms, "client_timestamps": client_timestamps}
    return _store_once(session, token, trial_id, Response, lambda _target: _NewAnswer(values))


def submit_annotation(
    session: Session,
    storage: BlobStore,
    token: str,
    trial_id: int,
    *,
    mask_png: bytes,
    strokes: Any,
    duration_ms: float,
) -> tuple[dict[str, Any], bool]:
    """Store the painted mask of an annotation trial (blob first, then the row); (stored, created)."""
    try:
        strokes_size = len(json.dumps(strokes, separators=(",", ":"), allow_nan=False))
    except ValueError:
        raise InvalidInputError("strokes must be plain JSON without NaN or Infinity") from None
    if strokes_size > MAX_STROKES_BYTES:
        raise InvalidInputError(
            f"strokes take {strokes_size} bytes as JSON, more than {MAX_STROKES_BYTES}; simplify the stroke "
            "paths (fewer points) before sending"
        )

    def answer(target: _Target) -> _NewAnswer:
        width, height = stimulus_size(storage, target.sha256)
        mask = normalize_mask(mask_png, width=width, height=height)
        compared = {"mask_sha256": sha256_hex(mask), "strokes": strokes, "duration_ms": duration_ms}
        return _NewAnswer(compared, {"width": width, "height": height}, blob=mask)

    return _store_once(session, token, trial_id, Annotation, answer, put_blob=storage.put)


#: The columns of each kind of answer that the routes return (the ones an identical repeat is compared on are
#: those the submission gives).
_ANSWER_COLUMNS: dict[type[Response | Annotation], tuple[str, ...]] = {
    Response: ("judgment", "confidence", "rt_ms", "client_timestamps", "created_at"),
    Annotation: ("mask_sha256", "strokes", "duration_ms", "width", "height", "created_at"),
}


@dataclass(frozen=True)
class _Target:
    """The trial an answer is for, with all that deciding about the answer needs; read in one query."""

    participant_id: int
    trial_id: int
    position: int
    phase: str
    sha256: str  # of the stimulus image (an annotation's mask must have its size)
    current_id: int | None  # the first unanswered trial of the session: answers come in order
    left: int  # unanswered trials of the session, this one included
    stored: dict[str, Any] | None  # the answer already stored for this trial


@dataclass(frozen=True)
class _NewAnswer:
    compared: dict[str, Any]  # what an identical repeat must equal
    stored_only: dict[str, Any] = field(default_factory=dict)  # stored, not compared (an annotation's size)
    blob: bytes | None = None  # put in the blob store before the row that names it


def _target_query(model: type[Response | Annotation]) -> Select[Any]:
    return (
        select(
            Participant.id.label("participant_id"),
            Trial.id.label("trial_id"),
            Trial.position,
            Trial.phase,
            Stimulus.sha256,
            _CURRENT.label("current_id"),
            _LEFT.scalar_subquery().label("left"),
            model.id.label("stored_id"),
            *(getattr(model, name).label(f"stored_{name}") for name in _ANSWER_COLUMNS[model]),
        )
        .select_from(Participant)
        .outerjoin(Trial, and_(Trial.id == bindparam("trial_id"), Trial.participant_id == Participant.id))
        .outerjoin(Stimulus, Stimulus.id == Trial.stimulus_id)
        .outerjoin(model, model.trial_id == Trial.id)
        .where(Participant.token_hash == bindparam("token_hash"))
    )


_TARGET = {model: _target_query(model) for model in _ANSWER_COLUMNS}


def _target(session: Session, token: str, trial_id: int, model: type[_Answer]) -> _Target:
    row = session.execute(_TARGET[model], {"token_hash": token_hash(token), "trial_id": trial_id}).first()
    if row is None:
        raise NotFoundError(_UNKNOWN_TOKEN)
    if row.trial_id is None:
        raise NotFoundError(f"no trial {trial_id} in this session")
    columns = _ANSWER_COLUMNS[model]
    stored = None if row.stored_id is None else {name: getattr(row, f"stored_{name}") for name in columns}
    return _Target(
        row.participant_id, row.trial_id, row.position, row.phase, row.sha256, row.current_id, row.left or 0, stored
    )


def _store_once(
    session: Session,
    token: str,
    trial_id: int,
    model: type[_Answer],
    make: Callable[[_Target], _NewAnswer],
    *,
    put_blob: Callable[[bytes], object] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Insert the answer `make(target)` of the trial once: (stored answer, created). An equal stored answer is
    returned, a different one is a 409; a concurrent insert of the same trial is resolved the same way.

    Core statements, two round trips for a new answer (`_target`, the insert), no ORM objects: the `response`
    route is the hot path under load.
    """
    target = _target(session, token, trial_id, model)
    wanted = Annotation if target.phase == "annotate" else Response
    if wanted is not model:
        kind, route = ("an annotation", "annotation") if wanted is Annotation else ("a detection", "response")
        raise ConflictError(
            f"trial {trial_id} is {kind} trial; send its answer to POST .../trials/{trial_id}/{route} instead"
        )
    answer = make(target)
    if target.stored is not None:
        return _same_or_conflict(target.stored, answer.compared, trial_id), False
    if target.current_id != target.trial_id:
        _refuse_out_of_order(session, target)
    if put_blob is not None and answer.blob is not None:
        put_blob(answer.blob)
    row = {**answer.compared, **answer.stored_only, "created_at": utcnow()}
    try:
        session.execute(insert(cast(Table, model.__table__)).values(trial_id=target.trial_id, **row))
    except IntegrityError:  # answered by a concurrent request in the meantime (nothing else written yet)
        session.rollback()
        again = session.execute(
            select(*(getattr(model, name) for name in _ANSWER_COLUMNS[model])).where(model.trial_id == trial_id)
        ).first()
        if again is None:
            raise
        return _same_or_conflict(again._asdict(), answer.compared, trial_id), False
    if target.left == 1:  # this was the last trial (answers come in order)
        participant = session.get(Participant, target.participant_id)
        if participant is not None:
            finish(session, participant)
    return {"trial_id": trial_id, **row}, True


def _refuse_out_of_order(session: Session, target: _Target) -> None:
    """409 for an answer to any trial but the current one, naming the trial that comes first."""
    where = "all trials are answered"
    if target.current_id is not None:
        position = session.scalar(select(Trial.position).where(Trial.id == target.current_id))
        where = f"trial {target.current_id} (position {position})"
    raise ConflictError(
        f"trial {target.trial_id} (position {target.position}) is not the current trial: {where} comes first; "
        "answer the trials in order"
    )


def _same_or_conflict(stored: dict[str, Any], compared: dict[str, Any], trial_id: int) -> dict[str, Any]:
    differing = [name for name, value in compared.items() if stored[name] != value]
    if differing:
        raise ConflictError(
            f"trial {trial_id} is already answered with different {', '.join(differing)}; an answer cannot be changed"
        )
    return {"trial_id": trial_id, **stored}
