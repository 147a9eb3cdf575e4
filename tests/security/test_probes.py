"""The probes of a hostile visitor (issue 19), each sent as it was, each answered 4xx:

* a request body streamed without Content-Length is cut at its route's limit: the middleware stops reading
  (counted at the ASGI level: the number of chunks the app pulled is bounded) and answers 413, to a public
  route and to the annotation route whose own check only read Content-Length;
* ids past the 64-bit integer range and NUL characters in a path answer 4xx, not 500, on both databases.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.bodylimit import BodyLimitMiddleware, BodyLimits
from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, SIZE, make_open_study

CHUNK = 64 * 1024


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * CHUNK
        sent += CHUNK


def _call(app: Any, scope: dict[str, Any], chunks: Iterator[bytes]) -> tuple[int, int]:
    """Run `app` on one request whose body comes from `chunks`; (status, chunks the app pulled)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # A thread of its own: a browser test earlier in this worker leaves Playwright's event loop running here.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    return sent[0]["status"], pulled


def _scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or [], "query_string": b""}


async def _reads_everything(scope: Any, receive: Any, send: Any) -> None:
    """An app that reads the whole body before answering (as FastAPI's body parsing does)."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _catches_everything(scope: Any, receive: Any, send: Any) -> None:
    """An app that swallows the refusal and answers 422: the client must still see the 413."""
    try:
        while (await receive()).get("more_body"):
            pass
    except Exception:
        pass
    await send({"type": "http.response.start", "status": 422, "headers": []})
    await send({"type": "http.response.body", "body": b"bad"})


@pytest.mark.parametrize("inner", [_reads_everything, _catches_everything], ids=["reads", "swallows"])
def test_an_endless_streamed_body_is_cut_at_the_limit(inner: Any) -> None:
    limit = 10 * CHUNK
    app = BodyLimitMiddleware(inner, limits=BodyLimits(default=limit))
    status, pulled = _call(app, _scope("/anything"), _chunks(1 << 40))  # a terabyte, if it were all read
    assert status == 413
    assert pulled == limit // CHUNK + 1  # the chunk that passed the limit, not one more


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    app = BodyLimitMiddleware(_reads_everything, limits=BodyLimits(default=CHUNK))
    status, pulled = _call(app, _scope("/x", [(b"content-length", str(CHUNK + 1).encode())]), _chunks(1 << 40))
    assert (status, pulled) == (413, 0)


def test_route_limits_apply_to_their_route_only() -> None:
    limits = BodyLimits(default=CHUNK, routes=(("POST", re.compile("/upload"), 4 * CHUNK),))
    assert limits.limit_for("POST", "/upload") == 4 * CHUNK
    assert limits.limit_for("POST", "/upload/more") == CHUNK
    assert limits.limit_for("GET", "/upload") == CHUNK
    app = BodyLimitMiddleware(_reads_everything, limits=limits)
    assert _call(app, _scope("/upload"), _chunks(3 * CHUNK))[0] == 200


def test_a_chunked_body_to_a_public_route_is_refused(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage)
    r = client.post(
        "/api/v1/studies/pilot/sessions",
        content=_chunks(4 << 20),  # a generator: sent chunked, no Content-Length
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and "larger than" in r.json()["detail"], r.text[:300]


def test_a_chunked_annotation_over_its_limit_is_refused(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    make_open_study(session, storage)
    token = client.post("/api/v1/studies/pilot/sessions", json={"consent": True}).json()["token"]
    trial = client.get(f"/api/v1/sessions/{token}/next").json()["trial_id"]
    r = client.post(
        f"/api/v1/sessions/{token}/trials/{trial}/annotation",
        content=_chunks(16 << 20),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413, r.text[:300]


def test_the_login_form_is_bounded_too(client: TestClient) -> None:
    r = client.post(
        "/admin/login",
        content=_chunks(4 << 20),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413


@BOTH_DATABASES
@pytest.mark.parametrize("value", [str(2**63), str(2**70), "-" + str(2**70)])
def test_ids_past_the_integer_range_are_4xx(api: TestClient, value: str) -> None:
    for path in (f"/api/v1/studies/{value}", f"/api/v1/datasets/{value}", f"/api/v1/jobs/{value}"):
        r = api.get(path)
        assert r.status_code in (404, 422), (path, r.status_code, r.text[:200])


@BOTH_DATABASES
def test_a_nul_in_a_path_is_4xx(client: TestClient, session: Session, storage: BlobStore, app: FastAPI) -> None:
    make_open_study(session, storage)
    for path in ("/api/v1/studies/pi%00lot", "/api/v1/sessions/abc%00def/next", "/s/pi%00lot"):
        r = client.get(path)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])


def test_a_draft_study_is_not_readable_through_the_public_api(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage, slug="secret")
    study.status = "draft"
    study.config = {**study.config, "consent_text": "UNRELEASED CONSENT"}
    session.commit()
    r = client.get("/api/v1/studies/secret")
    assert r.status_code == 404 and "UNRELEASED" not in r.text
    assert r.json()["detail"] == client.get("/api/v1/studies/nosuch").json()["detail"].replace("nosuch", "secret")
    study.status = "closed"
    session.commit()
    assert client.get("/api/v1/studies/secret").json()["status"] == "closed"  # a closed study still says so


def _png_with_chunk(kind: bytes, payload: bytes, size: tuple[int, int]) -> bytes:
    """A valid grayscale PNG of `size` with one extra ancillary chunk before its pixels."""

    def chunk(name: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + name + data + struct.pack(">I", zlib.crc32(name + data) & 0xFFFFFFFF)

    width, height = size
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\xff" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(kind, payload)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        (b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (8 << 20))),  # 8 MiB of text
        (b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * (8 << 20))),  # 8 MiB profile
    ],
    ids=["text", "icc"],
)
def test_a_mask_with_an_oversized_metadata_chunk_is_4xx(
    client: TestClient, session: Session, storage: BlobStore, kind: bytes, payload: bytes
) -> None:
    make_open_study(session, storage, n_practice=0, n_catch=0, n_main=1)
    token = client.post("/api/v1/studies/pilot/sessions", json={"consent": True}).json()["token"]
    first = client.get(f"/api/v1/sessions/{token}/next").json()
    body = {"judgment": "clean", "confidence": 2, "rt_ms": 400}
    assert client.post(f"/api/v1/sessions/{token}/trials/{first['trial_id']}/response", json=body).status_code == 201
    trial = client.get(f"/api/v1/sessions/{token}/next").json()
    mask = _png_with_chunk(kind, payload, SIZE)
    r = client.post(
        f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/annotation",
        files={"mask": ("mask.png", mask, "image/png")},
        data={"duration_ms": "1000"},
    )
    assert r.status_code == 422 and "chunk" in r.json()["detail"], r.text[:300]


def test_a_zip_bomb_with_honest_headers_is_refused_before_inflating(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's probe: a small zip whose members honestly declare hundreds of MiB (zeros compress ~1000:1)
    was inflated whole before it was refused. Now its declared sizes alone refuse it: no member is read."""
    import io
    import zipfile

    from backend.datasets import safezip as archive

    inflated: list[str] = []
    real_read = archive._Zip.read
    monkeypatch.setattr(
        archive._Zip, "read", lambda self, info, name: inflated.append(name) or real_read(self, info, name)
    )
    buf = io.BytesIO()
    zeros = b"\x00" * (32 << 20)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(8):  # 256 MiB declared, under the upload's own limits
            zf.writestr(f"a/{k}.png", zeros)
    assert len(buf.getvalue()) < 1 << 20
    r = api.post("/api/v1/datasets", files={"file": ("bomb.zip", buf.getvalue(), "application/zip")})
    assert r.status_code == 422 and "zip bomb" in r.json()["detail"], r.text[:300]
    assert inflated == []
