"""Blob downloads of the research API (images, salience maps, masks, stimuli, checkpoints), written once.

Served from the blob store's file with `FileResponse` (chunked reads, Content-Length, range requests), with
the media type read from the file's first bytes. Only researchers reach these routes (bearer token).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import FileResponse

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
) -> FileResponse:
    """The blob `sha256` as a download; `kind` forces the media type (else sniffed from the bytes)."""
    path = storage.path(sha256)
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        raise BlobNotFoundError(f"blob {sha256} is missing from the store at {storage.root}") from None
    return FileResponse(
        path,
        media_type=kind or media_type(head),
        filename=filename,
        content_disposition_type="attachment" if filename else "inline",
        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"},
    )
