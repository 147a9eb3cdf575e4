"""The blob store the settings name (`SIPAT_BLOB_URL`): one place where the API, the workers and the CLI open it.

A module of its own so that `backend.storage` (the contract, the local directory) never imports boto3:
`backend.storage_s3` is imported only when an `s3://` store is configured.
"""

from __future__ import annotations

from pathlib import Path

from backend.settings import Settings
from backend.storage import BlobStore, LocalBlobStore


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
