"""Blob downloads (images, salience maps, masks, stimuli, checkpoints), written once for the research API and the
dashboard.

From a local store: the blob's file with `FileResponse` (chunked reads, Content-Length, range requests). From
an S3 store: the object's body streamed in 1 MiB chunks with its Content-Length and one byte range on request
(`backend.files.blobstream`). Either
way the media type is read from the blob's first bytes, and a missing blob is known before the status line
goes out. Only researchers reach these routes (bearer token, or the dashboard's session).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import FileResponse, Response

from backend.files.blobstream import BlobStreamResponse
from backend.services.media import media_type
from backend.storage import BlobNotFoundError, BlobStore

_BINARY = {"schema": {"type": "string", "format": "binary"}}
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")
#: Blobs never change under their name; a URL naming a fixed row can be cached.
IMMUTABLE = "private, max-age=86400, immutable"
#: URLs that may come to name another blob (e.g. the newest salience map of an image).
REVALIDATE = "private, no-cache"


def file_responses(*media_types: str, description: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entry of a download: 200 with these media types as binary strings."""
    return {200: {"content": {mt: _BINARY for mt in media_types}, "description": description}}


def blob_file(
    storage: BlobStore, sha256: str, *, filename: str | None = None, kind: str | None = None, cache: str = IMMUTABLE
) -> Response:
    """The blob `sha256` as a download; `kind` forces the media type (else sniffed from the bytes)."""
    headers = {"Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
    disposition = "attachment" if filename else "inline"
    path = storage.local_path(sha256)
    if path is None:
        return _streamed(storage, sha256, kind=kind, filename=filename, disposition=disposition, headers=headers)
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        raise BlobNotFoundError(f"blob {sha256} is missing from the store at {storage.location}") from None
    return FileResponse(
        path,
        media_type=kind or media_type(head),
        filename=filename,
        content_disposition_type=disposition,
        headers=headers,
    )


def _streamed(
    storage: BlobStore,
    sha256: str,
    *,
    kind: str | None,
    filename: str | None,
    disposition: str,
    headers: dict[str, str],
) -> BlobStreamResponse:
    """A blob of a remote store; its existence, size and first bytes known before the answer starts."""
    size = storage.size(sha256)  # BlobNotFoundError here: a clean error answer
    with storage.open_range(sha256, 0, min(15, size - 1)) as fh:
        head = fh.read(16)
    if filename:
        headers = {**headers, "Content-Disposition": f'{disposition}; filename="{filename}"'}
    return BlobStreamResponse(storage, sha256, size=size, media_type=kind or media_type(head), headers=headers)
