"""The study side of "which image to paint next" (issue 20): the ranking a study's schedule follows.

Why here and not in the worker: the ranking needs torch and is computed by the `rank_paintings` job
(`worker/jobs/rank.py`); enrolment only reads its stored pick order and the study's painting counts, two
indexed queries, so a new session stays cheap and torch-free.

A study with `painting_pool: "active"` gives each new participant's annotation trials the newest succeeded
ranking's images in pick order, leaving out those that already have `min_annotators` accepted paintings
(participants not flagged, pilots left out: the rule the predictor's data follows) and, first, those that
are *claimed*: painted plus assigned to (real, unfinished) sessions started in the last `CLAIM_HOURS` that have
not painted them yet reach `min_annotators`. Claims keep a burst of simultaneous participants from all
painting the same top images; an abandoned session stops claiming after `CLAIM_HOURS`. Without a ranking the
schedule stays random.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session

from backend.models import Annotation, Job, Participant, Stimulus, Trial, utcnow
from backend.services.training_coverage import COUNTED_PAINTER
from backend.study.config import StudyConfig

#: Hours an unfinished session's unpainted annotation trials count as claims on their images.
CLAIM_HOURS = 2
#: Ranked ids read from a ranking (its `top`, 50 by default, is usually far fewer).
MAX_ORDER = 10_000


def rank_jobs(study_id: int) -> Select[Job]:
    """The study's `rank_paintings` jobs, newest first (params are JSON: the study id is read with the
    dialect's JSON operator, the same statement on SQLite and PostgreSQL)."""
    return (
        select(Job)
        .where(Job.kind == "rank_paintings", Job.params["study_id"].as_integer() == study_id)
        .order_by(Job.id.desc())
    )


def newest_ranking(session: Session, study_id: int) -> Job | None:
    """The newest succeeded `rank_paintings` job of the study (None when it was never ranked)."""
    return session.scalars(rank_jobs(study_id).where(Job.status == "succeeded").limit(1)).first()


def painting_counts(
    session: Session, study_id: int, stimulus_set_id: int, image_ids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """image id -> (accepted paintings, claims) of the study's annotation trials of `image_ids` (see the module
    docstring). Read from the set's `annotate` stimuli of those images through the trials' stimulus index, so
    the cost follows the ranked images' trials, not the study's size."""
    cutoff = utcnow() - timedelta(hours=CLAIM_HOURS)
    accepted = and_(Annotation.id.is_not(None), COUNTED_PAINTER)
    pending = and_(
        Annotation.id.is_(None),
        Participant.completed_at.is_(None),
        Participant.simulated.is_(False),  # a researcher's pilot paints nothing SIP-AT uses: it claims nothing
        Participant.started_at >= cutoff,
    )
    rows = session.execute(
        select(
            Stimulus.image_id,
            func.sum(case((accepted, 1), else_=0)),
            func.sum(case((pending, 1), else_=0)),
        )
        .select_from(Stimulus)
        .join(Trial, Trial.stimulus_id == Stimulus.id)
        .join(Participant, Trial.participant_id == Participant.id)
        .outerjoin(Annotation, Annotation.trial_id == Trial.id)
        .where(
            Stimulus.stimulus_set_id == stimulus_set_id,
            Stimulus.role == "annotate",
            Stimulus.image_id.in_(list(image_ids)),
            Participant.study_id == study_id,
            Trial.phase == "annotate",
        )
        .group_by(Stimulus.image_id)
    )
    return {int(image_id): (int(done or 0), int(done or 0) + int(held or 0)) for image_id, done, held in rows}


@dataclass(frozen=True)
class ActiveChoice:
    """What the schedule gets for an active pool: `order` (None: draw at random) and why, for the study page."""

    order: list[int] | None
    job_id: int | None
    note: str


def annotate_order(session: Session, study_id: int, config: StudyConfig) -> ActiveChoice:
    """The images a new participant of the study should paint first, in order (module docstring)."""
    if config.painting_pool != "active":
        return ActiveChoice(None, None, "random: each participant paints a seeded sample of the annotation pool")
    job = newest_ranking(session, study_id)
    ranking: list[dict[str, Any]] = list((job.result or {}).get("ranking", [])) if job is not None else []
    if job is None or not ranking:
        return ActiveChoice(None, None, "active, but no finished ranking yet: participants paint random images")
    need = config.min_annotators
    ranked = [int(r["image_id"]) for r in ranking[:MAX_ORDER]]
    counts = painting_counts(session, study_id, config.stimulus_set_id, ranked)
    free = [i for i in ranked if counts.get(i, (0, 0))[1] < need]
    taken = set(free)
    unsatisfied = [i for i in ranked if counts.get(i, (0, 0))[0] < need and i not in taken]
    order = free + unsatisfied
    if not order:
        return ActiveChoice([], job.id, f"active: every image ranked by job {job.id} is painted enough; random")
    return ActiveChoice(order, job.id, f"active: the ranking of job {job.id}, {len(free)} of its images unclaimed")


__all__ = ["ActiveChoice", "annotate_order", "newest_ranking", "painting_counts", "rank_jobs"]
