"""Jobs through the research API: validated on entry, committed before they are enqueued (once), listed,
looked up with their traceback, cancelled; and trained models with their checkpoints."""

from __future__ import annotations

import secrets

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Job, StimulusSet, TrainedModel
from backend.queue import get_celery, queue_names
from backend.settings import Settings
from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, make_dataset, make_stimulus_set
from tests.backend.research_factories import FakeEnqueuer


@BOTH_DATABASES
def test_train_job_is_committed_then_enqueued_once(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    dataset = make_dataset(session, storage)
    session.commit()
    params = {"dataset_id": dataset.id, "epochs": 2, "eps_ramp_epochs": 1}  # a ramp shorter than the run
    r = api.post("/api/v1/jobs", json={"kind": "train", "params": params})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["kind"] == "train" and job["progress"] == 0
    assert job["params"]["epochs"] == 2 and job["params"]["method"] == "sip_at"  # defaults filled in
    assert enqueued.sent == [job["id"]] and enqueued.committed == [True]
    model = session.get(TrainedModel, job["model_id"])
    assert model is not None and model.job_id == job["id"] and model.checkpoint_sha256 is None

    listed = api.get(f"/api/v1/models/{model.id}").json()
    assert listed["job_status"] == "queued" and listed["has_checkpoint"] is False
    r = api.get(f"/api/v1/models/{model.id}/checkpoint")
    assert r.status_code == 409 and f"train job {job['id']} is queued" in r.json()["detail"]


def test_params_are_validated_on_entry(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    dataset = make_dataset(session, storage)
    session.commit()
    cases = [
        ({"kind": "train", "params": {"dataset_id": dataset.id, "epochs": 0}}, "epochs"),
        ({"kind": "train", "params": {"dataset_id": dataset.id, "learning_rate": 0.1}}, "learning_rate"),
        ({"kind": "train", "params": {}}, "dataset_id"),
        ({"kind": "train", "params": {"dataset_id": 999}}, "params.dataset_id: no dataset with id 999"),
        ({"kind": "evaluate", "params": {"model_id": 999}}, "params.model_id: no model with id 999"),
        ({"kind": "generate_stimuli", "params": {"stimulus_set_id": 999}}, "params.stimulus_set_id"),
        ({"kind": "bake", "params": {}}, "kind"),
    ]
    for body, fragment in cases:
        r = api.post("/api/v1/jobs", json=body)
        assert r.status_code == 422 and fragment in r.text, (body, r.text)
    assert enqueued.sent == [] and session.scalar(select(func.count()).select_from(Job)) == 0


def test_list_read_and_cancel(api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer) -> None:
    dataset = make_dataset(session, storage)
    session.commit()
    train = api.post("/api/v1/jobs", json={"kind": "train", "params": {"dataset_id": dataset.id}}).json()
    model_id = train["model_id"]
    evaluate = api.post("/api/v1/jobs", json={"kind": "evaluate", "params": {"model_id": model_id}}).json()
    failed = Job(kind="evaluate", params={"model_id": model_id}, status="failed", error="boom", traceback="Trace...")
    session.add(failed)
    session.commit()

    page = api.get("/api/v1/jobs").json()
    assert page["total"] == 3 and [j["id"] for j in page["items"]] == [failed.id, evaluate["id"], train["id"]]
    assert "traceback" not in page["items"][0]
    assert [j["id"] for j in api.get("/api/v1/jobs", params={"kind": "train"}).json()["items"]] == [train["id"]]
    assert [j["id"] for j in api.get("/api/v1/jobs", params={"status": "failed"}).json()["items"]] == [failed.id]
    assert api.get("/api/v1/jobs", params={"status": "bogus"}).status_code == 422
    detail = api.get(f"/api/v1/jobs/{failed.id}").json()
    assert detail["error"] == "boom" and detail["traceback"] == "Trace..."
    assert api.get(f"/api/v1/jobs/{train['id']}").json()["model_id"] == model_id

    r = api.post(f"/api/v1/jobs/{evaluate['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["cancel_requested"] is True
    again = api.post(f"/api/v1/jobs/{evaluate['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert api.post(f"/api/v1/jobs/{failed.id}/cancel").status_code == 409
    running = Job(kind="train", params={}, status="running")
    session.add(running)
    session.commit()
    r = api.post(f"/api/v1/jobs/{running.id}/cancel").json()
    assert r["status"] == "running" and r["cancel_requested"] is True  # stops at its next progress point
    assert api.get("/api/v1/jobs/999").status_code == 404 and api.post("/api/v1/jobs/999/cancel").status_code == 404


def test_regenerating_a_stimulus_set(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage), status="failed")
    session.commit()
    first = api.post("/api/v1/jobs", json={"kind": "generate_stimuli", "params": {"stimulus_set_id": sset.id}})
    assert first.status_code == 202
    session.refresh(sset)
    assert sset.status == "pending" and sset.job_id == first.json()["id"]
    second = api.post("/api/v1/jobs", json={"kind": "generate_stimuli", "params": {"stimulus_set_id": sset.id}})
    assert second.status_code == 409 and f"POST /jobs/{first.json()['id']}/cancel" in second.json()["detail"]
    assert enqueued.sent == [first.json()["id"]]


def test_unreachable_broker_fails_the_job(
    api: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage), status="failed")
    session.commit()
    enqueued.fail = True
    r = api.post("/api/v1/jobs", json={"kind": "generate_stimuli", "params": {"stimulus_set_id": sset.id}})
    assert r.status_code == 503 and "broker" in r.json()["detail"] and r.headers["retry-after"] == "30"
    job = session.scalar(select(Job))
    assert job.status == "failed" and "could not be reached" in job.error
    assert session.scalar(select(StimulusSet.status)) == "failed"


def test_models_and_checkpoints(api: TestClient, session: Session, storage: BlobStore) -> None:
    dataset = make_dataset(session, storage)
    checkpoint = b"\x80\x04not really a torch checkpoint" * 100
    trained = TrainedModel(
        name="sip_at small_cnn",
        arch="small_cnn",
        method="sip_at",
        dataset_id=dataset.id,
        checkpoint_sha256=storage.put(checkpoint),
        config={"epochs": 3},
        metrics={"clean": 0.9, "robust": {"0.0314": 0.4}},
    )
    imported = TrainedModel(name="baseline", arch="resnet18", method="standard", config={})
    session.add_all([trained, imported])
    session.commit()

    page = api.get("/api/v1/models").json()
    assert page["total"] == 2 and [m["id"] for m in page["items"]] == [imported.id, trained.id]
    assert [m["id"] for m in api.get("/api/v1/models", params={"method": "sip_at"}).json()["items"]] == [trained.id]
    detail = api.get(f"/api/v1/models/{trained.id}").json()
    assert detail["metrics"]["robust"] == {"0.0314": 0.4} and detail["config"] == {"epochs": 3}
    assert detail["has_checkpoint"] is True and detail["job_status"] is None

    r = api.get(f"/api/v1/models/{trained.id}/checkpoint")
    assert r.status_code == 200 and r.content == checkpoint
    assert r.headers["content-type"] == "application/octet-stream"
    assert f'filename="model-{trained.id}.pt"' in r.headers["content-disposition"]
    r = api.get(f"/api/v1/models/{imported.id}/checkpoint")
    assert r.status_code == 409 and "no checkpoint" in r.json()["detail"]
    assert api.get("/api/v1/models/999").status_code == 404


def test_default_enqueuer_sends_to_the_brokers_of_the_apps_settings(
    api: TestClient, session: Session, storage: BlobStore, settings: Settings
) -> None:
    settings.broker_url = "memory://"  # the app holds this Settings object; kombu's in-process transport
    settings.queue_prefix = f"t{secrets.token_hex(4)}"
    dataset = make_dataset(session, storage)
    session.commit()
    r = api.post("/api/v1/jobs", json={"kind": "train", "params": {"dataset_id": dataset.id}})
    assert r.status_code == 202 and r.json()["status"] == "queued", r.text
    with get_celery(settings).connection_for_read() as conn:
        message = conn.SimpleQueue(queue_names(settings)[0]).get(timeout=5)
        assert message.headers["task"] == "sipat.train" and message.decode()[0] == [r.json()["id"]]
        message.ack()
