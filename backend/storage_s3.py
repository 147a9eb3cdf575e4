"""The blob store in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS, Ceph RGW ...), for an API and workers
on different hosts that share no directory.

Blob `sha` is the object `<prefix>/ab/cd/<sha>` (the local store's layout under a key prefix). The contract
of `backend.storage.BlobStore` holds because S3 gives it: a PUT is atomic (a reader sees the whole object or
none) and answers only once the object is stored durably, so "blob first, then the row" still means no row
names a missing blob. Writing the same bytes twice is skipped after a HEAD (names are content hashes). Reads
are streamed from the GET's body, in chunks; nothing is read whole unless the caller asks (`get`).

Errors of the service become `StorageError` with the fix in the message (unreachable endpoint, wrong
credentials, missing bucket): the API answers those 503 like a full disk. A missing object is a
`BlobNotFoundError`, as a missing file is locally.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backend.storage import BlobNotFoundError, BlobStore, StorageError, check_sha256, sha256_hex

_CHUNK = 1024 * 1024
#: Large uploads (checkpoints) in 8 MiB parts, 4 at a time: at most ~32 MiB of a blob in memory at once.
_TRANSFER = TransferConfig(multipart_threshold=8 * _CHUNK, multipart_chunksize=8 * _CHUNK, max_concurrency=4)
_TRANSFER.max_in_memory_upload_chunks = 4  # s3transfer's knob (default 10 parts read ahead); boto3 does not pass it
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_DENIED = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)


@dataclass(frozen=True)
class S3Location:
    """Where the blobs are and how to reach them; credentials None means boto3's own chain (AWS_* variables,
    ~/.aws, an instance role)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: str = "auto"

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValueError("an S3 blob store needs a bucket: SIPAT_BLOB_URL=s3://<bucket>/<prefix>")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both SIPAT_S3_ACCESS_KEY_ID and SIPAT_S3_SECRET_ACCESS_KEY, or neither")

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


class S3BlobStore(BlobStore):
    """Blobs as objects of one bucket (which must exist). Thread-safe: one boto3 client, shared by the threads
    of a process (up to `max_connections` at once: the API's thread pool has 40); a forked process builds its
    own store (the worker's `Runtime` does)."""

    def __init__(self, where: S3Location, *, max_connections: int = 40) -> None:
        self.where = where
        self.location = where.url
        style = where.addressing_style
        if style == "auto" and where.endpoint_url:  # MinIO, SeaweedFS ...: no per-bucket host names
            style = "path"
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=where.endpoint_url or None,
            region_name=where.region or None,
            aws_access_key_id=where.access_key_id,
            aws_secret_access_key=where.secret_access_key,
            config=Config(
                s3={"addressing_style": style},
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=max_connections,
            ),
        )

    def key(self, sha256: str) -> str:
        """The object key of blob `sha256`; rejects anything but 64 hex digits."""
        check_sha256(sha256)
        name = f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
        return f"{self.where.prefix}/{name}" if self.where.prefix else name

    def exists(self, sha256: str) -> bool:
        try:
            self.size(sha256)
        except BlobNotFoundError:
            return False
        return True

    def size(self, sha256: str) -> int:
        key = self.key(sha256)
        with self._errors(sha256, "read"):
            return int(self.client.head_object(Bucket=self.where.bucket, Key=key)["ContentLength"])

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        if not self.exists(digest):
            with self._errors(digest, "write"):
                self.client.put_object(Bucket=self.where.bucket, Key=self.key(digest), Body=data)
        return digest

    def put_file(self, fileobj: BinaryIO) -> str:
        """Spooled to a temporary file while hashing (the key is the hash), then sent by boto3's managed
        transfer (`_TRANSFER`: parts of 8 MiB above 8 MiB): memory stays bounded whatever the size."""
        hasher = hashlib.sha256()
        with tempfile.TemporaryFile(prefix="sipat-blob-") as spool:
            while chunk := fileobj.read(_CHUNK):
                hasher.update(chunk)
                spool.write(chunk)
            digest = hasher.hexdigest()
            if not self.exists(digest):
                spool.seek(0)
                with self._errors(digest, "write"):
                    self.client.upload_fileobj(spool, self.where.bucket, self.key(digest), Config=_TRANSFER)
        return digest

    def open(self, sha256: str) -> BinaryIO:
        key = self.key(sha256)
        with self._errors(sha256, "read"):
            body = self.client.get_object(Bucket=self.where.bucket, Key=key)["Body"]
        return io.BufferedReader(_Body(body, self, sha256), buffer_size=_CHUNK)

    def open_range(self, sha256: str, first: int, last: int) -> BinaryIO:
        key = self.key(sha256)
        if last < first:
            return io.BytesIO(b"")
        with self._errors(sha256, "read"):
            body = self.client.get_object(Bucket=self.where.bucket, Key=key, Range=f"bytes={first}-{last}")["Body"]
        return io.BufferedReader(_Body(body, self, sha256), buffer_size=_CHUNK)

    def delete(self, sha256: str) -> None:
        key = self.key(sha256)
        with self._errors(sha256, "delete"):
            self.client.delete_object(Bucket=self.where.bucket, Key=key)

    def check_writable(self) -> None:
        """Put and delete a small probe object beside the blobs (the readiness probe): this proves the
        credentials, the bucket and the write permission at once, which a HEAD on the bucket does not."""
        name = f".probe-{secrets.token_hex(8)}"
        key = f"{self.where.prefix}/{name}" if self.where.prefix else name
        with self._errors(name, "write"):
            self.client.put_object(Bucket=self.where.bucket, Key=key, Body=b"ok")
        with self._errors(name, "delete"):
            self.client.delete_object(Bucket=self.where.bucket, Key=key)

    @contextmanager
    def as_local_file(self, sha256: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="sipat-blob-") as tmp:
            path = Path(tmp) / sha256
            with self.open(sha256) as src, open(path, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            yield path

    @contextmanager
    def _errors(self, sha256: str, doing: str) -> Iterator[None]:
        """The service's answers as `BlobNotFoundError` / `StorageError` naming the fix."""
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                raise BlobNotFoundError(f"blob {sha256} is not in the store at {self.location}") from None
            raise StorageError(f"cannot {doing} blob {sha256} at {self.location}: {_hint(code, exc)}") from exc
        except BotoCoreError as exc:  # no connection, timeouts, no credentials found
            raise StorageError(
                f"cannot {doing} blob {sha256} at {self.location}: {exc}; check SIPAT_S3_ENDPOINT_URL and that "
                "the S3 service is up and reachable from this host"
            ) from exc


def _hint(code: str, exc: ClientError) -> str:
    if code == "NoSuchBucket":
        return "the bucket does not exist; create it or correct SIPAT_BLOB_URL"
    if code in _DENIED:
        return (
            f"access denied ({code}); check SIPAT_S3_ACCESS_KEY_ID / SIPAT_S3_SECRET_ACCESS_KEY (or the AWS_* "
            "credentials) and that they may read and write the bucket"
        )
    return str(exc)


class _Body(io.RawIOBase):
    """A GET's streaming body as a raw binary stream, its read errors as `StorageError`."""

    def __init__(self, body: Any, store: S3BlobStore, sha256: str) -> None:
        self._body, self._store, self._sha256 = body, store, sha256

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with self._store._errors(self._sha256, "read"):
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
