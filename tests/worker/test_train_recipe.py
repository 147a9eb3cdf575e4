"""A train job trains with the recipe by default (the eps ramps, the lr warms up, weight decay 5e-4, augmentation)
and records its per-epoch log in the job's result, after every epoch while it runs and at the end."""

from __future__ import annotations

import pytest

from backend.db import session_scope
from backend.models import Job, TrainedModel
from backend.services.job_params import TrainParams
from backend.services.jobs import create_train_job, run_job
from sipat.train_config import RECIPE
from tests.worker.workerkit import FAST_TRAIN
from worker.jobs.train import train_config, train_job
from worker.runtime import Runtime


def test_a_train_job_uses_the_recipe_and_logs_every_epoch(rt: Runtime, dataset_id: int) -> None:
    params = {"dataset_id": dataset_id, **FAST_TRAIN, "epochs": 3, "val_share": 0.25, "val_steps": 2}
    with session_scope(rt.session_factory) as session:
        job, model = create_train_job(session, params)
        job_id, model_id = job.id, model.id
    live: list[list[dict[str, float]]] = []

    def watching(run):  # read the job's result as the page would, when epoch 3 starts
        progress = run.progress

        def watch(fraction, message=None, eta_s=None):
            if message and message.startswith("epoch 3/") and not live:
                with session_scope(rt.session_factory) as session:
                    live.append(list((session.get(Job, job_id).result or {}).get("train_log", [])))
            progress(fraction, message, eta_s)

        run.progress = watch
        return train_job(run, rt)

    assert run_job(rt.session_factory, job_id, watching, timings=rt.timings).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        result = session.get(Job, job_id).result
        trained = session.get(TrainedModel, model_id)
        config, metrics = trained.config["train"], trained.metrics
    log = result["train_log"]
    assert [row["epoch"] for row in log] == [1, 2, 3] and log == metrics["history"]
    assert len(live) == 1 and live[0] == log[:2]  # the first two epochs were there while epoch 3 trained

    # The eps ramp (10 epochs by default): the radius at each epoch's end is eps * epoch / 10, below eps.
    eps = [row["eps"] for row in log]
    assert eps == pytest.approx([0.1 * k / RECIPE["eps_ramp_epochs"] for k in (1, 2, 3)])
    assert eps[0] < eps[-1] < FAST_TRAIN["eps"]
    # The lr warm-up (5 epochs): the rate used last in each epoch is lr * epoch / 5 (StepLR's first step is at 10).
    lrs = [row["lr"] for row in log]
    assert lrs == pytest.approx([FAST_TRAIN["lr"] * k / RECIPE["warmup_epochs"] for k in (1, 2, 3)])
    assert {k: config[k] for k in RECIPE} == RECIPE and config["val_share"] == 0.25

    # Validation: robust and clean accuracy per epoch; the model kept is the best epoch's.
    assert all(0 <= row["val_robust"] <= 1 and 0 <= row["val_clean"] <= 1 for row in log)
    best = max(log, key=lambda row: (row["val_robust"], row["val_clean"]))
    assert metrics["best_epoch"] == best["epoch"] and metrics["stopped_early"] is False
    assert metrics["n_train"] == 48  # the validation images are taken from the training images


def test_the_recipe_switched_off_trains_at_the_full_radius(rt: Runtime, dataset_id: int) -> None:
    params = {"dataset_id": dataset_id, **FAST_TRAIN, "epochs": 2, "eps_ramp_epochs": 0, "warmup_epochs": 0}
    with session_scope(rt.session_factory) as session:
        job, _ = create_train_job(session, params)
        job_id = job.id
    assert run_job(rt.session_factory, job_id, lambda run: train_job(run, rt), timings=rt.timings).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        log = session.get(Job, job_id).result["train_log"]
    assert [row["eps"] for row in log] == [0.1, 0.1] and [row["lr"] for row in log] == [0.05, 0.05]
    assert "val_robust" not in log[0]


def test_crop_without_flip_reaches_the_training_config() -> None:
    cfg = train_config(TrainParams.model_validate({"dataset_id": 1, "flip": False, "crop_padding": 2}))
    assert (cfg.augment, cfg.flip, cfg.crop_padding) == (True, False, 2)
    assert train_config(TrainParams.model_validate({"dataset_id": 1})).flip is True  # RECIPE's: crop and flip
