"""Stimulus images served under per-trial random keys, so that a URL tells nothing about the stimulus."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Stimulus, Trial
from backend.services.errors import NotFoundError

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)


def stimulus_for_key(session: Session, media_key: str) -> Stimulus:
    """The stimulus of the trial whose media key is `media_key` (unguessable, bound to one participant)."""
    stimulus = session.scalar(
        select(Stimulus).join(Trial, Trial.stimulus_id == Stimulus.id).where(Trial.media_key == media_key)
    )
    if stimulus is None:
        raise NotFoundError("no such image")
    return stimulus


def media_type(head: bytes) -> str:
    """The MIME type of an image from its first (>= 12) bytes; unknown formats as opaque bytes."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    return "application/octet-stream"


class MediaCache:
    """What a process recently served: media key -> blob sha256, and the bytes of small blobs.

    The image request follows its trial's `next` answer, often on the same keep-alive connection and so in the
    process that answered `next` and remembered the key: then it needs no database query and no thread
    hand-off (a third of the participant requests under `benchmarks/load/`, whose clients keep one
    connection each). A browser may send it on another connection, to another process: a miss, answered by
    the lookup. Blobs are content-addressed and never change, so their bytes can be kept; a key is
    trusted for `key_ttl_s` only (a trial's image is fetched seconds after its `next`), after which it is
    looked up again, so a deleted session's keys still serve their (non-personal) images for up to that long.
    Bounded: `max_keys` keys and `max_bytes` of blobs, least recently used evicted first; blobs over
    `max_blob_bytes` are not kept. Thread-safe (filled from the database threads, read from the event loop).
    """

    def __init__(
        self,
        *,
        max_keys: int = 16_384,
        key_ttl_s: float = 600.0,
        max_bytes: int = 32 * 1024 * 1024,
        max_blob_bytes: int = 1024 * 1024,
    ) -> None:
        self.max_keys, self.key_ttl_s = max_keys, key_ttl_s
        self.max_bytes, self.max_blob_bytes = max_bytes, max_blob_bytes
        self._keys: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def remember(self, media_key: str, sha256: str) -> None:
        with self._lock:
            self._keys[media_key] = (sha256, time.monotonic() + self.key_ttl_s)
            self._keys.move_to_end(media_key)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)

    def keep(self, sha256: str, data: bytes) -> None:
        if len(data) > self.max_blob_bytes:
            return
        with self._lock:
            if sha256 in self._blobs:
                self._blobs.move_to_end(sha256)
                return
            self._blobs[sha256] = data
            self._bytes += len(data)
            while self._bytes > self.max_bytes:
                self._bytes -= len(self._blobs.popitem(last=False)[1])

    def blob(self, sha256: str) -> bytes | None:
        with self._lock:
            return self._blobs.get(sha256)

    def image(self, media_key: str) -> bytes | None:
        """The image of `media_key` if both its key (unexpired) and its bytes are here, else None."""
        with self._lock:
            entry = self._keys.get(media_key)
            if entry is None:
                return None
            sha256, expires = entry
            if time.monotonic() > expires:
                del self._keys[media_key]
                return None
            data = self._blobs.get(sha256)
            if data is not None:
                self._blobs.move_to_end(sha256)
            return data
