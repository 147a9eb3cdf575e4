"""The blob store full (a 256 KiB tmpfs filled to the last byte: ENOSPC) or read-only (a read-only bind mount:
EROFS, which root cannot override, unlike a chmod): writes answer 503 with a message that says what is wrong,
no row points at a missing blob, and what needs no new blob keeps working.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.auth import create_token
from backend.models import Annotation, Dataset, Image, Response, Stimulus
from backend.settings import Settings
from backend.storage import BlobStore
from tests.backend.factories import make_open_study, mask_png, png_bytes
from tests.backend.research_factories import zip_bytes

pytestmark = pytest.mark.faults


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


@pytest.fixture(params=["full", "read-only"])
def broken_store(request: pytest.FixtureRequest, root: None, settings: Settings) -> Iterator[str]:
    """The app's blob directory on a tmpfs of its own; the test seeds it, then calls `break_it()`."""
    blobs = settings.data_dir / "blobs"
    blobs.mkdir(parents=True)
    try:
        _mount("-t", "tmpfs", "-o", "size=256k", "sipat-test-blobs", str(blobs))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        from tests.reliability.faultkit import need

        need(False, f"cannot mount a tmpfs here ({exc}); the blob-store fault tests need root and mount")
    try:
        yield request.param
    finally:
        _umount(blobs)
        _umount(blobs)  # the read-only bind mount sits on top of the tmpfs


def break_it(kind: str, blobs: Path) -> str:
    """Make the store fail; returns the phrase its error message must contain."""
    if kind == "full":
        with open(blobs / "filler", "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 512)
            except OSError:  # ENOSPC: not one more byte fits
                pass
        return "disk is full"
    _mount("--bind", str(blobs), str(blobs))
    _mount("-o", "remount,ro,bind", str(blobs))
    return "read-only"


def _count(session: Session, model: type) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


def _no_dangling_rows(session: Session, storage: BlobStore) -> None:
    session.expire_all()
    for sha in [*session.scalars(select(Annotation.mask_sha256)), *session.scalars(select(Stimulus.sha256))]:
        assert storage.exists(sha), f"a row points at the missing blob {sha}"
    for sha in session.scalars(select(Image.sha256)):
        assert storage.exists(sha), f"an image row points at the missing blob {sha}"


def test_writes_fail_clearly_and_leave_no_dangling_rows(
    broken_store: str, client: TestClient, session: Session, storage: BlobStore, settings: Settings
) -> None:
    make_open_study(session, storage, n_practice=0, n_catch=0, n_main=1)
    token = client.post("/api/v1/studies/pilot/sessions", json={"consent": True}).json()["token"]
    first = client.get(f"/api/v1/sessions/{token}/next").json()
    phrase = break_it(broken_store, settings.data_dir / "blobs")

    # A judgment needs no blob: it is still stored; the image it shows is still served.
    assert client.get(first["image_url"]).status_code == 200
    body = {"judgment": "clean", "confidence": 2, "rt_ms": 400}
    r = client.post(f"/api/v1/sessions/{token}/trials/{first['trial_id']}/response", json=body)
    assert r.status_code == 201, r.text
    assert _count(session, Response) == 1

    # A painted mask is a new blob: 503 with the reason, and no annotation row.
    trial = client.get(f"/api/v1/sessions/{token}/next").json()
    url = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/annotation"
    mask = base64.b64encode(mask_png(fill=200)).decode()
    r = client.post(url, json={"mask_png": mask, "duration_ms": 1200})
    assert r.status_code == 503 and phrase in r.json()["detail"] and "blob store" in r.json()["detail"], r.text
    assert _count(session, Annotation) == 0

    # A dataset upload: 503, no dataset or image rows.
    user_token = create_token(session, _researcher(session))
    session.commit()
    datasets, images = _count(session, Dataset), _count(session, Image)
    archive = zip_bytes({f"{c}/{i}.png": png_bytes(16, 16, seed=100 + 10 * k + i, noise=0.8)
                         for k, c in enumerate("xy") for i in range(3)})  # fmt: skip
    r = client.post(
        "/api/v1/datasets",
        files={"file": ("new.zip", archive, "application/zip")},
        headers={"Authorization": f"Bearer {user_token}"},
    )
    assert r.status_code == 503 and phrase in r.json()["detail"], r.text
    assert (_count(session, Dataset), _count(session, Image)) == (datasets, images)
    _no_dangling_rows(session, storage)

    # The participant can retry the same mask once the store is fixed; the session then completes.
    if broken_store == "full":
        (settings.data_dir / "blobs" / "filler").unlink()
    else:
        _umount(settings.data_dir / "blobs")  # drop the read-only bind mount
    r = client.post(url, json={"mask_png": mask, "duration_ms": 1200})
    assert r.status_code == 201, r.text
    assert client.get(f"/api/v1/sessions/{token}/next").json()["done"] is True
    _no_dangling_rows(session, storage)


def _researcher(session: Session):
    from tests.backend.factories import make_user

    return make_user(session, "researcher@example.org", admin=False)
