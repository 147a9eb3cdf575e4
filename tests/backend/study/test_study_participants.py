"""The participant-level analysis: counts and resampling by hand, and simulated studies with a known population
of heterogeneous people (`simulated_people`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.study.analysis import dprime, wilson_interval
from backend.study.participants import count_matrix, dprime_counts, participant_analysis, resample
from tests.backend.simulated_people import (
    ALPHA0,
    BETA,
    GUESS,
    LAPSE,
    LEVELS,
    SIGMA,
    population_eps50,
    population_rate,
    rows_from_counts,
    simulate_counts,
)


def test_count_matrix_and_resample_by_hand():
    rows = [
        {"eps": 0.0, "judgment": "clean", "participant_id": "b"},
        {"eps": 0.0, "judgment": "perturbed", "participant_id": "a"},
        {"eps": 0.1, "judgment": "perturbed", "participant_id": "a"},
        {"eps": 0.1, "judgment": "clean", "participant_id": "a"},
        {"eps": 0.1, "judgment": "perturbed", "participant_id": "b", "phase": "main"},
        {"eps": 0.1, "judgment": "clean", "participant_id": "b", "phase": "catch"},  # skipped
    ]
    c = count_matrix(rows)
    assert c.participants == ["a", "b"]
    assert c.keys == [(0.0, None), (0.1, None)]
    np.testing.assert_array_equal(c.k, [[1, 1], [0, 1]])
    np.testing.assert_array_equal(c.n, [[1, 2], [1, 1]])

    rng = np.random.default_rng(0)
    # one participant, no within-resampling: every resample is that person's data
    kb, nb = resample(c.k[:1], c.n[:1], 5, rng, within=False)
    np.testing.assert_array_equal(kb, np.tile([1, 1], (5, 1)))
    np.testing.assert_array_equal(nb, np.tile([1, 2], (5, 1)))
    # balanced design: every resample has P * n trials per level; counts stay within 0..n
    k = np.array([[0.0, 5.0], [10.0, 10.0], [3.0, 7.0]])
    n = np.full_like(k, 10.0)
    kb, nb = resample(k, n, 400, rng)
    assert np.all(nb == 30) and kb.min() >= 0 and kb.max() <= 30
    # people are drawn whole: without within-resampling the level-0 count is a sum of three of {0, 10, 3}
    kb, _ = resample(k, n, 400, rng, within=False)
    possible = {a + b + d for a in (0, 10, 3) for b in (0, 10, 3) for d in (0, 10, 3)}
    assert set(kb[:, 0].tolist()) <= possible and len(set(kb[:, 0].tolist())) > 3


def test_dprime_counts_matches_dprime():
    for h, m, f, cr in [(8, 2, 1, 9), (10, 0, 0, 10), (3, 7, 4, 6)]:
        assert dprime_counts(np.array(h), np.array(h + m), np.array(f), np.array(f + cr)) == pytest.approx(
            dprime(h, m, f, cr), abs=1e-12
        )
    assert np.isnan(dprime_counts(np.array(1.0), np.array(2.0), np.array(0.0), np.array(0.0)))


def test_participant_interval_covers_population_rate_and_pooled_wilson_does_not():
    """200 simulated studies of 12 heterogeneous people, 20 trials per level: at eps = alpha0 the people's
    rates range widely, so the pooled (trials) Wilson interval is far too narrow."""
    rng = np.random.default_rng(2026)
    n_studies, n_people, n_trials, n_boot, j = 200, 12, 20, 400, 2
    truth = population_rate(LEVELS[j])
    k, n = simulate_counts(rng, n_studies, n_people, n_trials)
    kb, nb = resample(k, n, n_boot, rng)  # (studies, boot, levels)
    lo, hi = np.quantile(kb[..., j] / nb[..., j], [0.025, 0.975], axis=1)
    participant_cover = float(np.mean((lo <= truth) & (truth <= hi)))
    kk, nn = k[..., j].sum(1), n[..., j].sum(1)
    wilson = np.array([wilson_interval(int(a), int(b)) for a, b in zip(kk, nn, strict=True)])
    pooled_cover = float(np.mean((wilson[:, 0] <= truth) & (truth <= wilson[:, 1])))
    # participants only (no second stage): also calibrated, and never wider than two-stage on average
    kb1, nb1 = resample(k, n, n_boot, rng, within=False)
    lo1, hi1 = np.quantile(kb1[..., j] / nb1[..., j], [0.025, 0.975], axis=1)
    print(
        f"coverage: participant two-stage {participant_cover:.3f}, participants only "
        f"{np.mean((lo1 <= truth) & (truth <= hi1)):.3f}, pooled Wilson {pooled_cover:.3f}"
    )
    assert participant_cover >= 0.90
    assert pooled_cover <= 0.75
    assert np.mean(hi1 - lo1) < np.mean(hi - lo)


def test_threshold_interval_recovers_population_eps50():
    """40 simulated studies of 16 people through `participant_analysis`: the participant-bootstrap interval of
    eps50 covers the population value in nearly all of them. A 95 % percentile interval from 16 people runs
    a little short, and 40 studies leave room for chance (measured on 100 studies of 12: 0.90)."""
    rng = np.random.default_rng(7)
    truth = population_eps50()
    k, n = simulate_counts(rng, 40, 16, 20)
    cover = []
    for s in range(k.shape[0]):
        res = participant_analysis(rows_from_counts(k[s], n[s]), n_boot=100, seed=s, individual=False)
        (block,) = res["thresholds"]
        lo, hi = block["eps50_ci"]
        cover.append(lo <= truth and (hi is None or truth <= hi))
    print(f"eps50 coverage {np.mean(cover):.3f} over {len(cover)} studies")
    assert np.mean(cover) >= 0.85


def test_masked_difference_and_individual_fits():
    """One study, 24 people, each tested on masked and unmasked stimuli; masking raises every person's
    threshold by 1.5x. The paired difference interval holds the population difference and excludes 0; the
    individual fits rank people like their true thresholds."""
    rng = np.random.default_rng(11)
    people, trials = 24, 30
    z = rng.standard_normal((people, 1))
    rows = []
    for masked, factor in ((False, 1.0), (True, 1.5)):
        alphas = ALPHA0 * factor * np.exp(SIGMA * z)
        p = GUESS + (1 - GUESS - LAPSE) / (1 + (alphas / np.maximum(LEVELS, 1e-12)) ** BETA)
        p[:, 0] = GUESS
        rows += rows_from_counts(rng.binomial(trials, p).astype(float), np.full(p.shape, trials), masked)
    res = participant_analysis(rows, n_boot=200, seed=0)
    truth = population_eps50(ALPHA0 * 1.5) - population_eps50(ALPHA0)
    diff = res["difference"]
    assert diff["eps50_ci"][0] > 0
    assert diff["eps50_ci"][0] <= truth <= diff["eps50_ci"][1]
    by = {b["condition"]: b for b in res["thresholds"]}
    assert by["masked"]["eps50"] > by["unmasked"]["eps50"]
    fitted = [r["fits"]["unmasked"]["eps50"] for r in res["per_participant"]]
    ok = [i for i, f in enumerate(fitted) if f is not None]
    assert len(ok) >= people - 2
    rho = np.corrcoef(np.argsort(np.argsort(np.array(fitted)[ok])), np.argsort(np.argsort(z[ok, 0])))[0, 1]
    assert rho > 0.7
    # masking pushes eps75 (about 1.5 * 10/255) past the largest tested eps (16/255): said, and nothing else
    assert [(w["code"], w["message"].split(":")[0]) for w in res["warnings"]] == [("extrapolated", "masked")]


def test_warnings_for_thin_data():
    rng = np.random.default_rng(3)
    k, n = simulate_counts(rng, 1, 4, 3)
    res = participant_analysis(rows_from_counts(k[0], n[0]), n_boot=50)
    codes = {w["code"] for w in res["warnings"]}
    assert {"few_participants", "few_trials_per_level"} <= codes
    assert all(r["fits"]["all"]["reason"] == "too few trials" for r in res["per_participant"])
    empty = participant_analysis([], n_boot=10)
    assert empty["n_participants"] == 0 and empty["levels"] == []
    with pytest.raises(ValueError, match="n_boot"):
        participant_analysis([], n_boot=-1)
    assert math.isfinite(population_eps50())
