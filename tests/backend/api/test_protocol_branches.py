"""Branches of the participant protocol that the whole-session tests do not reach: a study closed while
sessions are in progress, and masked and catch rows in every export format."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth import create_token
from backend.models import Participant, Response, StimulusSet, Study
from backend.services.resume import RESUME_AFTER_IDLE_S
from backend.storage import BlobStore
from backend.study.schedule import CATCH_EPS
from tests.backend.factories import make_open_study, make_user
from tests.backend.protocol_steps import answer, finish, next_trial, start


def _close(session: Session, study: Study) -> None:
    study.status = "closed"
    session.commit()


def test_sessions_in_progress_finish_after_the_study_closed(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    """Closing stops new participants, not those already taking part: their answers are stored and their
    completion code comes as usual."""
    study = make_open_study(session, storage, completion_code="DONE42")
    token = start(client, external_id="p1").json()["token"]
    assert answer(client, token, next_trial(client, token)).status_code == 201
    _close(session, study)
    late = start(client, external_id="p2")
    assert late.status_code == 409 and "closed" in late.json()["detail"]
    trial = next_trial(client, token)
    assert trial["position"] == 1
    assert answer(client, token, trial).status_code == 201
    assert answer(client, token, trial).status_code == 200  # a retry stays idempotent
    done = finish(client, token)
    assert done["completion_code"] == "DONE42"
    session.expire_all()
    assert session.scalar(select(Participant.completed_at)) is not None


def test_resume_after_the_study_closed(client: TestClient, session: Session, storage: BlobStore) -> None:
    """A participant who left before the study closed may come back (same external id) and finish; the old
    token stops working."""
    study = make_open_study(session, storage)
    token = start(client, external_id="p1").json()["token"]
    assert answer(client, token, next_trial(client, token)).status_code == 201
    _close(session, study)
    back = timedelta(seconds=RESUME_AFTER_IDLE_S + 60)  # idle long enough to be resumed from elsewhere
    session.expire_all()
    for row in [*session.scalars(select(Participant)), *session.scalars(select(Response))]:
        if isinstance(row, Participant):
            row.started_at -= back
        else:
            row.created_at -= back
    session.commit()
    again = start(client, external_id="p1")
    assert again.status_code == 200, again.text
    assert again.json()["resumed"] is True and again.json()["answered"] == 1
    assert client.get(f"/api/v1/sessions/{token}/next").status_code == 404
    assert finish(client, again.json()["token"])["done"] is True


def _table(client: TestClient, study_id: int, fmt: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/studies/{study_id}/export/responses.{fmt}")
    assert r.status_code == 200, r.text
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(r.text)))
    if fmt == "json":
        return r.json()
    return [json.loads(line) for line in r.text.splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_masked_and_catch_rows_in_every_export_format(
    client: TestClient, session: Session, storage: BlobStore, fmt: str
) -> None:
    study = make_open_study(session, storage, n_catch=2)
    sset = session.get(StimulusSet, study.config["stimulus_set_id"])
    assert sset is not None
    sset.masked = True
    session.commit()
    finish(client, start(client, external_id="p1").json()["token"], "clean")  # misses both catch trials
    client.headers["Authorization"] = f"Bearer {create_token(session, make_user(session))}"
    session.commit()

    rows = _table(client, study.id, fmt)
    text = (lambda v: str(v).lower()) if fmt == "csv" else (lambda v: v)
    catch = [r for r in rows if r["phase"] == "catch"]
    main = [r for r in rows if r["phase"] == "main"]
    assert len(catch) == 2 and len(main) == 4 and len(rows) == 2 + 4 + 2  # practice too
    for r in catch:  # the catch rows: what was shown, the right answer, the miss, the flag
        assert float(r["eps"]) == pytest.approx(CATCH_EPS)
        assert (r["expected"], r["judgment"]) == ("perturbed", "clean")
        assert text(r["correct"]) == text(False) and text(r["participant_flagged"]) == text(True)
    for r in rows:  # every row says the stimulus set spared the salient region
        assert text(r["masked"]) == text(True)
    assert {text(r["correct"]) for r in main} == {text(True), text(False)}  # clean trials right, others wrong
