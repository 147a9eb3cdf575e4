"""`GET /studies/{id}/annotations.zip`: the dashboard's COCO zip through the research API, with the owner rule of
the other exports (401 without a token, 403 for another researcher's study, 404 for an unknown one)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth import create_token
from backend.models import Annotation, Participant, Trial
from backend.services.maskstats import rle_decode
from backend.storage import BlobStore
from tests.backend.factories import make_open_study, make_user
from tests.backend.research_factories import finish_session, start_session


def _zip(content: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(content))


def test_the_zip_holds_images_categories_annotations_and_masks(
    api: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage)
    for person in ("p1", "p2"):
        finish_session(api, start_session(api, "pilot", external_id=person).json()["token"])
    stored = session.scalars(
        select(Annotation).join(Trial).join(Participant).where(Participant.study_id == study.id)
    ).all()
    assert len(stored) == 2

    r = api.get(f"/api/v1/studies/{study.id}/annotations.zip")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == 'attachment; filename="pilot-annotations.zip"'
    with _zip(r.content) as zf:
        names = set(zf.namelist())
        coco = json.loads(zf.read("annotations.json"))
        masks = {a.id: zf.read(f"masks/{a.id}.png") for a in stored}
    assert "README.txt" in names and any(n.startswith("mean/") for n in names)
    assert {a["id"] for a in coco["annotations"]} == {a.id for a in stored}
    image_ids = {a.trial.stimulus.image_id for a in stored}
    assert {i["id"] for i in coco["images"]} == image_ids
    labels = {a.trial.stimulus.image.label for a in stored}
    assert {c["name"] for c in coco["categories"]} == labels
    category = {c["id"]: c["name"] for c in coco["categories"]}
    for entry in coco["annotations"]:
        row = next(a for a in stored if a.id == entry["id"])
        assert masks[row.id] == storage.get(row.mask_sha256)  # the stored PNG, byte for byte
        assert category[entry["category_id"]] == row.trial.stimulus.image.label
        painted = np.asarray(PILImage.open(io.BytesIO(masks[row.id])).convert("L")) > 127
        np.testing.assert_array_equal(rle_decode(entry["segmentation"]), painted)
        assert entry["area"] == int(painted.sum()) > 0


def test_owner_rule_and_unknown_study(api: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage)
    finish_session(api, start_session(api, "pilot").json()["token"])
    path = f"/api/v1/studies/{study.id}/annotations.zip"

    stranger = create_token(session, make_user(session, "stranger@example.org", admin=False))
    session.commit()
    r = api.get(path, headers={"Authorization": f"Bearer {stranger}"})
    assert r.status_code == 403 and "detail" in r.json()  # the study has no owner: the administrators'

    owner = make_user(session, "owner@example.org", admin=False)
    study.owner_id = owner.id
    owner_token = create_token(session, owner)
    session.commit()
    assert api.get(path, headers={"Authorization": f"Bearer {owner_token}"}).status_code == 200
    assert api.get(path, headers={"Authorization": f"Bearer {stranger}"}).status_code == 403

    missing = api.get("/api/v1/studies/999999/annotations.zip")
    assert missing.status_code == 404 and "detail" in missing.json()
    api.headers.pop("Authorization")
    assert api.get(path).status_code == 401


def test_a_study_without_annotations_gives_an_empty_coco(api: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage)
    r = api.get(f"/api/v1/studies/{study.id}/annotations.zip")
    assert r.status_code == 200
    with _zip(r.content) as zf:
        coco = json.loads(zf.read("annotations.json"))
    assert coco["images"] == [] and coco["annotations"] == [] and coco["categories"] == []
