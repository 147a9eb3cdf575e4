"""Study exports through the research API: CSV and JSON, streamed batch by batch, with the right rows."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Annotation, Response
from backend.services import exports
from backend.settings import Settings
from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, make_open_study
from tests.backend.research_factories import finish_session, start_session

TOTAL = 2 + 4 + 1 + 1  # trials per participant of factories.SMALL_CONFIG: 7 responses and 1 annotation


def _two_finished(api: TestClient, session: Session, storage: BlobStore) -> int:
    study = make_open_study(session, storage)
    finish_session(api, start_session(api, "pilot", external_id="prolific-1").json()["token"], judgment="perturbed")
    finish_session(api, start_session(api, "pilot").json()["token"], judgment="clean", mask_fill=128)
    return study.id


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@BOTH_DATABASES
def test_exports(
    api: TestClient, app: FastAPI, session: Session, storage: BlobStore, settings: Settings, monkeypatch
) -> None:
    monkeypatch.setattr(exports, "BATCH_ROWS", 3)  # several batches, even for 14 rows
    sid = _two_finished(api, session, storage)
    n_responses = session.scalar(select(func.count()).select_from(Response))
    assert n_responses == 2 * (TOTAL - 1)

    r = api.get(f"/api/v1/studies/{sid}/export/responses.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="pilot-responses.csv"'
    assert r.text.splitlines()[0] == ",".join(exports.RESPONSE_COLUMNS)
    rows = _csv(r.text)
    assert len(rows) == n_responses
    first = rows[0]
    assert (first["participant_external_id"], first["participant_index"], first["position"]) == ("prolific-1", "0", "0")
    assert first["phase"] == "practice" and first["masked"] == "false" and first["judgment"] == "perturbed"
    assert first["expected"] == ("perturbed" if float(first["eps"]) > 0 else "clean")
    assert first["correct"] == ("true" if first["expected"] == "perturbed" else "false")
    assert json.loads(first["client_timestamps"]) == {"onset": 1.5} and first["rt_ms"] == "640.0"
    assert [r["participant_external_id"] for r in rows[TOTAL - 1 :]] == [""] * (TOTAL - 1)
    assert [int(r["position"]) for r in rows[: TOTAL - 1]] == list(range(TOTAL - 1))
    assert {r["phase"] for r in rows} == {"practice", "main", "catch"}
    stored = session.get(Response, int(first["response_id"]))
    assert first["created_at"] == stored.created_at.isoformat() and first["confidence"] == "3"

    as_json = api.get(f"/api/v1/studies/{sid}/export/responses.json")
    assert as_json.headers["content-type"] == "application/json"
    objects = as_json.json()
    assert len(objects) == n_responses and list(objects[0]) == list(exports.RESPONSE_COLUMNS)
    assert objects[0]["masked"] is False and objects[0]["client_timestamps"] == {"onset": 1.5}
    assert [o["response_id"] for o in objects] == [int(r["response_id"]) for r in rows]
    assert objects[-1]["participant_external_id"] is None and objects[-1]["judgment"] == "clean"

    people = _csv(api.get(f"/api/v1/studies/{sid}/export/participants.csv").text)
    assert [p["external_id"] for p in people] == ["prolific-1", ""]
    assert all(p["trials_total"] == p["trials_answered"] == str(TOTAL) and p["completed"] == "true" for p in people)
    assert [p["catch_errors"] for p in people] == ["0", "1"] and [p["flagged"] for p in people] == ["false", "false"]
    people_json = api.get(f"/api/v1/studies/{sid}/export/participants.json").json()
    assert people_json[0]["client_info"]["user_agent"] and people_json[1]["completion_code"]

    masks = api.get(f"/api/v1/studies/{sid}/export/annotations.json").json()
    assert len(masks) == 2 and list(masks[0]) == list(exports.ANNOTATION_COLUMNS)
    for mask in masks:
        assert mask["strokes_length"] == 2 and mask["duration_ms"] == 1500 and (mask["width"], mask["height"]) == (8, 6)
        url = urlsplit(mask["mask_url"])
        assert mask["mask_url"].startswith(settings.public_base_url + "/api/v1/annotations/")
        png = api.get(url.path)
        assert png.status_code == 200 and hashlib.sha256(png.content).hexdigest() == mask["mask_sha256"]
    annotations_csv = _csv(api.get(f"/api/v1/studies/{sid}/export/annotations.csv").text)
    assert [a["mask_sha256"] for a in annotations_csv] == [m["mask_sha256"] for m in masks]
    assert session.scalar(select(func.count()).select_from(Annotation)) == 2


def test_export_streams_one_batch_at_a_time(
    api: TestClient, app: FastAPI, session: Session, storage: BlobStore, monkeypatch
) -> None:
    sid = _two_finished(api, session, storage)
    monkeypatch.setattr(exports, "BATCH_ROWS", 4)
    chunks = exports.stream_export(app.state.session_factory, sid, "responses", "csv")
    header = next(chunks)
    assert header.decode().startswith("response_id,")
    sizes = [len(chunk.decode().splitlines()) for chunk in chunks]
    assert sizes == [4, 4, 4, 2]  # 14 rows in batches of 4, each handed on before the next is read
    json_chunks = list(exports.stream_export(app.state.session_factory, sid, "participants", "json"))
    assert json.loads(b"".join(json_chunks)) and json_chunks[0] == b"["


def test_export_of_an_empty_or_missing_study(api: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage)
    assert api.get(f"/api/v1/studies/{study.id}/export/responses.json").json() == []
    assert api.get(f"/api/v1/studies/{study.id}/export/annotations.csv").text.strip() == ",".join(
        exports.ANNOTATION_COLUMNS
    )
    assert api.get("/api/v1/studies/999/export/responses.csv").status_code == 404
    assert api.get(f"/api/v1/studies/{study.id}/export/secrets.csv").status_code == 422
    with pytest.raises(ValueError, match="unknown export"):
        next(exports.stream_export(None, study.id, "secrets", "csv"))  # type: ignore[arg-type]
