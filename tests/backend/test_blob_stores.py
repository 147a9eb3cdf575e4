"""The blob store contract (`backend.storage.BlobStore`), run on both stores: the local directory and an S3
bucket of a real SeaweedFS server (`tests/s3kit.py`), each opened from settings as the services open it.

Then what only S3 can get wrong: wrong credentials, a missing bucket, an unreachable endpoint, a body cut
short; each a `StorageError` whose message names the fix, never a bare botocore exception.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.blobstores import open_blob_store
from backend.settings import Settings
from backend.storage import BlobNotFoundError, BlobStore, LocalBlobStore, StorageError
from backend.storage_s3 import S3BlobStore
from tests.netkit import free_port
from tests.s3kit import S3Server, cutting_proxy

Stored = Callable[[], list[str]]  # the names of everything the store holds (files or object keys)


def s3_settings(server: S3Server, tmp_path: Path, *, prefix: str, **overrides: str) -> Settings:
    values = {
        "blob_url": f"s3://{server.bucket}/{prefix}",
        "s3_endpoint_url": server.endpoint_url,
        "s3_access_key_id": server.access_key_id,
        "s3_secret_access_key": server.secret_access_key,
        "s3_region": "us-east-1",
        **overrides,
    }
    return Settings(data_dir=tmp_path / "data", secret_key="k" * 40, **values)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BlobStore, Stored]]:
    """A fresh, empty store of either kind, and how to list what it holds."""
    if request.param == "local":
        settings = Settings(data_dir=tmp_path / "data", secret_key="k" * 40)
        local = open_blob_store(settings)
        assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "data" / "blobs"
        yield local, lambda: sorted(str(p.relative_to(local.root)) for p in local.root.rglob("*") if p.is_file())
        return
    server: S3Server = request.getfixturevalue("s3_server")
    prefix = f"t-{secrets.token_hex(6)}/blobs"
    remote = open_blob_store(s3_settings(server, tmp_path, prefix=prefix))
    assert isinstance(remote, S3BlobStore) and remote.location == f"s3://{server.bucket}/{prefix}"
    yield remote, lambda: [k.removeprefix(prefix + "/") for k in server.keys(prefix + "/")]


def test_put_get_exists_size(store: tuple[BlobStore, Stored]) -> None:
    blobs, stored = store
    data = b"\x89PNG fake image bytes"
    sha = blobs.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert blobs.exists(sha) and blobs.get(sha) == data and blobs.size(sha) == len(data)
    assert stored() == [f"{sha[:2]}/{sha[2:4]}/{sha}"]  # the same layout in both
    empty = blobs.put(b"")
    assert blobs.get(empty) == b"" and blobs.size(empty) == 0


def test_put_is_idempotent(store: tuple[BlobStore, Stored]) -> None:
    blobs, stored = store
    sha = blobs.put(b"same")
    assert blobs.put(b"same") == sha and blobs.put_file(io.BytesIO(b"same")) == sha
    assert len(stored()) == 1


def test_concurrent_puts_of_the_same_blob(store: tuple[BlobStore, Stored]) -> None:
    blobs, stored = store
    data = os.urandom(1 << 16)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(blobs.put(data))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1 and blobs.get(results[0]) == data
    assert len(stored()) == 1


def test_put_file_of_a_large_blob(store: tuple[BlobStore, Stored]) -> None:
    """9 MiB: above boto3's multipart threshold (8 MiB), so the S3 store sends it in parts."""
    blobs, stored = store
    data = os.urandom(9 * 1024 * 1024 + 17)
    sha = blobs.put_file(io.BytesIO(data))
    assert sha == hashlib.sha256(data).hexdigest() and blobs.size(sha) == len(data)
    assert hashlib.sha256(blobs.get(sha)).hexdigest() == sha
    assert len(stored()) == 1


def test_open_reads_in_pieces(store: tuple[BlobStore, Stored]) -> None:
    blobs, _ = store
    data = os.urandom(3 * 1024 * 1024 + 5)
    sha = blobs.put(data)
    with blobs.open(sha) as fh:
        head = fh.read(16)
        pieces = [head]
        while chunk := fh.read(256 * 1024):
            assert len(chunk) <= 256 * 1024
            pieces.append(chunk)
    assert head == data[:16] and b"".join(pieces) == data and len(pieces) > 2


def test_open_range(store: tuple[BlobStore, Stored]) -> None:
    blobs, _ = store
    data = os.urandom(2 * 1024 * 1024 + 3)
    sha = blobs.put(data)
    for first, last in ((0, 0), (10, 19), (1024 * 1024 - 1, 1024 * 1024 + 5), (len(data) - 3, len(data) - 1)):
        with blobs.open_range(sha, first, last) as fh:
            assert fh.read() == data[first : last + 1], (first, last)
    with blobs.open_range(sha, 5, 4) as fh:
        assert fh.read() == b""
    with pytest.raises(BlobNotFoundError):
        blobs.open_range("ab" * 32, 0, 10)


def test_as_local_file(store: tuple[BlobStore, Stored]) -> None:
    blobs, stored = store
    data = os.urandom(70_000)
    sha = blobs.put(data)
    with blobs.as_local_file(sha) as path:
        assert path.read_bytes() == data
    if isinstance(blobs, LocalBlobStore):
        assert path == blobs.path(sha) and path.is_file()  # the stored file itself: nothing copied
    else:
        assert not path.exists()  # the temporary copy is gone
    assert len(stored()) == 1


def test_delete(store: tuple[BlobStore, Stored]) -> None:
    blobs, stored = store
    keep, drop = blobs.put(b"keep"), blobs.put(b"drop")
    blobs.delete(drop)
    assert not blobs.exists(drop) and blobs.exists(keep)
    blobs.delete(drop)  # again: nothing to do, no error
    assert stored() == [f"{keep[:2]}/{keep[2:4]}/{keep}"]


def test_missing_blobs(store: tuple[BlobStore, Stored]) -> None:
    blobs, _ = store
    missing = "ab" * 32
    assert not blobs.exists(missing)
    for read in (blobs.get, blobs.open, blobs.size):
        with pytest.raises(BlobNotFoundError, match=missing):
            read(missing)
    with pytest.raises(BlobNotFoundError, match=missing), blobs.as_local_file(missing):
        pass


def test_malformed_names(store: tuple[BlobStore, Stored]) -> None:
    blobs, stored = store
    for bad in ("../../etc/passwd", "AB" * 32, "ab" * 31, "", "ab" * 31 + "/x"):
        for call in (blobs.exists, blobs.get, blobs.open, blobs.size, blobs.delete):
            with pytest.raises(ValueError, match="sha256"):
                call(bad)
        with pytest.raises(ValueError, match="sha256"):
            blobs.open_range(bad, 0, 1)
    assert stored() == []


# --- S3 only: the service's failures as StorageError naming the fix ----------------------------------------


def test_check_writable_leaves_nothing_behind(store: tuple[BlobStore, Stored]) -> None:
    """The readiness probe writes and removes its probe on either store."""
    blobs, stored = store
    blobs.check_writable()
    assert stored() == []


def test_check_writable_names_refused_credentials(s3_server: S3Server, tmp_path: Path) -> None:
    blobs = open_blob_store(s3_settings(s3_server, tmp_path, prefix="x", s3_secret_access_key="not-the-secret"))
    with pytest.raises(StorageError, match=r"access denied.*SIPAT_S3_SECRET_ACCESS_KEY"):
        blobs.check_writable()


def test_wrong_credentials(s3_server: S3Server, tmp_path: Path) -> None:
    blobs = open_blob_store(s3_settings(s3_server, tmp_path, prefix="x", s3_secret_access_key="not-the-secret"))
    with pytest.raises(StorageError, match=r"access denied.*SIPAT_S3_SECRET_ACCESS_KEY"):
        blobs.put(b"data")
    with pytest.raises(StorageError, match="access denied"):
        blobs.get("ab" * 32)


def test_missing_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    settings = s3_settings(s3_server, tmp_path, prefix="x", blob_url="s3://no-such-bucket-here/x")
    blobs = open_blob_store(settings)
    for call in (lambda: blobs.put(b"data"), lambda: blobs.get("ab" * 32)):
        with pytest.raises(StorageError, match="bucket does not exist; create it or correct SIPAT_BLOB_URL"):
            call()


def test_unreachable_endpoint(s3_server: S3Server, tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    blobs = open_blob_store(s3_settings(s3_server, tmp_path, prefix="x", s3_endpoint_url=nobody))
    with pytest.raises(StorageError, match="SIPAT_S3_ENDPOINT_URL"):
        blobs.put(b"data")


def test_a_body_cut_short_is_a_storage_error(s3_server: S3Server, tmp_path: Path) -> None:
    """The connection drops 1.5 MiB into a 2 MiB blob (through a proxy that cuts it): the reader gets a
    `StorageError` (the API answers 503 or ends the stream), not the first part of the blob as if it were all."""
    prefix = f"t-{secrets.token_hex(4)}"
    sha = open_blob_store(s3_settings(s3_server, tmp_path, prefix=prefix)).put(os.urandom(2 * 1024 * 1024))
    with cutting_proxy(s3_server.endpoint_url, cut_after=1536 * 1024) as proxy:
        blobs = open_blob_store(s3_settings(s3_server, tmp_path, prefix=prefix, s3_endpoint_url=proxy))
        assert blobs.size(sha) == 2 * 1024 * 1024  # small answers pass
        with blobs.open(sha) as fh, pytest.raises(StorageError, match=f"cannot read blob {sha}"):
            fh.read()


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"blob_url": "s3://"}, "s3://bucket/prefix"),
        ({"blob_url": "gs://bucket"}, "not a blob store"),
        ({"blob_url": "file://relative/dir"}, "file:///absolute/dir"),
        ({"s3_access_key_id": "only-the-key"}, "SIPAT_S3_SECRET_ACCESS_KEY, or neither"),
    ],
)
def test_settings_refuse_an_unusable_store(tmp_path: Path, values: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Settings(data_dir=tmp_path, secret_key="k" * 40, **values)


def test_a_file_url_names_another_directory(tmp_path: Path) -> None:
    blobs = open_blob_store(Settings(data_dir=tmp_path / "d", secret_key="k" * 40, blob_url=f"file://{tmp_path}/b"))
    assert isinstance(blobs, LocalBlobStore) and blobs.root == tmp_path / "b"
    sha = blobs.put(b"x")
    assert (tmp_path / "b" / sha[:2] / sha[2:4] / sha).read_bytes() == b"x"


def test_copy_blobs_moves_a_local_store_to_s3(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sipat-admin copy-blobs DIR` into the bucket of SIPAT_BLOB_URL: every blob, once (a second run copies
    nothing); temporary files are not blobs; a file damaged on disk is named and not copied (exit 1)."""
    from backend.cli import main
    from backend.settings import get_settings

    old = LocalBlobStore(tmp_path / "old")
    shas = [old.put(os.urandom(n)) for n in (10, 70_000, 2 * 1024 * 1024)]
    (old.root / ".incoming-0123").write_bytes(b"half a blob")
    prefix = f"t-{secrets.token_hex(6)}"
    settings = s3_settings(s3_server, tmp_path, prefix=prefix)
    for name, value in {
        "SIPAT_BLOB_URL": settings.blob_url,
        "SIPAT_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "SIPAT_S3_ACCESS_KEY_ID": s3_server.access_key_id,
        "SIPAT_S3_SECRET_ACCESS_KEY": s3_server.secret_access_key,
        "SIPAT_S3_REGION": "us-east-1",
        "SIPAT_DATA_DIR": str(tmp_path / "data"),
        "SIPAT_SECRET_KEY": "k" * 40,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        assert main(["copy-blobs", str(old.root)]) == 0
        assert f"copied 3 blobs to s3://{s3_server.bucket}/{prefix}; 0 were there already" in capsys.readouterr().out
        new = open_blob_store(settings)
        assert all(new.get(sha) == old.get(sha) for sha in shas)
        assert len(s3_server.keys(prefix + "/")) == 3

        damaged = old.put(b"will rot")
        old.path(damaged).write_bytes(b"bit rot")
        assert main(["copy-blobs", str(old.root)]) == 1
        captured = capsys.readouterr()
        assert "copied 0 blobs" in captured.out and "3 were there already" in captured.out
        assert f"1 files do not hash to their names and were not copied: {damaged}" in captured.err
        assert not new.exists(damaged) and len(s3_server.keys(prefix + "/")) == 3

        assert main(["copy-blobs", str(tmp_path / "nowhere")]) == 1
        assert "no directory" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
