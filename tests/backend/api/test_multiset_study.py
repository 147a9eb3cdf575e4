"""A study of two stimulus sets through the HTTP API: the config rule (422/409 saying what to fix), each
participant's trials drawn from both sets (interleaved, balanced, counterbalanced across participants), resume
keeping the order, the exports naming the set, and the results comparing the sets side by side."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Participant, Response, StimulusSet, Trial
from backend.services.resume import RESUME_AFTER_IDLE_S
from backend.storage import BlobStore
from tests.backend.factories import (
    BOTH_DATABASES,
    EPS_LEVELS,
    SMALL_CONFIG,
    make_dataset,
    make_open_study,
    make_stimulus_set,
    make_study,
)
from tests.backend.research_factories import add_participant, answer_trials, finish_session, start_session

#: 6 images, 3 levels (0, 2/255, 8/255), 2 sets: 6 main trials give every participant each (set, level) once.
TWO_SETS = {"n_main": 6, "compare_set_names": ["masked set"]}


def _main_trials(session: Session, participant_id: int) -> list[Trial]:
    query = select(Trial).where(Trial.participant_id == participant_id, Trial.phase == "main").order_by(Trial.position)
    return list(session.scalars(query))


def _set(session: Session, storage: BlobStore, dataset=None, **kw) -> StimulusSet:
    sset = make_stimulus_set(session, storage, dataset or make_dataset(session, storage), **kw)
    session.commit()
    return sset


def test_config_validation(api: TestClient, session: Session, storage: BlobStore) -> None:
    dataset = make_dataset(session, storage)
    first, same, other_levels = (_set(session, storage, dataset, eps_levels=e) for e in (None, None, [0.0, 4 / 255]))
    elsewhere = _set(session, storage)  # another dataset

    def create(slug: str, **config):
        body = {"slug": slug, "title": "Two sets", "config": {"stimulus_set_id": first.id, **SMALL_CONFIG, **config}}
        return api.post("/api/v1/studies", json=body)

    r = create("unknown", compare_stimulus_set_ids=[9999])
    assert r.status_code == 422 and "config.compare_stimulus_set_ids: no stimulus set with id 9999" in r.text
    r = create("levels", compare_stimulus_set_ids=[other_levels.id])
    assert r.status_code == 422 and f"stimulus set {other_levels.id} cannot be compared" in r.text
    assert "its eps levels are" in r.text and "one norm and eps levels" in r.text
    r = create("dataset", compare_stimulus_set_ids=[elsewhere.id])
    assert r.status_code == 422 and f"its dataset is {elsewhere.dataset_id}, not {dataset.id}" in r.text
    r = create("twice", compare_stimulus_set_ids=[first.id])
    assert r.status_code == 422 and "name a set twice" in r.text

    r = create("pair", compare_stimulus_set_ids=[same.id])
    assert r.status_code == 201, r.text
    study = r.json()
    assert study["config"]["compare_stimulus_set_ids"] == [same.id]
    r = api.patch(f"/api/v1/studies/{study['id']}", json={"config": {"compare_stimulus_set_ids": [other_levels.id]}})
    assert r.status_code == 422 and "cannot be compared" in r.text

    # Opening needs every set ready: a failed compared set blocks it, saying which and what to do.
    same.status = "failed"
    session.commit()
    r = api.post(f"/api/v1/studies/{study['id']}/open")
    assert r.status_code == 409 and f"stimulus set {same.id} failed to generate" in r.json()["detail"]
    same.status = "ready"
    session.commit()
    assert api.post(f"/api/v1/studies/{study['id']}/open").status_code == 200

    # A one-set study is created as before (the new field empty).
    r = create("one")
    assert r.status_code == 201 and r.json()["config"]["compare_stimulus_set_ids"] == []


@BOTH_DATABASES
def test_trials_come_from_both_sets_balanced_and_counterbalanced(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage, **TWO_SETS)
    first, second = [study.config["stimulus_set_id"], *study.config["compare_stimulus_set_ids"]]
    tokens = [start_session(client, "pilot").json()["token"] for _ in range(6)]
    assert len(set(tokens)) == 6
    session.expire_all()
    across: Counter[tuple[int, int, float]] = Counter()
    for person in session.scalars(select(Participant).order_by(Participant.index)):
        main = _main_trials(session, person.id)
        cells = Counter((t.stimulus.stimulus_set_id, round(t.stimulus.eps * 255)) for t in main)
        assert cells == {(s, e): 1 for s in (first, second) for e in (0, 2, 8)}  # each (set, eps) once
        assert len({t.stimulus.image_id for t in main}) == 6  # no image in both sets
        sets_in_order = [t.stimulus.stimulus_set_id for t in main]
        assert sets_in_order.count(first) == 3
        across.update((t.stimulus.image_id, t.stimulus.stimulus_set_id, round(t.stimulus.eps * 255)) for t in main)
        others = session.scalars(select(Trial).where(Trial.participant_id == person.id, Trial.phase != "main"))
        assert {t.stimulus.stimulus_set_id for t in others} == {first}
    # Six participants (2 sets x 3 levels) form a Latin square: every image in every set at every level once.
    assert len(across) == 6 * 6 and set(across.values()) == {1}


def test_resume_keeps_the_order(client: TestClient, session: Session, storage: BlobStore) -> None:
    make_open_study(session, storage, **TWO_SETS)
    token = start_session(client, "pilot", external_id="worker-9").json()["token"]
    for _ in range(4):  # practice and the first main trials
        trial = client.get(f"/api/v1/sessions/{token}/next").json()
        body = {"judgment": "clean", "confidence": 2, "rt_ms": 700.0, "client_timestamps": {}}
        r = client.post(f"/api/v1/sessions/{token}/trials/{trial['trial_id']}/response", json=body)
        assert r.status_code == 201, r.text
    session.expire_all()
    person = session.scalar(select(Participant))
    before = [(t.position, t.phase, t.stimulus_id) for t in person.trials]
    back = timedelta(seconds=RESUME_AFTER_IDLE_S + 60)
    person.started_at -= back
    for response in session.scalars(select(Response)):
        response.created_at -= back
    session.commit()

    again = start_session(client, "pilot", external_id="worker-9")
    assert again.status_code == 200 and again.json()["resumed"] is True, again.text
    session.expire_all()
    person = session.scalar(select(Participant))
    assert [(t.position, t.phase, t.stimulus_id) for t in person.trials] == before
    assert client.get(f"/api/v1/sessions/{again.json()['token']}/next").json()["position"] == 4
    finish_session(client, again.json()["token"])
    session.expire_all()
    assert session.scalar(select(Participant)).completed_at is not None


def test_exports_name_the_set(api: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_open_study(session, storage, **TWO_SETS)
    finish_session(api, start_session(api, "pilot").json()["token"])
    rows = list(csv.DictReader(io.StringIO(api.get(f"/api/v1/studies/{study.id}/export/responses.csv").text)))
    names = {s.id: s.name for s in session.scalars(select(StimulusSet))}
    main = [r for r in rows if r["phase"] == "main"]
    assert Counter(r["stimulus_set_name"] for r in main) == {"test set": 3, "masked set": 3}
    assert all(names[int(r["stimulus_set_id"])] == r["stimulus_set_name"] for r in rows)
    assert {r["masked"] for r in main} == {"true", "false"}
    assert {r["stimulus_set_name"] for r in rows if r["phase"] != "main"} == {"test set"}


def test_results_compare_the_sets(api: TestClient, session: Session, storage: BlobStore) -> None:
    """Set B is noticed less (its perturbed trials judged perturbed half as often): its row says so, and the
    paired difference is reported per participant bootstrap."""
    dataset = make_dataset(session, storage)
    a = make_stimulus_set(session, storage, dataset)
    b = make_stimulus_set(session, storage, dataset)
    b.name, b.masked = "masked set", True
    study = make_study(session, a, compare_stimulus_set_ids=[b.id])
    x, y = EPS_LEVELS[1:]
    for k in range(12):
        person = add_participant(session, study, k)
        hits_a = {0.0: 1, x: 3 + k % 2, y: 6}
        hits_b = {0.0: 1, x: 1, y: 3 + k % 2}
        for sset, hits in ((a, hits_a), (b, hits_b)):
            answers = [("main", e, "perturbed" if j < hits[e] else "clean") for e in hits for j in range(6)]
            answer_trials(session, person, sset.id, answers)
    session.commit()

    res = api.get(f"/api/v1/studies/{study.id}/results?n_boot=100").json()
    cmp = res["sets"]
    assert cmp["n_participants"] == 12 and cmp["n_boot"] == 100
    first, second = cmp["sets"]
    assert (first["stimulus_set_id"], second["stimulus_set_id"]) == (a.id, b.id)
    assert (first["name"], second["name"], second["masked"]) == ("test set", "masked set", True)
    assert [lv["n"] for lv in first["levels"]] == [72, 72, 72]
    rate = {s["stimulus_set_id"]: [lv["detection_rate"] for lv in s["levels"]] for s in cmp["sets"]}
    assert rate[a.id] == [12 / 72, 42 / 72, 1.0] and rate[b.id] == [12 / 72, 12 / 72, 42 / 72]
    assert first["eps50"] is not None and second["eps50"] is not None and second["eps50"] > first["eps50"]
    (diff,) = cmp["differences"]
    assert (diff["stimulus_set_id"], diff["minus_stimulus_set_id"]) == (b.id, a.id)
    assert diff["eps50"] > 0 and diff["eps50_ci"][0] is not None and diff["eps50_ci"][0] > 0

    one = make_open_study(session, storage, slug="single")
    assert api.get(f"/api/v1/studies/{one.id}/results").json()["sets"] is None
