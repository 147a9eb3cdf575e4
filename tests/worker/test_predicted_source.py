"""The `predicted` salience source of a train job: the painted training images keep their human mean map, a
salience predictor trained on them fills exactly the others, the result says which image got which, and a
study with no painted training image is refused (422) before anything is queued."""

from __future__ import annotations

import pytest
import torch
from sqlalchemy import select

from backend.admin.comparison import ModelRow
from backend.db import session_scope
from backend.models import Image, Job, TrainedModel
from backend.services.errors import InvalidInputError
from backend.services.jobs import create_train_job
from tests.worker.test_loop_coverage import _paint_all, _study
from tests.worker.workerkit import FAST_TRAIN
from worker.jobs.common import Phase
from worker.jobs.predicted import predict_missing
from worker.runner import execute
from worker.runtime import Runtime

PREDICTED = {**FAST_TRAIN, "method": "sip_at", "salience": "predicted", "predictor_epochs": 2, "min_annotators": 1}


def test_predicted_job_keeps_human_maps_of_the_painted_images_and_predicts_the_rest(
    rt: Runtime, dataset_id: int
) -> None:
    study_id = _study(rt, dataset_id, "predicted")
    painted = _paint_all(rt, "predicted", participants=2)
    with session_scope(rt.session_factory) as session:
        train_ids = sorted(
            session.scalars(select(Image.id).where(Image.dataset_id == dataset_id, Image.split == "train"))
        )
        job, model = create_train_job(session, {"dataset_id": dataset_id, **PREDICTED, "study_id": study_id})
        job_id, model_id, planned = job.id, model.id, model.config["coverage"]
    assert painted and set(painted) < set(train_ids)
    assert planned["source"] == "predicted" and planned["fallback"] == "predicted"
    assert planned["human_image_ids"] == sorted(painted)

    assert execute(job_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        metrics = session.get(TrainedModel, model_id).metrics
        params = session.get(Job, job_id).params
    n_human, n_pred = len(painted), len(train_ids) - len(painted)
    sources = metrics["salience_sources"]
    assert sources["sources"]["human"] == sorted(painted)
    assert sources["sources"]["predicted"] == sorted(set(train_ids) - set(painted))
    assert sources["counts"] == {"human": n_human, "predicted": n_pred}
    assert metrics["salience"]["human"] == n_human and metrics["salience"]["predicted"] == n_pred
    assert metrics["salience"].get("none", 0) == 0
    predictor = sources["predictor"]
    assert predictor["trained_on"] == n_human and len(predictor["history"]) == 2
    assert predictor["config"]["seed"] == PREDICTED.get("seed", 0)
    row = ModelRow(
        id=model_id, name="m", method="sip_at", arch="small_cnn", seed=0, dataset_id=dataset_id, status="succeeded",
        metrics=metrics, params=params,
    )  # fmt: skip
    assert row.salience == f"human {n_human}/{len(train_ids)} + predicted"


def test_predicted_job_without_painted_training_images_is_a_422(rt: Runtime, dataset_id: int) -> None:
    study_id = _study(rt, dataset_id, "unpainted-predicted", annotation_split=None)  # paints test digits only
    assert _paint_all(rt, "unpainted-predicted", participants=1)
    with session_scope(rt.session_factory) as session:
        with pytest.raises(InvalidInputError) as err:
            create_train_job(session, {"dataset_id": dataset_id, **PREDICTED, "study_id": study_id})
        assert session.scalar(select(Job.id)) is None
    assert err.value.status_code == 422
    assert "0 of 48" in err.value.message and "predictor" in err.value.message


class _Run:
    """The part of `JobRun` a `Phase` uses, recording the reported fractions."""

    def __init__(self) -> None:
        self.fractions: list[float] = []

    def progress(self, fraction: float, message: str | None = None) -> None:
        self.fractions.append(fraction)


def test_predict_missing_keeps_human_maps_exactly_at_any_size() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 1, 10, 13, generator=g)  # sides not divisible by 4: padded, then cropped back
    human = torch.full((6, 1, 10, 13), float("nan"))
    human[[1, 4]] = torch.rand(2, 1, 10, 13, generator=g)
    run = _Run()
    maps, record = predict_missing(
        images, human, [11, 12, 13, 14, 15, 16], epochs=2, batch_size=4, seed=3, device="cpu",
        phase=Phase(run, 0.2, 0.4),  # type: ignore[arg-type]
    )  # fmt: skip
    assert maps.shape == human.shape and not torch.isnan(maps).any()
    assert torch.equal(maps[[1, 4]], human[[1, 4]])
    assert ((maps >= 0) & (maps <= 1)).all()
    assert record["sources"] == {"human": [12, 15], "predicted": [11, 13, 14, 16]}
    assert run.fractions and all(0.2 <= f <= 0.4 for f in run.fractions) and run.fractions[-1] == pytest.approx(0.4)
    again, _ = predict_missing(
        images, human, [11, 12, 13, 14, 15, 16], epochs=2, batch_size=4, seed=3, device="cpu",
        phase=Phase(_Run(), 0, 1),  # type: ignore[arg-type]
    )  # fmt: skip
    assert torch.equal(maps, again)  # seeded
