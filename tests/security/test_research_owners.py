"""Roles for datasets, stimulus sets, trained models and jobs (issue 19), and the downloads that leaked.

A researcher sees, uses and downloads only the rows they own; an administrator reaches all; rows made before
owners were recorded are the administrators'. Probed with another researcher's token: every research route
with an owned row in its path (the table below must name each one: a new route without a probe fails
`test_the_table_probes_every_route_that_names_an_owned_row`), every request body that names an owned row,
and every listing. The hole found by another helper: `/annotations/{id}/mask`, `/images/{id}/file` and
`/stimuli/{id}/file` served any row by id to any researcher's token.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.api.deps import get_enqueuer
from backend.api.research import ROUTERS
from backend.auth import create_token
from backend.models import Annotation, Dataset, Image, Job, SalienceMap, Stimulus, StimulusSet, Study, TrainedModel
from backend.storage import BlobStore
from tests.backend.factories import SMALL_CONFIG, make_dataset, make_stimulus_set, make_user, png_bytes
from tests.backend.research_factories import finish_session, start_session, zip_bytes

#: Path parameters that name an owned row, or a row that belongs to one (an image its dataset's, ...).
OWNED_PARAMS = ("dataset_id", "stimulus_set_id", "model_id", "job_id", "image_id", "stimulus_id", "annotation_id")

#: (method, path) of every research route with an owned row in its path; each is probed below.
PROBES = [
    ("GET", "/datasets/{dataset_id}"),
    ("GET", "/datasets/{dataset_id}/images"),
    ("GET", "/images/{image_id}/file"),
    ("GET", "/images/{image_id}/salience"),
    ("GET", "/stimuli/{stimulus_id}/file"),
    ("GET", "/annotations/{annotation_id}/mask"),
    ("GET", "/studies/{study_id}/annotations/{annotation_id}/strokes"),
    ("GET", "/stimulus-sets/{stimulus_set_id}"),
    ("GET", "/stimulus-sets/{stimulus_set_id}/stimuli"),
    ("GET", "/models/{model_id}"),
    ("GET", "/models/{model_id}/checkpoint"),
    ("GET", "/jobs/{job_id}"),
    ("POST", "/jobs/{job_id}/cancel"),
]


@dataclass(frozen=True)
class World:
    """Alice's rows (one of each kind), the three callers' headers and ids."""

    headers: dict[str, dict[str, str]]
    ids: dict[str, int]
    user_ids: dict[str, int]


def _caller(session: Session, email: str, *, admin: bool) -> tuple[int, dict[str, str]]:
    user = make_user(session, email, admin=admin)
    token = create_token(session, user)
    session.commit()
    return user.id, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(client: TestClient, app: FastAPI, session: Session, storage: BlobStore) -> World:
    app.dependency_overrides[get_enqueuer] = lambda: lambda job: f"message-{job.id}"  # no broker here
    headers, user_ids = {}, {}
    for name, admin in (("alice", False), ("bob", False), ("admin", True)):
        user_ids[name], headers[name] = _caller(session, f"{name}@example.org", admin=admin)
    alice = user_ids["alice"]
    dataset = make_dataset(session, storage, owner_id=alice)
    job = Job(kind="train", params={"dataset_id": dataset.id}, status="queued", owner_id=alice)
    session.add(job)
    session.flush()
    model = TrainedModel(
        name="m", arch="small_cnn", method="standard", dataset_id=dataset.id, owner_id=alice, job_id=job.id
    )
    model.checkpoint_sha256 = storage.put(b"not really a checkpoint")
    session.add(model)
    sset = make_stimulus_set(session, storage, dataset, owner_id=alice)
    sset.model_id = model.id
    image = dataset.images[0]
    session.add(SalienceMap(image_id=image.id, source="imported", sha256=storage.put(png_bytes(seed=5))))
    session.commit()
    body = {"slug": "alices", "title": "Alice's", "config": {"stimulus_set_id": sset.id, **SMALL_CONFIG}}
    r = client.post("/api/v1/studies", json=body, headers=headers["alice"])
    assert r.status_code == 201, r.text
    study_id = r.json()["id"]
    assert client.post(f"/api/v1/studies/{study_id}/open", headers=headers["alice"]).status_code == 200
    finish_session(client, start_session(client, "alices", external_id="p-1").json()["token"])
    ids = {
        "dataset_id": dataset.id,
        "image_id": image.id,
        "stimulus_id": session.scalar(select(Stimulus.id).where(Stimulus.stimulus_set_id == sset.id)),
        "annotation_id": session.scalar(select(Annotation.id)),
        "study_id": study_id,
        "stimulus_set_id": sset.id,
        "model_id": model.id,
        "job_id": job.id,
    }
    assert all(value is not None for value in ids.values()), ids
    return World(headers=headers, ids=ids, user_ids=user_ids)


def test_the_table_probes_every_route_that_names_an_owned_row() -> None:
    routes = {
        (method, route.path_format)  # "{id:int}" written "{id}"
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and any(f"{{{p}}}" in route.path_format for p in OWNED_PARAMS)
        for method in route.methods
    }
    assert routes == set(PROBES)


def test_another_researcher_is_refused_every_owned_route(client: TestClient, session: Session, world: World) -> None:
    for method, template in PROBES:
        path = "/api/v1" + template.format(**world.ids)
        r = client.request(method, path, headers=world.headers["bob"])
        assert r.status_code == 403 and "another researcher" in r.json()["detail"], (method, path, r.text[:200])
    session.expire_all()
    assert session.get(Job, world.ids["job_id"]).status == "queued"  # bob's cancel changed nothing

    for who in ("alice", "admin"):  # the owner and an administrator may
        for method, template in PROBES:
            if method == "GET":
                r = client.get("/api/v1" + template.format(**world.ids), headers=world.headers[who])
                assert r.status_code == 200, (who, template, r.text[:200])
    r = client.post(f"/api/v1/jobs/{world.ids['job_id']}/cancel", headers=world.headers["alice"])
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    for template in ("/images/999999/file", "/annotations/999999/mask", "/stimuli/999999/file", "/models/999999"):
        assert client.get("/api/v1" + template, headers=world.headers["bob"]).status_code == 404  # unknown: 404


def test_another_researcher_cannot_name_an_owned_row_in_a_body(
    client: TestClient, session: Session, storage: BlobStore, world: World
) -> None:
    bob, ids = world.headers["bob"], world.ids
    bobs_dataset = make_dataset(session, storage, owner_id=world.user_ids["bob"], name="bob's")
    bobs_set = make_stimulus_set(session, storage, bobs_dataset, owner_id=world.user_ids["bob"])
    session.commit()
    r = client.post(
        "/api/v1/studies",
        json={"slug": "bobs", "title": "Bob's", "config": {"stimulus_set_id": bobs_set.id, **SMALL_CONFIG}},
        headers=bob,
    )
    assert r.status_code == 201, r.text  # his own set: allowed
    bobs_study = r.json()["id"]
    counts = {model: session.scalar(select(func.count()).select_from(model)) for model in (Job, StimulusSet, Study)}

    set_body = {"dataset_id": bobs_dataset.id, "eps_levels": [0.01]}
    requests = [
        ("POST", "/stimulus-sets", {**set_body, "dataset_id": ids["dataset_id"], "model_id": ids["model_id"]}),
        ("POST", "/stimulus-sets", {**set_body, "model_id": ids["model_id"]}),
        ("POST", "/stimulus-sets", {**set_body, "train_job_id": ids["job_id"]}),
        ("POST", "/studies", {"slug": "x", "title": "x", "config": {"stimulus_set_id": ids["stimulus_set_id"]}}),
        ("PATCH", f"/studies/{bobs_study}", {"config": {"stimulus_set_id": ids["stimulus_set_id"]}}),
        ("POST", "/jobs", {"kind": "train", "params": {"dataset_id": ids["dataset_id"]}}),
        ("POST", "/jobs", {"kind": "evaluate", "params": {"model_id": ids["model_id"]}}),
        ("POST", "/jobs", {"kind": "generate_stimuli", "params": {"stimulus_set_id": ids["stimulus_set_id"]}}),
        (
            "POST",
            "/jobs",
            {"kind": "train", "params": {"dataset_id": bobs_dataset.id, "reference_model_id": ids["model_id"]}},
        ),
    ]
    for method, path, body in requests:
        r = client.request(method, "/api/v1" + path, json=body, headers=bob)
        assert r.status_code == 403 and "belongs to another researcher" in r.json()["detail"], (path, body, r.text)
    session.expire_all()
    assert {model: session.scalar(select(func.count()).select_from(model)) for model in counts} == counts
    assert session.get(Study, bobs_study).config["stimulus_set_id"] == bobs_set.id

    # The rule follows the study's owner, whoever asks: an administrator cannot give alice's study bob's set.
    r = client.patch(
        f"/api/v1/studies/{ids['study_id']}",
        json={"config": {"stimulus_set_id": bobs_set.id}},
        headers=world.headers["admin"],
    )
    assert r.status_code == 403 and "stimulus set" in r.json()["detail"], r.text


def test_a_researchers_own_rows_work_and_what_they_make_is_theirs(
    client: TestClient, session: Session, world: World
) -> None:
    alice, ids = world.headers["alice"], world.ids
    r = client.post(
        "/api/v1/stimulus-sets",
        json={"dataset_id": ids["dataset_id"], "model_id": ids["model_id"], "eps_levels": [0.01]},
        headers=alice,
    )
    assert r.status_code == 202, r.text
    sset_id, gen_job = r.json()["id"], r.json()["job"]["id"]
    r = client.post("/api/v1/jobs", json={"kind": "train", "params": {"dataset_id": ids["dataset_id"]}}, headers=alice)
    assert r.status_code == 202, r.text
    train_job, new_model = r.json()["id"], r.json()["model_id"]
    session.expire_all()
    made = [
        session.get(StimulusSet, sset_id),
        session.get(Job, gen_job),
        session.get(Job, train_job),
        session.get(TrainedModel, new_model),
    ]
    assert [row.owner_id for row in made] == [world.user_ids["alice"]] * 4
    for path in (f"/stimulus-sets/{sset_id}", f"/jobs/{train_job}", f"/models/{new_model}"):
        assert client.get("/api/v1" + path, headers=world.headers["bob"]).status_code == 403
        assert client.get("/api/v1" + path, headers=alice).status_code == 200


def test_listings_hold_only_the_callers_rows(
    client: TestClient, session: Session, storage: BlobStore, world: World
) -> None:
    make_dataset(session, storage, name="legacy")  # made before owners: the administrators'
    session.commit()
    expected = {
        "alice": {"datasets": 1, "stimulus-sets": 1, "models": 1, "jobs": 1, "studies": 1},
        "bob": {"datasets": 0, "stimulus-sets": 0, "models": 0, "jobs": 0, "studies": 0},
        "admin": {"datasets": 2, "stimulus-sets": 1, "models": 1, "jobs": 1, "studies": 1},
    }
    for who, totals in expected.items():
        seen = {kind: client.get(f"/api/v1/{kind}", headers=world.headers[who]).json()["total"] for kind in totals}
        assert seen == totals, who
    legacy = session.scalar(select(Dataset.id).where(Dataset.name == "legacy"))
    assert client.get(f"/api/v1/datasets/{legacy}", headers=world.headers["alice"]).status_code == 403
    assert client.get(f"/api/v1/datasets/{legacy}", headers=world.headers["admin"]).status_code == 200


def test_an_identical_upload_of_another_researcher_is_a_dataset_of_ones_own(
    client: TestClient, session: Session, world: World
) -> None:
    archive = zip_bytes({"train/cat/a.png": png_bytes(seed=1), "train/dog/b.png": png_bytes(seed=2)})

    def upload(who: str) -> tuple[int, int]:
        r = client.post(
            "/api/v1/datasets", files={"file": ("same.zip", archive, "application/zip")}, headers=world.headers[who]
        )
        return r.status_code, r.json()["id"]

    status, alices = upload("alice")
    assert status == 201
    status, bobs = upload("bob")  # not alice's dataset handed to bob
    assert status == 201 and bobs != alices
    assert upload("alice") == (200, alices)  # her own copy is found again
    assert session.get(Dataset, bobs).owner_id == world.user_ids["bob"]
    n_images = session.scalar(select(func.count()).select_from(Image).where(Image.dataset_id == bobs))
    assert n_images == 2
