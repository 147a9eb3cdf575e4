"""The questionnaire after the trials: configured items, answers checked and stored once, exported."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth import create_token
from backend.models import Participant
from backend.storage import BlobStore
from backend.study.config import StudyConfig
from backend.study.questionnaire import DEFAULT_OPTIONS
from tests.backend.factories import make_open_study, make_user
from tests.backend.protocol_steps import answer, finish, next_trial, start

ITEMS = [
    {"id": "age", "kind": "age_range", "required": True},
    {"id": "vision", "kind": "vision_corrected"},
    {"id": "device", "kind": "device", "options": ["Computer", "Phone"]},
    {"id": "comments", "kind": "free_text", "max_length": 20},
]


def _post(client: TestClient, token: str, answers: dict[str, Any]):
    return client.post(f"/api/v1/sessions/{token}/questionnaire", json={"answers": answers})


def test_items_get_the_kinds_defaults_and_are_checked() -> None:
    config = StudyConfig.model_validate({"stimulus_set_id": 1, "questionnaire": ITEMS})
    age, vision, device, comments = config.questionnaire
    assert age.options == DEFAULT_OPTIONS["age_range"] and age.prompt == "How old are you?"
    assert vision.options == DEFAULT_OPTIONS["vision_corrected"] and vision.required is False
    assert device.options == ["Computer", "Phone"] and comments.options is None
    for bad, fragment in [
        ([ITEMS[0], ITEMS[0]], "distinct"),
        ([{"id": "Age", "kind": "age_range"}], "pattern"),
        ([{"id": "x", "kind": "free_text", "options": ["a", "b"]}], "no options"),
        ([{"id": "x", "kind": "device", "options": ["a", "a"]}], "distinct"),
        ([{"id": "x", "kind": "shoe_size"}], "age_range"),
    ]:
        with pytest.raises(ValidationError, match=fragment):
            StudyConfig.model_validate({"stimulus_set_id": 1, "questionnaire": bad})


def test_questionnaire_after_the_trials_stored_once_and_exported(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage, questionnaire=ITEMS)
    page = client.get("/s/pilot").text
    assert '"questionnaire": [{"id": "age"' in page
    token = start(client, external_id="p1").json()["token"]
    trial = next_trial(client, token)
    early = _post(client, token, {"age": "25-34"})
    assert early.status_code == 409 and "after the trials" in early.json()["detail"]
    assert answer(client, token, trial).status_code == 201
    done = finish(client, token)
    assert done["questionnaire_pending"] is True

    for bad, status, fragment in [
        ({}, 422, "'age'"),  # required
        ({"age": "12"}, 422, "not one of its options"),
        ({"age": "25-34", "shoe": "44"}, 422, "no item 'shoe'"),
        ({"age": "25-34", "comments": "x" * 21}, 422, "at most 20"),
        ({"age": "25-34", "device": "Tablet"}, 422, "not one of its options"),  # the study's own options
    ]:
        r = _post(client, token, bad)
        assert r.status_code == status and fragment in r.json()["detail"], (bad, r.text)
    assert _post(client, "no-such-token", {"age": "25-34"}).status_code == 404

    answers = {"age": "25-34", "vision": DEFAULT_OPTIONS["vision_corrected"][1], "comments": "  fine  "}
    first = _post(client, token, answers)
    assert first.status_code == 201, first.text
    stored = {"age": "25-34", "vision": answers["vision"], "device": None, "comments": "fine"}
    assert first.json() == {"answers": stored}
    again = _post(client, token, answers)
    assert again.status_code == 200 and again.json() == first.json()
    changed = _post(client, token, {**answers, "age": "35-44"})
    assert changed.status_code == 409 and "different" in changed.json()["detail"]
    assert next_trial(client, token)["questionnaire_pending"] is False
    session.expire_all()
    assert session.scalar(select(Participant.questionnaire)) == stored

    client.headers["Authorization"] = f"Bearer {create_token(session, make_user(session))}"
    session.commit()
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/v1/studies/{study.id}/export/participants.csv").text)))
    assert json.loads(rows[0]["questionnaire"]) == stored
    line = client.get(f"/api/v1/studies/{study.id}/export/participants.ndjson").text.splitlines()[0]
    assert json.loads(line)["questionnaire"] == stored


def test_no_questionnaire_no_route(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    token = start(client).json()["token"]
    assert finish(client, token)["questionnaire_pending"] is False
    r = _post(client, token, {"age": "25-34"})
    assert r.status_code == 409 and "no questionnaire" in r.json()["detail"]
