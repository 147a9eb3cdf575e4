"""Study results through the research API, checked against numbers computed by hand.

Data (stimulus set: eps levels 0 and x = 8/255, unmasked; main-phase trials only unless said):

    p0: clean 1/5 judged perturbed, x 4/5;  catch 1/1 right;  3 practice trials (ignored)
    p1: clean 1/5,                  x 4/5;  catch 1/1 right
    p2: clean 5/5,                  x 0/5;  catch 0/2 right -> 2 misses > 1 allowed: excluded

With p2 excluded: clean 2/10 -> false-alarm rate F = 0.2; x 8/10 -> hit rate H = 0.8.

Wilson 95 % (z = 1.959964, z^2 = 3.841459) for k/n = 2/10:
    centre = (0.2 + z^2/20) / (1 + z^2/10) = 0.392073 / 1.384146 = 0.283260
    half   = z / 1.384146 * sqrt(0.2 * 0.8 / 10 + z^2 / 400) = 1.416010 * 0.160011 = 0.226578
    -> [0.056682, 0.509838];  by symmetry 8/10 -> [0.490162, 0.943318]
d' (log-linear): H' = (8 + 0.5) / (10 + 1) = 0.772727, F' = (2 + 0.5) / 11 = 0.227273,
    d' = z(H') - z(F') = 0.747859 - (-0.747859) = 1.495717
With p2 included: clean 7/15 -> F = 0.466667, Wilson [0.248095, 0.698830]; x 8/15.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backend.storage import BlobStore
from tests.backend.factories import BOTH_DATABASES, make_dataset, make_stimulus_set, make_study
from tests.backend.research_factories import add_participant, answer_trials

X = 8 / 255
P = "perturbed"
C = "clean"


def _main(clean_perturbed: int, x_perturbed: int) -> list[tuple[str, float, str]]:
    clean = [("main", 0.0, P if k < clean_perturbed else C) for k in range(5)]
    at_x = [("main", X, P if k < x_perturbed else C) for k in range(5)]
    return clean + at_x


@BOTH_DATABASES
def test_results_match_hand_computed_values(api: TestClient, session: Session, storage: BlobStore) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage), eps_levels=[0.0, X])
    study = make_study(session, sset)
    p0, p1, p2 = (add_participant(session, study, k, external_id=f"p{k}") for k in range(3))
    answer_trials(session, p0, sset.id, [("practice", X, C)] * 3 + _main(1, 4) + [("catch", 0.25, P)], confidence=2)
    answer_trials(session, p1, sset.id, [*_main(1, 4), ("catch", 0.25, P)], confidence=4, rt_ms=700)
    answer_trials(session, p2, sset.id, _main(5, 0) + [("catch", 0.25, C)] * 2, confidence=1, rt_ms=2000)
    session.commit()

    r = api.get(f"/api/v1/studies/{study.id}/results")
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["exclusions_applied"] is True and res["max_catch_errors"] == 1
    assert res["excluded"] == [
        {
            "participant_id": p2.id,
            "index": 2,
            "external_id": "p2",
            "catch_trials": 2,
            "catch_errors": 2,
            "reasons": ["catch"],
        }
    ]
    assert (res["n_participants"], res["n_participants_included"], res["n_main_responses"]) == (3, 2, 20)
    assert res["masked"] is False and res["stimulus_set_id"] == sset.id and res["attack"] == "pgd"

    clean, at_x = res["eps"]
    assert clean["eps"] == 0.0 and clean["masked"] is None and at_x["eps"] == pytest.approx(X)
    assert at_x["masked"] is False
    assert (clean["n"], clean["n_perturbed_judgments"], clean["n_participants"]) == (10, 2, 2)
    assert clean["detection_rate"] == pytest.approx(0.2) and clean["false_alarm_rate"] == pytest.approx(0.2)
    assert clean["hit_rate"] is None and clean["dprime"] is None
    assert (clean["ci_low"], clean["ci_high"]) == pytest.approx((0.056682, 0.509838), abs=1e-6)
    assert (at_x["n"], at_x["n_perturbed_judgments"]) == (10, 8)
    assert at_x["hit_rate"] == pytest.approx(0.8) and at_x["false_alarm_rate"] == pytest.approx(0.2)
    assert (at_x["ci_low"], at_x["ci_high"]) == pytest.approx((0.490162, 0.943318), abs=1e-6)
    assert at_x["dprime"] == pytest.approx(1.495717, abs=1e-6)
    assert at_x["mean_rt_ms"] == pytest.approx(600.0) and at_x["median_rt_ms"] == pytest.approx(600.0)
    assert at_x["mean_confidence"] == pytest.approx(3.0)  # p0 said 2, p1 said 4, five trials each

    assert res["psychometric"] is None
    assert "two or more positive eps levels; there are 1 (0.0313725)" in res["psychometric_reason"]

    # The participant-level view of the same 20 trials (p0, p1): per person, clean 1/5 and x 4/5, so
    # F' = 1.5/6 = 0.25, H' = 4.5/6 = 0.75 and d' = 2 * 0.674490 = 1.348980 each.
    people = res["participants"]
    assert people["n_participants"] == 2 and people["n_boot"] == 200
    assert [p["participant_id"] for p in people["per_participant"]] == [p0.id, p1.id]
    for p in people["per_participant"]:
        assert (p["n_trials"], p["n_clean"]) == (10, 5)
        assert p["false_alarm_rate"] == pytest.approx(0.2) and p["hit_rate"] == pytest.approx(0.8)
        assert p["dprime"] == pytest.approx(1.348980, abs=1e-6)
    lv_clean, lv_x = people["levels"]
    assert lv_clean["detection_rate"] == pytest.approx(0.2) and lv_clean["dprime"] is None
    assert lv_x["detection_rate"] == pytest.approx(0.8) and lv_x["min_trials_per_participant"] == 5
    # two identical people: resampling people changes nothing, only the trials within vary
    assert lv_x["ci"][0] < 0.8 < lv_x["ci"][1]
    assert people["thresholds"][0]["reason"] is not None and people["difference"] is None
    assert {w["code"] for w in people["warnings"]} == {"few_participants"}
    assert "two or more eps levels" in res["model"]["reason"]

    everyone = api.get(f"/api/v1/studies/{study.id}/results", params={"include_excluded": True}).json()
    assert everyone["exclusions_applied"] is False and everyone["excluded"][0]["participant_id"] == p2.id
    clean, at_x = everyone["eps"]
    assert (clean["n"], clean["n_perturbed_judgments"]) == (15, 7)
    assert (clean["ci_low"], clean["ci_high"]) == pytest.approx((0.248095, 0.698830), abs=1e-6)
    assert (at_x["n"], at_x["n_perturbed_judgments"]) == (15, 8)
    assert everyone["n_main_responses"] == 30 and everyone["n_participants_included"] == 3


def test_psychometric_fit_with_two_positive_levels(api: TestClient, session: Session, storage: BlobStore) -> None:
    levels = [0.0, 2 / 255, 8 / 255]
    sset = make_stimulus_set(session, storage, make_dataset(session, storage), eps_levels=levels)
    sset.masked = True
    study = make_study(session, sset)
    person = add_participant(session, study, 0)
    answers = [("main", 0.0, P if k < 1 else C) for k in range(10)]
    answers += [("main", 2 / 255, P if k < 5 else C) for k in range(10)]
    answers += [("main", 8 / 255, P if k < 9 else C) for k in range(10)]
    answer_trials(session, person, sset.id, answers)
    session.commit()

    res = api.get(f"/api/v1/studies/{study.id}/results", params={"n_boot": 20}).json()
    assert res["masked"] is True and [row["masked"] for row in res["eps"]] == [None, True, True]
    fit = res["psychometric"]
    assert res["psychometric_reason"] is None and fit["n_trials"] == 30 and fit["n_boot"] == 20
    # Half the images are judged perturbed at 2/255 (floor 0.1): eps50 lies near it, eps75 above it.
    assert 1 / 255 < fit["eps50"] < 4 / 255 < fit["eps75"] < 8 / 255
    assert set(fit["ci"]) == {"alpha", "beta", "guess", "lapse", "eps50", "eps75"}
    low, high = fit["ci"]["eps50"]
    assert low <= fit["eps50"] and (high is None or high >= fit["eps50"])
    assert len(fit["grid_eps"]) == len(fit["grid_p"]) == 101


def test_results_of_an_empty_or_missing_study(api: TestClient, session: Session, storage: BlobStore) -> None:
    study = make_study(session, make_stimulus_set(session, storage, make_dataset(session, storage)))
    session.commit()
    res = api.get(f"/api/v1/studies/{study.id}/results").json()
    assert res["eps"] == [] and res["n_participants"] == 0 and res["psychometric"] is None
    assert api.get("/api/v1/studies/999/results").status_code == 404
    assert api.get(f"/api/v1/studies/{study.id}/results", params={"n_boot": -1}).status_code == 422


@BOTH_DATABASES  # completion times: both timestamp columns as each backend returns them
def test_exclusion_rules_from_the_study_config(api: TestClient, session: Session, storage: BlobStore) -> None:
    """Rules: responses under 300 ms dropped; people with more than half of them too fast, or done in under
    60 s, excluded. p0 keeps all 10 answers; p1 answers everything in 200 ms (10 fast: excluded, answers
    dropped); p2 finishes in 30 s (excluded); p3 has one fast answer of 10 (dropped, p3 kept)."""
    from datetime import UTC, datetime, timedelta

    sset = make_stimulus_set(session, storage, make_dataset(session, storage), eps_levels=[0.0, X])
    rules = {"min_rt_ms": 300, "max_fast_share": 0.5, "min_completion_s": 60}
    study = make_study(session, sset, exclusions=rules)
    people = [add_participant(session, study, k, external_id=f"p{k}") for k in range(4)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for person, rt, took in zip(people, (500.0, 200.0, 500.0, 500.0), (120, 120, 30, None), strict=True):
        answers = _main(1, 4)
        if person is people[3]:
            answer_trials(session, person, sset.id, answers[:9], rt_ms=rt)
            answer_trials(session, person, sset.id, answers[9:], rt_ms=100.0)
        else:
            answer_trials(session, person, sset.id, answers, rt_ms=rt)
        person.started_at = start
        person.completed_at = None if took is None else start + timedelta(seconds=took)
    session.commit()

    res = api.get(f"/api/v1/studies/{study.id}/results", params={"n_boot": 0}).json()
    assert {r["rule"]: (r["setting"], r["participants"], r["responses"]) for r in res["rules"]} == {
        "max_catch_errors": (1, 0, 0),
        "min_rt_ms": (300, 0, 11),
        "max_fast_share": (0.5, 1, 10),
        "min_completion_s": (60, 1, 10),
        "max_focus_lost_trials": (None, 0, 0),
    }
    assert [(e["external_id"], e["reasons"]) for e in res["excluded"]] == [
        ("p1", ["fast_responses"]),
        ("p2", ["completion_time"]),
    ]
    assert (res["n_participants_included"], res["n_main_responses"]) == (2, 19)
    everyone = api.get(f"/api/v1/studies/{study.id}/results", params={"n_boot": 0, "include_excluded": True}).json()
    assert everyone["n_main_responses"] == 29  # too-fast answers stay out: they are not judgments
    bad = {**study.config, "exclusions": {"min_rt_ms": -1}}
    r = api.patch(f"/api/v1/studies/{study.id}", json={"config": bad})
    assert r.status_code in (409, 422)
