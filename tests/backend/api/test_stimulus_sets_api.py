"""Stimulus sets through the research API: creation with its generation job, validation, counts, stimuli."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Job, StimulusSet, TrainedModel
from backend.storage import BlobStore
from backend.study.schedule import CATCH_EPS
from tests.backend.factories import EPS_LEVELS, make_dataset, make_stimulus_set
from tests.backend.research_factories import FakeEnqueuer


def _model(session: Session, dataset_id: int, *, job: Job | None = None) -> TrainedModel:
    model = TrainedModel(name="m", arch="small_cnn", method="standard", dataset_id=dataset_id, config={})
    if job is not None:
        model.job_id = job.id
    else:
        model.checkpoint_sha256 = "0" * 64
    session.add(model)
    session.flush()
    return model


def test_create_with_a_model(api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer) -> None:
    dataset = make_dataset(session, storage)
    model = _model(session, dataset.id)
    session.commit()
    body = {
        "name": "masked pgd",
        "dataset_id": dataset.id,
        "model_id": model.id,
        "attack": "pgd",
        "norm": "linf",
        "eps_levels": [0.0313725, 0.0078431, 0.0313725],
        "masked": True,
        "steps": 7,
        "salience_source": "imported",
        "split": "test",
        "n_images": 4,
        "seed": 3,
    }
    r = api.post("/api/v1/stimulus-sets", json=body)
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["status"] == "pending" and created["eps_levels"] == [0.0, 0.0078431, 0.0313725]
    assert created["masked"] is True and created["steps"] == 7 and created["model_id"] == model.id
    assert created["params"]["n_images"] == 4 and created["params"]["salience_source"] == "imported"
    job = created["job"]
    assert job["kind"] == "generate_stimuli" and job["params"] == {"stimulus_set_id": created["id"]}
    assert created["job_id"] == job["id"]
    assert enqueued.sent == [job["id"]] and enqueued.committed == [True]

    detail = api.get(f"/api/v1/stimulus-sets/{created['id']}").json()
    assert detail["status"] == "pending" and detail["job"]["status"] == "queued" and detail["n_stimuli"] == 0


def test_create_with_a_model_in_training(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    dataset = make_dataset(session, storage)
    train = Job(kind="train", params={}, status="running")
    session.add(train)
    session.flush()
    model = _model(session, dataset.id, job=train)
    session.commit()
    r = api.post(
        "/api/v1/stimulus-sets", json={"dataset_id": dataset.id, "train_job_id": train.id, "eps_levels": [0.1]}
    )
    assert r.status_code == 202, r.text
    assert r.json()["model_id"] == model.id and r.json()["eps_levels"] == [0.0, 0.1]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"model_id": None}, "exactly one of model_id"),
        ({"train_job_id": 1}, "exactly one of model_id"),
        ({"eps_levels": [-0.1]}, "eps_levels"),
        ({"eps_levels": []}, "eps_levels"),
        ({"eps_levels": [2.0]}, "[0, 1] pixel units"),
        ({"attack": "fgsm", "norm": "l2"}, "L-inf attack"),
        ({"attack": "cw"}, "attack"),
        ({"attack": "square", "norm": "l2"}, "L-inf attack"),
        ({"attack": "apgd-t"}, "attack"),  # an evaluation attack that makes no stimuli (returns x where it fails)
        ({"attack": "autoattack"}, "attack"),
        ({"split": "val"}, "no images of split 'val'"),
        ({"n_images": 7}, "only 6 images"),
        ({"dataset_id": 999}, "dataset_id: no dataset with id 999"),
        ({"model_id": 999}, "model_id: no model with id 999"),
        ({"steps": 0}, "steps"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_requests_are_422(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer, change: dict, fragment: str
) -> None:
    dataset = make_dataset(session, storage)
    model = _model(session, dataset.id)
    session.commit()
    body = {"dataset_id": dataset.id, "model_id": model.id, "eps_levels": [0.03], **change}
    r = api.post("/api/v1/stimulus-sets", json=body)
    assert r.status_code == 422 and fragment in r.text, r.text
    assert session.scalar(select(func.count()).select_from(StimulusSet)) == 0 and enqueued.sent == []


def test_train_job_that_failed_is_refused(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    dataset = make_dataset(session, storage)
    train = Job(kind="train", params={}, status="failed")
    evaluate = Job(kind="evaluate", params={}, status="queued")
    session.add_all([train, evaluate])
    session.flush()
    _model(session, dataset.id, job=train)
    session.commit()
    body = {"dataset_id": dataset.id, "eps_levels": [0.1]}
    r = api.post("/api/v1/stimulus-sets", json={**body, "train_job_id": train.id})
    assert r.status_code == 422 and "ended failed" in r.json()["detail"]
    r = api.post("/api/v1/stimulus-sets", json={**body, "train_job_id": evaluate.id})
    assert r.status_code == 422 and "not a train job" in r.json()["detail"]


def test_counts_and_stimuli(api: TestClient, session: Session, storage: BlobStore) -> None:
    dataset = make_dataset(session, storage, n_images=3)
    sset = make_stimulus_set(session, storage, dataset)
    make_stimulus_set(session, storage, make_dataset(session, storage, name="other"))
    session.commit()

    detail = api.get(f"/api/v1/stimulus-sets/{sset.id}").json()
    assert detail["status"] == "ready" and detail["n_images"] == 3 and detail["n_catch"] == 3
    assert [row["eps"] for row in detail["per_eps"]] == pytest.approx(EPS_LEVELS)
    assert [row["n"] for row in detail["per_eps"]] == [3, 3, 3] and detail["n_stimuli"] == 12
    assert detail["per_eps"][2]["mean_linf"] == pytest.approx(8 / 255) and detail["job"] is None

    listing = api.get("/api/v1/stimulus-sets", params={"dataset_id": dataset.id}).json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == sset.id
    assert api.get("/api/v1/stimulus-sets").json()["total"] == 2

    page = api.get(f"/api/v1/stimulus-sets/{sset.id}/stimuli", params={"limit": 5}).json()
    assert page["total"] == 12 and len(page["items"]) == 5
    at = api.get(f"/api/v1/stimulus-sets/{sset.id}/stimuli", params={"eps": 2 / 255}).json()
    assert at["total"] == 3 and all(s["eps"] == pytest.approx(2 / 255) for s in at["items"])
    catch = api.get(f"/api/v1/stimulus-sets/{sset.id}/stimuli", params={"role": "catch"}).json()["items"]
    assert len(catch) == 3 and catch[0]["eps"] == CATCH_EPS and catch[0]["label"] in ("class0", "class1")
    png = api.get(catch[0]["file_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content == storage.get(catch[0]["sha256"])
    assert api.get("/api/v1/stimulus-sets/999").status_code == 404
    assert api.get("/api/v1/stimulus-sets/999/stimuli").status_code == 404


def test_every_stimulus_attack_of_the_vocabulary_is_taken_and_stored(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    from sipat.vocabulary import STIMULUS_ATTACKS

    dataset = make_dataset(session, storage)
    model = _model(session, dataset.id)
    session.commit()
    for attack in STIMULUS_ATTACKS:  # the CHECK of migration 0009 takes each (a refused one would be a 500)
        body = {"dataset_id": dataset.id, "model_id": model.id, "eps_levels": [0.03], "attack": attack, "steps": 50}
        r = api.post("/api/v1/stimulus-sets", json=body)
        assert r.status_code == 202 and r.json()["attack"] == attack, r.text
    assert "square" in STIMULUS_ATTACKS
    assert sorted(session.scalars(select(StimulusSet.attack))) == sorted(STIMULUS_ATTACKS)
