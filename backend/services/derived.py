"""Data derived from a participant's masks, deleted with the participant when they withdraw.

The training job stores the mean of the annotators' masks of an image as a `human_mean` salience map
(`worker/jobs/train.py`). A map row does not record whose masks went into it, so withdrawal deletes every
`human_mean` map of each image the participant annotated: one that included their mask can no longer be told
apart, and a withdrawal must not leave their contribution behind (the issue's probe found the map
byte-identical after the withdrawal). The next training job recomputes the means from the annotators who
remain. Models already trained on such a map and stimulus sets already masked by it are not touched here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.models import Annotation, SalienceMap, Stimulus, Trial

DERIVED_SOURCE = "human_mean"


def delete_maps_derived_from(session: Session, trial_ids: Any) -> list[str]:
    """Delete the `human_mean` maps of the images annotated in `trial_ids` (ids or a subquery) before those
    annotations go; returns the maps' blob sha256s (remove them after the commit, when no row names them)."""
    annotated = (
        select(Stimulus.image_id)
        .join(Trial, Trial.stimulus_id == Stimulus.id)
        .join(Annotation, Annotation.trial_id == Trial.id)
        .where(Trial.id.in_(trial_ids))
    )
    rows = session.execute(
        select(SalienceMap.id, SalienceMap.sha256).where(
            SalienceMap.source == DERIVED_SOURCE, SalienceMap.image_id.in_(annotated)
        )
    ).all()
    if rows:
        session.execute(delete(SalienceMap).where(SalienceMap.id.in_([r.id for r in rows])))
    return sorted({r.sha256 for r in rows})
