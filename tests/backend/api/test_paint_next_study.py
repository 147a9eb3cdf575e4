"""The study side of "which image to paint next" (issue 20), through the participant protocol: an active pool
gives new sessions the newest ranking's images in order, skipping painted and claimed ones, random while no
ranking exists; `rerank_every` queues exactly one ranking when the paintings pass a multiple of K, also when two
paintings at the boundary commit at once (PostgreSQL and SQLite)."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from backend.auth import token_hash
from backend.db import make_session_factory, session_scope
from backend.models import Image, Job, Participant, Stimulus, Study, Trial
from backend.services import participants as svc
from backend.services.paint_next import annotate_order
from backend.services.participants.enrolment import _StimulusIndex
from backend.services.rerank import refresh_and_send
from backend.services.studies import open_study
from backend.storage import BlobStore
from backend.study.config import StudyConfig
from tests.backend.factories import (
    BOTH_DATABASES,
    SMALL_CONFIG,
    make_dataset,
    make_stimulus_set,
    make_study,
    mask_png,
    png_bytes,
)
from tests.backend.research_factories import FakeEnqueuer, finish_session, start_session


def _pool_study(session: Session, storage: BlobStore, slug: str = "pool", **config: Any) -> tuple[Study, list[int]]:
    """An open study whose annotation pool is 6 training images (beside the 6 test images); (study, ids)."""
    dataset = make_dataset(session, storage)
    for k, im in enumerate(list(session.scalars(select(Image).where(Image.dataset_id == dataset.id)))):
        session.add(
            Image(dataset_id=dataset.id, label=im.label, split="train", sha256=storage.put(png_bytes(seed=50 + k)),
                  width=im.width, height=im.height, filename=f"train-{im.filename}")
        )  # fmt: skip
    sset = make_stimulus_set(session, storage, dataset)
    study = make_study(session, sset, slug=slug, status="draft", annotation_split="train", **config)
    session.flush()
    open_study(session, study.id)
    session.commit()
    train = session.scalars(
        select(Image.id).where(Image.dataset_id == dataset.id, Image.split == "train").order_by(Image.id)
    ).all()
    return study, list(train)


def _painted_by(session: Session, study_id: int, index: int) -> list[int]:
    """Image ids of the annotation trials of the study's participant `index`, in schedule order."""
    return list(
        session.scalars(
            select(Stimulus.image_id)
            .join(Trial, Trial.stimulus_id == Stimulus.id)
            .join(Participant, Participant.id == Trial.participant_id)
            .where(Participant.study_id == study_id, Participant.index == index, Trial.phase == "annotate")
            .order_by(Trial.position)
        )
    )


def _ranked(session: Session, study_id: int, order: list[int], *, status: str = "succeeded") -> Job:
    job = Job(
        kind="rank_paintings",
        params={"study_id": study_id},
        status=status,
        result={"ranking": [{"image_id": i, "label": "x", "score": 1.0} for i in order]},
    )
    session.add(job)
    session.commit()
    return job


def test_an_active_pool_paints_the_ranking_in_order_skipping_painted_and_claimed_images(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    study, train = _pool_study(session, storage, painting_pool="active", n_annotate=2)
    config = StudyConfig.model_validate(study.config)
    # no ranking yet: random, the very schedule a random pool gives, and the study page is told so
    assert "no finished ranking yet" in annotate_order(session, study.id, config).note
    _ranked(session, study.id, list(reversed(train)), status="running")  # unfinished rankings do not count
    token0 = start_session(client, "pool").json()["token"]
    random_pick = [s.image_id for s in _StimulusIndex.load(session, config.stimulus_set_id).schedule(config, 0)]
    assert _painted_by(session, study.id, 0) == [i for i in random_pick if i in train][-2:]

    order = [train[4], train[1], train[5], train[0], train[2], train[3]]
    _ranked(session, study.id, order)
    claimed0 = set(_painted_by(session, study.id, 0))  # participant 0 is still painting these
    token1 = start_session(client, "pool").json()["token"]
    first = [i for i in order if i not in claimed0][:2]
    assert _painted_by(session, study.id, 1) == first

    finish_session(client, token1)  # participant 1 painted its two: satisfied (min_annotators 1)
    start_session(client, "pool")
    free = [i for i in order if i not in claimed0 | set(first)]
    assert _painted_by(session, study.id, 2) == free[:2]

    # now all 6 are painted (participants 0 and 1) or claimed (participant 2): the claimed but unpainted ones
    # come next, in ranking order, rather than a random draw
    finish_session(client, token0)
    start_session(client, "pool")
    assert len(claimed0 | set(first) | set(free[:2])) == 6
    assert _painted_by(session, study.id, 3) == [i for i in order if i in free[:2]]


def test_rerank_every_queues_one_ranking_each_time_the_paintings_pass_a_multiple(
    client: TestClient, session: Session, storage: BlobStore, enqueued: FakeEnqueuer
) -> None:
    study, _train = _pool_study(session, storage, rerank_every=2)  # one painting per session
    jobs = lambda: session.scalars(select(Job).order_by(Job.id)).all()  # noqa: E731

    def take_part() -> None:
        finish_session(client, start_session(client, "pool").json()["token"])
        session.expire_all()

    take_part()
    assert jobs() == [] and enqueued.sent == []  # 1 painting
    take_part()  # 2: the boundary
    (job,) = jobs()
    assert job.kind == "rank_paintings" and job.status == "queued" and enqueued.sent == [job.id]
    assert job.params["study_id"] == study.id and job.params["after_paintings"] == 2 and enqueued.committed == [True]
    take_part()  # 3: no boundary passed since
    take_part()  # 4: a boundary, but the ranking is still queued: none beside it
    assert len(jobs()) == 1
    session.execute(update(Job).values(status="succeeded"))
    session.commit()
    take_part()  # 5: the boundary at 4 is caught up now that the first ranking is done
    assert [j.params.get("after_paintings") for j in jobs()] == [2, 5] and len(enqueued.sent) == 2


def _answer_detection_trials(session_factory: Any, token: str) -> int:
    """Answer every detection trial of the session (service level); the annotation trial's id."""
    with session_scope(session_factory) as s:
        participant_id = s.scalar(select(Participant.id).where(Participant.token_hash == token_hash(token)))
        trials = s.execute(
            select(Trial.id, Trial.phase).where(Trial.participant_id == participant_id).order_by(Trial.position)
        ).all()
    for trial_id, phase in trials:
        if phase != "annotate":
            with session_scope(session_factory) as s:
                svc.submit_response(
                    s, token, trial_id, judgment="clean", confidence=2, rt_ms=500.0, client_timestamps={}
                )
    return next(trial_id for trial_id, phase in trials if phase == "annotate")


@BOTH_DATABASES
def test_two_paintings_at_the_boundary_at_once_queue_one_ranking(
    client: TestClient, session: Session, storage: BlobStore, engine: Engine, enqueued: FakeEnqueuer
) -> None:
    _pool_study(session, storage, rerank_every=2, n_practice=0, n_catch=0)
    finish_session(client, start_session(client, "pool").json()["token"])  # 1 painting
    factory = make_session_factory(engine)
    tokens = [start_session(client, "pool").json()["token"] for _ in range(2)]
    trials = [_answer_detection_trials(factory, t) for t in tokens]
    both_stored = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def paint(token: str, trial_id: int) -> None:
        try:
            with session_scope(factory) as s:
                svc.submit_annotation(s, storage, token, trial_id, mask_png=mask_png(), strokes=[], duration_ms=900)
            both_stored.wait()  # both paintings committed: each sees 3 > 2, so both find a refresh due
            refresh_and_send(factory, trial_id, enqueued)
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=paint, args=pair) for pair in zip(tokens, trials, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    (job,) = session.scalars(select(Job)).all()
    assert job.params["after_paintings"] == 3 and enqueued.sent == [job.id]


def test_bad_painting_settings_are_a_422_that_names_the_field(
    api: TestClient, session: Session, storage: BlobStore
) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage))
    session.commit()
    config = {"stimulus_set_id": sset.id, **SMALL_CONFIG}
    for bad, field in (
        ({"painting_pool": "sometimes"}, "painting_pool"),
        ({"rerank_every": 0}, "rerank_every"),
        ({"rerank_every": 1.5}, "rerank_every"),
        ({"painting_pool": "active", "annotation_split": None}, "annotation_split"),
    ):
        r = api.post("/api/v1/studies", json={"slug": "s", "title": "T", "config": {**config, **bad}})
        assert r.status_code == 422 and field in r.text, (bad, r.text)
    r = api.post("/api/v1/studies", json={"slug": "s", "title": "T", "config": config})
    assert r.status_code == 201 and r.json()["config"]["painting_pool"] == "random"
    sid = r.json()["id"]
    r = api.patch(f"/api/v1/studies/{sid}", json={"config": {"rerank_every": -1}})
    assert r.status_code == 422 and "rerank_every" in r.text
    r = api.patch(f"/api/v1/studies/{sid}", json={"config": {"painting_pool": "active", "rerank_every": 10}})
    assert r.status_code == 200 and r.json()["config"]["rerank_every"] == 10
