"""Prolific's conventions: a fixed completion code (required when participants go back to Prolific), separate
codes for declined consent and failed attention checks, the `?cc=` return link built from them, and the
recruitment ids as export columns of their own."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.orm import Session

from backend.auth import create_token
from backend.storage import BlobStore
from backend.study.config import StudyConfig
from tests.backend.factories import make_open_study, make_user
from tests.backend.protocol_steps import finish, start

RETURN = "https://app.prolific.com/submissions/complete?cc="
PROLIFIC = {
    "prolific": True,
    "completion_code": "C1A2B3",
    "declined_code": "NOCONSENT",
    "failed_attention_code": "FAILED1",
}


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"prolific": True}, "needs a fixed completion_code"),
        ({"redirect_url": "https://app.prolific.com/submissions/complete?cc=X"}, "needs a fixed completion_code"),
        ({"prolific": True, "completion_code": "A", "redirect_url": "https://example.org/"}, "leave redirect_url"),
        ({"completion_code": "A", "failed_attention_code": "A"}, "must differ"),
        ({"declined_code": "has space"}, "String should match pattern"),
    ],
)
def test_config_refuses_what_prolific_cannot_use(config: dict, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        StudyConfig.model_validate({"stimulus_set_id": 1, **config})


def test_return_links() -> None:
    config = StudyConfig.model_validate({"stimulus_set_id": 1, **PROLIFIC})
    assert config.return_url("C1A2B3") == RETURN + "C1A2B3"
    other = StudyConfig.model_validate(
        {"stimulus_set_id": 1, "redirect_url": "https://example.org/done?c={completion_code}"}
    )
    assert other.return_url("a b") == "https://example.org/done?c=a%20b"
    assert StudyConfig.model_validate({"stimulus_set_id": 1}).return_url("X") is None
    # A plain study still works without any code (a generated one is shown).
    assert (
        StudyConfig.model_validate({"stimulus_set_id": 1, "redirect_url": "https://example.org/"}).completion_code
        is None
    )


def test_completion_and_failed_attention_codes(client: TestClient, session: Session, storage: BlobStore) -> None:
    study_id = make_open_study(session, storage, n_catch=2, **PROLIFIC).id
    good = start(client, recruitment={"PROLIFIC_PID": "pid1", "STUDY_ID": "st1", "SESSION_ID": "se1"})
    done = finish(client, good.json()["token"], "perturbed")
    assert (done["completion_code"], done["redirect_url"]) == ("C1A2B3", RETURN + "C1A2B3")
    bad = start(client, recruitment={"PROLIFIC_PID": "pid2", "STUDY_ID": "st1", "SESSION_ID": "se2"})
    done = finish(client, bad.json()["token"], "clean")  # misses both catch trials (more than the default 1)
    assert (done["completion_code"], done["redirect_url"]) == ("FAILED1", RETURN + "FAILED1")

    client.headers["Authorization"] = f"Bearer {create_token(session, make_user(session))}"
    session.commit()
    text = client.get(f"/api/v1/studies/{study_id}/export/participants.csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["prolific_pid"], r["prolific_study_id"], r["prolific_session_id"]) for r in rows] == [
        ("pid1", "st1", "se1"),
        ("pid2", "st1", "se2"),
    ]
    assert [r["completion_code"] for r in rows] == ["C1A2B3", "FAILED1"] and rows[0]["mturk_worker_id"] == ""
    mturk = start(client, recruitment={"workerId": "W1", "assignmentId": "A1", "hitId": "H1"})
    assert mturk.status_code == 201
    lines = client.get(f"/api/v1/studies/{study_id}/export/participants.ndjson").text.splitlines()
    last = json.loads(lines[-1])
    assert (last["mturk_worker_id"], last["mturk_assignment_id"], last["mturk_hit_id"]) == ("W1", "A1", "H1")
    assert last["prolific_pid"] is None


def test_declined_code_on_the_page(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage, **PROLIFIC)
    page = client.get("/s/pilot").text
    assert '"declined_code": "NOCONSENT"' in page and f'"declined_url": "{RETURN}NOCONSENT"' in page
