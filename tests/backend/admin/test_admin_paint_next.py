"""The dashboard's side of the salience predictor (issue 20): the study page's "paint next" card (queueing a
rank_paintings job, 422 when nothing is painted enough; the top of the newest ranking with its thumbnails) and
the training form's `predicted` source."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Image, Job, Stimulus
from tests.backend.admin.admin_factories import Enqueued, Seeded


def _split_painted_into_training(session: Session, seeded: Seeded) -> int:
    """The painted image in split 'train', another in 'test' (so the hold-out rule keeps the painted one)."""
    image_id = session.scalar(select(Stimulus.image_id).where(Stimulus.id == seeded.annotations[0].trial.stimulus_id))
    dataset_id = session.get(Image, image_id).dataset_id
    others = session.scalars(select(Image).where(Image.dataset_id == dataset_id, Image.id != image_id)).all()
    session.get(Image, image_id).split = "train"
    others[0].split = "test"
    session.commit()
    return int(image_id)


def _set_min_annotators(session: Session, seeded: Seeded, n: int) -> None:
    seeded.study.config = {**seeded.study.config, "min_annotators": n}
    session.commit()


def test_queueing_a_ranking_needs_painted_training_images(
    admin: TestClient, session: Session, seeded: Callable[..., Seeded], enqueued: Enqueued
) -> None:
    s = seeded()
    _split_painted_into_training(session, s)
    _set_min_annotators(session, s, 3)  # two unflagged paintings: not enough
    r = admin.post(f"/admin/studies/{s.study.id}/rank", data={"csrf_token": admin.csrf}, follow_redirects=False)
    assert r.status_code == 422 and "nothing to learn from" in r.text
    assert session.scalar(select(Job.id)) is None and enqueued.sent == []

    _set_min_annotators(session, s, 2)
    r = admin.post(f"/admin/studies/{s.study.id}/rank", data={"csrf_token": admin.csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?notice=ranking")
    job = session.scalars(select(Job)).one()
    assert job.kind == "rank_paintings" and job.params["study_id"] == s.study.id and enqueued.sent == [job.id]
    page = admin.get(f"/admin/studies/{s.study.id}").text
    assert f"job {job.id}</a>" in page and "status-queued" in page


def test_the_study_page_shows_the_top_of_the_newest_ranking(
    admin: TestClient, session: Session, seeded: Callable[..., Seeded]
) -> None:
    s = seeded()
    assert "Not ranked yet" in admin.get(f"/admin/studies/{s.study.id}").text
    ranking = [
        {"image_id": 900 + k, "label": f"c{k % 2}", "score": 1 - k / 20, "spread": 0.1, "disagreement": 0.2}
        for k in range(15)
    ]
    result = {"painted": 1, "candidates": 15, "n_train": 16, "min_annotators": 2, "ranking": ranking}
    other = Job(kind="rank_paintings", params={"study_id": s.study.id + 1}, status="succeeded", result={"ranking": []})
    job = Job(kind="rank_paintings", params={"study_id": s.study.id}, status="succeeded", result=result)
    session.add_all([job, other])  # the other study's newer job is not this study's ranking
    session.commit()
    page = admin.get(f"/admin/studies/{s.study.id}").text
    shown = [k for k in range(15) if f'src="/admin/images/{900 + k}/file"' in page]
    assert shown == list(range(12))  # the first 12, in ranking order
    assert page.index("/admin/images/900/file") < page.index("/admin/images/901/file")
    assert "1 painted (at least 2 annotators), 15 candidates of 16 training images" in " ".join(page.split())


def test_the_training_form_queues_a_predicted_job_and_refuses_one_without_paintings(
    admin: TestClient, session: Session, seeded: Callable[..., Seeded], enqueued: Enqueued
) -> None:
    s = seeded()
    _split_painted_into_training(session, s)
    dataset_id = session.scalar(select(Image.dataset_id))
    form = {
        "csrf_token": admin.csrf,
        "dataset_id": str(dataset_id),
        "method": "sip_at",
        "salience": "predicted",
        "study_id": str(s.study.id),
        "predictor_epochs": "7",
        "epochs": "1",
        "eps_ramp_epochs": "0",  # no ramp: one as long as the run is refused
    }
    page = admin.get("/admin/training").text
    assert '<option value="predicted"' in page and 'name="predictor_epochs"' in page
    _set_min_annotators(session, s, 3)
    r = admin.post("/admin/training", data=form, follow_redirects=False)
    assert r.status_code == 422 and "nothing to learn from" in r.text and enqueued.sent == []
    _set_min_annotators(session, s, 2)
    r = admin.post("/admin/training", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    job = session.scalars(select(Job)).one()
    assert (job.params["salience"], job.params["study_id"], job.params["predictor_epochs"]) == (
        "predicted",
        s.study.id,
        7,
    )
    assert job.message is not None and "the salience predictor's maps" in job.message
    job_page = " ".join(admin.get(f"/admin/jobs/{job.id}").text.split())
    assert "get the maps of a salience predictor trained on the human ones" in job_page
