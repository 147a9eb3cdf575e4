"""Datasets for the research API: upload (validate, deduplicate, import), summaries, image pages, salience; and
for the worker's jobs the image rows and map blobs they read and the maps they store (`image_rows`,
`newest_map_blobs`, `add_salience_maps`), so that the worker holds no SQL of its own.

An upload is validated completely in memory (`backend.datasets.archive.read_archive`) before anything is
written, so a rejected archive leaves no rows and no blobs. An archive whose content is already a dataset
(the same image files with the same labels, splits and imported salience maps) is not imported again: the
existing dataset is returned instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from backend.datasets.archive import ArchiveError, ArchiveImage, read_archive, sha256_hex
from backend.models import SALIENCE_SOURCES, Dataset, Image, SalienceMap, User
from backend.services.datasets import import_archive
from backend.services.errors import InvalidInputError, NotFoundError
from backend.services.lookups import get_or_404
from backend.services.ownership import owner_scope
from backend.storage import BlobStore

#: Decompressed bytes allowed per compressed upload byte: image files barely compress, so an archive that
#: expands far beyond its size is a zip bomb, not a dataset.
DECOMPRESSION_FACTOR = 2
#: Preference when no salience source is asked for: human annotations, then the dataset's own, then Grad-CAM.
SALIENCE_PREFERENCE = ("human_mean", "imported", "gradcam")

_Fingerprint = frozenset[tuple[str, str, str | None, str | None]]


@dataclass(frozen=True)
class UploadOutcome:
    dataset: Dataset
    created: bool


def upload_dataset(
    session: Session,
    storage: BlobStore,
    fileobj: BinaryIO,
    *,
    name: str,
    max_upload_bytes: int,
    owner: User | None = None,
) -> UploadOutcome:
    """Validate the zip in `fileobj` (seekable) and import it as dataset `name`, owned by `owner`, or return
    the dataset that already holds exactly this content (`created` False). Only a dataset `owner` may use is
    returned that way: another researcher's identical upload stays theirs, and this one becomes a dataset of
    its own. 422 with the archive's problem when it is refused. Does not commit."""
    try:
        archive = read_archive(fileobj, max_bytes=max_upload_bytes * DECOMPRESSION_FACTOR)
    except ArchiveError as exc:
        raise InvalidInputError(f"the archive was refused: {exc}") from None
    existing = find_same_dataset(session, archive, owner_id=owner_scope(owner) if owner is not None else None)
    if existing is not None:
        return UploadOutcome(existing, created=False)
    dataset = import_archive(session, storage, archive, name)
    dataset.owner_id = owner.id if owner is not None else None
    return UploadOutcome(dataset, created=True)


def _fingerprint_of_archive(archive: Sequence[ArchiveImage]) -> _Fingerprint:
    return frozenset(
        (sha256_hex(im.data), im.label, im.split, sha256_hex(im.salience_png) if im.salience_png else None)
        for im in archive
    )


def _fingerprint_of_dataset(session: Session, dataset_id: int) -> _Fingerprint:
    rows = session.execute(
        select(Image.sha256, Image.label, Image.split, SalienceMap.sha256)
        .outerjoin(SalienceMap, (SalienceMap.image_id == Image.id) & (SalienceMap.source == "imported"))
        .where(Image.dataset_id == dataset_id)
    ).all()
    return frozenset(tuple(row) for row in rows)  # type: ignore[misc]


def find_same_dataset(
    session: Session, archive: Sequence[ArchiveImage], *, owner_id: int | None = None
) -> Dataset | None:
    """The oldest dataset (of `owner_id` when given) whose images (sha256, label, split, imported salience)
    equal the archive's.

    Candidates are the datasets that hold the archive's first image with the same image count, so only a
    handful of datasets is compared row by row, whatever the size of the catalogue.
    """
    if not archive:
        return None
    wanted = _fingerprint_of_archive(archive)
    n_images = len({entry[0] for entry in wanted})
    counts = select(Image.dataset_id, func.count(Image.id).label("n")).group_by(Image.dataset_id).subquery("counts")
    candidates = session.scalars(
        select(Image.dataset_id)
        .join(counts, counts.c.dataset_id == Image.dataset_id)
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(Image.sha256 == sha256_hex(archive[0].data), counts.c.n == n_images)
        .where(*([] if owner_id is None else [Dataset.owner_id == owner_id]))
        .order_by(Image.dataset_id)
    ).all()
    for dataset_id in candidates:
        if _fingerprint_of_dataset(session, dataset_id) == wanted:
            return session.get(Dataset, dataset_id)
    return None


# --- reading ------------------------------------------------------------------------------------------------


def list_datasets(
    session: Session, *, offset: int, limit: int, owner_id: int | None = None
) -> tuple[list[tuple[Dataset, int]], int]:
    """(dataset, image count) newest first, and the total number of datasets; only those of `owner_id` when
    given (a researcher's own)."""
    where = [] if owner_id is None else [Dataset.owner_id == owner_id]
    n_images = select(func.count(Image.id)).where(Image.dataset_id == Dataset.id).scalar_subquery()
    query = select(Dataset, n_images).where(*where).order_by(Dataset.id.desc())
    rows = session.execute(query.offset(offset).limit(limit)).all()
    total = session.scalar(select(func.count(Dataset.id)).where(*where)) or 0
    return [(dataset, n) for dataset, n in rows], total


@dataclass(frozen=True)
class DatasetSummary:
    dataset: Dataset
    n_images: int
    by_label: dict[str, int]
    by_split: dict[str, int]
    by_label_and_split: dict[str, dict[str, int]]
    salience_images: dict[str, int]
    n_with_salience: int


def _split_key(split: str | None) -> str:
    return split if split is not None else "none"


def dataset_summary(session: Session, dataset_id: int) -> DatasetSummary:
    """Image counts per label, per split ("none" for images without one) and per both; how many images have
    a salience map of each source, and of any source."""
    dataset = get_or_404(session, Dataset, dataset_id)
    rows = session.execute(
        select(Image.label, Image.split, func.count(Image.id))
        .where(Image.dataset_id == dataset_id)
        .group_by(Image.label, Image.split)
    ).all()
    by_label: dict[str, int] = {}
    by_split: dict[str, int] = {}
    both: dict[str, dict[str, int]] = {}
    for label, split, n in sorted(rows, key=lambda r: (r[0], _split_key(r[1]))):
        by_label[label] = by_label.get(label, 0) + n
        by_split[_split_key(split)] = by_split.get(_split_key(split), 0) + n
        both.setdefault(label, {})[_split_key(split)] = n
    of_dataset = select(Image.id).where(Image.dataset_id == dataset_id).scalar_subquery()
    per_source = dict(
        session.execute(
            select(SalienceMap.source, func.count(distinct(SalienceMap.image_id)))
            .where(SalienceMap.image_id.in_(of_dataset))
            .group_by(SalienceMap.source)
        ).all()
    )
    any_source = session.scalar(
        select(func.count(distinct(SalienceMap.image_id))).where(SalienceMap.image_id.in_(of_dataset))
    )
    return DatasetSummary(
        dataset=dataset,
        n_images=sum(by_label.values()),
        by_label=by_label,
        by_split=by_split,
        by_label_and_split=both,
        salience_images={source: per_source.get(source, 0) for source in SALIENCE_SOURCES},
        n_with_salience=any_source or 0,
    )


def list_images(
    session: Session, dataset_id: int, *, offset: int, limit: int, split: str | None = None, label: str | None = None
) -> tuple[list[tuple[Image, list[str]]], int]:
    """A page of the dataset's images in id order with the salience sources each has, and the total count."""
    get_or_404(session, Dataset, dataset_id)
    query = select(Image).where(Image.dataset_id == dataset_id)
    if split is not None:
        query = query.where(Image.split == split)
    if label is not None:
        query = query.where(Image.label == label)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    images = session.scalars(query.order_by(Image.id).offset(offset).limit(limit)).all()
    sources: dict[int, set[str]] = {image.id: set() for image in images}
    if images:
        for image_id, source in session.execute(
            select(SalienceMap.image_id, SalienceMap.source).where(SalienceMap.image_id.in_(list(sources)))
        ):
            sources[image_id].add(source)
    return [(image, sorted(sources[image.id])) for image in images], total


def salience_map(session: Session, image_id: int, source: str | None) -> SalienceMap:
    """The newest salience map of image `image_id` from `source`, or (no source) from the first source of
    `SALIENCE_PREFERENCE` the image has; 404 naming the sources it does have otherwise."""
    get_or_404(session, Image, image_id)
    maps = session.scalars(
        select(SalienceMap).where(SalienceMap.image_id == image_id).order_by(SalienceMap.id.desc())
    ).all()
    wanted = (source,) if source is not None else SALIENCE_PREFERENCE
    for name in wanted:
        for row in maps:
            if row.source == name:
                return row
    have = sorted({row.source for row in maps})
    raise NotFoundError(
        f"image {image_id} has no salience map"
        + (f" of source {source!r}; it has: {', '.join(have)}" if have and source else "")
    )


@dataclass(frozen=True)
class ImageInfo:
    """The columns of an `images` row a job needs (plain values, usable after the session closed)."""

    id: int
    sha256: str
    label: str
    split: str | None
    width: int
    height: int


def image_rows(session: Session, dataset_id: int, *, split: str | None = None) -> tuple[str, list[ImageInfo]] | None:
    """(dataset name, its images in id order, only those of `split` when given); None if there is no such dataset.
    An empty list is the caller's to judge (a job refuses it with its own words)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        return None
    query = select(Image).where(Image.dataset_id == dataset_id).order_by(Image.id)
    if split is not None:
        query = query.where(Image.split == split)
    infos = [ImageInfo(im.id, im.sha256, im.label, im.split, im.width, im.height) for im in session.scalars(query)]
    return dataset.name, infos


def newest_map_blobs(session: Session, image_ids: Sequence[int], sources: Sequence[str]) -> dict[int, str]:
    """image id -> sha256 of its newest map from the first of `sources` it has (images with none left out):
    the rule of `salience_map`, for many images in one query."""
    found: dict[int, dict[str, str]] = {}
    rows = session.execute(
        select(SalienceMap.image_id, SalienceMap.source, SalienceMap.sha256)
        .where(SalienceMap.image_id.in_(list(image_ids)), SalienceMap.source.in_(list(sources)))
        .order_by(SalienceMap.id)
    )
    for image_id, source, sha in rows:
        found.setdefault(image_id, {})[source] = sha  # newer rows win
    return {image_id: next(by_source[s] for s in sources if s in by_source) for image_id, by_source in found.items()}


def add_salience_maps(session: Session, source: str, maps: Sequence[tuple[int, str]]) -> int:
    """Add the (image id, blob sha256) maps of `source` that are not stored already (a rerun of a job adds no
    duplicates); returns how many rows were added. The blobs must be stored first."""
    rows = session.execute(
        select(SalienceMap.image_id, SalienceMap.sha256).where(
            SalienceMap.source == source, SalienceMap.image_id.in_([i for i, _ in maps])
        )
    )
    present = {(image_id, sha) for image_id, sha in rows}
    new = [SalienceMap(image_id=i, source=source, sha256=sha) for i, sha in maps if (i, sha) not in present]
    session.add_all(new)
    return len(new)
