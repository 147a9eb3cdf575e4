"""The API on either blob store, end to end: the local directory and an S3 bucket of a real SeaweedFS server
(`tests/s3kit.py`), chosen by the settings as in a deployment (`SIPAT_BLOB_URL=s3://...`).

A participant's session (stimuli served from the store, masks written to it before their rows), the research
API's streamed downloads, a blob gone missing (the same clear answer on both stores, never a 500) and a
withdrawal that deletes the participant's mask blobs from the store.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth import create_token
from backend.models import Annotation, Participant, Stimulus, TrainedModel, Trial
from backend.services.media import MediaCache
from backend.settings import Settings
from backend.storage import BlobStore, LocalBlobStore
from backend.storage_s3 import S3BlobStore
from tests.backend.factories import make_dataset, make_open_study, make_user
from tests.backend.fixtures import TEST_SECRET
from tests.backend.research_factories import finish_session, start_session
from tests.s3kit import S3Server


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The usual test settings, with the blobs in a fresh prefix of the SeaweedFS bucket for 's3'."""
    if request.param == "local":
        return settings
    server: S3Server = request.getfixturevalue("s3_server")
    return Settings(
        database_url=settings.database_url,
        data_dir=settings.data_dir,
        secret_key=TEST_SECRET,
        env="development",
        blob_url=f"s3://{server.bucket}/t-{secrets.token_hex(6)}",
        s3_endpoint_url=server.endpoint_url,
        s3_access_key_id=server.access_key_id,
        s3_secret_access_key=server.secret_access_key,
        s3_region="us-east-1",
    )


@pytest.fixture
def storage(app: FastAPI) -> BlobStore:
    """The app's own store: the test seeds through it what the app then reads."""
    return app.state.storage


def _kind(storage: BlobStore, settings: Settings) -> str:
    if isinstance(storage, S3BlobStore):
        assert not (settings.data_dir / "blobs").exists()  # nothing went to the local directory
        return "s3"
    assert isinstance(storage, LocalBlobStore)
    return "local"


def _bearer(session: Session, *, admin: bool = True) -> dict[str, str]:
    """A token; an administrator's by default: the rows seeded here have no owner (`backend.services.ownership`)."""
    token = create_token(session, make_user(session, f"r{secrets.token_hex(3)}@example.org", admin=admin))
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_a_participant_session(client: TestClient, session: Session, storage: BlobStore, settings: Settings) -> None:
    """Stimuli come from the store (the image route, and the size of an annotation trial read from the image's
    header); the masks go to the store, each before the row that names it."""
    make_open_study(session, storage)
    token = start_session(client, "pilot").json()["token"]
    trial = client.get(f"/api/v1/sessions/{token}/next").json()
    client.app.state.media_cache = MediaCache()  # the image must come from the store, not this process's cache
    r = client.get(trial["image_url"])
    key = trial["image_url"].rsplit("/", 1)[1]
    sha = session.scalar(select(Stimulus.sha256).join(Trial).where(Trial.media_key == key))
    assert r.status_code == 200 and r.content == storage.get(sha) and r.headers["content-type"] == "image/png"

    assert finish_session(client, token, mask_fill=255) > 0
    masks = session.scalars(select(Annotation.mask_sha256)).all()
    assert masks and all(storage.exists(m) for m in masks)
    headers = _bearer(session)
    r = client.get(f"/api/v1/annotations/{session.scalar(select(Annotation.id))}/mask", headers=headers)
    assert r.status_code == 200 and r.content == storage.get(masks[0]) and r.headers["content-type"] == "image/png"
    _kind(storage, settings)


def test_research_downloads_are_streamed(
    client: TestClient, session: Session, storage: BlobStore, settings: Settings
) -> None:
    dataset = make_dataset(session, storage)
    checkpoint = secrets.token_bytes(3 * 1024 * 1024 + 11)  # several 1 MiB chunks
    model = TrainedModel(
        name="m", arch="small_cnn", method="sip_at", dataset_id=dataset.id, checkpoint_sha256=storage.put(checkpoint)
    )
    session.add(model)
    session.commit()
    headers = _bearer(session)
    with client.stream("GET", f"/api/v1/models/{model.id}/checkpoint", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(checkpoint))
        assert r.headers["content-type"] == "application/octet-stream" and r.headers["accept-ranges"] == "bytes"
        assert f'filename="model-{model.id}.pt"' in r.headers["content-disposition"]
        chunks = list(r.iter_raw())
    assert b"".join(chunks) == checkpoint
    image = dataset.images[0]
    r = client.get(f"/api/v1/images/{image.id}/file", headers=headers)
    assert r.status_code == 200 and r.content == storage.get(image.sha256)
    assert r.headers["content-type"] == "image/png" and r.headers["cache-control"].endswith("immutable")
    assert r.headers["x-content-type-options"] == "nosniff"
    _kind(storage, settings)


@pytest.mark.parametrize(
    ("header", "status", "part"),
    [
        ("bytes=10-19", 206, (10, 19)),
        ("bytes=3145720-", 206, (3145720, 3145738)),  # to the end
        ("bytes=-5", 206, (3145734, 3145738)),  # the last 5
        ("bytes=0-99999999", 206, (0, 3145738)),  # clipped to the end
        ("bytes=3145739-", 416, None),  # starts past the end
    ],
)
def test_a_byte_range_of_a_download(
    client: TestClient,
    session: Session,
    storage: BlobStore,
    settings: Settings,
    header: str,
    status: int,
    part: tuple[int, int] | None,
) -> None:
    """One range, as a resumed download asks: the same answer from both stores (`FileResponse` locally,
    `backend.files.blobstream` for S3)."""
    checkpoint = secrets.token_bytes(3 * 1024 * 1024 + 11)  # 3145739 bytes
    dataset = make_dataset(session, storage, n_images=1)
    model = TrainedModel(
        name="m", arch="small_cnn", method="sip_at", dataset_id=dataset.id, checkpoint_sha256=storage.put(checkpoint)
    )
    session.add(model)
    session.commit()
    r = client.get(f"/api/v1/models/{model.id}/checkpoint", headers={**_bearer(session), "Range": header})
    assert r.status_code == status, r.text
    if part is None:
        assert r.headers["content-range"] == f"bytes */{len(checkpoint)}"
    else:
        first, last = part
        assert r.content == checkpoint[first : last + 1]
        assert r.headers["content-range"] == f"bytes {first}-{last}/{len(checkpoint)}"
        assert r.headers["content-length"] == str(last - first + 1)
        assert r.headers["accept-ranges"] == "bytes"
    _kind(storage, settings)


def test_a_missing_blob_is_a_clear_503_on_both_stores(
    client: TestClient, session: Session, storage: BlobStore, settings: Settings
) -> None:
    """A row whose blob is gone (deleted by hand, a restored backup): the same answer from both stores, saying
    which blob and where; never a 500, and the rest keeps working."""
    make_open_study(session, storage)
    token = start_session(client, "pilot").json()["token"]
    trial = client.get(f"/api/v1/sessions/{token}/next").json()
    key = trial["image_url"].rsplit("/", 1)[1]
    stimulus = session.scalar(select(Stimulus).join(Trial).where(Trial.media_key == key))
    storage.delete(stimulus.sha256)
    client.app.state.media_cache = MediaCache()
    for url, headers in ((trial["image_url"], {}), (f"/api/v1/stimuli/{stimulus.id}/file", _bearer(session))):
        r = client.get(url, headers=headers)
        assert r.status_code == 503, (url, r.status_code, r.text)
        assert stimulus.sha256 in r.json()["detail"] and storage.location in r.json()["detail"]
    other = session.scalar(select(Stimulus).where(Stimulus.sha256 != stimulus.sha256))
    assert client.get(f"/api/v1/stimuli/{other.id}/file", headers=_bearer(session)).status_code == 200
    _kind(storage, settings)


def test_withdrawal_deletes_the_mask_blobs(
    client: TestClient, session: Session, storage: BlobStore, settings: Settings
) -> None:
    study = make_open_study(session, storage)
    finish_session(client, start_session(client, "pilot").json()["token"], mask_fill=255)
    finish_session(client, start_session(client, "pilot").json()["token"], mask_fill=128)
    first, second = session.scalars(select(Participant).order_by(Participant.id)).all()
    masks = {
        p.id: set(session.scalars(select(Annotation.mask_sha256).join(Trial).where(Trial.participant_id == p.id)))
        for p in (first, second)
    }
    assert masks[first.id] and masks[second.id] and not masks[first.id] & masks[second.id]
    r = client.delete(f"/api/v1/studies/{study.id}/participants/{first.id}", headers=_bearer(session, admin=True))
    assert r.status_code == 200, r.text
    assert not any(storage.exists(m) for m in masks[first.id])
    assert all(storage.exists(m) for m in masks[second.id])
    _kind(storage, settings)


def test_blobs_of_the_s3_store_are_objects_of_the_bucket(
    request: pytest.FixtureRequest, storage: BlobStore, settings: Settings, tmp_path: Path
) -> None:
    """What another host sees: a store opened from the same settings elsewhere (here: a fresh one) reads the
    blobs this one wrote; for S3 they are objects under the configured prefix, nothing on this disk."""
    from backend.blobstores import open_blob_store

    sha = storage.put(b"shared between hosts")
    elsewhere = open_blob_store(settings)
    assert elsewhere is not storage and elsewhere.get(sha) == b"shared between hosts"
    if _kind(storage, settings) == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        prefix = settings.blob_url.removeprefix(f"s3://{server.bucket}/")
        assert server.keys(prefix + "/") == [f"{prefix}/{sha[:2]}/{sha[2:4]}/{sha}"]
