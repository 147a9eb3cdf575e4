"""Degrees of visual angle end to end: the blind-spot numbers at enrolment (stored when plausible, 422 with the
fix otherwise), the viewing distance and stimulus sizes in degrees in the exports (per participant and per
trial), and the study setting's own check."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth import create_token
from backend.models import Participant
from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, make_open_study, make_user
from tests.backend.protocol_steps import CLIENT, answer, next_trial

TAN = math.tan(math.radians(13.5))
PX_PER_MM = 4.0


def sweeps(distance_mm: float) -> list[float]:
    centre = distance_mm * TAN * PX_PER_MM
    return [round(centre + j, 2) for j in (-6, -3, 0, 3, 6)]


def calibrated(distance_mm: float, **extra: Any) -> dict[str, Any]:
    return {**CLIENT, "px_per_mm": PX_PER_MM, "blind_spot_px": sweeps(distance_mm), **extra}


def enrol(client: TestClient, info: dict[str, Any] | None = None, **body: Any) -> Any:
    payload = {"consent": True, "client": info if info is not None else CLIENT, **body}
    return client.post("/api/v1/studies/pilot/sessions", json=payload)


def deg(css_px: float, distance_mm: float) -> float:
    return math.degrees(2 * math.atan(css_px / PX_PER_MM / 2 / distance_mm))


@pytest.mark.parametrize(
    ("client_info", "fragment"),
    [
        (calibrated(100), "outside 200..1500 mm"),
        (calibrated(3000), "outside 200..1500 mm"),
        (calibrated(600, viewing_distance_mm=700), "differs from the 600.0 mm"),
        ({**CLIENT, "blind_spot_px": sweeps(600)}, "needs px_per_mm"),
        ({**CLIENT, "px_per_mm": PX_PER_MM, "viewing_distance_mm": 600}, "needs blind_spot_px"),
        ({**CLIENT, "px_per_mm": PX_PER_MM, "blind_spot_px": [500.0, 501.0]}, "must hold the 5 sweeps"),
        ({**CLIENT, "px_per_mm": PX_PER_MM, "blind_spot_px": [-5.0, 500, 500, 500, 500]}, "each blind-spot offset"),
    ],
)
def test_implausible_calibrations_are_422_with_the_fix(
    client: TestClient, session: Session, storage: BlobStore, client_info: dict[str, Any], fragment: str
) -> None:
    make_open_study(session, storage, card_calibration=True, viewing_distance=True)
    r = enrol(client, client_info)
    assert r.status_code == 422 and fragment in r.text, r.text
    assert session.scalar(select(Participant.id)) is None  # nothing enrolled


@BOTH_DATABASES
def test_distance_and_degrees_in_the_exports(client: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage, card_calibration=True, viewing_distance=True)
    r = enrol(client, calibrated(600, viewing_distance_mm=600.2), external_id="near")
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    widths = iter([224.0, 448.0] * 10)  # the window changed between trials: the size per trial differs
    shown: list[float] = []
    while not (trial := next_trial(client, token))["done"]:
        if trial["question"] == "annotate":
            assert answer(client, token, trial).status_code == 201
            continue
        width = next(widths)
        if trial["phase"] == "main":
            shown.append(width)
        times = {"onset": 1.0, "display_width": width, "display_height": width / 2}
        body = {"judgment": "clean", "confidence": 2, "rt_ms": 500.0, "client_timestamps": times}
        url = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/response"
        assert client.post(url, json=body).status_code == 201
    assert enrol(client, external_id="uncalibrated").status_code == 201  # an older page: no calibration at all
    stored = session.scalar(select(Participant.client_info).where(Participant.external_id == "near"))
    assert stored["viewing_distance_mm"] == pytest.approx(600.0, abs=0.05)  # the service's number, not the page's

    client.headers["Authorization"] = f"Bearer {create_token(session, make_user(session))}"
    session.commit()
    base = f"/api/v1/studies/{study.id}/export"
    people = {p["external_id"]: p for p in client.get(f"{base}/participants.json").json()}
    near, other = people["near"], people["uncalibrated"]
    assert near["viewing_distance_mm"] == pytest.approx(600.0, abs=0.05)
    responses = client.get(f"{base}/responses.json").json()
    detection = [r for r in responses if r["phase"] in ("main", "catch")]
    mean_width = sum(r["client_timestamps"]["display_width"] for r in detection) / len(detection)
    assert near["stimulus_width_deg"] == pytest.approx(deg(mean_width, 600.0), abs=2e-3)
    assert near["stimulus_height_deg"] == pytest.approx(deg(mean_width / 2, 600.0), abs=2e-3)
    for row in responses:
        width = row["client_timestamps"]["display_width"]
        assert row["stimulus_width_deg"] == pytest.approx(deg(width, 600.0), abs=1e-3)
        assert row["stimulus_height_deg"] == pytest.approx(deg(width / 2, 600.0), abs=1e-3)
    assert {r["stimulus_width_deg"] for r in responses if r["phase"] == "main"} == {
        round(deg(w, 600.0), 3) for w in set(shown)
    }
    assert (other["viewing_distance_mm"], other["stimulus_width_deg"]) == (None, None)
    rows = list(csv.DictReader(io.StringIO(client.get(f"{base}/participants.csv").text)))
    assert float(next(r for r in rows if r["external_id"] == "near")["viewing_distance_mm"]) == pytest.approx(600.0)


def test_viewing_distance_needs_the_card(api: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage)
    config = {"stimulus_set_id": study.config["stimulus_set_id"], "viewing_distance": True}
    r = api.post("/api/v1/studies", json={"slug": "chinrest", "title": "T", "config": config})
    assert r.status_code == 422 and "viewing_distance needs card_calibration" in r.text
    r = api.post(
        "/api/v1/studies", json={"slug": "chinrest", "title": "T", "config": {**config, "card_calibration": True}}
    )
    assert r.status_code == 201, r.text
    page = api.get("/s/pilot").text
    assert '"viewing_distance": false' in page
