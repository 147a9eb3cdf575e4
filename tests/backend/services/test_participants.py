"""Participant service under concurrency: simultaneous enrolments get distinct indices, one session each."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.db import make_session_factory, session_scope
from backend.models import Participant, Trial
from backend.services.errors import ConflictError
from backend.services.participants import start_session
from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, make_open_study


def _enrol_concurrently(engine: Engine, external_ids: list[str | None]) -> list[BaseException]:
    factory = make_session_factory(engine)
    barrier = threading.Barrier(len(external_ids))
    errors: list[BaseException] = []

    def enrol(external_id: str | None) -> None:
        try:
            barrier.wait()
            with session_scope(factory) as s:
                start_session(s, "pilot", consent=True, external_id=external_id)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=enrol, args=(e,)) for e in external_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


@BOTH_DATABASES
def test_simultaneous_enrolments_get_distinct_indices(engine: Engine, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    errors = _enrol_concurrently(engine, [None] * 6)
    assert errors == []
    session.expire_all()
    assert sorted(session.scalars(select(Participant.index))) == list(range(6))
    assert len(session.scalars(select(Trial.id)).all()) == 6 * 8


@BOTH_DATABASES
def test_simultaneous_starts_of_one_person_make_one_session(
    engine: Engine, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage)
    errors = _enrol_concurrently(engine, ["same-person"] * 4)
    assert errors == []
    session.expire_all()
    assert len(session.scalars(select(Participant)).all()) == 1


def test_indices_come_from_the_study_counter_and_are_never_reused(session: Session, storage: BlobStore) -> None:
    """A withdrawn participant's index is not handed out again (max + 1 would have), and a closed study
    hands out none."""
    study = make_open_study(session, storage)
    first = start_session(session, "pilot", consent=True).participant
    second = start_session(session, "pilot", consent=True).participant
    session.commit()
    assert (first.index, second.index) == (0, 1)
    session.delete(second)
    session.commit()
    assert start_session(session, "pilot", consent=True).participant.index == 2
    session.commit()
    study.status = "closed"
    session.commit()
    with pytest.raises(ConflictError):
        start_session(session, "pilot", consent=True)
    session.rollback()
    session.refresh(study)
    assert study.next_index == 3
