"""The study page's "paint next" card: the newest `rank_paintings` job of a study, per ranked image the human
mean, predicted map and uncertainty, how the study chooses images now, and the predictor's held-out quality
against the number of paintings over the study's rankings.

Why a view of jobs' results: the ranking, the maps and the quality need torch, so the worker computes them
(`worker/jobs/rank.py`, `rank_views.py`) and stores PNG blobs and numbers; the dashboard only reads them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.admin.figures import Figure, Table
from backend.admin.plots import Series, line_chart
from backend.models import Job
from backend.services.paint_next import annotate_order, rank_jobs
from backend.study.config import StudyConfig

#: The newest rank_paintings jobs of a study the curve draws.
RECENT_JOBS = 200
#: How many ranked images the card shows.
SHOWN = 12
#: The blob fields of a ranking entry that `map_png` may serve (the job's own maps, nothing else).
MAP_FIELDS = ("predicted_sha256", "uncertainty_sha256", "human_sha256")


def latest_ranking(session: Session, study_id: int, *, shown: int = SHOWN) -> dict[str, Any] | None:
    """The newest rank_paintings job of `study_id` (any status) and, once it succeeded, the first `shown`
    entries of its ranking; None when the study was never ranked."""
    job = session.scalars(rank_jobs(study_id).limit(1)).first()
    if job is None:
        return None
    result = job.result if job.status == "succeeded" else None
    return {
        "job": job,
        "ranking": (result or {}).get("ranking", [])[:shown] if result else None,
        "result": result,
    }


def choice_note(session: Session, study_id: int, config: dict[str, Any] | None) -> str | None:
    """How new participants of the study get the images they paint (None for a config that does not validate:
    the page shows that problem elsewhere)."""
    try:
        parsed = StudyConfig.model_validate(config or {})
    except ValueError:
        return None
    return annotate_order(session, study_id, parsed).note


def quality_points(session: Session, study_id: int) -> list[dict[str, Any]]:
    """Per succeeded ranking of the study with a held-out score, oldest first: job id, paintings the scored
    predictor learnt from, images learnt from and held out, CC, SIM, NSS."""
    jobs = session.scalars(rank_jobs(study_id).where(Job.status == "succeeded").limit(RECENT_JOBS)).all()
    points = []
    for job in reversed(jobs):
        held = (job.result or {}).get("heldout") or {}
        if held.get("cc") is not None:
            points.append({"job_id": job.id, **{k: held.get(k) for k in ("paintings", "images", "held_out")},
                           **{k: held.get(k) for k in ("cc", "sim", "nss")}})  # fmt: skip
    return points


def quality_figure(points: list[dict[str, Any]]) -> Figure:
    """Held-out CC (and SIM) of the predictor against the paintings it learnt from: one point per ranking."""
    ordered = sorted(points, key=lambda p: (p["paintings"], p["job_id"]))
    svg = None
    if ordered:
        xs = [float(p["paintings"]) for p in ordered]
        series = [Series("CC", xs, [float(p["cc"]) for p in ordered])]
        if all(p.get("sim") is not None for p in ordered):
            series.append(Series("SIM", xs, [float(p["sim"]) for p in ordered], dashed=True))
        svg = line_chart(
            series,
            title="Salience predictor on held-out paintings",
            x_label="paintings the predictor learnt from",
            y_label="held-out score (CC, SIM)",
            y_range=(min(0.0, *(float(p["cc"]) for p in ordered)), 1.0),
            x_format=lambda v: f"{v:.0f}",
            width=560,
            height=300,
        )
    rows = [[p["job_id"], p["paintings"], p["images"], p["held_out"], p["cc"], p["sim"], p["nss"]] for p in ordered]
    return Figure(
        key="predictor-quality",
        title="How the predictor's held-out quality grows with the paintings",
        svg=svg,
        tables=[Table(columns=["job", "paintings", "images", "held out", "CC", "SIM", "NSS"], rows=rows)],
        caption="Each ranking holds out a seeded 20 % of the painted images (from 5 painted images on), trains a "
        "predictor on the rest and scores it against the held-out mean human maps. Those images are the ones this "
        "study chose to paint (with an active pool, the hard ones), so the curve follows one study and does not "
        "compare pools; benchmarks/study_loop compares them on fixed test images.",
    )


def map_sha(job: Job, sha: str) -> bool:
    """Whether `sha` is one of the maps `job`'s ranking names (so the route serves no other blob)."""
    ranking = (job.result or {}).get("ranking", []) if job.kind == "rank_paintings" else []
    return any(r.get(name) == sha for r in ranking for name in MAP_FIELDS)


def paint_next_context(session: Session, study_id: int, config: dict[str, Any] | None) -> dict[str, Any]:
    """What the study page's card needs."""
    points = quality_points(session, study_id)
    return {
        "paint_next": latest_ranking(session, study_id),
        "painting_choice": choice_note(session, study_id, config),
        "quality_figure": quality_figure(points),
        "quality_points": points,
    }
