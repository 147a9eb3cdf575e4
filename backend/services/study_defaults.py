"""How many images a stimulus set offers a study, and the trial counts a new study gets when none are given.

`StudyConfig`'s defaults (40 main trials, 4 catch trials) were written for a full stimulus set; a newcomer who
made a 20-image set got a draft that could not open ("n_main=40 exceeds the 20 images"), with a message that
named no form field. A study's counts left out by its creator now fit the chosen set: main trials at most its
images, no catch trials when the set has no catch stimuli. Counts given explicitly are kept (`check_ready`
reports them if the set cannot serve them).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Image, Stimulus, StimulusSet
from backend.study.config import StudyConfig


def planned_images(session: Session, sset: StimulusSet) -> int:
    """Images a pending or generating set will have: its split of the dataset, at most `params.n_images`."""
    split = (sset.params or {}).get("split")
    n_images = (sset.params or {}).get("n_images")
    query = select(func.count(Image.id)).where(Image.dataset_id == sset.dataset_id)
    if split is not None:
        query = query.where(Image.split == split)
    available = session.scalar(query) or 0
    return min(available, n_images) if n_images else available


def complete_images(session: Session, sset: StimulusSet, levels: list[float]) -> list[int]:
    """Source images with a trial stimulus at every level (others cannot be scheduled at every level)."""
    have: dict[int, set[float]] = {}
    for image_id, eps in session.execute(
        select(Stimulus.image_id, Stimulus.eps).where(Stimulus.stimulus_set_id == sset.id, Stimulus.role == "trial")
    ):
        have.setdefault(image_id, set()).add(round(eps, 9))
    wanted = {round(e, 9) for e in levels}
    return sorted(image_id for image_id, got in have.items() if wanted <= got)


def set_levels(sset: StimulusSet) -> list[float]:
    """The set's eps levels with the clean level 0 (what every main-trial image needs a stimulus at)."""
    return sorted({0.0, *(float(e) for e in sset.eps_levels)})


def image_count(session: Session, sset: StimulusSet) -> int:
    """Source images a study of `sset` can show in its main trials: those complete at every level of a ready
    set, the planned ones of a set still being made, 0 for a failed set."""
    if sset.status in ("pending", "generating"):
        return planned_images(session, sset)
    if sset.status != "ready":
        return 0
    return len(complete_images(session, sset, set_levels(sset)))


def has_catch_stimuli(session: Session, sset: StimulusSet) -> bool:
    query = select(Stimulus.id).where(Stimulus.stimulus_set_id == sset.id, Stimulus.role == "catch").limit(1)
    return session.scalar(query) is not None


def fit_defaults(session: Session, sset: StimulusSet, config: StudyConfig) -> StudyConfig:
    """`config` with the counts its creator left out (not in `model_fields_set`) fitted to `sset`: `n_main` at
    most the set's images, `n_catch` 0 when a ready set has no catch stimuli. Given counts are kept."""
    given = config.model_fields_set
    update: dict[str, int] = {}
    n_images = image_count(session, sset)
    if "n_main" not in given and 0 < n_images < config.n_main:
        update["n_main"] = n_images
    if "n_catch" not in given and config.n_catch and sset.status == "ready" and not has_catch_stimuli(session, sset):
        update["n_catch"] = 0
    return config.model_copy(update=update) if update else config
