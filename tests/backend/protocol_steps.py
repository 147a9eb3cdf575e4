"""A participant's steps through the HTTP protocol, for the tests that need a whole session (start, next,
answer, finish), on the small schedule of `factories.SMALL_CONFIG`."""

from __future__ import annotations

import base64
from typing import Any

from fastapi.testclient import TestClient

from tests.backend.factories import mask_png

CLIENT = {"screen_width": 1920, "screen_height": 1080, "device_pixel_ratio": 2.0, "refresh_rate_hz": 60}
TOTAL = 2 + 4 + 1 + 1  # practice + main + catch + annotate of factories.SMALL_CONFIG


def start(client: TestClient, slug: str = "pilot", **body: Any):
    return client.post(f"/api/v1/studies/{slug}/sessions", json={"consent": True, "client": CLIENT, **body})


def next_trial(client: TestClient, token: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/sessions/{token}/next")
    assert r.status_code == 200, r.text
    return r.json()


def answer(client: TestClient, token: str, trial: dict[str, Any], judgment: str = "perturbed"):
    base = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}"
    if trial["question"] == "annotate":
        mask = base64.b64encode(mask_png(trial["mask_width"], trial["mask_height"])).decode()
        return client.post(
            f"{base}/annotation", json={"mask_png": mask, "strokes": [[[0, 0], [3, 5]]], "duration_ms": 1500}
        )
    body = {"judgment": judgment, "confidence": 3, "rt_ms": 812.5, "client_timestamps": {"onset": 10.0}}
    return client.post(f"{base}/response", json=body)


def finish(client: TestClient, token: str, judgment: str = "perturbed") -> dict[str, Any]:
    """Answer every remaining trial with `judgment`; the `done` answer of `next`."""
    for _ in range(100):
        trial = next_trial(client, token)
        if trial["done"]:
            return trial
        assert answer(client, token, trial, judgment).status_code == 201
    raise AssertionError("the session never finished")
