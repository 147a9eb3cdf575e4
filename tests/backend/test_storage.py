"""Blob store: content addressing, idempotence, atomic writes, clear errors when the disk refuses."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from backend.storage import BlobNotFoundError, LocalBlobStore, StorageError


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_get_layout(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = b"\x89PNG fake image bytes"
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.path(sha) == tmp_path / "blobs" / sha[:2] / sha[2:4] / sha
    assert store.exists(sha) and store.get(sha) == data
    with store.open(sha) as fh:
        assert fh.read() == data
    assert _files(tmp_path) == [store.path(sha)]


def test_put_is_idempotent(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    sha = store.put(b"same")
    stat = store.path(sha).stat()
    assert store.put(b"same") == sha
    assert store.path(sha).stat().st_ino == stat.st_ino  # not rewritten
    assert len(_files(tmp_path)) == 1


def test_concurrent_puts_of_the_same_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(1 << 16)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(store.put(data))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and store.get(results[0]) == data
    assert len(_files(tmp_path)) == 1


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalBlobStore(tmp_path)

    def crash(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageError):
        store.put(b"half")
    assert _files(tmp_path) == []  # neither the blob nor its temp file
    monkeypatch.undo()
    sha = store.put(b"half")
    assert store.get(sha) == b"half"


@pytest.mark.parametrize(
    ("code", "hint"), [(errno.ENOSPC, "disk is full"), (errno.EACCES, "permission denied"), (errno.EROFS, "read-only")]
)
def test_disk_errors_become_storage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, hint: str
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    real_open = open

    def refusing_open(file, mode="r", *args, **kwargs):
        if "x" in mode:
            raise OSError(code, os.strerror(code))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    with pytest.raises(StorageError, match=hint) as info:
        store.put(b"data")
    assert str(tmp_path / "blobs") in str(info.value)


def test_unwritable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot write"):
        LocalBlobStore(blocker / "blobs").put(b"x")


def test_missing_and_malformed_names(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    missing = "ab" * 32
    assert not store.exists(missing)
    with pytest.raises(BlobNotFoundError, match=missing):
        store.get(missing)
    for bad in ("../../etc/passwd", "AB" * 32, "ab" * 31, ""):
        with pytest.raises(ValueError, match="sha256"):
            store.path(bad)


def test_put_file_streams(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(3 * 1024 * 1024 + 17)
    sha = store.put_file(io.BytesIO(data))
    assert sha == hashlib.sha256(data).hexdigest() and store.get(sha) == data
    assert store.put_file(io.BytesIO(data)) == sha
    assert _files(tmp_path) == [store.path(sha)]
