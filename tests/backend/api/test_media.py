"""Stimulus images are served under opaque per-participant keys that reveal nothing about the stimulus."""

from __future__ import annotations

from factories import BOTH_DATABASES, make_open_study
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Participant, Stimulus, Trial
from backend.storage import BlobStore


def _start(client: TestClient) -> str:
    r = client.post("/api/v1/studies/pilot/sessions", json={"consent": True})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def _urls_by_stimulus(session: Session, token: str) -> dict[int, str]:
    participant = session.scalar(select(Participant).where(Participant.token == token))
    return {t.stimulus_id: f"/api/v1/media/{t.media_key}" for t in participant.trials}


@BOTH_DATABASES
def test_media_urls_are_opaque_and_per_participant(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage, n_main=6)  # every participant sees all 6 images
    alice, bob = _start(client), _start(client)
    session.expire_all()
    a_urls, b_urls = _urls_by_stimulus(session, alice), _urls_by_stimulus(session, bob)
    shared = set(a_urls) & set(b_urls)
    assert shared, "the two schedules share no stimulus; the test needs one"
    for stimulus_id in shared:
        assert a_urls[stimulus_id] != b_urls[stimulus_id]

    first = client.get(f"/api/v1/sessions/{alice}/next").json()
    assert first["image_url"] in a_urls.values()
    stimuli = {s.id: s for s in session.scalars(select(Stimulus))}
    for stimulus_id, url in a_urls.items():
        stimulus = stimuli[stimulus_id]
        key = url.rsplit("/", 1)[1]
        assert len(key) >= 22  # >= 128 random bits
        assert stimulus.sha256 not in url and str(stimulus.eps) not in url
        r = client.get(url)
        assert r.status_code == 200 and r.content == storage.get(stimulus.sha256)
        assert r.headers["content-type"] == "image/png"
        assert r.headers["cache-control"] == "private, no-store"
        for header in ("content-length", "etag", "last-modified", "content-disposition"):
            assert header not in r.headers, header
        joined = " ".join(f"{k}: {v}" for k, v in r.headers.items())
        assert stimulus.sha256 not in joined and str(stimulus.eps) not in joined


def test_unknown_or_malformed_keys_are_404_or_422(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    _start(client)
    assert client.get("/api/v1/media/" + "A" * 24).status_code == 404
    assert client.get("/api/v1/media/..%2F..%2Fetc").status_code in (404, 422)
    sha = session.scalars(select(Stimulus.sha256)).first()
    assert client.get(f"/api/v1/media/{sha}").status_code == 404  # a blob name is not a key


def test_media_keys_are_unique_per_trial(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    for _ in range(3):
        _start(client)
    keys = session.scalars(select(Trial.media_key)).all()
    assert len(keys) == len(set(keys)) == 3 * 8
