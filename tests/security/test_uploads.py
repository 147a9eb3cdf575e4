"""Bad uploads: each is a 4xx whose message names the problem, and nothing is half-stored (rows and blob files
are counted before and after).

Already covered elsewhere, not repeated here:
* `tests/backend/api/test_datasets_api.py`: a file that is not a zip, a `../` member, a truncated PNG member,
  a one-class archive (all via the API, rows and blobs counted), the zip over the size limit (declared and
  streamed without Content-Length);
* `tests/backend/datasets/test_archive_reader.py`: absolute paths, symlink members, declared sizes that lie
  (zip bomb), decompression-bomb image headers, unsupported formats (at the archive reader);
* `tests/backend/api/test_participant.py`: masks of the wrong size, RGB mode, not an image, JPEG, bad base64,
  huge strokes as JSON, an oversized body (413), negative / zero / infinite / out-of-range answers.

Here: the archive refusals that were only tested at the reader, now through the API (symlink, decompression
bomb, zip bomb); masks that are truncated, decompression bombs, 16-bit or palette PNGs, animated; NaN
times; strokes that are huge or nested too deep in the multipart form; non-finite client timestamps.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
import zlib
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Annotation, Dataset, Image, Response, SalienceMap
from backend.settings import Settings
from backend.storage import BlobStore
from tests.backend.factories import SIZE, make_open_study, mask_png, png_bytes
from tests.backend.research_factories import blob_files, zip_bytes

VALID = {f"{c}/{i}.png": png_bytes(seed=10 * k + i) for k, c in enumerate("ab") for i in range(2)}


def _png_header_only(width: int, height: int, mode_byte: int = 0, depth: int = 1) -> bytes:
    """A PNG that claims width x height pixels and holds a tiny IDAT: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, mode_byte, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def _symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in VALID.items():
            zf.writestr(name, data)
        info = zipfile.ZipInfo("a/link.png")
        info.external_attr = (0o120777 << 16) | 0x20  # S_IFLNK
        zf.writestr(info, "../../../../etc/passwd")
    return buf.getvalue()


def _zip_bomb() -> bytes:
    """A member whose header claims 100 bytes and whose deflate stream holds 64 MiB of zeros."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in VALID.items():
            zf.writestr(name, data)
        zf.writestr("a/zeros.png", b"\x00" * (64 << 20))
    data = bytearray(buf.getvalue())
    name = b"a/zeros.png"
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        at = 0
        while (at := data.find(signature, at)) != -1:
            name_len = struct.unpack_from("<H", data, at + (26 if signature == b"PK\x03\x04" else 28))[0]
            start = at + (30 if signature == b"PK\x03\x04" else 46)
            if data[start : start + name_len] == name:
                struct.pack_into("<I", data, at + size_offset, 100)
            at += 4
    return bytes(data)


def _count(session: Session, *tables: Any) -> tuple[int, ...]:
    session.expire_all()
    return tuple(session.scalar(select(func.count()).select_from(t)) or 0 for t in tables)


@pytest.mark.parametrize(
    ("archive", "fragment"),
    [
        (_symlink_zip, "symbolic link"),
        (lambda: zip_bytes({**VALID, "b/bomb.png": _png_header_only(100_000, 100_000)}), "b/bomb.png"),
        (lambda: zip_bytes({**VALID, "b/big.png": _png_header_only(7000, 7000)}), "7000x7000"),
        (_zip_bomb, "a/zeros.png"),
    ],
    ids=["symlink", "decompression-bomb", "over-pixel-limit", "zip-bomb"],
)
def test_bad_archives_through_the_api(
    api: TestClient, session: Session, settings: Settings, archive: Any, fragment: str
) -> None:
    tables = (Dataset, Image, SalienceMap)
    rows, blobs = _count(session, *tables), blob_files(settings.data_dir)
    r = api.post("/api/v1/datasets", files={"file": ("x.zip", archive(), "application/zip")})
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text[:500]
    assert _count(session, *tables) == rows and blob_files(settings.data_dir) == blobs


def _annotation_trial(client: TestClient, session: Session, storage: BlobStore) -> str:
    """URL of the annotation trial of a fresh session (its one detection trial answered)."""
    make_open_study(session, storage, n_practice=0, n_catch=0, n_main=1)
    token = client.post("/api/v1/studies/pilot/sessions", json={"consent": True}).json()["token"]
    first = client.get(f"/api/v1/sessions/{token}/next").json()
    body = {"judgment": "clean", "confidence": 2, "rt_ms": 400}
    assert client.post(f"/api/v1/sessions/{token}/trials/{first['trial_id']}/response", json=body).status_code == 201
    trial = client.get(f"/api/v1/sessions/{token}/next").json()
    assert trial["question"] == "annotate"
    return f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/annotation"


def _png(img: PILImage.Image, **save: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG", **save)
    return out.getvalue()


def _animated() -> bytes:
    frames = [PILImage.new("L", SIZE, v) for v in (0, 255)]
    return _png(frames[0], save_all=True, append_images=frames[1:])


BAD_MASKS = [
    (mask_png()[:-20], "truncated or corrupt"),
    (mask_png()[:40], "not a readable image"),
    (_png_header_only(100_000, 100_000), "decompression bomb"),
    (_png_header_only(*SIZE, mode_byte=0, depth=16), "mode I"),
    (_png(PILImage.new("P", SIZE)), "mode P"),
    (_png(PILImage.new("L", (SIZE[1], SIZE[0]))), "is 6x8 pixels"),
    (_animated(), "frames"),
    (b"", "not a readable image"),
    (b"GIF89a" + b"\x00" * 40, "not a readable image"),
]


@pytest.mark.parametrize(
    ("mask", "fragment"),
    BAD_MASKS,
    ids=["truncated", "header-only", "bomb", "16-bit", "palette", "transposed", "animated", "empty", "gif-junk"],
)
@pytest.mark.parametrize("transport", ["json", "multipart"])
def test_bad_masks(
    client: TestClient,
    session: Session,
    storage: BlobStore,
    settings: Settings,
    mask: bytes,
    fragment: str,
    transport: str,
) -> None:
    url = _annotation_trial(client, session, storage)
    blobs = blob_files(settings.data_dir)
    if transport == "json":
        r = client.post(url, json={"mask_png": base64.b64encode(mask).decode(), "duration_ms": 900})
    else:
        r = client.post(url, files={"mask": ("m.png", mask, "image/png")}, data={"duration_ms": "900"})
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text[:500]
    assert _count(session, Annotation) == (0,) and blob_files(settings.data_dir) == blobs


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("fields", "status", "fragment"),
    [
        ({"duration_ms": "NaN"}, 422, "duration_ms"),
        ({"duration_ms": "-5"}, 422, "duration_ms"),
        ({"duration_ms": "inf"}, 422, "duration_ms"),
        ({"duration_ms": "900", "strokes": "[1, 2"}, 422, "strokes"),
        ({"duration_ms": "900", "strokes": _nested(100_000)}, 422, "strokes"),
        ({"duration_ms": "900", "strokes": json.dumps([[i, i] for i in range(60_000)])}, 422, "strokes"),
        ({"duration_ms": "900", "strokes": "[NaN]"}, 422, "strokes"),
        ({"duration_ms": "900", "strokes": "x" * (5 << 20)}, 413, ""),
    ],
    ids=["nan", "negative", "inf", "bad-json", "deep-json", "huge", "nan-in-strokes", "over-part-limit"],
)
def test_bad_annotation_forms(
    client: TestClient,
    session: Session,
    storage: BlobStore,
    settings: Settings,
    fields: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    url = _annotation_trial(client, session, storage)
    blobs = blob_files(settings.data_dir)
    r = client.post(url, files={"mask": ("m.png", mask_png(), "image/png")}, data=fields)
    assert r.status_code == status and fragment in r.text, r.text[:500]
    assert _count(session, Annotation) == (0,) and blob_files(settings.data_dir) == blobs


@pytest.mark.parametrize(
    "raw",
    [
        '{"mask_png": "%s", "duration_ms": NaN}',
        '{"mask_png": "%s", "duration_ms": -1}',
        '{"mask_png": "%s", "duration_ms": 900, "strokes": ' + _nested(50_000) + "}",
    ],
    ids=["nan", "negative", "deep-json"],
)
def test_bad_annotation_json(
    client: TestClient, session: Session, storage: BlobStore, settings: Settings, raw: str
) -> None:
    url = _annotation_trial(client, session, storage)
    blobs = blob_files(settings.data_dir)
    body = raw.replace("%s", base64.b64encode(mask_png()).decode())
    r = client.post(url, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text[:500]
    assert _count(session, Annotation) == (0,) and blob_files(settings.data_dir) == blobs


@pytest.mark.parametrize(
    "raw",
    [
        '{"judgment": "clean", "confidence": 2, "rt_ms": NaN}',
        '{"judgment": "clean", "confidence": 2, "rt_ms": -Infinity}',
        '{"judgment": "clean", "confidence": 2, "rt_ms": 1e400}',
        '{"judgment": "clean", "confidence": 2, "rt_ms": 500, "client_timestamps": {"onset": NaN}}',
        '{"judgment": "clean", "confidence": 2.5, "rt_ms": 500}',
        '{"judgment": "clean", "confidence": 2, "rt_ms": "500ms"}',
        '{"judgment": "clean", "confidence": 2, "rt_ms": 500, "client_timestamps": ' + _nested(50_000) + "}",
        '{"judgment": "clean", "confidence": 2, "rt_ms": 500, "extra": 1}',
        '{"judgment": "clean", "confidence": 2, "rt_ms": 500',
    ],
    ids=["nan", "-inf", "overflow", "nan-timestamp", "fractional-confidence", "string", "deep", "extra", "cut"],
)
def test_bad_responses(client: TestClient, session: Session, storage: BlobStore, raw: str) -> None:
    make_open_study(session, storage)
    token = client.post("/api/v1/studies/pilot/sessions", json={"consent": True}).json()["token"]
    trial = client.get(f"/api/v1/sessions/{token}/next").json()
    url = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/response"
    r = client.post(url, content=raw, headers={"content-type": "application/json"})
    # FastAPI answers 400 "There was an error parsing the body" for JSON nested deeper than Python's recursion
    # limit (its parser raises RecursionError, not a decoding error); every other case is a 422 per field.
    assert r.status_code == (400 if raw.count("[") > 1000 else 422), r.text[:500]
    assert r.json()["detail"]  # says what is wrong
    assert _count(session, Response) == (0,)
