"""The loop: a study paints the training images (its annotation pool), a train job on its annotations says
before queueing and in its result how many training images have a human map, and zero coverage is a 422."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select, update

from backend.db import session_scope
from backend.models import Annotation, Image, Job, Stimulus, StimulusSet, TrainedModel, Trial
from backend.services.errors import InvalidInputError, UnavailableError
from backend.services.jobs import create_train_job
from backend.services.participants import start_session
from backend.services.studies import create_study, open_study
from backend.study.config import StudyConfig
from tests.worker.workerkit import FAST_TRAIN
from worker.runner import execute
from worker.runtime import Runtime

SIP = {**FAST_TRAIN, "method": "sip_at", "salience": "annotations"}


def _png(fill: int) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(np.full((28, 28), fill, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _study(rt: Runtime, dataset_id: int, slug: str, **config: object) -> int:
    """An open study over a ready stimulus set of the dataset's 12 test digits (clean and eps 0.1)."""
    with session_scope(rt.session_factory) as session:
        sset = StimulusSet(dataset_id=dataset_id, eps_levels=[0.1], status="ready", params={"split": "test"})
        session.add(sset)
        session.flush()
        for im in session.scalars(select(Image).where(Image.dataset_id == dataset_id, Image.split == "test")):
            session.add_all(
                Stimulus(stimulus_set_id=sset.id, image_id=im.id, eps=e, sha256=im.sha256) for e in (0, 0.1)
            )
        counts = {"n_main": 4, "n_practice": 0, "n_catch": 0, "n_annotate": 2}
        cfg = StudyConfig.model_validate({"stimulus_set_id": sset.id, **counts, **config})
        study = create_study(session, slug=slug, title=slug, config=cfg)
        open_study(session, study.id)
        return study.id


def _paint_all(rt: Runtime, slug: str, participants: int) -> dict[int, list[int]]:
    """`participants` sessions whose annotation trials get a mask of gray level 60 * (index + 1);
    image id -> the gray levels painted on it."""
    painted: dict[int, list[int]] = {}
    for k in range(participants):
        with session_scope(rt.session_factory) as session:
            participant = start_session(session, slug, consent=True).participant
            session.flush()
            trials = session.execute(
                select(Trial.id, Stimulus.image_id)
                .join(Stimulus, Stimulus.id == Trial.stimulus_id)
                .where(Trial.participant_id == participant.id, Trial.phase == "annotate")
            ).all()
            for trial_id, image_id in trials:
                fill = 60 * (k + 1)
                sha = rt.storage.put(_png(fill))
                session.add(Annotation(trial_id=trial_id, mask_sha256=sha, duration_ms=500.0, width=28, height=28))
                painted.setdefault(image_id, []).append(fill)
    return painted


def test_annotation_trials_paint_training_images_and_the_result_reports_them(rt: Runtime, dataset_id: int) -> None:
    study_id = _study(rt, dataset_id, "loop")
    painted = _paint_all(rt, "loop", participants=2)
    with session_scope(rt.session_factory) as session:
        splits = dict(session.execute(select(Image.id, Image.split).where(Image.id.in_(list(painted)))).all())
        roles = set(
            session.scalars(
                select(Stimulus.role).join(Trial, Trial.stimulus_id == Stimulus.id).where(Trial.phase == "annotate")
            )
        )
        job, model = create_train_job(session, {"dataset_id": dataset_id, **SIP, "study_id": study_id})
        job_id, model_id, planned = job.id, model.id, model.config["coverage"]
        message = job.message
    assert set(splits.values()) == {"train"} and roles == {"annotate"}  # paintings land on training digits
    assert planned["human_image_ids"] == sorted(painted) and planned["n_train"] == 48
    assert planned["fallback_count"] == 48 - len(painted) and planned["warning"].startswith("low coverage")
    assert f"{len(painted)} of 48 training images have a human map" in message

    assert execute(job_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        result = session.get(Job, job_id).result
        metrics = session.get(TrainedModel, model_id).metrics
    assert result["metrics"]["coverage"] == planned == metrics["coverage"]
    assert metrics["salience"] == {"annotations": len(painted), "none": 48 - len(painted)}


def test_zero_coverage_of_a_study_annotation_job_is_a_422(rt: Runtime, dataset_id: int) -> None:
    study_id = _study(rt, dataset_id, "painted-tests", annotation_split=None)  # paints the test digits, as before
    painted = _paint_all(rt, "painted-tests", participants=1)
    assert painted
    with session_scope(rt.session_factory) as session:
        assert set(session.scalars(select(Image.split).where(Image.id.in_(list(painted))))) == {"test"}
        with pytest.raises(InvalidInputError) as err:
            create_train_job(session, {"dataset_id": dataset_id, **SIP, "study_id": study_id})
        assert session.scalar(select(Job.id)) is None
    assert err.value.status_code == 422
    assert "0 of 48" in err.value.message and "annotation_split" in err.value.message


def test_too_few_annotators_says_to_lower_min_annotators(rt: Runtime, dataset_id: int) -> None:
    study_id = _study(rt, dataset_id, "few")
    _paint_all(rt, "few", participants=1)
    with session_scope(rt.session_factory) as session:
        with pytest.raises(InvalidInputError, match=r"lower params\.min_annotators"):
            create_train_job(session, {"dataset_id": dataset_id, **SIP, "study_id": study_id, "min_annotators": 2})
        _job, model = create_train_job(
            session, {"dataset_id": dataset_id, **SIP, "study_id": study_id, "min_annotators": 1}
        )
        assert model.config["coverage"]["human"] > 0


def test_a_study_being_prepared_asks_again_within_seconds(rt: Runtime, dataset_id: int) -> None:
    _study(rt, dataset_id, "preparing")
    with session_scope(rt.session_factory) as session:
        session.execute(update(StimulusSet).values(status="generating"))
    with session_scope(rt.session_factory) as session, pytest.raises(UnavailableError) as err:
        start_session(session, "preparing", consent=True)
    assert err.value.headers["Retry-After"] == "5" and "tries again by itself" in err.value.message
