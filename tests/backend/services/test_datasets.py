"""Dataset import: blobs first, rows after, duplicates kept once, imported salience maps attached."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.datasets.archive import ArchiveImage
from backend.models import Image, SalienceMap
from backend.services.datasets import import_archive
from backend.services.errors import InvalidInputError
from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, png_bytes


def _item(seed: int, label: str, *, salience: bool = False) -> ArchiveImage:
    return ArchiveImage(
        label=label,
        filename=f"{label}/{seed}.png",
        data=png_bytes(seed=seed),
        width=8,
        height=6,
        salience_png=png_bytes(seed=100 + seed, mode="L") if salience else None,
        split="train",
    )


@BOTH_DATABASES
def test_import_archive(session: Session, storage: BlobStore) -> None:
    items = [_item(0, "cat", salience=True), _item(1, "dog"), _item(0, "cat")]  # the last repeats the first
    dataset = import_archive(session, storage, items, " pets ")
    session.commit()
    assert dataset.name == "pets"
    images = session.scalars(select(Image).where(Image.dataset_id == dataset.id).order_by(Image.id)).all()
    assert [(i.label, i.filename, i.split, i.width, i.height) for i in images] == [
        ("cat", "cat/0.png", "train", 8, 6),
        ("dog", "dog/1.png", "train", 8, 6),
    ]
    assert [storage.get(i.sha256) for i in images] == [items[0].data, items[1].data]
    (smap,) = session.scalars(select(SalienceMap)).all()
    assert smap.image_id == images[0].id and storage.get(smap.sha256) == items[0].salience_png

    again = import_archive(session, storage, items[:1], "pets again")  # the same file in another dataset
    session.commit()
    assert again.id != dataset.id and session.scalar(select(func.count()).select_from(Image)) == 3


def test_import_refuses_empty_input(session: Session, storage: BlobStore) -> None:
    with pytest.raises(InvalidInputError, match="no images"):
        import_archive(session, storage, [], "empty")
    with pytest.raises(InvalidInputError, match="name"):
        import_archive(session, storage, [_item(0, "cat")], "  ")
