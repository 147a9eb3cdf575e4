"""Which blobs rows still name: a blob may be deleted only when no row of any table points to it.

Blobs are content-addressed, so one blob can be shared by unrelated rows (two participants' identical masks,
an image that is also a stimulus). Every column holding a sha256 is listed here.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from backend.models import Annotation, Image, SalienceMap, Stimulus, TrainedModel

#: Every column that names a blob.
BLOB_COLUMNS: tuple[InstrumentedAttribute[str] | InstrumentedAttribute[str | None], ...] = (
    Image.sha256,
    SalienceMap.sha256,
    Stimulus.sha256,
    Annotation.mask_sha256,
    TrainedModel.checkpoint_sha256,
)


def unreferenced(session: Session, shas: Iterable[str]) -> list[str]:
    """Those of `shas` that no row names (sorted)."""
    left = set(shas)
    for column in BLOB_COLUMNS:
        if not left:
            break
        left -= set(session.scalars(select(column).where(column.in_(sorted(left))).distinct()))
    return sorted(left)
