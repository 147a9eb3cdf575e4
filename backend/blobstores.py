"""The blob store the settings name (`SIPAT_BLOB_URL`): one place where the API, the workers and the CLI open it;
and the copy of a directory store into another store (`sipat-admin copy-blobs`, when a deployment moves to S3).

A module of its own so that `backend.storage` (the contract, the local directory) never imports boto3:
`backend.storage_s3` is imported only when an `s3://` store is configured.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from backend.settings import Settings
from backend.storage import BlobStore, LocalBlobStore, check_sha256


def open_blob_store(settings: Settings, *, durable: bool = True) -> BlobStore:
    """The store of `settings.blob_url`: `<data_dir>/blobs` when empty, a directory for `file:///dir`, a bucket
    for `s3://bucket/prefix` (with the `s3_*` settings). `durable=False` skips the local store's fsyncs
    (tests and scratch only); S3 acknowledges a PUT only once stored, whatever it says."""
    url = settings.blob_url
    if not url:
        return LocalBlobStore(settings.data_dir / "blobs", durable=durable)
    scheme, _, rest = url.partition("://")
    if scheme == "file":
        return LocalBlobStore(Path(rest), durable=durable)
    from backend.storage_s3 import S3BlobStore, S3Location

    bucket, _, prefix = rest.partition("/")
    secret = settings.s3_secret_access_key.get_secret_value()
    return S3BlobStore(
        S3Location(
            bucket=bucket,
            prefix=prefix.strip("/"),
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region or None,
            access_key_id=settings.s3_access_key_id or None,
            secret_access_key=secret or None,
            addressing_style=settings.s3_addressing_style,
        )
    )


@dataclass
class CopyReport:
    copied: int = 0
    present: int = 0
    #: Files whose bytes do not hash to their name (damaged on disk): listed, not copied under that name.
    damaged: list[str] = field(default_factory=list)


def copy_blobs(source: LocalBlobStore, target: BlobStore) -> CopyReport:
    """Copy every blob of the directory store `source` into `target` (moving a deployment to S3), streamed one
    at a time; blobs already in `target` are skipped, so an interrupted copy is resumed by running it again.
    Each file is re-hashed on the way: one whose bytes do not match its name is reported, not copied under it.
    Temporary files of unfinished writes (`.incoming-*`, `.<sha>.*.tmp`) are not blobs and are left alone."""
    report = CopyReport()
    for path in sorted(source.root.glob("??/??/*")):
        sha = path.name
        if not _is_blob_name(sha) or path.parent.name != sha[2:4] or path.parent.parent.name != sha[:2]:
            continue
        if target.exists(sha):
            report.present += 1
            continue
        if _sha256_of(path) != sha:
            report.damaged.append(sha)
            continue
        with open(path, "rb") as fh:
            target.put_file(fh)
        report.copied += 1
    return report


def _is_blob_name(name: str) -> bool:
    try:
        check_sha256(name)
    except ValueError:
        return False
    return True


def _sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            hasher.update(chunk)
    return hasher.hexdigest()
