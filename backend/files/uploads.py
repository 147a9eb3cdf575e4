"""A dataset upload over HTTP, for the research API (`POST /api/v1/datasets`) and the dashboard's upload form.

The zip is streamed into a temporary file (in memory up to 1 MiB, on disk beyond) and refused with 413 as soon
as it passes `Settings.max_upload_bytes`, before the rest is read; what the archive holds is checked and stored
by `backend.services.dataset_catalog.upload_dataset`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from backend.api.deps import SettingsDep
from backend.services.errors import InvalidInputError, PayloadTooLargeError

__all__ = ["MAX_NAME", "DatasetUpload", "dataset_upload"]

#: Bytes of a multipart body beyond the zip itself (boundaries, part headers, the name field).
_FORM_OVERHEAD = 64 * 1024
MAX_NAME = 255


@dataclass(frozen=True)
class DatasetUpload:
    """The uploaded zip (a temporary file) and the dataset name asked for; the dashboard's form is the same."""

    file: BinaryIO
    filename: str
    name: str | None

    @property
    def dataset_name(self) -> str:
        """The name asked for, else the zip's file name without its extension."""
        stem = PurePosixPath(self.filename.replace("\\", "/")).stem
        return (self.name or stem or "dataset").strip()[:MAX_NAME]


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLargeError(_too_large(limit - _FORM_OVERHEAD))
        yield chunk


def _too_large(limit: int) -> str:
    return f"the upload is larger than {limit} bytes (SIPAT_MAX_UPLOAD_BYTES); split the dataset into smaller zips"


async def dataset_upload(request: Request, settings: SettingsDep) -> AsyncIterator[DatasetUpload]:
    """The multipart form's `file` (the zip) in a temporary file, and its optional `name` field."""
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + _FORM_OVERHEAD:
        raise PayloadTooLargeError(_too_large(limit))
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidInputError("send the zip as multipart/form-data with the file in the field 'file'")
    parser = MultiPartParser(
        request.headers, _limited(request, limit + _FORM_OVERHEAD), max_files=1, max_fields=1, max_part_size=1024
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidInputError(f"the form cannot be read: {exc.message}; send 'file' (the zip) and 'name'") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInputError("the form has no file field 'file'; attach the zip as 'file'")
        if upload.size is not None and upload.size > limit:
            raise PayloadTooLargeError(_too_large(limit))
        name = form.get("name")
        await upload.seek(0)
        yield DatasetUpload(upload.file, upload.filename or "", name if isinstance(name, str) else None)
    finally:
        await form.close()
