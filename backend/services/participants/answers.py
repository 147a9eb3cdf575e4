"""Answers: a detection trial's judgment or an annotation trial's painted mask, each stored once.

A repeated identical answer is acknowledged, a different one refused (409), so client retries are safe; a
concurrent insert of the same trial is settled by the unique index and resolved the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.auth import token_hash
from backend.models import (
    Annotation,
    Participant,
    Response,
    Trial,
    utcnow,
)
from backend.services.errors import ConflictError, InvalidInputError, NotFoundError
from backend.services.masks import normalize_mask
from backend.services.participants.progress import UNKNOWN_TOKEN, finish, stimulus_size
from backend.services.participants.statements import ANSWER_COLUMNS, TARGET
from backend.storage import BlobStore, sha256_hex

#: Largest accepted stroke record of one annotation (compact JSON, bytes).
MAX_STROKES_BYTES = 256 * 1024
_Answer = TypeVar("_Answer", Response, Annotation)


def submit_response(
    session: Session,
    token: str,
    trial_id: int,
    *,
    judgment: str,
    confidence: int,
    rt_ms: float,
    client_timestamps: dict[str, Any],
    focus_losses: int | None = None,
    visibility_losses: int | None = None,
    fullscreen_exits: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store the detection answer of a trial; (stored answer, created). Identical repeats are not stored again
    (the focus, visibility and fullscreen counts are part of the answer: a retry sends the same ones)."""
    values = {
        "judgment": judgment,
        "confidence": confidence,
        "rt_ms": rt_ms,
        "client_timestamps": client_timestamps,
        "focus_losses": focus_losses,
        "visibility_losses": visibility_losses,
        "fullscreen_exits": fullscreen_exits,
    }
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


def _target(session: Session, token: str, trial_id: int, model: type[_Answer]) -> _Target:
    row = session.execute(TARGET[model], {"token_hash": token_hash(token), "trial_id": trial_id}).first()
    if row is None:
        raise NotFoundError(UNKNOWN_TOKEN)
    if row.trial_id is None:
        raise NotFoundError(f"no trial {trial_id} in this session")
    columns = ANSWER_COLUMNS[model]
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
            select(*(getattr(model, name) for name in ANSWER_COLUMNS[model])).where(model.trial_id == trial_id)
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
