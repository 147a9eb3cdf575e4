"""Stimulus images are served under opaque per-participant keys that reveal nothing about the stimulus."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from backend.auth import token_hash
from backend.models import Participant, Stimulus, Trial
from backend.services.media import MediaCache
from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, make_open_study


def _start(client: TestClient) -> str:
    r = client.post("/api/v1/studies/pilot/sessions", json={"consent": True})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def _urls_by_stimulus(session: Session, token: str) -> dict[int, str]:
    participant = session.scalar(select(Participant).where(Participant.token_hash == token_hash(token)))
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


def test_image_after_next_needs_no_query(client: TestClient, session: Session, storage: BlobStore) -> None:
    """The process remembers the key it just handed out in `next`: once the blob is cached too, serving the
    image issues no SQL at all, and still returns the right bytes with the same headers."""
    make_open_study(session, storage, n_main=6)
    token = _start(client)
    first = client.get(f"/api/v1/sessions/{token}/next").json()
    assert client.get(first["image_url"]).status_code == 200  # fills the blob cache
    statements: list[str] = []
    engine = client.app.state.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731  (conn, cursor, statement, ...)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        again = client.get(first["image_url"])
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert statements == []
    key = first["image_url"].rsplit("/", 1)[1]
    sha = session.scalar(select(Stimulus.sha256).join(Trial).where(Trial.media_key == key))
    assert again.status_code == 200 and again.content == storage.get(sha)
    assert again.headers["cache-control"] == "private, no-store" and "content-length" not in again.headers


def test_media_cache_forgets_expired_keys_and_bounds_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("backend.services.media.time.monotonic", lambda: now[0])
    cache = MediaCache(max_keys=2, key_ttl_s=10, max_bytes=10, max_blob_bytes=6)
    cache.remember("k1", "a")
    cache.keep("a", b"12345")
    assert cache.image("k1") == b"12345"
    assert cache.image("unknown") is None
    now[0] += 11
    assert cache.image("k1") is None  # expired: looked up in the database again
    cache.remember("k1", "a")
    cache.remember("k2", "a")
    cache.remember("k3", "a")  # over max_keys: the least recently used key goes
    assert cache.image("k1") is None and cache.image("k3") == b"12345"
    cache.keep("b", b"1234567")  # over max_blob_bytes: not kept
    cache.remember("kb", "b")
    assert cache.image("kb") is None
    cache.keep("c", b"123456")  # 5 + 6 > max_bytes: the least recently used blob ("a") goes
    cache.remember("kc", "c")
    assert cache.image("kc") == b"123456" and cache.image("k3") is None


def test_image_of_a_key_this_process_did_not_hand_out_is_looked_up(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    """As when a browser fetches the image over another connection, from another process: the key is looked
    up in the database, and the blob's bytes come from the cache when this process has them."""
    make_open_study(session, storage, n_main=6)
    token = _start(client)
    url = client.get(f"/api/v1/sessions/{token}/next").json()["image_url"]
    key = url.rsplit("/", 1)[1]
    sha = session.scalar(select(Stimulus.sha256).join(Trial).where(Trial.media_key == key))
    data = storage.get(sha)
    other = MediaCache()  # this process never answered that `next`, but has served the same stimulus before
    other.keep(sha, data)
    client.app.state.media_cache = other
    storage.path(sha).unlink()  # so the bytes can only come from the cache
    r = client.get(url)
    assert r.status_code == 200 and r.content == data
    assert other.image(key) == data  # remembered now
