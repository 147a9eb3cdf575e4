"""`GET /studies/{id}/annotations/{aid}/strokes`: an annotation's stroke record over REST (the JSON export has it
too), only within its study; and `shown_count` (a reloaded trial shown again) in every export format."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.models import Annotation, Participant, Trial
from backend.services import exports
from backend.storage import BlobStore
from tests.backend.factories import make_open_study
from tests.backend.research_factories import finish_session, start_session

RECORD = {
    "version": 1,
    "actions": [
        {"mode": "paint", "size": 2, "pointer": "mouse", "points": [[1, 1, 10], [4, 1, 20]]},
        {"mode": "clear", "t": 30},
        {"mode": "erase", "size": 3, "pointer": "touch", "points": [[1, 2, 50]]},
    ],
}


def test_strokes_of_an_annotation(api: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage)
    other = make_open_study(session, storage, slug="other")
    finish_session(api, start_session(api, "pilot").json()["token"])
    finish_session(api, start_session(api, "other").json()["token"])
    mine, theirs = (
        session.scalar(select(Annotation.id).join(Trial).join(Participant).where(Participant.study_id == s.id))
        for s in (study, other)
    )
    session.execute(update(Annotation).where(Annotation.id == mine).values(strokes=RECORD))
    session.commit()

    r = api.get(f"/api/v1/studies/{study.id}/annotations/{mine}/strokes")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["strokes"] == RECORD and body["strokes_length"] == 2  # paint + erase; the clear is no stroke
    annotation = session.get(Annotation, mine)
    assert (body["annotation_id"], body["study_id"], body["trial_id"]) == (mine, study.id, annotation.trial_id)
    assert (body["width"], body["height"]) == (annotation.width, annotation.height)
    exported = {a["annotation_id"]: a for a in api.get(f"/api/v1/studies/{study.id}/export/annotations.json").json()}
    assert exported[mine]["strokes"] == body["strokes"]  # the same record as the JSON export

    for path in (
        f"/api/v1/studies/{study.id}/annotations/{theirs}/strokes",  # another study's annotation
        f"/api/v1/studies/{study.id}/annotations/999999/strokes",
        f"/api/v1/studies/999999/annotations/{mine}/strokes",
    ):
        r = api.get(path)
        assert r.status_code == 404 and "detail" in r.json(), (path, r.text)
    assert api.get(f"/api/v1/studies/{study.id}/annotations/x/strokes").status_code == 404  # not a route
    api.headers.pop("Authorization")
    assert api.get(f"/api/v1/studies/{study.id}/annotations/{mine}/strokes").status_code == 401


def test_exports_say_how_often_a_trial_was_shown(api: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage)
    token = start_session(api, "pilot").json()["token"]
    first = api.get(f"/api/v1/sessions/{token}/next").json()
    assert api.get(f"/api/v1/sessions/{token}/next").json()["trial_id"] == first["trial_id"]  # a reload
    finish_session(api, token)
    base = f"/api/v1/studies/{study.id}/export"
    for table in ("responses", "annotations"):
        columns = exports.COLUMNS[table]
        assert columns[columns.index("position") + 1] == "shown_count"
        rows = list(csv.DictReader(io.StringIO(api.get(f"{base}/{table}.csv").text)))
        as_json = api.get(f"{base}/{table}.json").json()
        as_ndjson = [line for line in api.get(f"{base}/{table}.ndjson").text.splitlines() if line]
        assert len(rows) == len(as_json) == len(as_ndjson) > 0
        for row, obj in zip(rows, as_json, strict=True):
            shown = session.get(Trial, obj["trial_id"]).shown_count
            assert int(row["shown_count"]) == obj["shown_count"] == shown
            # the first trial: handed out twice here (a reload) and once more when finish_session resumes
            assert shown == (3 if obj["trial_id"] == first["trial_id"] else 1)
        assert '"shown_count": ' in as_ndjson[0]
