"""Simulate mode (`?simulate=1`) is for researchers or drafts only, and its sessions stay out of the data."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth import create_token
from backend.models import Participant
from backend.storage import BlobStore
from tests.backend.factories import make_dataset, make_open_study, make_stimulus_set, make_study, make_user
from tests.backend.protocol_steps import finish, start


def _export(client: TestClient, study_id: int, table: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/studies/{study_id}/export/{table}.ndjson", params=params)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def test_simulate_on_an_open_study_needs_a_researcher(client: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage)
    refused = start(client, simulate=True, external_id="simulated-x")
    assert refused.status_code == 403 and "Pilot" in refused.json()["detail"]
    page = client.get("/s/pilot?simulate=1")
    assert page.status_code == 403 and "Pilot" in page.text
    assert session.scalar(select(Participant.id)) is None

    token = create_token(session, make_user(session, admin=False))  # the study has no owner: not theirs
    session.commit()
    r = client.post(
        "/api/v1/studies/pilot/sessions",
        json={"consent": True, "simulate": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403
    owner = make_user(session, "owner@example.org", admin=False)
    study.owner_id = owner.id
    owner_token = create_token(session, owner)
    session.commit()
    r = client.post(
        "/api/v1/studies/pilot/sessions",
        json={"consent": True, "simulate": True},
        headers={"Authorization": f"Bearer {owner_token}"},
    )
    assert r.status_code == 201, r.text
    session.expire_all()
    assert session.scalar(select(Participant.simulated)) is True


def test_simulate_on_a_draft_and_kept_out_of_results_and_exports(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage))
    study = make_study(session, sset, status="draft")
    session.commit()
    assert client.get("/s/pilot").status_code == 404  # a draft is not public
    page = client.get("/s/pilot?simulate=1")
    assert page.status_code == 200 and '"simulate": true' in page.text
    assert start(client).status_code == 409  # real participants still cannot join a draft
    sim = start(client, simulate=True, external_id="simulated-abc")
    assert sim.status_code == 201, sim.text
    finish(client, sim.json()["token"], "perturbed")

    study.status = "open"
    session.commit()
    real = start(client, external_id="person-1")
    finish(client, real.json()["token"], "clean")
    session.expire_all()
    people = {p.external_id: p for p in session.scalars(select(Participant))}
    assert people["simulated-abc"].simulated is True and people["person-1"].simulated is False
    assert start(client, simulate=True, external_id="person-1").status_code == 403  # open: no researcher

    api = {"Authorization": f"Bearer {create_token(session, make_user(session))}"}
    session.commit()
    client.headers.update(api)
    # A simulated start cannot take over a real session, nor a real one a simulated session.
    assert start(client, simulate=True, external_id="person-1").status_code == 409
    assert start(client, external_id="simulated-abc").status_code == 409
    results = client.get(f"/api/v1/studies/{study.id}/results", params={"n_boot": 0}).json()
    assert results["n_participants"] == 1 and results["n_main_responses"] == 4
    assert all(row["detection_rate"] == 0 for row in results["eps"])  # only the real 'clean' answers
    both = client.get(f"/api/v1/studies/{study.id}/results", params={"n_boot": 0, "include_simulated": True}).json()
    assert both["n_participants"] == 2 and both["n_main_responses"] == 8

    for table in ("participants", "responses", "annotations"):
        rows = _export(client, study.id, table)
        ids = {row.get("external_id") or row.get("participant_external_id") for row in rows}
        assert ids == {"person-1"}, table
        with_sim = _export(client, study.id, table, include_simulated="true")
        ids = {row.get("external_id") or row.get("participant_external_id") for row in with_sim}
        assert ids == {"person-1", "simulated-abc"}, table
    flags = {r["external_id"]: r["simulated"] for r in _export(client, study.id, "participants", include_simulated=1)}
    assert flags == {"person-1": False, "simulated-abc": True}
    csv = client.get(f"/api/v1/studies/{study.id}/export/responses.csv").text
    assert "simulated-abc" not in csv and "person-1" in csv


def test_simulated_paintings_feed_no_training_map_and_no_annotation_view(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    """A pilot's paintings (the robot's one random stroke) must not become SIP-AT's human salience maps, nor
    appear in the dashboard's annotation views and COCO export (all read `painted_masks`)."""
    from backend.services.admin_views import painted_masks
    from backend.services.training_coverage import annotation_masks

    dataset = make_dataset(session, storage)
    study = make_study(session, make_stimulus_set(session, storage, dataset), status="draft")
    every_image = [image.id for image in dataset.images]
    session.commit()
    finish(client, start(client, simulate=True, external_id="simulated-1").json()["token"])
    study.status = "open"
    session.commit()
    finish(client, start(client, external_id="person-1").json()["token"])
    session.expire_all()
    painted = painted_masks(session, study_id=study.id)
    assert [m.participant.external_id for m in painted] == ["person-1"]
    masks = annotation_masks(session, study.id, every_image)
    assert sum(len(v) for v in masks.values()) == 1
    assert masks == {painted[0].image.id: [painted[0].annotation.mask_sha256]}
