"""Dataset import shared by the CLI (`sipat-admin import-dataset`) and the research API's upload.

`import_archive` takes what `backend.datasets.archive.read_archive` validated and stores it: all blobs first
(image bytes as uploaded, imported salience maps as grayscale PNG), then the rows that point to them, so a
failure half-way leaves at most unreferenced blobs. Identical image files (same sha256) within one dataset are
kept once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from backend.models import Dataset, Image, SalienceMap
from backend.services.errors import InvalidInputError
from backend.storage import BlobStore

if TYPE_CHECKING:
    from backend.datasets.archive import ArchiveImage

log = logging.getLogger(__name__)


def import_archive(session: Session, storage: BlobStore, archive: Sequence[ArchiveImage], name: str) -> Dataset:
    """A new dataset `name` holding the images of `archive` (and their imported salience maps).

    Does not commit. Duplicate files are skipped with a log line; an empty archive is refused (422).
    """
    name = name.strip()
    if not name:
        raise InvalidInputError("the dataset needs a name; pass one (e.g. the archive's file name)")
    if not archive:
        raise InvalidInputError("the archive holds no images; add image files to it")
    stored: list[tuple[ArchiveImage, str, str | None]] = []
    seen: dict[str, str] = {}
    for item in archive:
        digest = storage.put(item.data)
        if digest in seen:
            log.info("skipping %s: the same file as %s", item.filename, seen[digest])
            continue
        seen[digest] = item.filename
        salience = storage.put(item.salience_png) if item.salience_png is not None else None
        stored.append((item, digest, salience))

    dataset = Dataset(name=name)
    session.add(dataset)
    session.flush()
    images = [
        Image(
            dataset_id=dataset.id,
            label=item.label,
            split=item.split,
            sha256=digest,
            width=item.width,
            height=item.height,
            filename=item.filename,
        )
        for item, digest, _ in stored
    ]
    session.add_all(images)
    session.flush()
    session.add_all(
        SalienceMap(image_id=image.id, source="imported", sha256=salience)
        for image, (_, _, salience) in zip(images, stored, strict=True)
        if salience is not None
    )
    session.flush()
    return dataset
