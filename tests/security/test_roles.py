"""Roles: a researcher reaches only the studies they created through the research API (read, export, close,
withdraw participants, results); an administrator reaches all; a study without an owner is the admins'.
The probe of the issue: a non-admin token exported, closed and deleted participants of anyone's study."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.api.deps import get_enqueuer
from backend.auth import create_token
from backend.models import Annotation, Job, Participant, StimulusSet, Study, User
from backend.storage import BlobStore
from tests.backend.factories import SMALL_CONFIG, make_dataset, make_open_study, make_stimulus_set, make_user
from tests.backend.research_factories import finish_session, start_session


def _bearer(session: Session, email: str, *, admin: bool) -> dict[str, str]:
    token = create_token(session, make_user(session, email, admin=admin))
    session.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def people(session: Session) -> dict[str, dict[str, str]]:
    return {
        "alice": _bearer(session, "alice@example.org", admin=False),
        "bob": _bearer(session, "bob@example.org", admin=False),
        "admin": _bearer(session, "root@example.org", admin=True),
    }


def _alices_open_study(client: TestClient, session: Session, storage: BlobStore, alice: dict[str, str]) -> int:
    alice_id = session.scalar(select(User.id).where(User.email == "alice@example.org"))
    # alice's stimulus set over alice's dataset: the only kind her study may use (test_research_owners.py)
    sset = make_stimulus_set(session, storage, make_dataset(session, storage, owner_id=alice_id), owner_id=alice_id)
    session.commit()
    body = {"slug": "pilot", "title": "Pilot", "config": {"stimulus_set_id": sset.id, **SMALL_CONFIG}}
    r = client.post("/api/v1/studies", json=body, headers=alice)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert client.post(f"/api/v1/studies/{sid}/open", headers=alice).status_code == 200
    finish_session(client, start_session(client, "pilot", external_id="p-1").json()["token"])
    return sid


def test_another_researcher_cannot_touch_a_study(
    client: TestClient, session: Session, storage: BlobStore, people: dict[str, dict[str, str]]
) -> None:
    sid = _alices_open_study(client, session, storage, people["alice"])
    pid = session.scalar(select(Participant.id))
    aid = session.scalar(select(Annotation.id))
    bob = people["bob"]
    probes = [
        ("GET", f"/api/v1/studies/{sid}/annotations/{aid}/strokes"),
        ("GET", f"/api/v1/studies/{sid}"),
        ("GET", f"/api/v1/studies/{sid}/export/responses.csv"),
        ("GET", f"/api/v1/studies/{sid}/export/participants.json"),
        ("GET", f"/api/v1/studies/{sid}/participants"),
        ("GET", f"/api/v1/studies/{sid}/results"),
        ("PATCH", f"/api/v1/studies/{sid}"),
        ("POST", f"/api/v1/studies/{sid}/close"),
        ("DELETE", f"/api/v1/studies/{sid}/participants/{pid}"),
    ]
    for method, path in probes:
        r = client.request(method, path, headers=bob, json={"title": "mine now"} if method == "PATCH" else None)
        assert r.status_code == 403 and "another researcher" in r.json()["detail"], (method, path, r.text[:200])
    session.expire_all()
    assert session.get(Study, sid).status == "open" and session.get(Study, sid).title == "Pilot"
    assert session.scalar(select(func.count()).select_from(Participant)) == 1
    assert client.get("/api/v1/studies", headers=bob).json()["total"] == 0

    for who in ("alice", "admin"):  # the owner and an administrator may
        assert client.get(f"/api/v1/studies/{sid}/export/responses.csv", headers=people[who]).status_code == 200
        assert client.get(f"/api/v1/studies/{sid}/annotations/{aid}/strokes", headers=people[who]).status_code == 200
        assert client.get("/api/v1/studies", headers=people[who]).json()["total"] == 1
    assert client.delete(f"/api/v1/studies/{sid}/participants/{pid}", headers=people["alice"]).status_code == 200
    assert client.post(f"/api/v1/studies/{sid}/close", headers=people["admin"]).status_code == 200
    assert client.get("/api/v1/studies/999999", headers=bob).status_code == 404  # unknown stays 404


def test_a_study_without_an_owner_is_the_administrators(
    client: TestClient, session: Session, storage: BlobStore, people: dict[str, dict[str, str]]
) -> None:
    study = make_open_study(session, storage)  # as before owners were recorded
    assert study.owner_id is None
    assert client.get(f"/api/v1/studies/{study.id}", headers=people["alice"]).status_code == 403
    assert client.get(f"/api/v1/studies/{study.id}", headers=people["admin"]).status_code == 200


def test_a_training_job_cannot_use_another_researchers_annotations(
    client: TestClient, app: FastAPI, session: Session, storage: BlobStore, people: dict[str, dict[str, str]]
) -> None:
    app.dependency_overrides[get_enqueuer] = lambda: lambda job: f"message-{job.id}"  # no broker here
    sid = _alices_open_study(client, session, storage, people["alice"])
    dataset_id = session.scalar(select(StimulusSet.dataset_id))
    params = {"dataset_id": dataset_id, "salience": "annotations", "study_id": sid}
    r = client.post("/api/v1/jobs", json={"kind": "train", "params": params}, headers=people["bob"])
    assert r.status_code == 403, r.text
    assert session.scalar(select(func.count()).select_from(Job)) == 0  # nothing queued, no model row
    # The owner passes the owner rule and reaches the next check: this study painted no training image, so the
    # job is refused for its coverage (issue 14), which tells the owner, and only the owner, about the study.
    r = client.post("/api/v1/jobs", json={"kind": "train", "params": params}, headers=people["alice"])
    assert r.status_code == 422 and "no training image of dataset" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    ("kind", "extra", "refusal"),
    [
        ("train", {"salience": "predicted"}, "nothing to learn from"),
        ("rank_paintings", {}, "nothing to learn from"),
    ],
)
def test_predictor_jobs_cannot_use_another_researchers_paintings(
    client: TestClient,
    app: FastAPI,
    session: Session,
    storage: BlobStore,
    people: dict[str, dict[str, str]],
    kind: str,
    extra: dict[str, str],
    refusal: str,
) -> None:
    """The salience predictor's jobs (issue 20) read a study's paintings: the owner rule first, then the 422
    of a study that painted no training image."""
    app.dependency_overrides[get_enqueuer] = lambda: lambda job: f"message-{job.id}"
    sid = _alices_open_study(client, session, storage, people["alice"])
    params = {"study_id": sid, **extra}
    if kind == "train":
        params["dataset_id"] = session.scalar(select(StimulusSet.dataset_id))
    r = client.post("/api/v1/jobs", json={"kind": kind, "params": params}, headers=people["bob"])
    assert r.status_code == 403, r.text
    assert session.scalar(select(func.count()).select_from(Job)) == 0
    r = client.post("/api/v1/jobs", json={"kind": kind, "params": params}, headers=people["alice"])
    assert r.status_code == 422 and refusal in r.json()["detail"], r.text
