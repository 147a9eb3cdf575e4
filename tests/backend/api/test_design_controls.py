"""Issue 18's study-design controls through the HTTP API: the automatic close at a target number of
participants, the per-trial focus/visibility/fullscreen counts, the display columns of the participants export,
and the timing settings (inter-trial interval, backward mask) on the participant page."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth import create_token
from backend.models import Response, Study
from backend.storage import BlobStore
from backend.study.config import StudyConfig
from tests.backend.factories import make_open_study, make_user
from tests.backend.protocol_steps import CLIENT, answer, finish, next_trial, start


def _status(session: Session) -> str:
    session.expire_all()
    return session.scalar(select(Study.status).where(Study.slug == "pilot")) or ""


def test_the_study_closes_when_the_target_of_good_completions_is_reached(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage, target_participants=2, exclusions={"max_catch_errors": 0})
    first = start(client, external_id="p1").json()["token"]
    flagged = start(client, external_id="p2").json()["token"]
    third = start(client, external_id="p3").json()["token"]
    late = start(client, external_id="p4").json()["token"]  # started before the close: may still finish
    finish(client, first)
    assert _status(session) == "open"
    finish(client, flagged, judgment="clean")  # misses the catch trial: flagged, takes no place
    assert _status(session) == "open"
    finish(client, third)
    assert _status(session) == "closed"

    refused = start(client, external_id="p5")
    assert refused.status_code == 409 and "closed" in refused.json()["detail"]
    assert client.get("/api/v1/studies/pilot").json()["status"] == "closed"
    assert finish(client, late)["done"] is True  # a session in progress is not cut off


def test_no_target_no_close(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    for pid in ("a", "b", "c"):
        finish(client, start(client, external_id=pid).json()["token"])
    assert _status(session) == "open"
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        StudyConfig.model_validate({"stimulus_set_id": 1, "target_participants": 0})


def _respond(client: TestClient, token: str, trial_id: int, **extra: object):
    body = {"judgment": "clean", "confidence": 2, "rt_ms": 700.0, "client_timestamps": {}, **extra}
    return client.post(f"/api/v1/sessions/{token}/trials/{trial_id}/response", json=body)


def test_focus_visibility_and_fullscreen_losses_are_stored_once_and_exported(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage)
    token = start(client, external_id="p1").json()["token"]
    trial = next_trial(client, token)["trial_id"]
    counts = {"focus_losses": 2, "visibility_losses": 1, "fullscreen_exits": 0}
    for bad in ({"focus_losses": -1}, {"visibility_losses": 1.5}, {"fullscreen_exits": 10_001}):
        assert _respond(client, token, trial, **bad).status_code == 422, bad
    first = _respond(client, token, trial, **counts)
    assert first.status_code == 201, first.text
    assert {k: first.json()[k] for k in counts} == counts
    assert _respond(client, token, trial, **counts).status_code == 200  # a retry
    changed = _respond(client, token, trial, **{**counts, "focus_losses": 3})
    assert changed.status_code == 409 and "focus_losses" in changed.json()["detail"]
    session.expire_all()
    stored = session.execute(select(Response.focus_losses, Response.visibility_losses, Response.fullscreen_exits))
    assert stored.one() == (2, 1, 0)
    second = next_trial(client, token)["trial_id"]
    assert _respond(client, token, second).status_code == 201  # the counts are optional (API clients)

    client.headers["Authorization"] = f"Bearer {create_token(session, make_user(session))}"
    session.commit()
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/v1/studies/{study.id}/export/responses.csv").text)))
    assert [(r["focus_losses"], r["visibility_losses"], r["fullscreen_exits"]) for r in rows] == [
        ("2", "1", "0"),
        ("", "", ""),
    ]
    line = client.get(f"/api/v1/studies/{study.id}/export/responses.ndjson").text.splitlines()[0]
    assert json.loads(line)["focus_losses"] == 2


def test_the_display_is_exported_in_columns_of_its_own(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage)
    display = {**CLIENT, "viewport_width": 1280, "viewport_height": 700, "px_per_mm": 3.78}
    url = "/api/v1/studies/pilot/sessions"
    assert client.post(url, json={"consent": True, "external_id": "p1", "client": display}).status_code == 201
    bad = client.post(url, json={"consent": True, "client": {**CLIENT, "px_per_mm": 0}})
    assert bad.status_code == 422
    client.headers["Authorization"] = f"Bearer {create_token(session, make_user(session))}"
    session.commit()
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/v1/studies/{study.id}/export/participants.csv").text)))
    assert len(rows) == 1
    row = rows[0]
    assert (row["device_pixel_ratio"], row["screen_width"], row["viewport_width"], row["px_per_mm"]) == (
        "2.0",
        "1920",
        "1280",
        "3.78",
    )
    assert json.loads(row["client_info"])["viewport_height"] == 700


def test_timing_settings_reach_the_page_and_a_mask_needs_a_timed_stimulus(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage, stimulus_duration_ms=200, mask_ms=100, iti_ms=750, require_fullscreen=True)
    page = client.get("/s/pilot").text
    for fragment in ('"iti_ms": 750', '"mask_ms": 100', '"require_fullscreen": true', '"card_calibration": false'):
        assert fragment in page
    with pytest.raises(ValidationError, match="mask_ms needs stimulus_duration_ms"):
        StudyConfig.model_validate({"stimulus_set_id": 1, "mask_ms": 100})
    with pytest.raises(ValidationError, match="iti_ms"):
        StudyConfig.model_validate({"stimulus_set_id": 1, "iti_ms": -1})


def _finish_losing_focus(client: TestClient, token: str, lost_trials: int, **losses: int) -> None:
    """Answer every trial; the first `lost_trials` scored detection trials (not practice) with `losses`."""
    while not (trial := next_trial(client, token))["done"]:
        if trial["question"] == "annotate":
            assert answer(client, token, trial).status_code == 201
            continue
        counts = losses if lost_trials > 0 and trial["phase"] != "practice" else {}
        lost_trials -= bool(counts)
        body = {"judgment": "perturbed", "confidence": 3, "rt_ms": 800.0, "client_timestamps": {}, **counts}
        r = client.post(f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/response", json=body)
        assert r.status_code == 201, r.text


def test_the_focus_loss_rule_excludes_and_is_counted(client: TestClient, session: Session, storage: BlobStore) -> None:
    """At most 1 trial with a focus or visibility loss: p2 (2 such trials, one only hidden) is excluded; p1
    (none) and p3 (one trial, blurred three times) are kept."""
    study = make_open_study(session, storage, exclusions={"max_focus_lost_trials": 1})
    for pid, lost, losses in (("p1", 0, {}), ("p2", 2, {"visibility_losses": 1}), ("p3", 1, {"focus_losses": 3})):
        _finish_losing_focus(client, start(client, external_id=pid).json()["token"], lost, **losses)
    client.headers["Authorization"] = f"Bearer {create_token(session, make_user(session))}"
    session.commit()
    res = client.get(f"/api/v1/studies/{study.id}/results", params={"n_boot": 0, "participant_level": False})
    assert res.status_code == 200, res.text
    body = res.json()
    rule = next(r for r in body["rules"] if r["rule"] == "max_focus_lost_trials")
    assert (rule["setting"], rule["participants"]) == (1, 1)
    assert [(e["external_id"], e["reasons"]) for e in body["excluded"]] == [("p2", ["focus_losses"])]
    assert body["n_participants_included"] == 2
