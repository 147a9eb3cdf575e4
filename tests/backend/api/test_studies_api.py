"""Studies through the research API: create, edit, open (with what is missing), close; participants'
progress; withdrawal deletes one participant's data and only the mask files nobody else uses."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Annotation, Job, Participant, Response, Stimulus, StimulusSet, Trial
from backend.settings import Settings
from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, SMALL_CONFIG, make_dataset, make_stimulus_set
from tests.backend.research_factories import blob_files, finish_session, start_session

TOTAL = 2 + 4 + 1 + 1  # trials per participant of SMALL_CONFIG


def _set(session: Session, storage: BlobStore, **kw) -> StimulusSet:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage), **kw)
    session.commit()
    return sset


def _create(api: TestClient, sset: StimulusSet, slug: str = "pilot", **config) -> dict:
    body = {"slug": slug, "title": "Pilot", "config": {"stimulus_set_id": sset.id, **SMALL_CONFIG, **config}}
    r = api.post("/api/v1/studies", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@BOTH_DATABASES
def test_study_lifecycle(api: TestClient, session: Session, storage: BlobStore, settings: Settings) -> None:
    sset = _set(session, storage)
    study = _create(api, sset, n_main=10)
    assert study["status"] == "draft" and study["n_participants"] == 0 and study["stimulus_set_status"] == "ready"
    assert study["participant_url"] == f"{settings.public_base_url}/s/pilot"
    assert study["config"]["n_main"] == 10 and study["config"]["seed"] == 0  # defaults filled in
    sid = study["id"]

    assert start_session(api, "pilot").status_code == 409  # a draft takes nobody
    r = api.post(f"/api/v1/studies/{sid}/open")
    assert r.status_code == 409 and "n_main=10 exceeds the 6 source images" in r.json()["detail"]

    r = api.patch(f"/api/v1/studies/{sid}", json={"title": "Pilot 2", "config": {"n_main": 4}})
    assert r.status_code == 200 and r.json()["title"] == "Pilot 2" and r.json()["config"]["n_main"] == 4
    assert r.json()["config"]["n_practice"] == 2  # untouched fields kept
    r = api.post(f"/api/v1/studies/{sid}/open")
    assert r.status_code == 200 and r.json()["status"] == "open"
    assert api.post(f"/api/v1/studies/{sid}/open").status_code == 200  # idempotent

    token = start_session(api, "pilot", external_id="p-1").json()["token"]
    finish_session(api, token)
    start_session(api, "pilot", external_id="p-2")
    assert api.get(f"/api/v1/studies/{sid}").json()["n_participants"] == 2

    r = api.patch(f"/api/v1/studies/{sid}", json={"config": {"n_main": 5, "seed": 3}})
    assert r.status_code == 409 and "n_main, seed cannot change: 2 participants" in r.json()["detail"]
    r = api.patch(f"/api/v1/studies/{sid}", json={"config": {"instructions": "Look closely.", "redirect_url": None}})
    assert r.status_code == 200 and r.json()["config"]["instructions"] == "Look closely."
    r = api.patch(f"/api/v1/studies/{sid}", json={"config": {"n_main": 4}})
    assert r.status_code == 200  # unchanged value: fine

    participants = api.get(f"/api/v1/studies/{sid}/participants").json()
    assert participants["total"] == 2
    first, second = participants["items"]
    assert (first["index"], first["external_id"], first["completed"]) == (0, "p-1", True)
    assert (first["trials_answered"], first["trials_total"], first["catch_trials"]) == (TOTAL, TOTAL, 1)
    assert first["catch_errors"] == 0 and first["flagged"] is False
    assert (second["completed"], second["trials_answered"], second["trials_total"]) == (False, 0, TOTAL)

    r = api.post(f"/api/v1/studies/{sid}/close")
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert start_session(api, "pilot", external_id="p-3").status_code == 409
    assert api.get("/api/v1/studies").json()["items"][0]["n_completed"] == 1


def test_create_validation(api: TestClient, session: Session, storage: BlobStore) -> None:
    sset = _set(session, storage)
    _create(api, sset, slug="pilot")
    r = api.post("/api/v1/studies", json={"slug": "pilot", "title": "Again", "config": {"stimulus_set_id": sset.id}})
    assert r.status_code == 409 and "taken" in r.json()["detail"]
    for slug in ("9lives", "Has Space", "UPPER", "x" * 65, ""):
        r = api.post("/api/v1/studies", json={"slug": slug, "title": "T", "config": {"stimulus_set_id": sset.id}})
        assert r.status_code == 422, slug
    r = api.post("/api/v1/studies", json={"slug": "s2", "title": "T", "config": {"stimulus_set_id": 999}})
    assert r.status_code == 422 and "config.stimulus_set_id: no stimulus set with id 999" in r.json()["detail"]
    r = api.post(
        "/api/v1/studies", json={"slug": "s2", "title": "T", "config": {"stimulus_set_id": sset.id, "n_main": 0}}
    )
    assert r.status_code == 422 and "n_main" in r.text
    sid = api.get("/api/v1/studies").json()["items"][0]["id"]
    r = api.patch(f"/api/v1/studies/{sid}", json={"config": {"n_main": None}})
    assert r.status_code == 422 and "config.n_main" in r.json()["detail"]
    r = api.patch(f"/api/v1/studies/{sid}", json={"config": {"bogus": 1}})
    assert r.status_code == 422
    assert api.get("/api/v1/studies/999").status_code == 404
    assert api.patch("/api/v1/studies/999", json={"title": "x"}).status_code == 404


def test_open_checks_the_stimulus_set(api: TestClient, session: Session, storage: BlobStore) -> None:
    generating = _set(session, storage, status="generating", with_stimuli=False)
    study = _create(api, generating, slug="busy")
    r = api.post(f"/api/v1/studies/{study['id']}/open")
    assert r.status_code == 200 and r.json()["stimulus_set_status"] == "generating"
    r = start_session(api, "busy")
    assert r.status_code == 503 and "being prepared" in r.json()["detail"]

    too_few = _create(api, generating, slug="big", n_main=7)  # the dataset has 6 images
    r = api.post(f"/api/v1/studies/{too_few['id']}/open")
    assert r.status_code == 409 and "n_main=7" in r.json()["detail"]

    failed = _set(session, storage, status="failed")
    job = Job(kind="generate_stimuli", params={}, status="failed", error="CUDA out of memory")
    session.add(job)
    session.flush()
    failed.job_id = job.id
    session.commit()
    study = _create(api, failed, slug="broken")
    r = api.post(f"/api/v1/studies/{study['id']}/open")
    assert r.status_code == 409 and "failed to generate (CUDA out of memory)" in r.json()["detail"]

    no_catch = _set(session, storage)
    session.execute(
        Stimulus.__table__.delete().where(Stimulus.role == "catch", Stimulus.stimulus_set_id == no_catch.id)
    )
    session.commit()
    study = _create(api, no_catch, slug="nocatch")
    r = api.post(f"/api/v1/studies/{study['id']}/open")
    assert r.status_code == 409 and "no catch stimuli" in r.json()["detail"]

    missing = _create(api, no_catch, slug="gone")
    session.execute(StimulusSet.__table__.delete().where(StimulusSet.id == no_catch.id))
    session.commit()
    r = api.post(f"/api/v1/studies/{missing['id']}/open")
    assert r.status_code == 409 and "does not exist" in r.json()["detail"]


@BOTH_DATABASES
def test_withdrawal_deletes_only_that_participants_data(
    api: TestClient, session: Session, storage: BlobStore, settings: Settings
) -> None:
    sset = _set(session, storage)
    sid = _create(api, sset)["id"]
    api.post(f"/api/v1/studies/{sid}/open")
    tokens = [start_session(api, "pilot", external_id=f"p{k}").json()["token"] for k in range(3)]
    finish_session(api, tokens[0], mask_fill=255)  # a mask nobody else painted
    finish_session(api, tokens[1], mask_fill=128)  # the same mask as p2: one shared blob
    finish_session(api, tokens[2], mask_fill=128)
    by_external = {p.external_id: p.id for p in session.scalars(select(Participant))}
    masks = {a.trial.participant.external_id: a.mask_sha256 for a in session.scalars(select(Annotation))}
    assert masks["p1"] == masks["p2"] != masks["p0"]
    blobs = blob_files(settings.data_dir)

    r = api.delete(f"/api/v1/studies/{sid}/participants/{by_external['p0']}")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "participant_id": by_external["p0"],
        "deleted_trials": TOTAL,
        "deleted_responses": TOTAL - 1,
        "deleted_annotations": 1,
        "deleted_mask_blobs": 1,
    }
    assert not storage.exists(masks["p0"]) and blob_files(settings.data_dir) == [
        b for b in blobs if b.name != masks["p0"]
    ]
    session.expire_all()
    assert {p.external_id for p in session.scalars(select(Participant))} == {"p1", "p2"}
    assert session.scalar(select(func.count()).select_from(Trial)) == 2 * TOTAL
    assert session.scalar(select(func.count()).select_from(Response)) == 2 * (TOTAL - 1)

    r = api.delete(f"/api/v1/studies/{sid}/participants/{by_external['p1']}")
    assert r.json()["deleted_annotations"] == 1 and r.json()["deleted_mask_blobs"] == 0
    assert storage.exists(masks["p2"])  # p2 still uses it
    assert api.delete(f"/api/v1/studies/{sid}/participants/{by_external['p1']}").status_code == 404
    other = _create(api, sset, slug="other")
    r = api.delete(f"/api/v1/studies/{other['id']}/participants/{by_external['p2']}")
    assert r.status_code == 404  # not a participant of that study
    assert api.get(f"/api/v1/studies/{sid}/participants").json()["total"] == 1
