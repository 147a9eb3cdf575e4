"""`seed_ready_study`: the one way the tests, the browser tests and the load benchmark put an open study over a
ready stimulus set into the database and blob store (no API, no worker).

What differs between them is only how the pictures look (`Pictures`: tiny flat colours for the backend tests,
64 px discs for the browser tests, 64 px noise for the load benchmark) and the schedule; the rows are the same:
a dataset, per image a trial stimulus at eps 0 and at every level plus a catch stimulus, and the study.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from backend.models import Dataset, Image, Stimulus, StimulusSet, Study
from backend.storage import BlobStore
from backend.study.schedule import CATCH_EPS


@dataclass(frozen=True)
class Pictures:
    """How a seeded dataset looks: image k's class label and PNG, and its stimulus at `eps` (also `CATCH_EPS`).

    `filename(k)` names the image's member path; by default ``<label>/img<k>.png``.
    """

    width: int
    height: int
    label: Callable[[int], str]
    image: Callable[[int], bytes]
    stimulus: Callable[[int, float], bytes]
    filename: Callable[[int], str] | None = None

    def name(self, k: int) -> str:
        return self.filename(k) if self.filename is not None else f"{self.label(k)}/img{k}.png"


def add_dataset(session: Session, storage: BlobStore, pictures: Pictures, *, n_images: int, name: str) -> Dataset:
    """A dataset of `n_images` test-split images drawn by `pictures`; flushed."""
    dataset = Dataset(name=name)
    session.add(dataset)
    session.flush()
    for k in range(n_images):
        session.add(
            Image(
                dataset_id=dataset.id,
                label=pictures.label(k),
                split="test",
                sha256=storage.put(pictures.image(k)),
                width=pictures.width,
                height=pictures.height,
                filename=pictures.name(k),
            )
        )
    session.flush()
    return dataset


def add_stimulus_set(
    session: Session,
    storage: BlobStore,
    dataset: Dataset,
    pictures: Pictures,
    *,
    eps_levels: Sequence[float],
    name: str,
    steps: int,
    status: str = "ready",
    with_stimuli: bool = True,
    masked: bool = False,
) -> StimulusSet:
    """A stimulus set over `dataset` with, per image (k in the dataset's order), a trial stimulus at eps 0 and
    at every level and a catch stimulus; flushed."""
    sset = StimulusSet(
        dataset_id=dataset.id, name=name, eps_levels=list(eps_levels), status=status, steps=steps, masked=masked
    )
    session.add(sset)
    session.flush()
    if with_stimuli:
        for k, image in enumerate(dataset.images):
            for eps, role in [*((e, "trial") for e in sorted({0.0, *eps_levels})), (CATCH_EPS, "catch")]:
                session.add(
                    Stimulus(
                        stimulus_set_id=sset.id,
                        image_id=image.id,
                        eps=eps,
                        role=role,
                        sha256=storage.put(pictures.stimulus(k, eps)),
                        linf=eps,
                        l2=None,
                    )
                )
        session.flush()
    return sset


def add_study(
    session: Session, stimulus_set: StimulusSet, *, slug: str, title: str, status: str = "open", **config: Any
) -> Study:
    """A study over `stimulus_set` with the schedule `config` (which may name `compare_stimulus_set_ids`);
    flushed."""
    study = Study(slug=slug, title=title, status=status, config={"stimulus_set_id": stimulus_set.id, **config})
    session.add(study)
    session.flush()
    return study


def seed_ready_study(
    session: Session,
    storage: BlobStore,
    pictures: Pictures,
    *,
    slug: str,
    n_images: int,
    eps_levels: Sequence[float],
    title: str,
    dataset_name: str,
    set_name: str,
    steps: int = 4,
    compare_set_names: Sequence[str] = (),
    **config: Any,
) -> Study:
    """A dataset of `n_images`, a ready stimulus set (eps 0, every level, catch) and an open study with the
    schedule `config`; committed. Each of `compare_set_names` adds a further ready set over the same images
    and levels, masked (the masked-vs-unmasked comparison), which the study compares with the first."""
    dataset = add_dataset(session, storage, pictures, n_images=n_images, name=dataset_name)
    sset = add_stimulus_set(session, storage, dataset, pictures, eps_levels=eps_levels, name=set_name, steps=steps)
    others = [
        add_stimulus_set(session, storage, dataset, pictures, eps_levels=eps_levels, name=n, steps=steps, masked=True)
        for n in compare_set_names
    ]
    if others:
        config["compare_stimulus_set_ids"] = [o.id for o in others]
    study = add_study(session, sset, slug=slug, title=title, **config)
    session.commit()
    return study
