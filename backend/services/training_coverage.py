"""Salience coverage of a training job: how many of its training images get a human map, how many fall back.

The loop (participants paint -> SIP-AT trains with the paintings) breaks silently when the painted images are
not the images training uses (a study painting test images, a `min_annotators` nobody reached): the job still
succeeds, with plain adversarial training. So the coverage is computed where it can still be acted upon, when
the job is submitted (shown in the dashboard form and the REST response; a study-annotation job with zero
coverage is refused), and again by the worker from the same queries, into the job's result.

One rule decides the training images, shared with the worker (`training_image_ids`): images of split `test`
are held out; without any, a seeded 20 % of all images is. Torch-free (the backend imports it).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from backend.models import Annotation, Image, Participant, Stimulus, StimulusSet, Study, Trial
from backend.services.errors import InvalidInputError
from backend.services.job_params import STUDY_SOURCES  # sources that read a study's paintings
from backend.vocabulary import MASKED_METHODS

#: The one rule for a painting SIP-AT uses (training means, rankings, the refresh count of `rerank_every`): its
#: painter passed the catch trials and is not a researcher's pilot.
COUNTED_PAINTER = and_(Participant.flagged.is_(False), Participant.simulated.is_(False))

HOLDOUT_FRACTION = 0.2
#: Below this share of training images with a human map, coverage comes with a warning.
LOW_COVERAGE = 0.25


def training_image_ids(images: Sequence[tuple[int, str | None]], seed: int) -> tuple[list[int], str]:
    """(ids of the training images, how the rest was held out) of (id, split) pairs in id order.

    Images of split 'test' are held out; without any, a seeded `HOLDOUT_FRACTION` of all (at least one).
    Raises ValueError for fewer than 2 images without a test split (nothing could be held out)."""
    if any(split == "test" for _, split in images):
        return [i for i, split in images if split != "test"], "split 'test'"
    if len(images) < 2:
        raise ValueError("the dataset needs at least 2 images to hold one out for evaluation")
    k = max(1, math.ceil(HOLDOUT_FRACTION * len(images)))
    held = set(random.Random(seed).sample([i for i, _ in images], k))
    return [i for i, _ in images if i not in held], f"seeded {HOLDOUT_FRACTION:.0%} hold-out"


def annotation_masks(session: Session, study_id: int, image_ids: Sequence[int]) -> dict[int, list[str]]:
    """image id -> mask blobs (sha256, in annotation order) painted on it in `study_id` by participants not
    flagged by the catch trials, simulated sessions (researchers' pilot runs) left out; images nobody painted
    are absent."""
    rows = session.execute(
        select(Stimulus.image_id, Annotation.mask_sha256)
        .join(Trial, Annotation.trial_id == Trial.id)
        .join(Stimulus, Trial.stimulus_id == Stimulus.id)
        .join(Participant, Trial.participant_id == Participant.id)
        .where(
            Participant.study_id == study_id,
            COUNTED_PAINTER,
            Stimulus.image_id.in_(list(image_ids)),
        )
        .order_by(Annotation.id)
    ).all()
    masks: dict[int, list[str]] = defaultdict(list)
    for image_id, sha in rows:
        masks[image_id].append(sha)
    return dict(masks)


def required_annotators(session: Session, study_id: int, min_annotators: int | None) -> int:
    """`min_annotators`, or the study's own setting when None (1 for a study without one)."""
    if min_annotators is not None:
        return min_annotators
    study = session.get(Study, study_id)
    return int(((study.config if study is not None else None) or {}).get("min_annotators", 1))


def coverage_summary(
    *,
    source: str,
    n_train: int,
    human_ids: Sequence[int],
    fallback: str,
    min_annotators: int | None = None,
    study_id: int | None = None,
    painted_too_few: int = 0,
    flagged_paintings: int = 0,
) -> dict[str, Any]:
    """The coverage record (JSON) shown before and after training.

    `human` of `n_train` training images have a human map; the others fall back to `fallback` ('gradcam',
    'none': mask 1, plain adversarial training, or 'predicted': the salience predictor's maps, always so for
    source 'predicted'). `warning` is set when the human share is below `LOW_COVERAGE`, saying what it means
    for the model."""
    human = len(human_ids)
    if source == "predicted":
        fallback = "predicted"
    out: dict[str, Any] = {
        "source": source,
        "study_id": study_id,
        "n_train": n_train,
        "human": human,
        "min_annotators": min_annotators,
        "painted_too_few": painted_too_few,
        "flagged_paintings": flagged_paintings,
        "fallback": fallback,
        "fallback_count": n_train - human,
        "human_image_ids": sorted(human_ids),
        "warning": None,
    }
    if source in STUDY_SOURCES and n_train and human / n_train < LOW_COVERAGE:
        out["warning"] = (
            f"low coverage: only {human} of {n_train} training images ({human / n_train:.0%}) have a human map; "
            f"the other {n_train - human} get {_FALLBACK_WORDS.get(fallback, 'no map')}, so the "
            "model mostly learns from those"
        )
    return out


_FALLBACK_WORDS = {
    "gradcam": "Grad-CAM maps",
    "none": "no map",
    "predicted": "maps of a predictor trained on the human ones",
}


def describe(coverage: dict[str, Any]) -> str:
    """One line for people: 'salience: 12 of 240 training images have a human map (>= 1 annotator); ...'."""
    if coverage["source"] not in STUDY_SOURCES:
        return f"salience: {coverage['source']} for {coverage['n_train']} training images"
    fallback = {"gradcam": "Grad-CAM", "predicted": "the salience predictor's maps"}.get(
        coverage["fallback"], "none (mask 1)"
    )
    line = (
        f"salience: {coverage['human']} of {coverage['n_train']} training images have a human map "
        f"(>= {coverage['min_annotators']} annotators); {coverage['fallback_count']} fall back to {fallback}"
    )
    return f"{line}. Warning: {coverage['warning']}" if coverage["warning"] else line


def compute_coverage(session: Session, params: dict[str, Any]) -> dict[str, Any] | None:
    """The coverage a `train` job with validated `params` will have, or None when its method uses no maps
    (no check: see `plan_coverage`). 422 for a dataset too small to hold images out, or annotations without
    a study."""
    if params.get("method") not in MASKED_METHODS:
        return None
    images = session.execute(
        select(Image.id, Image.split).where(Image.dataset_id == params["dataset_id"]).order_by(Image.id)
    ).all()
    try:
        train_ids, _ = training_image_ids([(i, s) for i, s in images], int(params.get("seed", 0)))
    except ValueError as exc:
        raise InvalidInputError(f"params.dataset_id: {exc}") from None
    source, fallback = str(params.get("salience", "none")), str(params.get("fallback", "none"))
    if source not in STUDY_SOURCES:
        return coverage_summary(source=source, n_train=len(train_ids), human_ids=[], fallback=fallback)
    study_id = params.get("study_id")
    if study_id is None:
        raise InvalidInputError(f"params.study_id: salience '{source}' needs the study whose paintings to use")
    need = required_annotators(session, study_id, params.get("min_annotators"))
    masks = annotation_masks(session, study_id, train_ids)
    human = [i for i, shas in masks.items() if len(shas) >= need]
    return coverage_summary(
        source=source,
        n_train=len(train_ids),
        human_ids=human,
        fallback=fallback,
        min_annotators=need,
        study_id=study_id,
        painted_too_few=len(masks) - len(human),
        flagged_paintings=flagged_paintings(session, study_id, train_ids),
    )


def plan_coverage(session: Session, params: dict[str, Any]) -> dict[str, Any] | None:
    """`compute_coverage`, refusing (InvalidInputError, 422) a job that trains on a study's annotations of
    which no training image has enough: it would silently be plain adversarial training (or Grad-CAM only),
    and with source 'predicted' the predictor would have nothing to learn from."""
    coverage = compute_coverage(session, params)
    if coverage is None or coverage["source"] not in STUDY_SOURCES or coverage["human"]:
        return coverage
    need, too_few = coverage["min_annotators"], ""
    if coverage["painted_too_few"]:
        too_few = (
            f"; {coverage['painted_too_few']} were painted by fewer than {need} annotators "
            "(lower params.min_annotators)"
        )
    if coverage["flagged_paintings"]:
        too_few += (
            f"; {coverage['flagged_paintings']} paintings of participants flagged by the catch trials are left out"
        )
    if coverage["source"] == "predicted":
        too_few += "; salience 'predicted' trains its predictor on these maps, so it has nothing to learn from"
    raise InvalidInputError(
        f"no training image of dataset {params['dataset_id']} has a human map from study {coverage['study_id']} "
        f"(0 of {coverage['n_train']} with at least {need} annotations{too_few}), so the model would not learn "
        "from any painting. Let participants paint training images first (the study's annotation pool, "
        "config.annotation_split 'train'), or train with salience 'imported' or 'gradcam'"
    )


def flagged_paintings(session: Session, study_id: int, image_ids: Sequence[int]) -> int:
    """Paintings of `image_ids` in the study by participants the catch trials flagged (not used)."""
    return (
        session.scalar(
            select(func.count(Annotation.id))
            .join(Trial, Annotation.trial_id == Trial.id)
            .join(Stimulus, Trial.stimulus_id == Stimulus.id)
            .join(Participant, Trial.participant_id == Participant.id)
            .where(
                Participant.study_id == study_id,
                Participant.flagged.is_(True),
                Stimulus.image_id.in_(list(image_ids)),
            )
        )
        or 0
    )


def painting_pool(session: Session, study_id: int, seed: int, min_annotators: int | None) -> dict[str, Any]:
    """What a `rank_paintings` job ranks: the study's dataset, its training images (the train job's rule with
    `seed`), those with >= min_annotators paintings (the predictor's data) and the rest (the candidates).
    422 for a study without a stimulus set, or one whose paintings cover no training image (nothing to learn)."""
    study = session.get(Study, study_id)
    set_id = (study.config or {}).get("stimulus_set_id") if study is not None else None
    dataset_id = session.scalar(select(StimulusSet.dataset_id).where(StimulusSet.id == set_id)) if set_id else None
    if dataset_id is None:
        raise InvalidInputError(f"params.study_id: study {study_id} has no stimulus set, so no dataset to rank")
    images = session.execute(select(Image.id, Image.split).where(Image.dataset_id == dataset_id).order_by(Image.id))
    try:
        train_ids, _ = training_image_ids([(i, s) for i, s in images.all()], seed)
    except ValueError as exc:
        raise InvalidInputError(f"params.study_id: the dataset of study {study_id}: {exc}") from None
    need = required_annotators(session, study_id, min_annotators)
    masks = annotation_masks(session, study_id, train_ids)
    painted = sorted(i for i, shas in masks.items() if len(shas) >= need)
    if not painted:
        raise InvalidInputError(
            f"no training image of study {study_id}'s dataset has {need} or more paintings (0 of {len(train_ids)}), "
            "so the salience predictor has nothing to learn from; let participants paint training images first"
        )
    return {
        "dataset_id": dataset_id,
        "train_ids": train_ids,
        "painted": painted,
        "candidates": [i for i in train_ids if i not in set(painted)],
        "min_annotators": need,
    }


@dataclass(frozen=True)
class StudyPaintings:
    """What a train job reads of a study's paintings on its training images, with the coverage's own queries."""

    min_annotators: int  # the job's minimum, or the study's setting
    masks: dict[int, list[str]]  # image id -> mask blobs of its unflagged annotators (`annotation_masks`)
    flagged: int  # paintings of flagged participants left out (`flagged_paintings`)


def study_paintings(
    session: Session, study_id: int, image_ids: Sequence[int], min_annotators: int | None
) -> StudyPaintings | None:
    """The paintings of study `study_id` on `image_ids` for the worker's means; None when there is no such study."""
    if session.get(Study, study_id) is None:
        return None
    return StudyPaintings(
        min_annotators=required_annotators(session, study_id, min_annotators),
        masks=annotation_masks(session, study_id, image_ids),
        flagged=flagged_paintings(session, study_id, image_ids),
    )
