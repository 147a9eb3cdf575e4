"""The participant protocol end to end through the HTTP API, on a fresh database per test."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.auth import token_hash
from backend.models import Annotation, Participant, Response, Stimulus, Trial
from backend.services.resume import RESUME_AFTER_IDLE_S
from backend.storage import BlobStore
from backend.study.schedule import CATCH_EPS
from tests.backend.factories import (
    BOTH_DATABASES,
    SIZE,
    make_dataset,
    make_open_study,
    make_stimulus_set,
    make_study,
    mask_png,
)

CLIENT = {"screen_width": 1920, "screen_height": 1080, "device_pixel_ratio": 2.0, "refresh_rate_hz": 60}
TOTAL = 2 + 4 + 1 + 1  # practice + main + catch + annotate of factories.SMALL_CONFIG


def start(client: TestClient, slug: str = "pilot", **body: Any):
    return client.post(f"/api/v1/studies/{slug}/sessions", json={"consent": True, "client": CLIENT, **body})


def next_trial(client: TestClient, token: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/sessions/{token}/next")
    assert r.status_code == 200, r.text
    return r.json()


def answer(client: TestClient, token: str, trial: dict[str, Any], judgment: str = "perturbed"):
    base = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}"
    if trial["question"] == "annotate":
        mask = base64.b64encode(mask_png(trial["mask_width"], trial["mask_height"])).decode()
        return client.post(
            f"{base}/annotation", json={"mask_png": mask, "strokes": [[[0, 0], [3, 5]]], "duration_ms": 1500}
        )
    body = {
        "judgment": judgment,
        "confidence": 3,
        "rt_ms": 812.5,
        "client_timestamps": {"onset": 10.0, "answer": 822.5},
    }
    return client.post(f"{base}/response", json=body)


def finish(client: TestClient, token: str) -> dict[str, Any]:
    for _ in range(TOTAL + 1):
        trial = next_trial(client, token)
        if trial["done"]:
            return trial
        assert answer(client, token, trial).status_code == 201
    raise AssertionError("the session never finished")


@BOTH_DATABASES
def test_whole_session(client: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(
        session,
        storage,
        redirect_url="https://app.prolific.com/submissions/complete?cc={completion_code}",
        completion_code="C0DE42",  # required when the redirect goes to Prolific
    )
    info = client.get("/api/v1/studies/pilot").json()
    assert info["status"] == "open" and info["consent_text"] and info["instructions"]

    r = start(client, recruitment={"PROLIFIC_PID": "5f0c1a2b3c4d5e6f7a8b9c0d", "STUDY_ID": "s1", "SESSION_ID": "x1"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert len(token) >= 32 and r.json()["total_trials"] == TOTAL and r.json()["answered"] == 0

    seen_phases, seen_roles = [], []
    for expected_position in range(TOTAL):
        trial = next_trial(client, token)
        assert trial["done"] is False and trial["position"] == expected_position and trial["total"] == TOTAL
        seen_phases.append(trial["phase"])
        stimulus = session.scalar(select(Stimulus).join(Trial).where(Trial.id == trial["trial_id"]))
        if trial["phase"] == "practice":
            assert trial["feedback_expected"] == ("perturbed" if stimulus.eps > 0 else "clean")
        else:
            assert trial["feedback_expected"] is None
        seen_roles.append(stimulus.role)
        if stimulus.role == "catch":  # not labelled for the client: it looks like any main trial
            assert trial["phase"] == "main" and stimulus.eps == pytest.approx(CATCH_EPS)
        if trial["phase"] == "annotate":
            assert trial["question"] == "annotate" and stimulus.eps == 0.0
            assert trial["class_name"] == stimulus.image.label
            assert (trial["mask_width"], trial["mask_height"]) == SIZE
        else:
            assert trial["question"] == "perturbed_or_clean" and trial["class_name"] is None
        image = client.get(trial["image_url"])
        assert image.status_code == 200 and image.content == storage.get(stimulus.sha256)
        assert answer(client, token, trial).status_code == 201
    assert seen_phases[:2] == ["practice"] * 2 and seen_phases[-1] == "annotate"
    assert set(seen_phases[2:-1]) == {"main"}
    assert seen_roles[2] != "catch" and seen_roles.count("catch") == 1

    done = next_trial(client, token)
    assert done["done"] is True and done["total"] == TOTAL
    code = done["completion_code"]
    assert code == "C0DE42" and done["redirect_url"] == f"https://app.prolific.com/submissions/complete?cc={code}"
    assert next_trial(client, token) == done  # stable

    session.expire_all()
    participant = session.scalar(select(Participant).where(Participant.token_hash == token_hash(token)))
    assert participant.study_id == study.id and participant.index == 0 and participant.consent
    assert participant.external_id == "5f0c1a2b3c4d5e6f7a8b9c0d"
    assert participant.recruitment == {"PROLIFIC_PID": "5f0c1a2b3c4d5e6f7a8b9c0d", "STUDY_ID": "s1", "SESSION_ID": "x1"}
    assert participant.client_info["device_pixel_ratio"] == 2.0 and participant.client_info["user_agent"]
    assert participant.completed_at is not None and participant.completed_at.tzinfo is not None
    assert participant.flagged is False  # answered "perturbed" to the catch trial
    assert session.scalar(select(func.count()).select_from(Response)) == TOTAL - 1
    annotation = session.scalar(select(Annotation))
    assert (annotation.width, annotation.height) == SIZE and annotation.strokes == [[[0, 0], [3, 5]]]
    assert storage.exists(annotation.mask_sha256)


def test_completion_code_only_after_every_answer(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage, completion_code="C0DE42")
    token = start(client).json()["token"]
    for _ in range(TOTAL - 1):
        trial = next_trial(client, token)
        assert "completion_code" not in trial
        answer(client, token, trial)
    last = next_trial(client, token)
    assert last["done"] is False and last["position"] == TOTAL - 1
    assert answer(client, token, last).status_code == 201
    assert next_trial(client, token) == {
        "done": True,
        "total": TOTAL,
        "completion_code": "C0DE42",
        "redirect_url": None,
        "questionnaire_pending": False,
    }


def test_generated_completion_code_and_catch_flag(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage, n_catch=2)
    token = start(client).json()["token"]
    while not (trial := next_trial(client, token))["done"]:
        answer(client, token, trial, judgment="clean")  # misses both catch trials
    assert len(trial["completion_code"]) == 8
    session.expire_all()
    assert session.scalar(select(Participant.flagged)) is True


def _leave_idle(session: Session) -> None:
    """Move every start and answer back past the resume rule's idle time (`backend.services.resume`)."""
    back = timedelta(seconds=RESUME_AFTER_IDLE_S + 60)
    session.expire_all()
    for row in [*session.scalars(select(Participant)), *session.scalars(select(Response))]:
        if isinstance(row, Participant):
            row.started_at -= back
        else:
            row.created_at -= back
    session.commit()


@BOTH_DATABASES
def test_resume_by_external_id(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    first = start(client, external_id="worker-1")
    assert first.status_code == 201
    token = first.json()["token"]
    trial = next_trial(client, token)
    answer(client, token, trial)
    _leave_idle(session)  # a session in progress is not resumed from elsewhere (tests/security/test_resume.py)

    again = start(client, recruitment={"workerId": "worker-1", "assignmentId": "a2"})
    assert again.status_code == 200, again.text
    assert again.json()["resumed"] is True and again.json()["answered"] == 1
    resumed = again.json()["token"]
    assert resumed != token  # a new token (only hashes are stored): the old one is revoked
    assert next_trial(client, resumed)["position"] == 1
    assert client.get(f"/api/v1/sessions/{token}/next").status_code == 404

    other = start(client, external_id="worker-2")
    assert other.status_code == 201 and other.json()["token"] != token
    session.expire_all()
    assert session.scalars(select(Participant.index).order_by(Participant.index)).all() == [0, 1]
    # Anonymous participants (no external id) always get a new session.
    assert start(client).json()["token"] != start(client).json()["token"]


@BOTH_DATABASES
def test_resubmission_idempotent_or_conflict(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    token = start(client).json()["token"]
    trial = next_trial(client, token)
    first = answer(client, token, trial)
    assert first.status_code == 201
    repeat = answer(client, token, trial)
    assert repeat.status_code == 200 and repeat.json() == first.json()
    conflict = answer(client, token, trial, judgment="clean")
    assert conflict.status_code == 409 and "already answered" in conflict.json()["detail"]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Response)) == 1
    assert session.scalar(select(Response.judgment)) == "perturbed"


def test_annotation_resubmission(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage, n_practice=0, n_catch=0, n_main=1)
    token = start(client).json()["token"]
    answer(client, token, next_trial(client, token))
    trial = next_trial(client, token)
    assert trial["question"] == "annotate"
    assert answer(client, token, trial).status_code == 201
    again = answer(client, token, trial)
    assert again.status_code == 200
    url = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/annotation"
    other_mask = base64.b64encode(mask_png(*SIZE, fill=128)).decode()
    r = client.post(url, json={"mask_png": other_mask, "strokes": [[[0, 0], [3, 5]]], "duration_ms": 1500})
    assert r.status_code == 409 and "mask_sha256" in r.json()["detail"]
    assert session.scalar(select(func.count()).select_from(Annotation)) == 1


@BOTH_DATABASES
def test_other_sessions_trial_is_404(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    alice = start(client).json()["token"]
    bob = start(client).json()["token"]
    alice_trial = next_trial(client, alice)
    r = answer(client, bob, alice_trial)
    assert r.status_code == 404
    assert answer(client, alice, {**alice_trial, "trial_id": 999_999}).status_code == 404
    assert client.get("/api/v1/sessions/not-a-token/next").status_code == 404
    assert answer(client, "not-a-token", alice_trial).status_code == 404
    assert session.scalar(select(func.count()).select_from(Response)) == 0


def test_trials_answered_in_order_and_by_kind(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    token = start(client).json()["token"]
    first = next_trial(client, token)
    later = session.scalar(select(Trial).where(Trial.position == 3))
    r = answer(client, token, {"trial_id": later.id, "question": "perturbed_or_clean"})
    assert r.status_code == 409 and "in order" in r.json()["detail"]

    annotate = session.scalar(select(Trial).where(Trial.phase == "annotate"))
    r = answer(client, token, {"trial_id": annotate.id, "question": "perturbed_or_clean"})
    assert r.status_code == 409 and "annotation" in r.json()["detail"]
    mask = base64.b64encode(mask_png()).decode()
    r = client.post(
        f"/api/v1/sessions/{token}/trials/{first['trial_id']}/annotation",
        json={"mask_png": mask, "duration_ms": 10},
    )
    assert r.status_code == 409 and "detection trial" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"judgment": "maybe", "confidence": 3, "rt_ms": 100}, "judgment"),
        ({"judgment": "clean", "confidence": 5, "rt_ms": 100}, "confidence"),
        ({"judgment": "clean", "confidence": 2, "rt_ms": 0}, "rt_ms"),
        ({"judgment": "clean", "confidence": 2, "rt_ms": -3}, "rt_ms"),
    ],
    ids=["judgment", "confidence", "zero-rt", "negative-rt"],
)
def test_invalid_responses_are_422(client: TestClient, session: Session, storage: BlobStore, body, fragment) -> None:
    make_open_study(session, storage)
    token = start(client).json()["token"]
    trial = next_trial(client, token)
    r = client.post(f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/response", json=body)
    assert r.status_code == 422 and fragment in r.text


def test_non_finite_rt_is_422(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    token = start(client).json()["token"]
    trial = next_trial(client, token)
    raw = '{"judgment": "clean", "confidence": 2, "rt_ms": Infinity}'
    r = client.post(
        f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/response",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422


def _annotate_trial(client: TestClient, session: Session, storage: BlobStore) -> tuple[str, dict[str, Any]]:
    make_open_study(session, storage, n_practice=0, n_catch=0, n_main=1)
    token = start(client).json()["token"]
    answer(client, token, next_trial(client, token))
    return token, next_trial(client, token)


@pytest.mark.parametrize(
    ("mask", "fragment"),
    [
        (mask_png(SIZE[0] + 1, SIZE[1]), "is 9x6 pixels but the image is 8x6"),
        (mask_png(mode="RGB"), "mode RGB"),
        (b"not a png at all", "not a readable image"),
    ],
    ids=["wrong-size", "rgb-mode", "not-an-image"],
)
def test_bad_masks_are_422(
    client: TestClient, session: Session, storage: BlobStore, mask: bytes, fragment: str
) -> None:
    token, trial = _annotate_trial(client, session, storage)
    url = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/annotation"
    r = client.post(url, json={"mask_png": base64.b64encode(mask).decode(), "duration_ms": 900})
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text
    assert session.scalar(select(func.count()).select_from(Annotation)) == 0


def test_jpeg_mask_and_huge_strokes_are_422(client: TestClient, session: Session, storage: BlobStore) -> None:
    import io

    from PIL import Image

    token, trial = _annotate_trial(client, session, storage)
    url = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/annotation"
    buf = io.BytesIO()
    Image.new("L", SIZE).save(buf, format="JPEG")
    r = client.post(url, json={"mask_png": base64.b64encode(buf.getvalue()).decode(), "duration_ms": 900})
    assert r.status_code == 422 and "JPEG" in r.json()["detail"]
    ok_mask = base64.b64encode(mask_png()).decode()
    r = client.post(url, json={"mask_png": ok_mask, "strokes": [[i, i] for i in range(40_000)], "duration_ms": 9})
    assert r.status_code == 422 and "strokes" in r.json()["detail"]
    r = client.post(url, json={"mask_png": "%%%", "duration_ms": 9})
    assert r.status_code == 422 and "base64" in r.json()["detail"]


def test_oversized_annotation_is_413(client: TestClient, session: Session, storage: BlobStore) -> None:
    token, trial = _annotate_trial(client, session, storage)
    url = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/annotation"
    huge = "A" * (8 * 1024 * 1024)
    r = client.post(url, json={"mask_png": huge, "duration_ms": 900})
    assert r.status_code == 413 and "smaller" in r.json()["detail"]


def test_annotation_as_multipart_rgba_data_url(client: TestClient, session: Session, storage: BlobStore) -> None:
    token, trial = _annotate_trial(client, session, storage)
    url = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/annotation"
    r = client.post(
        url,
        files={"mask": ("mask.png", mask_png(mode="RGBA"), "image/png")},
        data={"strokes": '[{"x": [1, 2], "y": [3, 4], "r": 5}]', "duration_ms": "2500"},
    )
    assert r.status_code == 201, r.text
    stored = session.scalar(select(Annotation))
    # RGBA: the alpha channel is the paint -> the same stored mask as the grayscale version.
    assert stored.mask_sha256 == _normalised_sha(mask_png())
    assert stored.strokes == [{"x": [1, 2], "y": [3, 4], "r": 5}] and stored.duration_ms == 2500
    data_url = "data:image/png;base64," + base64.b64encode(mask_png()).decode()
    r = client.post(url, json={"mask_png": data_url, "strokes": stored.strokes, "duration_ms": 2500})
    assert r.status_code == 200  # the same annotation, sent the other way


def _normalised_sha(png: bytes) -> str:
    from backend.services.masks import normalize_mask
    from backend.storage import sha256_hex

    return sha256_hex(normalize_mask(png, width=SIZE[0], height=SIZE[1]))


def test_consent_required_and_nothing_stored(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    r = client.post("/api/v1/studies/pilot/sessions", json={"consent": False, "external_id": "p1"})
    assert r.status_code == 422 and "consent" in r.text
    r = client.post("/api/v1/studies/pilot/sessions", json={"external_id": "p1"})
    assert r.status_code == 422
    assert session.scalar(select(func.count()).select_from(Participant)) == 0


def test_recruitment_placeholders_and_mismatch_rejected(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage)
    assert start(client, recruitment={"PROLIFIC_PID": "{{%PROLIFIC_PID%}}"}).status_code == 422
    assert start(client, recruitment={"unknown": "x"}).status_code == 422
    assert start(client, external_id="a", recruitment={"workerId": "b"}).status_code == 422
    assert session.scalar(select(func.count()).select_from(Participant)) == 0


def test_unknown_closed_and_draft_studies(client: TestClient, session: Session, storage: BlobStore) -> None:
    dataset = make_dataset(session, storage)
    sset = make_stimulus_set(session, storage, dataset)
    make_study(session, sset, slug="closed", status="closed")
    make_study(session, sset, slug="draft", status="draft")
    session.commit()
    assert start(client, "nope").status_code == 404
    r = start(client, "closed")
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    assert start(client, "draft").status_code == 409
    assert client.get("/api/v1/studies/nope").status_code == 404


def test_study_being_prepared_is_503(client: TestClient, session: Session, storage: BlobStore) -> None:
    dataset = make_dataset(session, storage)
    empty = make_stimulus_set(session, storage, dataset, status="generating", with_stimuli=False)
    make_study(session, empty, slug="soon")
    session.commit()
    r = start(client, "soon")
    assert r.status_code == 503 and "being prepared" in r.json()["detail"]
    assert 0 < int(r.headers["retry-after"]) <= 10  # the page tries again within seconds, not 30 s
    assert session.scalar(select(func.count()).select_from(Participant)) == 0


def test_misconfigured_study_is_503_without_rows(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage, n_main=50)  # more main trials than the 6 images
    r = start(client)
    assert r.status_code == 503 and "n_main" in r.json()["detail"]
    assert "retry-after" not in r.headers
    assert session.scalar(select(func.count()).select_from(Participant)) == 0


def test_schedules_follow_participant_index(client: TestClient, session: Session, storage: BlobStore) -> None:
    """Each session's trials are build_schedule(config, participant_index=i) turned into stimulus rows."""
    from backend.study.config import StudyConfig
    from backend.study.schedule import build_schedule

    study = make_open_study(session, storage)
    tokens = [start(client).json()["token"] for _ in range(3)]
    session.expire_all()
    config = StudyConfig.model_validate(study.config)
    image_ids = sorted(session.scalars(select(Stimulus.image_id).distinct()).all())
    for index, token in enumerate(tokens):
        participant = session.scalar(select(Participant).where(Participant.token_hash == token_hash(token)))
        assert participant.index == index
        expected = build_schedule(
            config, participant_index=index, image_ids=image_ids, eps_levels=[0.0, 2 / 255, 8 / 255]
        )
        got = [(t.position, t.phase, t.stimulus.image_id, t.stimulus.eps) for t in participant.trials]
        assert got == [(s.position, s.phase, s.image_id, pytest.approx(s.eps)) for s in expected]
