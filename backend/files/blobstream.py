"""A blob of a remote store (S3) as an HTTP answer: streamed in 1 MiB chunks, with its length, and with one byte
range when the client asks for it (`Range: bytes=a-b`, `a-`, `-n`), as `FileResponse` serves a local blob.

Several ranges in one request get the whole blob (200), which RFC 9110 allows; a range that starts past the
end gets 416 with `Content-Range: bytes */<size>`. The object is read when the answer is sent, in the thread
pool (boto3 blocks); the caller checks beforehand that it exists (`size`), so a missing blob is a clean error
answer, not a connection cut after the status line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backend.storage import BlobStore

_CHUNK = 1024 * 1024
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def single_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The inclusive (first, last) byte of a one-range `Range` header; None to send the whole blob (no header,
    several ranges, another unit, garbage: all ignorable); "unsatisfiable" when it starts past the end."""
    match = _RANGE.match(header or "")
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last n bytes
        n = int(last)
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else "unsatisfiable"
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = min(int(last), size - 1) if last else size - 1
    return None if end < start else (start, end)


class BlobStreamResponse(Response):
    def __init__(self, storage: BlobStore, sha256: str, *, size: int, media_type: str, headers: dict[str, str]) -> None:
        self.storage, self.sha256, self.size = storage, sha256, size
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers({**headers, "Accept-Ranges": "bytes", "Content-Length": str(size)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = single_range(Headers(scope=scope).get("range"), self.size)
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        if wanted == "unsatisfiable":
            headers += [(b"content-range", f"bytes */{self.size}".encode()), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 416, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        first, last = wanted if isinstance(wanted, tuple) else (0, self.size - 1)
        status = 206 if isinstance(wanted, tuple) else 200
        if status == 206:
            headers.append((b"content-range", f"bytes {first}-{last}/{self.size}".encode()))
        headers.append((b"content-length", str(last - first + 1).encode()))
        fh = await run_in_threadpool(self.storage.open_range, self.sha256, first, last)
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            async for chunk in iterate_in_threadpool(_chunks(fh)):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            fh.close()


def _chunks(fh: BinaryIO) -> Iterator[bytes]:
    while data := fh.read(_CHUNK):
        yield data
