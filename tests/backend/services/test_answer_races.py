"""Two simultaneous answers to one trial: exactly one row is kept; the other request is idempotent (same
answer) or a clean 409 (a different one), never a second row or a server error.

The race is made by construction, not by timing: each request reads the trial (no answer stored yet) and then
waits at a barrier until the other has read it too, so both go on to insert; the unique index on the answer's
trial decides, and the loser takes `_store_once`'s IntegrityError path.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.db import make_session_factory, session_scope
from backend.models import Response
from backend.services import participants as svc
from backend.services.errors import ConflictError
from backend.services.participants import answers
from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, make_open_study


def _race(engine: Engine, token: str, trial_id: int, judgments: list[str]) -> list[Any]:
    factory = make_session_factory(engine)
    results: list[Any] = [None] * len(judgments)

    def answer(i: int, judgment: str) -> None:
        try:
            with session_scope(factory) as s:
                results[i] = svc.submit_response(
                    s, token, trial_id, judgment=judgment, confidence=2, rt_ms=400.0, client_timestamps={}
                )
        except BaseException as exc:  # asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=answer, args=(i, j)) for i, j in enumerate(judgments)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


@pytest.fixture
def both_read_first(monkeypatch: pytest.MonkeyPatch) -> threading.Barrier:
    """Every `submit_response` waits, after reading its trial, until two have read it."""
    barrier = threading.Barrier(2)
    real = answers._target

    def target_then_wait(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        assert found.stored is None  # neither has inserted yet: the race is real
        barrier.wait(timeout=30)
        return found

    monkeypatch.setattr(answers, "_target", target_then_wait)
    return barrier


@BOTH_DATABASES
@pytest.mark.parametrize("same", [True, False], ids=["same-answer", "different-answer"])
def test_two_simultaneous_answers_to_one_trial(
    engine: Engine, session: Session, storage: BlobStore, both_read_first: threading.Barrier, same: bool
) -> None:
    make_open_study(session, storage)
    token = svc.start_session(session, "pilot", consent=True).token
    session.commit()
    current = svc.progress(session, token).trial
    assert current is not None
    session.commit()

    judgments = ["perturbed", "perturbed" if same else "clean"]
    results = _race(engine, token, current.id, judgments)

    session.expire_all()
    rows = session.execute(select(Response.judgment).where(Response.trial_id == current.id)).scalars().all()
    assert len(rows) == 1
    if same:  # both acknowledged, one of them created the row
        assert all(isinstance(r, tuple) for r in results), results
        assert sorted(created for _, created in results) == [False, True]
        assert {stored["judgment"] for stored, _ in results} == {"perturbed"} and rows == ["perturbed"]
    else:  # the winner's answer is kept; the other gets a 409 that says why
        won = [r for r in results if isinstance(r, tuple)]
        lost = [r for r in results if isinstance(r, ConflictError)]
        assert len(won) == 1 and len(lost) == 1, results
        assert won[0][1] is True and rows == [won[0][0]["judgment"]]
        assert "already answered" in lost[0].message and lost[0].status_code == 409
    assert session.scalar(select(func.count()).select_from(Response)) == 1
