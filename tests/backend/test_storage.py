"""The local blob store's own guarantees: its layout, atomic writes, clear errors when the disk refuses.

The contract both stores keep (content addressing, idempotence, concurrent writers, missing and malformed
names, streamed reads) is tested on the local directory and on S3 alike in `test_blob_stores.py`."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from backend.storage import LocalBlobStore, StorageError


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
