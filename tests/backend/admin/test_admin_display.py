"""The results page's display card: viewing distance and stimulus size in degrees per participant, their
medians, and the card's CSV; absent while no participant calibrated."""

from __future__ import annotations

import csv
import io
import math

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.storage import BlobStore
from tests.backend.factories import make_open_study
from tests.backend.protocol_steps import CLIENT, answer, next_trial

TAN = math.tan(math.radians(13.5))


def take_part(client: TestClient, person: str, distance_mm: float | None, width_px: float) -> None:
    info = dict(CLIENT)
    if distance_mm is not None:
        info.update(px_per_mm=4.0, blind_spot_px=[distance_mm * TAN * 4.0] * 5)
    r = client.post("/api/v1/studies/pilot/sessions", json={"consent": True, "client": info, "external_id": person})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    while not (trial := next_trial(client, token))["done"]:
        if trial["question"] == "annotate":
            assert answer(client, token, trial).status_code == 201
            continue
        times = {"display_width": width_px, "display_height": width_px}
        body = {"judgment": "clean", "confidence": 2, "rt_ms": 500.0, "client_timestamps": times}
        url = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/response"
        assert client.post(url, json=body).status_code == 201


def deg(css_px: float, distance_mm: float) -> float:
    return math.degrees(2 * math.atan(css_px / 4.0 / 2 / distance_mm))


def test_display_card_and_csv(admin: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage, card_calibration=True, viewing_distance=True)
    assert 'id="display"' not in admin.get(f"/admin/studies/{study.id}/results?n_boot=0").text  # nobody yet
    take_part(admin, "a", 500.0, 200.0)
    take_part(admin, "b", 700.0, 200.0)
    take_part(admin, "c", None, 200.0)  # no calibration: counted, no degrees
    page = admin.get(f"/admin/studies/{study.id}/results?n_boot=0")
    assert page.status_code == 200
    assert 'id="display-n">2 of 3<' in page.text
    assert 'id="display-distance">600 mm<' in page.text  # the median of 500 and 700
    median_deg = (deg(200, 500) + deg(200, 700)) / 2
    assert f'id="display-size">{median_deg:.2f}° × {median_deg:.2f}°<' in page.text
    rows = list(csv.DictReader(io.StringIO(admin.get(f"/admin/studies/{study.id}/results/display.csv?n_boot=0").text)))
    assert [r["participant_index"] for r in rows] == ["0", "1", "2"]
    assert [r["viewing_distance_mm"] for r in rows] == ["500.0", "700.0", ""]
    assert float(rows[0]["stimulus_width_deg"]) == pytest.approx(deg(200, 500), abs=1e-3)
    assert float(rows[1]["stimulus_height_deg"]) == pytest.approx(deg(200, 700), abs=1e-3)
    assert rows[2]["stimulus_width_deg"] == "" and rows[2]["stimulus_width_px"] == "200.0"
