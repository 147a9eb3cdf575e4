"""NDJSON exports: the same objects as the JSON array, one per line, for each table."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.services import exports
from backend.storage import BlobStore
from tests.backend.factories import make_dataset, make_stimulus_set, make_study
from tests.backend.research_factories import add_participant, answer_trials


def test_ndjson_matches_the_json_array(api: TestClient, session: Session, storage: BlobStore, monkeypatch) -> None:
    monkeypatch.setattr(exports, "BATCH_ROWS", 2)  # lines from several batches
    x = 8 / 255
    sset = make_stimulus_set(session, storage, make_dataset(session, storage), eps_levels=[0.0, x])
    study = make_study(session, sset)
    for k in range(2):
        person = add_participant(session, study, k, external_id=f"p{k}")
        answer_trials(
            session, person, sset.id, [("main", 0.0, "clean"), ("main", x, "perturbed"), ("catch", 0.25, "perturbed")]
        )
    session.commit()
    for table in ("responses", "participants", "annotations"):
        r = api.get(f"/api/v1/studies/{study.id}/export/{table}.ndjson")
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        assert r.headers["content-disposition"] == f'attachment; filename="{study.slug}-{table}.ndjson"'
        assert r.text == "" or r.text.endswith("\n")
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert lines == api.get(f"/api/v1/studies/{study.id}/export/{table}.json").json()
        assert len(lines) == {"responses": 6, "participants": 2, "annotations": 0}[table]
    assert api.get("/api/v1/studies/999/export/responses.ndjson").status_code == 404


def test_ndjson_chunks_one_line_per_row() -> None:
    batches = iter([[{"a": 1, "b": None}], [], [{"a": 2, "b": [1, 2]}, {"a": 3, "b": "x\ny"}]])
    body = b"".join(exports.ndjson_chunks(("b", "a"), batches)).decode()
    assert body == '{"b": null, "a": 1}\n{"b": [1, 2], "a": 2}\n{"b": "x\\ny", "a": 3}\n'
