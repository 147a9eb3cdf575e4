"""MTurk's ExternalQuestion: `turkSubmitTo` only ever one of MTurk's two hosts, the page's CSP opened to that host
only for an MTurk study (form-action for the external-submit form, frame-ancestors for MTurk's iframe), the
preview (`ASSIGNMENT_ID_NOT_AVAILABLE`) describes the study without enrolling, and the config's own rules."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Participant
from backend.security import PAGE_POLICY, page_policy
from backend.storage import BlobStore
from backend.study import mturk
from backend.study.config import StudyConfig
from tests.backend.factories import make_open_study
from tests.backend.protocol_steps import finish, start

SANDBOX = "https://workersandbox.mturk.com"
LIVE = "https://www.mturk.com"
HIT = "assignmentId=A1&hitId=H1&workerId=W1"


def page_config(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="study-config">(.*?)</script>', html, re.S)
    assert found, "the study page has no config block"
    return json.loads(found.group(1))


def directive(policy: str, name: str) -> str:
    return next(d.strip() for d in policy.split(";") if d.strip().startswith(name + " "))


@pytest.mark.parametrize("origin", [LIVE, SANDBOX, SANDBOX + "/", "HTTPS://WorkerSandbox.MTurk.com"])
def test_the_two_mturk_hosts_are_accepted(origin: str) -> None:
    assert mturk.submit_url(origin) in {LIVE + "/mturk/externalSubmit", SANDBOX + "/mturk/externalSubmit"}


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example",
        "http://www.mturk.com",  # not https
        "https://www.mturk.com.evil.example",
        "https://evil.example/?https://www.mturk.com",
        "https://www.mturk.com@evil.example",
        "https://user@www.mturk.com",
        "https://www.mturk.com:8443",
        "https://www.mturk.com/mturk/externalSubmit",  # MTurk sends the bare origin; a path is not ours to add
        "https://mturk.com",
        "//www.mturk.com",
        "javascript:alert(1)",
        "",
    ],
)
def test_any_other_turk_submit_to_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="turkSubmitTo must be one of MTurk's hosts"):
        mturk.submit_url(value)


def test_config_rules() -> None:
    assert StudyConfig.model_validate({"stimulus_set_id": 1, "mturk": True}).mturk
    for extra in ({"prolific": True, "completion_code": "C"}, {"redirect_url": "https://example.org/"}):
        with pytest.raises(ValidationError, match="with mturk set, leave prolific false and redirect_url null"):
            StudyConfig.model_validate({"stimulus_set_id": 1, "mturk": True, **extra})


def test_the_page_of_an_mturk_study_may_post_to_and_be_framed_by_that_host_only(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage, mturk=True, completion_code="DONE7")
    r = client.get(f"/s/pilot?{HIT}&turkSubmitTo={SANDBOX}")
    assert r.status_code == 200
    policy = r.headers["content-security-policy"]
    assert policy == page_policy(form_action=(SANDBOX,), frame_ancestors=(SANDBOX,))
    assert directive(policy, "form-action") == f"form-action 'self' {SANDBOX}"
    assert directive(policy, "frame-ancestors") == f"frame-ancestors {SANDBOX}"
    assert LIVE not in policy
    assert "x-frame-options" not in r.headers  # DENY would contradict frame-ancestors
    assert page_config(r.text)["mturk_submit_url"] == SANDBOX + "/mturk/externalSubmit"
    # Everything but form-action and frame-ancestors is the one page policy.
    strip = {"form-action", "frame-ancestors"}
    rest = [d.strip() for d in policy.split(";") if d.strip().split(" ")[0] not in strip]
    assert rest == [d.strip() for d in PAGE_POLICY.split(";") if d.strip().split(" ")[0] not in strip]

    live = client.get(f"/s/pilot?{HIT}&turkSubmitTo={LIVE}")
    assert directive(live.headers["content-security-policy"], "form-action") == f"form-action 'self' {LIVE}"
    assert page_config(live.text)["mturk_submit_url"] == LIVE + "/mturk/externalSubmit"
    # Opened outside MTurk (no turkSubmitTo): nothing to post to, the plain policy.
    plain = client.get("/s/pilot")
    assert plain.headers["content-security-policy"] == PAGE_POLICY and plain.headers["x-frame-options"] == "DENY"
    assert page_config(plain.text)["mturk_submit_url"] is None


@pytest.mark.parametrize("target", ["https://evil.example", "http://www.mturk.com", "https://www.mturk.com.evil.io"])
def test_a_foreign_turk_submit_to_gets_a_400_page(
    client: TestClient, session: Session, storage: BlobStore, target: str
) -> None:
    make_open_study(session, storage, mturk=True)
    r = client.get("/s/pilot", params={"assignmentId": "A1", "hitId": "H1", "workerId": "W1", "turkSubmitTo": target})
    assert r.status_code == 400 and "turkSubmitTo must be one of MTurk" in r.text
    assert r.headers["content-security-policy"] == PAGE_POLICY  # nothing opened for it
    assert "study-config" not in r.text and "evil" not in r.headers["content-security-policy"]


def test_a_study_not_on_mturk_ignores_turk_submit_to(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    r = client.get(f"/s/pilot?{HIT}&turkSubmitTo={SANDBOX}")
    assert r.status_code == 200 and r.headers["content-security-policy"] == PAGE_POLICY
    assert page_config(r.text)["mturk_submit_url"] is None


def test_the_preview_describes_the_study_without_enrolling(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage, mturk=True, consent_text="We study how people see noise.\n\nIt takes a while.")
    r = client.get(f"/s/pilot?assignmentId={mturk.PREVIEW_ASSIGNMENT_ID}&hitId=H1&turkSubmitTo={SANDBOX}")
    assert r.status_code == 200 and 'id="mturk-preview"' in r.text
    assert "Study pilot" in r.text and "We study how people see noise." in r.text and "It takes a while." in r.text
    assert "Accept the HIT to start" in r.text
    assert "main.js" not in r.text and "study-config" not in r.text  # nothing runs, so nothing starts
    policy = r.headers["content-security-policy"]
    assert directive(policy, "frame-ancestors") == f"frame-ancestors {LIVE} {SANDBOX}"
    assert directive(policy, "form-action") == "form-action 'self'"
    # Nor can a script enrol with the preview's assignment id.
    refused = start(client, recruitment={"workerId": "W1", "assignmentId": mturk.PREVIEW_ASSIGNMENT_ID})
    assert refused.status_code == 422 and "accept the HIT to start" in refused.text
    assert session.scalar(select(Participant.id)) is None


def test_an_mturk_session_ends_with_the_code_and_no_redirect(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage, mturk=True, completion_code="DONE7")
    r = start(client, recruitment={"workerId": "W1", "assignmentId": "A1", "hitId": "H1"})
    assert r.status_code == 201, r.text
    done = finish(client, r.json()["token"])
    assert (done["completion_code"], done["redirect_url"]) == ("DONE7", None)  # the page posts the form instead
    assert session.scalar(select(Participant.recruitment))["assignmentId"] == "A1"
