"""The `rank_paintings` job: a study's unpainted training images ranked for painting next, the same for the
same seed, balanced over the classes, never listing a painted image; a study without painted training images
is refused (422) before anything is queued. Its result names PNG blobs of each ranked image's predicted map,
uncertainty and (when someone painted it) human mean, and the predictor's held-out quality."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from backend.db import session_scope
from backend.models import Annotation, Image, Job, Stimulus, Trial
from backend.services.errors import InvalidInputError
from backend.services.job_requests import submit_job
from backend.services.participants import start_session
from tests.worker.test_loop_coverage import _paint_all, _study
from worker.jobs.rank_views import held_out_split
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
    # 6 classes, 12 picks: balanced together with the images painted before (the next test says how)
    with_painted = per_class + Counter(train[i] for i in painted)
    assert len(per_class) == 6 and max(with_painted.values()) - min(with_painted.values()) <= 1
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


def _paint_top_halves(rt: Runtime, slug: str) -> list[int]:
    """One session of `slug` whose annotation trials each get the top half of the image painted (the predictor's
    horizontal flips keep it where it is); their images."""
    half = np.zeros((28, 28), dtype=np.uint8)
    half[:14, :] = 255
    buf = io.BytesIO()
    PILImage.fromarray(half, mode="L").save(buf, format="PNG")
    sha = rt.storage.put(buf.getvalue())
    with session_scope(rt.session_factory) as session:
        participant = start_session(session, slug, consent=True).participant
        session.flush()
        trials = session.execute(
            select(Trial.id, Stimulus.image_id)
            .join(Stimulus, Stimulus.id == Trial.stimulus_id)
            .where(Trial.participant_id == participant.id, Trial.phase == "annotate")
        ).all()
        for trial_id, _image_id in trials:
            session.add(Annotation(trial_id=trial_id, mask_sha256=sha, duration_ms=500.0, width=28, height=28))
    return [image_id for _trial_id, image_id in trials]


def _png_of(rt: Runtime, sha: str) -> PILImage.Image:
    image = PILImage.open(io.BytesIO(rt.storage.get(sha)))
    image.load()
    return image


def test_the_result_names_map_blobs_and_the_predictors_held_out_quality(rt: Runtime, dataset_id: int) -> None:
    study_id = _study(rt, dataset_id, "rank-maps", n_annotate=6)
    painted = _paint_top_halves(rt, "rank-maps")  # 6 training images, one painting each
    assert len(painted) == 6
    result = _rank(rt, study_id, seed=1, top=10_000, predictor_epochs=60)
    held = result["heldout"]
    # 6 painted: round(0.2 * 6) = 1 held out, the other 5 (one painting each) trained the scored predictor
    assert (held["images"], held["held_out"], held["paintings"]) == (5, 1, 5)
    # everyone painted the top half: a predictor that learnt it matches the held-out painting (a constant
    # or untrained map would score CC 0, and SIM about 0.5)
    assert held["cc"] > 0.5 and held["sim"] > 0.6 and held["nss"] > 0.5, held
    assert result["paintings"] == 6 and result["uncertainty_scale"] > 0
    assert len(result["ranking"]) == result["candidates"]
    brightest = 0
    for r in result["ranking"]:
        predicted, spread = _png_of(rt, r["predicted_sha256"]), _png_of(rt, r["uncertainty_sha256"])
        assert predicted.mode == spread.mode == "L" and predicted.size == spread.size == (28, 28)
        brightest = max(brightest, int(np.asarray(spread).max()))
        assert r["human_sha256"] is None and r["paintings"] == 0  # candidates are the unpainted images here
    assert brightest == 255  # the uncertainty is scaled by the largest spread shown


def test_ranked_images_painted_too_few_times_show_their_human_mean(rt: Runtime, dataset_id: int) -> None:
    study_id = _study(rt, dataset_id, "rank-some", n_annotate=6)
    painted = _paint_all(rt, "rank-some", participants=2)  # grays 60 and 120
    result = _rank(rt, study_id, seed=2, top=10_000, min_annotators=2)
    assert result["heldout"]["held_out"] == 0 or result["heldout"]["images"] >= 4
    once = {i for i, fills in painted.items() if len(fills) == 1}
    assert once and once <= {r["image_id"] for r in result["ranking"]}
    for r in result["ranking"]:
        if r["image_id"] in once:
            mean = np.asarray(_png_of(rt, r["human_sha256"]))
            assert r["paintings"] == 1 and mean.shape == (28, 28) and mean.max() > 0
        else:
            assert r["human_sha256"] is None


def test_the_held_out_split_is_seeded_and_needs_five_painted_images() -> None:
    rows = [3, 8, 9, 14, 20, 21, 30, 31, 40, 41]
    fit, held = held_out_split(rows, seed=5)
    assert len(held) == 2 and sorted(fit + held) == rows and not set(fit) & set(held)
    assert held_out_split(rows, seed=5) == (fit, held)
    assert any(held_out_split(rows, seed=s)[1] != held for s in range(6, 12))
    assert held_out_split(rows[:4], seed=5) == (rows[:4], [])


def test_the_ranking_evens_out_the_classes_of_what_is_painted(rt: Runtime, dataset_id: int) -> None:
    """Each pick goes to a class with the fewest images among those painted and picked before it, so a study
    that paints the head of each ranking stays balanced (`select_balanced`'s `painted`)."""
    study_id = _study(rt, dataset_id, "rank-even", n_annotate=8)
    painted = _paint_all(rt, "rank-even", participants=1)
    with session_scope(rt.session_factory) as session:
        label_of = dict(session.execute(select(Image.id, Image.label).where(Image.dataset_id == dataset_id)).all())
    have = Counter(label_of[i] for i in painted)
    classes = sorted(set(label_of.values()))
    assert max(have[c] for c in classes) > min(have[c] for c in classes)  # the painting is uneven to start with
    for r in _rank(rt, study_id, seed=2)["ranking"]:
        assert have[r["label"]] == min(have[c] for c in classes), (r["label"], dict(have))
        have[r["label"]] += 1
