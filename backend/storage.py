"""Content-addressed blob store shared by the API and the workers: the contract, and the local directory.

A blob's name is the sha256 of its bytes, so writing the same bytes twice is a no-op and a name never points
to different content. Rule for callers: put the blob first, then insert the row that names it; a failed
transaction leaves at most an unreferenced blob, never a row without its blob. `put` returns only once the
blob is whole and durable, and a reader sees the whole blob or none.

`BlobStore` is that contract; `LocalBlobStore` keeps blobs in a directory `<root>/ab/cd/<sha256>` (the embedded
default, or a volume every container mounts), `backend.storage_s3.S3BlobStore` in an S3-compatible bucket (API
and workers on different hosts). `backend.blobstores.open_blob_store` picks one from the settings.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


class StorageError(RuntimeError):
    """The blob store cannot be used (full, not writable, missing blob); the message says what to fix."""


class BlobNotFoundError(StorageError, KeyError):
    """No blob with this sha256 is stored."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else "blob not found"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha256(sha256: str) -> str:
    """`sha256` itself if it is a blob name (64 lower-case hex digits), else `ValueError`: nothing else may
    become part of a path or an object key (no `../`)."""
    if not isinstance(sha256, str) or not _SHA256_RE.match(sha256):
        raise ValueError(f"not a sha256 hex digest (64 lower-case hex digits): {sha256!r}")
    return sha256


class BlobStore(ABC):
    """Where blobs live; every method takes or returns a blob's sha256 (see `check_sha256`).

    Failures of the medium (disk full, bucket unreachable, access denied) raise `StorageError` with the fix in
    the message; a blob that is not stored raises `BlobNotFoundError` on reading.
    """

    #: Where the blobs are, for messages: a directory or `s3://bucket/prefix`.
    location: str

    @abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store `data` and return its sha256; a blob already present is left as it is."""

    @abstractmethod
    def put_file(self, fileobj: BinaryIO) -> str:
        """Store the rest of a binary file object without holding it in memory (e.g. a checkpoint)."""

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """The blob opened for binary reading, streamed (not read whole); `BlobNotFoundError` if not stored.
        It may not be seekable: readers that need to seek take `as_local_file`."""

    @abstractmethod
    def open_range(self, sha256: str, first: int, last: int) -> BinaryIO:
        """Bytes `first`..`last` (inclusive, 0-based; `last < first` for none) of the blob, streamed."""

    @abstractmethod
    def size(self, sha256: str) -> int:
        """The blob's length in bytes; `BlobNotFoundError` if not stored."""

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove the blob (nothing happens if it is not stored). Only for blobs no row names any more."""

    @abstractmethod
    def as_local_file(self, sha256: str) -> AbstractContextManager[Path]:
        """The blob as a file on this machine for the `with` block, for readers that need a path or seeking
        (`torch.load`): the stored file itself where there is one, else a temporary copy removed afterwards."""

    def local_path(self, sha256: str) -> Path | None:
        """The blob's own file when the store is a directory on this machine (served with range requests and
        sendfile), else None."""
        return None

    def get(self, sha256: str) -> bytes:
        with self.open(sha256) as fh:
            return fh.read()

    @abstractmethod
    def check_writable(self) -> None:
        """Write and remove a probe (the readiness probe); `StorageError` naming the fix if the store refuses."""


class LocalBlobStore(BlobStore):
    """Blobs under `root` (created on first write). Safe for several processes writing at once.

    Writes are atomic (temp file in the target directory, fsync, `os.replace`, fsync of the directory).
    `durable=False` skips the fsyncs (writes stay atomic, not crash-safe): for tests and scratch stores only.
    """

    def __init__(self, root: Path | str, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self.durable = durable

    def path(self, sha256: str) -> Path:
        """Where the blob `sha256` lives (whether or not it exists); rejects anything but 64 hex digits."""
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        target = self.path(digest)
        if target.is_file():
            return digest
        self._write_atomically(target, data)
        return digest

    def put_file(self, fileobj: BinaryIO) -> str:
        hasher = hashlib.sha256()
        self._ensure_dir(self.root)
        tmp = self.root / f".incoming-{secrets.token_hex(8)}"
        try:
            with self._guard(tmp), open(tmp, "xb") as out:
                while chunk := fileobj.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                self._sync(out)
            digest = hasher.hexdigest()
            target = self.path(digest)
            if not target.is_file():
                self._ensure_dir(target.parent)
                with self._guard(target):
                    os.replace(tmp, target)
                    self._sync_dir(target.parent)
            return digest
        finally:
            tmp.unlink(missing_ok=True)

    def check_writable(self) -> None:
        """Write, sync and remove a probe file under the root (the readiness probe); `StorageError` if that fails.
        A probe rather than `os.access`: a full disk or a read-only mount passes the permission test."""
        self._ensure_dir(self.root)
        probe = self.root / f".probe-{secrets.token_hex(8)}"
        try:
            with self._guard(probe), open(probe, "xb") as out:
                out.write(b"ok")
                self._sync(out)
        finally:
            probe.unlink(missing_ok=True)

    def open(self, sha256: str) -> BinaryIO:
        path = self.path(sha256)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {sha256} is not in the store at {self.root}") from None

    def open_range(self, sha256: str, first: int, last: int) -> BinaryIO:
        fh = self.open(sha256)
        fh.seek(first)
        return io.BufferedReader(_Slice(fh, max(last - first + 1, 0)))

    def size(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(f"blob {sha256} is not in the store at {self.root}") from None

    def delete(self, sha256: str) -> None:
        path = self.path(sha256)
        with self._guard(path):
            path.unlink(missing_ok=True)

    @contextmanager
    def as_local_file(self, sha256: str) -> Iterator[Path]:
        path = self.path(sha256)
        if not path.is_file():
            raise BlobNotFoundError(f"blob {sha256} is not in the store at {self.root}")
        yield path

    def local_path(self, sha256: str) -> Path:
        return self.path(sha256)

    def _write_atomically(self, target: Path, data: bytes) -> None:
        self._ensure_dir(target.parent)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        try:
            with self._guard(target):
                with open(tmp, "xb") as out:
                    out.write(data)
                    self._sync(out)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
                self._sync_dir(target.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def _sync(self, out: BinaryIO) -> None:
        out.flush()
        if self.durable:
            os.fsync(out.fileno())

    def _sync_dir(self, directory: Path) -> None:
        if self.durable:
            _fsync_dir(directory)

    def _ensure_dir(self, directory: Path) -> None:
        with self._guard(directory):
            directory.mkdir(parents=True, exist_ok=True)

    def _guard(self, where: Path) -> AbstractContextManager[None]:
        return _storage_errors(self.root, where)


class _Slice(io.RawIOBase):
    """The next `length` bytes of an open file, then end of file."""

    def __init__(self, fh: BinaryIO, length: int) -> None:
        self._fh, self._left = fh, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._fh.read(min(len(view), self._left))
        view[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


_HINTS = {
    errno.ENOSPC: "the disk is full; free space or point SIPAT_DATA_DIR to a larger volume",
    errno.EDQUOT: "the disk quota is exhausted; free space or raise the quota",
    errno.EACCES: "permission denied; make the directory writable by the service's user",
    errno.EPERM: "operation not permitted; make the directory writable by the service's user",
    errno.EROFS: "the file system is read-only; mount SIPAT_DATA_DIR read-write",
}


@contextmanager
def _storage_errors(root: Path, where: Path) -> Iterator[None]:
    """Turn disk-full / permission / read-only errors into a `StorageError` that names the fix."""
    try:
        yield
    except OSError as exc:
        hint = _HINTS.get(exc.errno or 0, exc.strerror or str(exc))
        raise StorageError(f"cannot write to the blob store at {root} ({where}): {hint}") from exc


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); ignored where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
