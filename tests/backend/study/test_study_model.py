"""The GEE condition model on simulated studies of heterogeneous people (see test_study_participants)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.study.model import condition_model
from tests.backend.simulated_people import ALPHA0, BETA, GUESS, LAPSE, LEVELS, SIGMA, rows_from_counts


def two_condition_rows(rng: np.random.Generator, people: int, trials: int, factor: float) -> list[dict]:
    """Each person sees both conditions; masking multiplies their own threshold by `factor`."""
    z = rng.standard_normal((people, 1))
    rows: list[dict] = []
    for masked, f in ((False, 1.0), (True, factor)):
        alphas = ALPHA0 * f * np.exp(SIGMA * z)
        p = GUESS + (1 - GUESS - LAPSE) / (1 + (alphas / np.maximum(LEVELS, 1e-12)) ** BETA)
        p[:, 0] = GUESS
        rows += rows_from_counts(rng.binomial(trials, p).astype(float), np.full(p.shape, trials), masked)
    return rows


def test_masking_effect_is_found_and_sized():
    res = condition_model(two_condition_rows(np.random.default_rng(4), people=24, trials=20, factor=1.5))
    assert [c["term"] for c in res["coefficients"]] == ["intercept", "log_eps", "masked", "masked:log_eps"]
    assert res["n_participants"] == 24 and res["n_trials"] == 24 * 2 * 3 * 20  # perturbed trials only
    assert res["eps_ref"] == pytest.approx(8 / 255)  # geometric mean of 4, 8, 16 (/255)
    assert res["working_correlation"] > 0  # one person's trials are alike
    odds = res["masked_odds_ratio"]
    assert odds["estimate"] < 1 and odds["ci"][1] < 1 and odds["p"] < 0.01
    ratio = res["eps50_ratio"]
    assert ratio["ci"][0] > 1 and ratio["ci"][0] <= 1.5 <= ratio["ci"][1]
    lo, hi = res["eps50"]["unmasked"]["ci"]
    assert lo < res["eps50"]["unmasked"]["estimate"] < hi
    assert res["warnings"] == []


def test_no_effect_rejected_rarely():
    """40 null studies (masking changes nothing, 12 people each, both conditions per person): the masked
    term's test, with its bias-reduced sandwich errors from only 12 clusters, keeps close to its 5 % level
    (measured: 3 of 40)."""
    rng = np.random.default_rng(12)
    p = [condition_model(two_condition_rows(rng, people=12, trials=20, factor=1.0))["masked_odds_ratio"]["p"]]
    p += [
        condition_model(two_condition_rows(rng, people=12, trials=20, factor=1.0))["masked_odds_ratio"]["p"]
        for _ in range(39)
    ]
    assert np.mean(np.array(p) < 0.05) <= 0.125


def test_one_condition_and_unusable_data():
    rng = np.random.default_rng(1)
    rows = [r for r in two_condition_rows(rng, people=6, trials=10, factor=1.0) if r["masked"] is not True]
    res = condition_model(rows)
    assert [c["term"] for c in res["coefficients"]] == ["intercept", "log_eps"]
    assert res["masked_odds_ratio"] is None and res["eps50_ratio"] is None and set(res["eps50"]) == {"all"}
    assert [w["code"] for w in res["warnings"]] == ["few_clusters"]
    one_level = [r for r in rows if r["eps"] in (0.0, LEVELS[2])]
    assert "two or more eps levels" in condition_model(one_level)["reason"]
    one_person = [r for r in rows if r["participant_id"] == 0]
    assert "two or more participants" in condition_model(one_person)["reason"]


def test_perfectly_split_answers_get_a_reason_not_numbers():
    """All 'clean' at the lower eps and all 'perturbed' at the higher: the logistic slope has no finite MLE,
    so no coefficients (and no absurdly narrow interval) come back."""
    rows = [
        {"eps": e, "judgment": "perturbed" if e > 0.02 else "clean", "participant_id": p}
        for p in range(4)
        for e in (2 / 255, 8 / 255)
        for _ in range(5)
    ]
    assert "split perfectly" in condition_model(rows)["reason"]
    same = [dict(r, judgment="perturbed") for r in rows]
    assert "split perfectly" in condition_model(same)["reason"]
