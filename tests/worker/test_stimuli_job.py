"""generate_stimuli on real digits against a model trained by the train job: eps, mask, catch, idempotence."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import delete, select

from backend.db import session_scope
from backend.models import Job, SalienceMap, Stimulus, StimulusSet, TrainedModel
from backend.services.jobs import create_job, create_stimuli_job, create_train_job
from backend.study.schedule import CATCH_EPS
from sipat.stimuli import to_png
from tests.worker.workerkit import FAST_TRAIN
from worker.runner import execute
from worker.runtime import Runtime

LEVELS = [1 / 255, 4 / 255, 0.1, 0.3]  # 0.1 = 25.5/255 is not a multiple of 1/255


def pixels(rt: Runtime, sha: str) -> np.ndarray:
    with rt.storage.open(sha) as fh:
        img = PILImage.open(io.BytesIO(fh.read()))
        assert img.format == "PNG" and img.mode == "L"
        return np.asarray(img, dtype=np.int16)


def make_set(rt: Runtime, dataset_id: int, model_id: int, **columns) -> tuple[int, int]:
    """A stimulus set and its generate_stimuli job, committed; returns (set id, job id)."""
    values = {"attack": "pgd", "eps_levels": LEVELS, "masked": True, "steps": 3}
    values.update(columns)
    values.setdefault("params", {"split": "test", "n_images": 8, "seed": 1})
    with session_scope(rt.session_factory) as session:
        sset = StimulusSet(dataset_id=dataset_id, model_id=model_id, **values)
        session.add(sset)
        session.flush()
        return sset.id, create_stimuli_job(session, sset).id


def new_job_for(rt: Runtime, set_id: int) -> int:
    with session_scope(rt.session_factory) as session:
        return create_job(session, "generate_stimuli", {"stimulus_set_id": set_id}).id


@pytest.fixture
def train_job(rt: Runtime, dataset_id: int) -> tuple[int, int]:
    """(train job id, model id): queued, not run yet."""
    with session_scope(rt.session_factory) as session:
        job, model = create_train_job(session, {"dataset_id": dataset_id, **FAST_TRAIN})
        return job.id, model.id


def test_stimuli_respect_eps_and_mask_and_are_made_once(rt: Runtime, dataset_id: int, train_job) -> None:
    train_id, model_id = train_job
    set_id, job_id = make_set(rt, dataset_id, model_id)

    # The model is still queued for training: the job waits without spending an attempt.
    assert execute(job_id, runtime=rt).status == "waiting"
    with session_scope(rt.session_factory) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts) == ("queued", 0) and "not trained yet" in job.message
        assert session.get(StimulusSet, set_id).status == "pending"

    assert execute(train_id, runtime=rt).status == "succeeded"
    assert execute(job_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        sset = session.get(StimulusSet, set_id)
        result = session.get(Job, job_id).result
        stimuli = list(session.scalars(select(Stimulus).where(Stimulus.stimulus_set_id == set_id)))
        maps = dict(session.execute(select(SalienceMap.image_id, SalienceMap.sha256)).all())
        classes = session.get(TrainedModel, model_id).config["meta"]["classes"]
        image_ids = {st.image_id for st in stimuli}
        labels = {st.image_id: st.image.label for st in stimuli}
    assert sset.status == "ready" and sset.job_id == job_id
    assert len(image_ids) == 8 and len(stimuli) == 8 * (len(LEVELS) + 1) + 8 == result["created"]
    assert result["images_without_salience"] == 0 and set(result["per_eps"]) == {
        "0",
        "0.00392157",
        "0.0156863",
        "0.1",
        "0.3",
    }

    clean = {st.image_id: pixels(rt, st.sha256) for st in stimuli if st.eps == 0 and st.role == "trial"}
    full_radius_seen: dict[float, float] = {}
    for st in stimuli:
        assert st.pred_before in classes and st.pred_after in classes
        diff = np.abs(pixels(rt, st.sha256) - clean[st.image_id]) / 255.0
        assert st.linf == pytest.approx(diff.max()) and st.l2 == pytest.approx(float(np.sqrt((diff**2).sum())))
        if st.role == "catch":
            assert st.eps == CATCH_EPS and 0.2 < diff.max() <= CATCH_EPS
            continue
        assert diff.max() <= st.eps + 1e-9
        salient = pixels(rt, maps[st.image_id]) >= 128  # the imported stroke map, 255 = salient
        assert salient.any() and (diff[salient] == 0).all(), "a salient pixel was perturbed"
        full_radius_seen[st.eps] = max(full_radius_seen.get(st.eps, 0.0), diff.max())
        if st.eps == 0:
            assert st.pred_before == st.pred_after
    # Multiples of 1/255 survive quantisation exactly; 0.1 is stored within floor(25.5)/255.
    assert full_radius_seen[4 / 255] == pytest.approx(4 / 255)
    assert full_radius_seen[0.1] == pytest.approx(math.floor(0.1 * 255) / 255)
    assert any(st.pred_before == labels[st.image_id] for st in stimuli)

    # Re-running makes nothing twice; a removed stimulus comes back with the same pixels.
    again = new_job_for(rt, set_id)
    assert execute(again, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        assert session.get(Job, again).result["created"] == 0 and session.get(Job, again).result["skipped"] == 48
        assert session.get(StimulusSet, set_id).status == "ready"
    before = {(st.image_id, st.eps, st.role): st.sha256 for st in stimuli}
    with session_scope(rt.session_factory) as session:
        session.execute(delete(Stimulus).where(Stimulus.id.in_([st.id for st in stimuli[5:8]])))
    assert execute(new_job_for(rt, set_id), runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        after = {
            (st.image_id, st.eps, st.role): st.sha256
            for st in session.scalars(select(Stimulus).where(Stimulus.stimulus_set_id == set_id))
        }
    assert after == before


def test_unmasked_apgd_and_l2_pgd(rt: Runtime, dataset_id: int, train_job) -> None:
    train_id, model_id = train_job
    assert execute(train_id, runtime=rt).status == "succeeded"
    apgd_set, apgd_job = make_set(rt, dataset_id, model_id, attack="apgd", masked=False, eps_levels=[8 / 255])
    l2_set, l2_job = make_set(
        rt, dataset_id, model_id, norm="l2", masked=False, eps_levels=[0.5], params={"n_images": 4, "catch": False}
    )
    assert execute(apgd_job, runtime=rt).status == "succeeded"
    assert execute(l2_job, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        apgd = list(session.scalars(select(Stimulus).where(Stimulus.stimulus_set_id == apgd_set)))
        l2 = list(session.scalars(select(Stimulus).where(Stimulus.stimulus_set_id == l2_set)))
    assert len(apgd) == 8 * 2 + 8 and max(st.linf for st in apgd if st.role == "trial") == pytest.approx(8 / 255)
    assert len(l2) == 4 * 2 and all(st.l2 <= st.eps + 1e-9 for st in l2) and max(st.l2 for st in l2) > 0.3


def test_fails_with_the_reason_when_the_model_cannot_come(rt: Runtime, dataset_id: int, train_job) -> None:
    train_id, model_id = train_job
    with session_scope(rt.session_factory) as session:
        train = session.get(Job, train_id)
        train.status, train.error = "failed", "FloatingPointError: training loss became nan"
    set_id, job_id = make_set(rt, dataset_id, model_id)
    assert execute(job_id, runtime=rt).status == "failed"
    with session_scope(rt.session_factory) as session:
        job = session.get(Job, job_id)
        assert f"its train job {train_id} ended failed" in job.error and "nan" in job.error
        assert session.get(StimulusSet, set_id).status == "failed"


def _best_threshold_accuracy(sizes: list[int], perturbed: list[bool]) -> float:
    """The accuracy of the best rule "perturbed iff size > t" (or "< t") over every threshold t."""
    best = 0.0
    for t in sorted({*sizes, min(sizes) - 1}):
        hits = sum((s > t) == p for s, p in zip(sizes, perturbed, strict=True))
        best = max(best, hits / len(sizes), 1 - hits / len(sizes))
    return best


def test_square_stimuli_stay_in_the_masked_ball(rt: Runtime, dataset_id: int, train_job) -> None:
    train_id, model_id = train_job
    assert execute(train_id, runtime=rt).status == "succeeded"
    set_id, job_id = make_set(rt, dataset_id, model_id, attack="square", steps=30, eps_levels=[4 / 255, 0.1])
    assert execute(job_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        stimuli = list(session.scalars(select(Stimulus).where(Stimulus.stimulus_set_id == set_id)))
        maps = dict(session.execute(select(SalienceMap.image_id, SalienceMap.sha256)).all())
    assert len(stimuli) == 8 * 3 + 8
    clean = {st.image_id: pixels(rt, st.sha256) for st in stimuli if st.eps == 0 and st.role == "trial"}
    for st in stimuli:
        if st.role == "trial" and st.eps > 0:
            diff = np.abs(pixels(rt, st.sha256) - clean[st.image_id])
            assert diff.max() <= math.floor(st.eps * 255 + 1e-6)
            assert (diff[pixels(rt, maps[st.image_id]) >= 128] == 0).all(), "a salient pixel was perturbed"
    assert max(st.linf for st in stimuli if st.eps == 0.1) == pytest.approx(25 / 255)


def test_file_sizes_do_not_tell_clean_from_perturbed(rt: Runtime, dataset_id: int, train_job) -> None:
    """Every file of a set has one length, so the best size threshold is at chance; the same pixels as compressed
    PNGs (how stimuli were stored before) give the clean image of each source image away as its smallest file."""
    train_id, model_id = train_job
    assert execute(train_id, runtime=rt).status == "succeeded"
    set_id, job_id = make_set(rt, dataset_id, model_id, masked=False, eps_levels=[2 / 255, 8 / 255])
    assert execute(job_id, runtime=rt).status == "succeeded"
    with session_scope(rt.session_factory) as session:
        stimuli = list(session.scalars(select(Stimulus).where(Stimulus.stimulus_set_id == set_id)))
    assert len(stimuli) == 8 * 3 + 8
    perturbed = [st.eps > 0 for st in stimuli]  # catch stimuli count as perturbed too
    stored, recompressed = [], []
    for st in stimuli:
        with rt.storage.open(st.sha256) as fh:
            stored.append(len(fh.read()))
        recompressed.append(len(to_png(pixels(rt, st.sha256).astype(np.uint8)[..., None])))
    assert len(set(stored)) == 1, f"stimulus files of one set differ in size: {sorted(set(stored))}"
    chance = max(sum(perturbed), len(perturbed) - sum(perturbed)) / len(perturbed)
    assert _best_threshold_accuracy(stored, perturbed) == chance
    # The leak the fixed-size encoding closes: compressed, each image's clean stimulus is its smallest file.
    smallest = {}
    for st, size in zip(stimuli, recompressed, strict=True):
        if st.image_id not in smallest or size < smallest[st.image_id][0]:
            smallest[st.image_id] = (size, st.eps)
    assert all(eps == 0 for _, eps in smallest.values())
    assert _best_threshold_accuracy(recompressed, perturbed) >= 0.95  # measured: 1.0 (chance 0.75)
