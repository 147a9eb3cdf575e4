"""A recruitment id alone cannot take over a session in progress (`backend.services.resume`): the probe
(a second start with the victim's PROLIFIC_PID while they answer) gets 409 and the victim's token keeps
working; an idle or completed session is resumed as before, and a start sent twice at once still works."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Participant, Response
from backend.services.resume import DOUBLE_START_GRACE_S, RESUME_AFTER_IDLE_S
from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, make_open_study
from tests.backend.research_factories import finish_session

PID = "5f0c1a2b3c4d5e6f7a8b9c0d"


def _start(client: TestClient, pid: str = PID) -> object:
    return client.post("/api/v1/studies/pilot/sessions", json={"consent": True, "recruitment": {"PROLIFIC_PID": pid}})


def _answer_one(client: TestClient, token: str) -> None:
    trial = client.get(f"/api/v1/sessions/{token}/next").json()
    body = {"judgment": "clean", "confidence": 2, "rt_ms": 500}
    r = client.post(f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/response", json=body)
    assert r.status_code == 201, r.text


def _age(session: Session, seconds: float) -> None:
    """Move every start and answer `seconds` into the past."""
    back = timedelta(seconds=seconds)
    session.expire_all()
    for p in session.scalars(select(Participant)):
        p.started_at -= back
    for r in session.scalars(select(Response)):
        r.created_at -= back
    session.commit()


@BOTH_DATABASES
def test_a_pid_cannot_take_over_a_session_in_progress(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    victim = _start(client).json()["token"]
    _answer_one(client, victim)
    _age(session, RESUME_AFTER_IDLE_S / 2)  # answered a while ago, still within the idle time

    takeover = _start(client)
    assert takeover.status_code == 409, takeover.text
    assert "in progress" in takeover.json()["detail"] and "min" in takeover.json()["detail"]
    assert client.get(f"/api/v1/sessions/{victim}/next").status_code == 200  # the victim's token still works
    _answer_one(client, victim)
    assert _start(client).status_code == 409  # a fresh answer restarts the idle time


def test_a_session_not_yet_answered_is_protected_after_the_grace(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage)
    victim = _start(client).json()["token"]
    _age(session, DOUBLE_START_GRACE_S + 1)  # reading the instructions
    assert _start(client).status_code == 409
    assert client.get(f"/api/v1/sessions/{victim}/next").status_code == 200


def test_a_double_start_and_an_idle_or_completed_session_resume(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage)
    first = _start(client).json()["token"]
    twice = _start(client)  # the same browser's start sent again at once
    assert twice.status_code == 200 and twice.json()["resumed"] is True
    _answer_one(client, twice.json()["token"])

    _age(session, RESUME_AFTER_IDLE_S + 1)  # the participant closed the tab and comes back later
    back = _start(client)
    assert back.status_code == 200 and back.json()["answered"] == 1
    assert client.get(f"/api/v1/sessions/{first}/next").status_code == 404

    finish_session(client, back.json()["token"])
    again = _start(client)  # completed: resuming shows the completion code again
    assert again.status_code == 200 and again.json()["answered"] == again.json()["total_trials"]
