"""The `rank_paintings` job: a study's unpainted training images ranked for painting next, the same for the
same seed, balanced over the classes, never listing a painted image; a study without painted training images
is refused (422) before anything is queued."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from backend.db import session_scope
from backend.models import Image, Job
from backend.services.errors import InvalidInputError
from backend.services.job_requests import submit_job
from tests.worker.test_loop_coverage import _paint_all, _study
from worker.runner import execute
from worker.runtime import Runtime

RANK = {"predictor_epochs": 2, "samples": 4, "top": 12, "batch_size": 16, "lr": 0.05}


def _rank(rt: Runtime, study_id: int, **params: object) -> dict:
    with session_scope(rt.session_factory) as session:
        job_id = submit_job(session, "rank_paintings", {"study_id": study_id, **RANK, **params}).id
    assert execute(job_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        return dict(session.get(Job, job_id).result)


def test_ranking_is_deterministic_balanced_and_lists_only_unpainted_training_images(
    rt: Runtime, dataset_id: int
) -> None:
    study_id = _study(rt, dataset_id, "rank")
    painted = _paint_all(rt, "rank", participants=1)
    with session_scope(rt.session_factory) as session:
        train = dict(
            session.execute(
                select(Image.id, Image.label).where(Image.dataset_id == dataset_id, Image.split == "train")
            ).all()
        )
    first = _rank(rt, study_id, seed=3)
    assert first["painted"] == len(painted) and first["candidates"] == len(train) - len(painted)
    ids = [r["image_id"] for r in first["ranking"]]
    assert len(ids) == 12 == len(set(ids))
    assert set(ids) <= set(train) - set(painted)
    assert all(r["label"] == train[r["image_id"]] for r in first["ranking"])
    per_class = Counter(r["label"] for r in first["ranking"])
    assert len(per_class) == 6 and max(per_class.values()) - min(per_class.values()) <= 1  # 6 classes, 12 picks
    # within a class, the picks come in falling score order
    for label in per_class:
        scores = [r["score"] for r in first["ranking"] if r["label"] == label]
        assert scores == sorted(scores, reverse=True)

    assert _rank(rt, study_id, seed=3)["ranking"] == first["ranking"]
    other = _rank(rt, study_id, seed=4)["ranking"]
    assert [r["image_id"] for r in other] != ids


def test_ranking_without_painted_training_images_is_a_422(rt: Runtime, dataset_id: int) -> None:
    study_id = _study(rt, dataset_id, "rank-unpainted", annotation_split=None)  # paints test digits only
    assert _paint_all(rt, "rank-unpainted", participants=1)
    with session_scope(rt.session_factory) as session:
        with pytest.raises(InvalidInputError) as err:
            submit_job(session, "rank_paintings", {"study_id": study_id, **RANK})
        assert session.scalar(select(Job.id)) is None
    assert err.value.status_code == 422 and "nothing to learn from" in err.value.message
