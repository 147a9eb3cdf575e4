"""The study page's "paint next" card: the newest `rank_paintings` job of a study and the top of its ranking.

Why a view of a job's result: the ranking (predictor uncertainty and Grad-CAM disagreement, class-balanced;
`worker/jobs/rank.py`) needs torch, so the worker computes it and the dashboard only reads what it stored.
Studies still draw images at random; the card is advice for whoever sets up the next painting round.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Job

#: How many of the newest rank_paintings jobs are searched for one of the study (params are JSON, filtered here
#: so the query is the same on SQLite and PostgreSQL).
RECENT_JOBS = 200
#: How many ranked images the card shows.
SHOWN = 12


def latest_ranking(session: Session, study_id: int, *, shown: int = SHOWN) -> dict[str, Any] | None:
    """The newest rank_paintings job of `study_id` (any status) and, once it succeeded, the first `shown`
    entries of its ranking; None when the study was never ranked."""
    jobs = session.scalars(
        select(Job).where(Job.kind == "rank_paintings").order_by(Job.id.desc()).limit(RECENT_JOBS)
    ).all()
    job = next((j for j in jobs if (j.params or {}).get("study_id") == study_id), None)
    if job is None:
        return None
    result = job.result if job.status == "succeeded" else None
    return {
        "job": job,
        "ranking": (result or {}).get("ranking", [])[:shown] if result else None,
        "result": result,
    }
