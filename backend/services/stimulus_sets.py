"""Stimulus sets for the research API: create one with its generation job, summarise and page its stimuli.

A set names its model directly (`model_id`) or through a train job that is still running (`train_job_id`:
the job's model row exists from the start, and the generation job waits until its checkpoint does). What to
generate is stored on the set itself: its columns (attack, norm, eps levels, masked, steps) and `params`
(`backend.services.job_params.StimulusSetOptions`: split, n_images, seed, salience source, ...). The generation
job reads and writes its rows through `stimulus_keys`, `add_stimuli` and `trial_summary` here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Dataset, Image, Job, Stimulus, StimulusSet, TrainedModel, User
from backend.services.errors import ConflictError, InvalidInputError
from backend.services.job_params import StimulusSetOptions
from backend.services.jobs import FINISHED, create_stimuli_job
from backend.services.lookups import get_or_404, get_referenced
from backend.services.ownership import require_owner
from backend.vocabulary import LINF_ONLY_ATTACKS


@dataclass(frozen=True)
class StimulusSetSpec:
    """What `create_stimulus_set` needs (the API's `StimulusSetCreate`, checked for shape already)."""

    name: str
    dataset_id: int
    model_id: int | None
    train_job_id: int | None
    attack: str
    norm: str
    eps_levels: list[float]
    masked: bool
    steps: int
    options: StimulusSetOptions

    @classmethod
    def of(cls, body: Any) -> StimulusSetSpec:
        """From the API's `StimulusSetCreate` (the REST body and the admin form alike)."""
        return cls(
            name=body.name,
            dataset_id=body.dataset_id,
            model_id=body.model_id,
            train_job_id=body.train_job_id,
            attack=body.attack,
            norm=body.norm,
            eps_levels=body.eps_levels,
            masked=body.masked,
            steps=body.steps,
            options=body.options(),
        )


def _model_for(session: Session, spec: StimulusSetSpec) -> TrainedModel:
    if (spec.model_id is None) == (spec.train_job_id is None):
        raise InvalidInputError("give exactly one of model_id (a trained model) or train_job_id (one in training)")
    if spec.model_id is not None:
        return get_referenced(session, TrainedModel, spec.model_id, field="model_id")
    job = get_referenced(session, Job, spec.train_job_id, field="train_job_id")  # type: ignore[arg-type]
    if job.kind != "train":
        raise InvalidInputError(f"train_job_id: job {job.id} is a {job.kind} job, not a train job")
    model = session.scalar(select(TrainedModel).where(TrainedModel.job_id == job.id))
    if model is None:
        raise InvalidInputError(f"train_job_id: job {job.id} has no model row; start training with POST /jobs")
    if job.status in ("failed", "cancelled") and model.checkpoint_sha256 is None:
        raise InvalidInputError(
            f"train_job_id: job {job.id} ended {job.status} without a checkpoint; train again or pass a model_id"
        )
    return model


def _check_images(session: Session, dataset_id: int, options: StimulusSetOptions) -> int:
    """The number of images the set will hold; 422 when the split or n_images cannot be satisfied."""
    query = select(func.count(Image.id)).where(Image.dataset_id == dataset_id)
    if options.split is not None:
        query = query.where(Image.split == options.split)
    available = session.scalar(query) or 0
    if available == 0:
        splits = session.scalars(select(Image.split).where(Image.dataset_id == dataset_id).distinct()).all()
        named = ", ".join(sorted(repr(s) for s in splits))
        raise InvalidInputError(
            f"split: dataset {dataset_id} has no images of split {options.split!r}; its splits are {named} "
            "(null takes all images)"
        )
    if options.n_images is not None and options.n_images > available:
        raise InvalidInputError(
            f"n_images: only {available} images of split {options.split!r} in dataset {dataset_id}; ask for at "
            f"most {available} (or null for all)"
        )
    return options.n_images or available


def create_stimulus_set(
    session: Session, spec: StimulusSetSpec, *, owner: User | None = None
) -> tuple[StimulusSet, Job]:
    """A pending stimulus set and its queued `generate_stimuli` job (not committed, not enqueued), both owned
    by `owner` (None: the administrators', as for rows made without a caller).

    403 for a dataset, model or train job that `owner` may not use; 422 for one that does not exist, an L2
    request with an L-inf-only attack, or a split / n_images the dataset cannot satisfy.
    """
    if owner is not None:
        require_owner(session, owner, Dataset, spec.dataset_id, field="dataset_id")
        if spec.model_id is not None:
            require_owner(session, owner, TrainedModel, spec.model_id, field="model_id")
        if spec.train_job_id is not None:
            require_owner(session, owner, Job, spec.train_job_id, field="train_job_id")
    get_referenced(session, Dataset, spec.dataset_id, field="dataset_id")
    model = _model_for(session, spec)
    if spec.attack in LINF_ONLY_ATTACKS and spec.norm != "linf":
        raise InvalidInputError(f"norm: {spec.attack} is an L-inf attack; use norm 'linf', or attack 'pgd' for L2")
    if spec.norm == "linf" and any(eps > 1 for eps in spec.eps_levels):
        raise InvalidInputError("eps_levels: L-inf radii are in [0, 1] pixel units (8/255 = 0.0314); use <= 1")
    _check_images(session, spec.dataset_id, spec.options)
    sset = StimulusSet(
        name=spec.name,
        dataset_id=spec.dataset_id,
        model_id=model.id,
        attack=spec.attack,
        norm=spec.norm,
        eps_levels=spec.eps_levels,
        masked=spec.masked,
        steps=spec.steps,
        status="pending",
        params=spec.options.model_dump(mode="json"),
        owner_id=owner.id if owner is not None else None,
    )
    session.add(sset)
    session.flush()
    job = create_stimuli_job(session, sset)
    job.owner_id = sset.owner_id
    return sset, job


def regenerate(session: Session, stimulus_set_id: int) -> Job:
    """A new generation job for an existing set (e.g. after a failure); 409 while one is queued or running.
    Stimuli made before are kept (generation only adds what is missing)."""
    sset = get_referenced(session, StimulusSet, stimulus_set_id, field="stimulus_set_id")
    current = session.get(Job, sset.job_id) if sset.job_id is not None else None
    if current is not None and current.status not in FINISHED:
        raise ConflictError(
            f"stimulus set {sset.id} already has generation job {current.id} ({current.status}); wait for it or "
            f"cancel it with POST /jobs/{current.id}/cancel"
        )
    return create_stimuli_job(session, sset)


def list_stimulus_sets(
    session: Session, *, offset: int, limit: int, dataset_id: int | None = None, owner_id: int | None = None
) -> tuple[list[StimulusSet], int]:
    """A page of sets, newest first; only those of `owner_id` when given (a researcher's own)."""
    query = select(StimulusSet)
    if owner_id is not None:
        query = query.where(StimulusSet.owner_id == owner_id)
    if dataset_id is not None:
        query = query.where(StimulusSet.dataset_id == dataset_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return list(session.scalars(query.order_by(StimulusSet.id.desc()).offset(offset).limit(limit))), total


@dataclass(frozen=True)
class StimulusSetSummary:
    stimulus_set: StimulusSet
    job: Job | None
    n_images: int
    n_stimuli: int
    n_catch: int
    per_eps: list[dict[str, Any]]


def stimulus_set_summary(session: Session, stimulus_set_id: int) -> StimulusSetSummary:
    """The set, its generation job, and its trial stimuli counted per eps (with the mean achieved norms)."""
    sset = get_or_404(session, StimulusSet, stimulus_set_id)
    rows = session.execute(
        select(Stimulus.role, Stimulus.eps, func.count(Stimulus.id), func.avg(Stimulus.linf), func.avg(Stimulus.l2))
        .where(Stimulus.stimulus_set_id == sset.id)
        .group_by(Stimulus.role, Stimulus.eps)
        .order_by(Stimulus.eps)
    ).all()
    per_eps = [
        {"eps": eps, "n": n, "mean_linf": linf, "mean_l2": l2} for role, eps, n, linf, l2 in rows if role == "trial"
    ]
    n_images = session.scalar(
        select(func.count(func.distinct(Stimulus.image_id))).where(
            Stimulus.stimulus_set_id == sset.id, Stimulus.role == "trial"
        )
    )
    return StimulusSetSummary(
        stimulus_set=sset,
        job=session.get(Job, sset.job_id) if sset.job_id is not None else None,
        n_images=n_images or 0,
        n_stimuli=sum(n for _, _, n, _, _ in rows),
        n_catch=sum(n for role, _, n, _, _ in rows if role == "catch"),
        per_eps=per_eps,
    )


def list_stimuli(
    session: Session,
    stimulus_set_id: int,
    *,
    offset: int,
    limit: int,
    eps: float | None = None,
    role: str | None = None,
) -> tuple[list[tuple[Stimulus, str]], int]:
    """A page of the set's stimuli (ordered by image, then role, then eps) with each source image's label."""
    get_or_404(session, StimulusSet, stimulus_set_id)
    query = select(Stimulus, Image.label).join(Image, Image.id == Stimulus.image_id)
    query = query.where(Stimulus.stimulus_set_id == stimulus_set_id)
    if eps is not None:
        query = query.where(func.abs(Stimulus.eps - eps) < 1e-9)
    if role is not None:
        query = query.where(Stimulus.role == role)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(Stimulus.image_id, Stimulus.role.desc(), Stimulus.eps).offset(offset).limit(limit)
    ).all()
    return [(stimulus, label) for stimulus, label in rows], total


def eps_key(eps: float) -> float:
    """An eps level as a set key: stored floats of one level compare equal after rounding to 9 digits."""
    return round(float(eps), 9)


def stimulus_keys(session: Session, stimulus_set_id: int) -> set[tuple[int, float, str]]:
    """(image id, `eps_key(eps)`, role) of every stimulus the set already has (a rerun makes only the others)."""
    rows = session.execute(
        select(Stimulus.image_id, Stimulus.eps, Stimulus.role).where(Stimulus.stimulus_set_id == stimulus_set_id)
    )
    return {(image_id, eps_key(eps), role) for image_id, eps, role in rows}


def add_stimuli(session: Session, stimuli: Iterable[Stimulus]) -> None:
    """Add the rows of stimuli whose PNG blobs are stored already (the caller's transaction commits them)."""
    session.add_all(stimuli)


def trial_summary(session: Session, stimulus_set_id: int) -> dict[str, Any]:
    """Per eps level (trial stimuli): count, share whose predicted class changed, largest stored L-inf."""
    per: dict[float, list[Stimulus]] = defaultdict(list)
    query = select(Stimulus).where(Stimulus.stimulus_set_id == stimulus_set_id, Stimulus.role == "trial")
    for st in session.scalars(query):
        per[eps_key(st.eps)].append(st)
    return {
        "per_eps": {
            f"{eps:.6g}": {
                "n": len(rows),
                "flipped": sum(r.pred_before != r.pred_after for r in rows) / len(rows),
                "max_linf": max((r.linf or 0.0) for r in rows),
            }
            for eps, rows in sorted(per.items())
        }
    }


def find_stimulus_set(session: Session, stimulus_set_id: int) -> StimulusSet | None:
    """The set row, or None: the `generate_stimuli` job words the refusal itself."""
    return session.get(StimulusSet, stimulus_set_id)


def start_generation(sset: StimulusSet, job_id: int, *, anything_to_make: bool) -> None:
    """The set is made by job `job_id`: `generating` while it has stimuli to make, else `ready` right away (a
    set in use stays usable: no flip to `generating` for a rerun that makes nothing)."""
    sset.job_id = job_id
    sset.status = "generating" if anything_to_make else "ready"


def finish_generation(session: Session, stimulus_set_id: int) -> dict[str, Any] | None:
    """Mark the set `ready` once its job stored every stimulus; its `trial_summary`, or None when the set was
    deleted meanwhile."""
    sset = session.get(StimulusSet, stimulus_set_id)
    if sset is None:
        return None
    sset.status = "ready"
    return trial_summary(session, stimulus_set_id)
