"""train and evaluate on real digits: model rows with metrics, salience from annotations, resume, cancel."""

from __future__ import annotations

import io
import secrets
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from sqlalchemy import func, select, update

from backend.db import session_scope
from backend.models import (
    Annotation,
    Image,
    Job,
    Participant,
    SalienceMap,
    Stimulus,
    StimulusSet,
    Study,
    TrainedModel,
    Trial,
)
from backend.services.errors import InvalidInputError
from backend.services.job_params import validate_job_params
from backend.services.jobs import create_job, create_train_job, request_cancel, run_job
from sipat.models import ARCHITECTURES as SIPAT_ARCHITECTURES
from sipat.training import read_checkpoint
from sipat.vocabulary import ARCHITECTURES
from tests.worker.workerkit import FAST_TRAIN
from worker.jobs.common import load_stored_model
from worker.jobs.train import train_job
from worker.runner import execute
from worker.runtime import Runtime


def queue_train(rt: Runtime, dataset_id: int, **params) -> tuple[int, int]:
    with session_scope(rt.session_factory) as session:
        job, model = create_train_job(session, {"dataset_id": dataset_id, **FAST_TRAIN, **params})
        return job.id, model.id


def test_train_makes_one_model_with_metrics(rt: Runtime, dataset_id: int) -> None:
    job_id, model_id = queue_train(rt, dataset_id, name="digits pgd")
    assert execute(job_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        job, model = session.get(Job, job_id), session.get(TrainedModel, model_id)
    assert job.result["model_id"] == model_id and job.progress == 1.0 and job.attempts == 1
    assert (model.name, model.arch, model.method, model.dataset_id) == ("digits pgd", "small_cnn", "pgd_at", dataset_id)
    metrics = model.metrics
    assert metrics["n"] == 12 and metrics["n_train"] == 48 and metrics["held_out"] == "split 'test'"
    assert 0 <= metrics["robust_acc"]["pgd"]["0.1"] <= metrics["clean_acc"] <= 1
    assert metrics["robust_acc"]["pgd"]["0"] == metrics["clean_acc"] and len(metrics["history"]) == 1
    net, meta = load_stored_model(rt.storage, model, torch.device("cpu"))
    assert meta == {
        "arch": "small_cnn",
        "num_classes": 6,
        "in_channels": 1,
        "image_size": 28,
        "classes": list("012345"),
    }
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 6)
    assert not (rt.settings.data_dir / "scratch" / f"job-{job_id}").exists()

    # The same job delivered again after it was put back (e.g. by the reaper): still one model for it.
    with session_scope(rt.session_factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="queued"))
    assert execute(job_id, runtime=rt).status == "succeeded"
    # A train job made without a model row gets one.
    with session_scope(rt.session_factory) as session:
        bare = create_job(session, "train", validate_job_params("train", {"dataset_id": dataset_id, **FAST_TRAIN})).id
    assert execute(bare, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        per_job = dict(session.execute(select(TrainedModel.job_id, func.count()).group_by(TrainedModel.job_id)).all())
    assert per_job == {job_id: 1, bare: 1}


def mask_png(fill_right: int) -> bytes:
    """A 28x28 annotation mask: left half painted (255), right half `fill_right`."""
    u8 = np.zeros((28, 28), dtype=np.uint8)
    u8[:, :14], u8[:, 14:] = 255, fill_right
    buf = io.BytesIO()
    PILImage.fromarray(u8, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def annotate(rt: Runtime, dataset_id: int, masks_per_image: list[list[bytes]]) -> tuple[int, list[int]]:
    """A study whose participants painted `masks_per_image[k]` on the k-th training image; (study id, image ids).
    A flagged participant's mask on every image is added too (and must be ignored)."""
    with session_scope(rt.session_factory) as session:
        images = list(
            session.scalars(
                select(Image).where(Image.dataset_id == dataset_id, Image.split == "train").order_by(Image.id)
            )
        )[: len(masks_per_image)]
        sset = StimulusSet(dataset_id=dataset_id, eps_levels=[0.1], status="ready")
        session.add(sset)
        session.flush()
        study = Study(slug="ann", title="annotations", status="open", config={"stimulus_set_id": sset.id})
        session.add(study)
        session.flush()
        stimuli = [Stimulus(stimulus_set_id=sset.id, image_id=im.id, eps=0.0, sha256=im.sha256) for im in images]
        session.add_all(stimuli)
        session.flush()
        n_people = max(len(m) for m in masks_per_image) + 1
        people = [
            Participant(study_id=study.id, token_hash=secrets.token_hex(32), index=i, flagged=i == n_people - 1)
            for i in range(n_people)
        ]
        session.add_all(people)
        session.flush()
        for k, (stimulus, masks) in enumerate(zip(stimuli, masks_per_image, strict=True)):
            painted = [*masks, mask_png(0)]
            for p, mask in zip([*people[: len(masks)], people[-1]], painted, strict=True):
                trial = Trial(
                    participant_id=p.id,
                    position=k,
                    phase="annotate",
                    stimulus_id=stimulus.id,
                    media_key=secrets.token_hex(8),
                )
                session.add(trial)
                session.flush()
                session.add(
                    Annotation(
                        trial_id=trial.id, mask_sha256=rt.storage.put(mask), duration_ms=900.0, width=28, height=28
                    )
                )
        return study.id, [im.id for im in images]


def test_sip_at_uses_mean_annotations_and_falls_back_to_gradcam(rt: Runtime, dataset_id: int) -> None:
    study_id, (twice, _once) = annotate(rt, dataset_id, [[mask_png(255), mask_png(0)], [mask_png(255)]])
    job_id, model_id = queue_train(
        rt,
        dataset_id,
        method="sip_at",
        salience="annotations",
        study_id=study_id,
        min_annotators=2,
        fallback="gradcam",
    )
    assert execute(job_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        metrics = session.get(TrainedModel, model_id).metrics
        human = list(session.scalars(select(SalienceMap).where(SalienceMap.source == "human_mean")))
    assert metrics["salience"] == {"annotations": 1, "gradcam": 47, "none": 0}
    assert [m.image_id for m in human] == [twice]  # the image with one annotator fell back
    with rt.storage.open(human[0].sha256) as fh:
        mean = np.asarray(PILImage.open(fh), dtype=np.int16)
    assert (mean[:, :14] == 255).all() and (mean[:, 14:] == 128).all()  # (255 + 0) / 2, flagged one ignored

    # Running it again stores no second copy of the same mean map.
    again, _ = queue_train(rt, dataset_id, method="sip_at", salience="annotations", study_id=study_id, min_annotators=2)
    assert execute(again, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        assert (
            session.scalar(select(func.count()).select_from(SalienceMap).where(SalienceMap.source == "human_mean")) == 1
        )


def test_a_redelivered_train_job_resumes_from_its_checkpoint(rt: Runtime, dataset_id: int) -> None:
    job_id, model_id = queue_train(rt, dataset_id, epochs=2)

    def shut_down_in_epoch_2(run):
        progress = run.progress

        def watch(fraction, message=None, eta_s=None):
            if message and message.startswith("epoch 2/"):
                raise KeyboardInterrupt  # the worker is stopped under the job
            progress(fraction, message, eta_s)

        run.progress = watch
        return train_job(run, rt)

    with pytest.raises(KeyboardInterrupt):
        run_job(rt.session_factory, job_id, shut_down_in_epoch_2, timings=rt.timings)
    ckpt = read_checkpoint(rt.scratch_dir(job_id) / "train.pt")
    assert ckpt["resume"]["epoch"] == 1
    with session_scope(rt.session_factory) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts) == ("queued", 0)

    assert execute(job_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        history = session.get(TrainedModel, model_id).metrics["history"]
    assert len(history) == 2 and history[0] == ckpt["resume"]["history"][0]  # epoch 1 was not trained again


def test_cancel_stops_training(rt: Runtime, dataset_id: int) -> None:
    job_id, model_id = queue_train(rt, dataset_id, epochs=200)

    def cancel_when_training() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with session_scope(rt.session_factory) as session:
                job = session.get(Job, job_id)
                if job.status == "running" and (job.message or "").startswith("epoch"):
                    request_cancel(session, job)
                    return
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_when_training)
    canceller.start()
    started = time.monotonic()
    assert execute(job_id, runtime=rt).status == "cancelled"
    canceller.join()
    assert time.monotonic() - started < 30  # 200 epochs would take minutes
    with session_scope(rt.session_factory) as session:
        job, model = session.get(Job, job_id), session.get(TrainedModel, model_id)
    assert job.status == "cancelled" and job.finished_at is not None and model.checkpoint_sha256 is None


def test_evaluate_adds_to_the_models_metrics(rt: Runtime, dataset_id: int) -> None:
    job_id, model_id = queue_train(rt, dataset_id)
    with session_scope(rt.session_factory) as session:
        first = create_job(
            session, "evaluate", {"model_id": model_id, "attacks": ["fgsm"], "eps": [0, 0.1], "steps": 2}
        ).id
        second = create_job(
            session,
            "evaluate",
            {"model_id": model_id, "split": None, "attacks": ["pgd"], "eps": [0.05], "key": "all", "steps": 2},
        ).id
    assert execute(first, runtime=rt).status == "waiting"  # the model is not trained yet
    assert execute(job_id, runtime=rt).status == "succeeded"
    assert execute(first, runtime=rt).status == "succeeded"
    assert execute(second, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        result = session.get(Job, first).result
        metrics = session.get(TrainedModel, model_id).metrics
    key = f"dataset{dataset_id}/test/unmasked"
    assert result["key"] == key and result["metrics"]["n"] == 12
    assert set(result["metrics"]["robust_acc"]["fgsm"]) == {"0", "0.1"}
    assert set(metrics["evaluations"]) == {key, "all"} and metrics["evaluations"]["all"]["n"] == 60
    assert "clean_acc" in metrics and "history" in metrics  # the training metrics are kept


def test_params_are_checked_where_they_enter(rt: Runtime) -> None:
    assert set(ARCHITECTURES) == set(SIPAT_ARCHITECTURES)
    with pytest.raises(InvalidInputError, match="study_id"):
        validate_job_params("train", {"dataset_id": 1, "salience": "annotations"})
    with pytest.raises(InvalidInputError, match="unknown architecture 'vgg'"):
        validate_job_params("train", {"dataset_id": 1, "arch": "vgg"})
    with pytest.raises(InvalidInputError, match=r"eval_eps.*\[0, 1\]"):
        validate_job_params("train", {"dataset_id": 1, "eval_eps": [8]})
    with pytest.raises(InvalidInputError, match="plain adversarial training"):
        validate_job_params("train", {"dataset_id": 1, "method": "sip_at", "salience": "none"})
    assert validate_job_params("evaluate", {"model_id": 3})["attacks"] == ["pgd", "apgd"]

    with session_scope(rt.session_factory) as session:
        missing = create_job(session, "train", {"dataset_id": 999}).id
        bad = create_job(session, "train", {"dataset_id": 1, "epochs": 0}).id
    assert execute(missing, runtime=rt).status == "failed"
    assert execute(bad, runtime=rt).status == "failed"
    with session_scope(rt.session_factory) as session:
        assert session.get(Job, missing).error == "JobError: dataset 999 does not exist"
        assert "epochs" in session.get(Job, bad).error
