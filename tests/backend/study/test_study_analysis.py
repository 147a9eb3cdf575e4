"""Detection statistics against hand-computed values, and the psychometric fit on simulated observers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from backend.study.analysis import (
    catch_exclusions,
    dprime,
    eps_table,
    wilson_interval,
)
from backend.study.psychometric import fit_psychometric, psychometric
from tests.torchfree import forbidden_imports

# z = 1.959964, z^2 = 3.841459


def test_wilson_hand_computed():
    # k=8, n=10: p=0.8, z^2/n=0.384146, denom=1.384146
    #   centre = (0.8 + 3.841459/20) / 1.384146 = 0.992073 / 1.384146 = 0.716738
    #   half   = 1.959964/1.384146 * sqrt(0.8*0.2/10 + 3.841459/400) = 1.416006 * 0.160012 = 0.226578
    #   -> (0.490160, 0.943316)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.490160, abs=1e-5)
    assert hi == pytest.approx(0.943316, abs=1e-5)
    # k=0, n=10: centre = 0.192073/1.384146 = 0.138766, half = 1.416006 * sqrt(0.0096036) = 0.138766
    #   -> (0, 0.277533)
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(0.277533, abs=1e-5)
    # k=5, n=5: denom = 1 + 3.841459/5 = 1.768292, centre = (1 + 0.384146)/1.768292 = 0.782759,
    #   half = 1.959964/1.768292 * sqrt(3.841459/100) = 1.108393 * 0.195996 = 0.217241 -> (0.565518, 1)
    lo, hi = wilson_interval(5, 5)
    assert lo == pytest.approx(0.565518, abs=1e-5)
    assert hi == pytest.approx(1.0, abs=1e-12)


def test_wilson_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # a narrower interval for a lower z
    assert wilson_interval(8, 10, z=1.0)[0] > wilson_interval(8, 10)[0]
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(-1, 10)


def test_dprime_hand_computed():
    # hits=8, misses=2, fa=1, cr=9: H = 8.5/11 = 0.772727, F = 1.5/11 = 0.136364
    #   z(H) = 0.747859, z(F) = -1.096804 -> d' = 1.844662
    assert dprime(8, 2, 1, 9) == pytest.approx(1.844662, abs=1e-5)
    # perfect performance stays finite: H = 10.5/11 = 0.954545, F = 0.5/11 = 0.045455
    #   z(H) = 1.690622, z(F) = -1.690622 -> d' = 3.381243
    assert dprime(10, 0, 0, 10) == pytest.approx(3.381243, abs=1e-5)
    # equal rates -> 0
    assert dprime(5, 5, 5, 5) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(dprime(0, 0, 3, 7))
    with pytest.raises(ValueError, match=">= 0"):
        dprime(-1, 2, 3, 4)


def _rows():
    rows = []
    # participant "a": clean 10 trials, 2 false alarms; eps 0.01 unmasked: 8/10; eps 0.01 masked: 3/10
    for i in range(10):
        rows.append(
            {
                "eps": 0.0,
                "judgment": "perturbed" if i < 2 else "clean",
                "participant_id": "a",
                "masked": False,
                "confidence": 3,
                "rt_ms": 1000 + 100 * i,
            }
        )
        rows.append(
            {
                "eps": 0.01,
                "judgment": "perturbed" if i < 8 else "clean",
                "participant_id": "a",
                "masked": False,
                "confidence": 4,
                "rt_ms": 800,
            }
        )
        rows.append(
            {
                "eps": 0.01,
                "judgment": "perturbed" if i < 3 else "clean",
                "participant_id": "a",
                "masked": True,
                "confidence": None,
                "rt_ms": None,
            }
        )
    # tuples (eps, judgment, participant_id, masked, confidence, rt_ms, phase) from participant "b"
    rows.append((0.03, "perturbed", "b", False, 5, 500.0, "main"))
    rows.append((0.03, "clean", "b", False, 1, 700.0))
    rows.append((0.03, "clean", "b", False, 1, 700.0, "practice"))  # skipped: not main
    rows.append({"eps": 0.0, "judgment": "perturbed", "participant_id": "x"})  # excluded below
    return rows


def test_eps_table_numbers():
    table = eps_table(_rows(), exclude_participants=["x"])
    assert [(r["eps"], r["masked"]) for r in table] == [(0.0, None), (0.01, False), (0.01, True), (0.03, False)]
    clean, unmasked, masked, big = table
    assert clean["n"] == 10 and clean["n_perturbed_judgments"] == 2
    assert clean["detection_rate"] == pytest.approx(0.2)
    assert clean["false_alarm_rate"] == pytest.approx(0.2)
    assert clean["hit_rate"] is None and clean["dprime"] is None
    assert (clean["ci_low"], clean["ci_high"]) == pytest.approx(wilson_interval(2, 10))
    assert clean["mean_rt_ms"] == pytest.approx(1450.0)  # 1000..1900 step 100
    assert clean["median_rt_ms"] == pytest.approx(1450.0)
    assert clean["mean_confidence"] == pytest.approx(3.0)

    assert unmasked["hit_rate"] == pytest.approx(0.8)
    assert unmasked["false_alarm_rate"] == pytest.approx(0.2)
    # H = 8.5/11, F = 2.5/11: z(0.772727) - z(0.227273) = 0.747859 + 0.747859 = 1.495717
    assert unmasked["dprime"] == pytest.approx(1.495717, abs=1e-5)
    assert (unmasked["ci_low"], unmasked["ci_high"]) == pytest.approx((0.490160, 0.943316), abs=1e-5)

    assert masked["n_perturbed_judgments"] == 3
    assert masked["mean_rt_ms"] is None and masked["mean_confidence"] is None
    assert masked["dprime"] == pytest.approx(dprime(3, 7, 2, 8))

    assert big["n"] == 2 and big["n_participants"] == 1
    assert big["median_rt_ms"] == pytest.approx(600.0)
    json.dumps(table, allow_nan=False)  # JSON-ready


def test_eps_table_exclusion_changes_false_alarms_and_bad_rows():
    with_x = eps_table(_rows())
    assert with_x[0]["n"] == 11 and with_x[0]["false_alarm_rate"] == pytest.approx(3 / 11)
    # no clean trials: no false-alarm rate, no d'
    only_perturbed = eps_table([{"eps": 0.1, "judgment": "clean", "participant_id": 1}])
    assert only_perturbed[0]["false_alarm_rate"] is None and only_perturbed[0]["dprime"] is None
    assert eps_table([]) == []
    with pytest.raises(ValueError, match="judgment"):
        eps_table([{"eps": 0.1, "judgment": "yes", "participant_id": 1}])
    with pytest.raises(ValueError, match="eps"):
        eps_table([{"eps": -1, "judgment": "clean", "participant_id": 1}])


def test_catch_exclusions():
    rows = [
        {"participant_id": 1, "judgment": "perturbed", "phase": "catch"},
        {"participant_id": 1, "judgment": "clean", "phase": "catch"},  # 1 error: allowed
        {"participant_id": 2, "judgment": "clean", "phase": "catch"},
        {"participant_id": 2, "judgment": None, "phase": "catch"},  # timeout counts as an error
        {"participant_id": 3, "judgment": "clean", "phase": "main"},  # not a catch trial
        {"participant_id": 3, "judgment": "clean", "phase": "main"},
        (0.25, "clean", 4),
        (0.25, "clean", 4),
        (0.25, "clean", 4),
    ]
    assert catch_exclusions(rows) == [2, 4]
    assert catch_exclusions(rows, max_catch_errors=0) == [1, 2, 4]
    assert catch_exclusions(rows, max_catch_errors=2) == [4]
    with pytest.raises(ValueError, match="max_catch_errors"):
        catch_exclusions(rows, max_catch_errors=-1)


LEVELS = np.array([0, 1, 2, 4, 8, 16]) / 255


def _simulate(seed: int, alpha=4 / 255, beta=2.5, guess=0.1, lapse=0.01, per_level=60):
    rng = np.random.default_rng(seed)
    eps = np.repeat(LEVELS, per_level)
    judged = rng.random(eps.size) < psychometric(eps, alpha, beta, guess, lapse)
    return eps, judged


def _true_threshold(p, alpha=4 / 255, beta=2.5, guess=0.1, lapse=0.01):
    f = (p - guess) / (1 - lapse - guess)
    return alpha * (f / (1 - f)) ** (1 / beta)


def test_psychometric_fit_recovers_threshold_within_ci():
    true50, true75 = _true_threshold(0.5), _true_threshold(0.75)
    eps, judged = _simulate(seed=0)
    fit = fit_psychometric(eps, judged, n_boot=200, seed=0)
    assert fit.ci["eps50"][0] <= true50 <= fit.ci["eps50"][1]
    assert fit.ci["eps75"][0] <= true75 <= fit.ci["eps75"][1]
    assert fit.eps50 == pytest.approx(true50, rel=0.25)
    assert fit.guess == pytest.approx(0.1, abs=0.08)
    assert fit.ci["eps50"][0] < fit.eps50 < fit.ci["eps50"][1]
    # the same data and seed give the same numbers
    again = fit_psychometric(eps, judged, n_boot=200, seed=0)
    assert again.ci == fit.ci and again.eps50 == fit.eps50
    d = fit.to_dict()
    json.dumps(d, allow_nan=False)
    assert len(d["grid_eps"]) == len(d["grid_p"]) == 101
    assert np.all(np.diff(fit.grid_p) >= 0)


def test_psychometric_ci_coverage_over_simulated_observers():
    # Several simulated observers (seeded): a 95 % interval should contain the true threshold for most.
    true50 = _true_threshold(0.5)
    covered = 0
    for seed in range(8):
        eps, judged = _simulate(seed=100 + seed, per_level=50)
        fit = fit_psychometric(eps, judged, n_boot=100, seed=seed)
        covered += fit.ci["eps50"][0] <= true50 <= fit.ci["eps50"][1]
    assert covered >= 6


def test_psychometric_fixed_guess_and_unreachable_threshold():
    eps, judged = _simulate(seed=3)
    fit = fit_psychometric(eps, judged, guess=0.1, n_boot=0)
    assert fit.guess == 0.1 and fit.ci == {}
    assert fit.eps50 == pytest.approx(_true_threshold(0.5), rel=0.25)
    # a false-alarm floor above one half: no eps at which half are judged perturbed *because* of eps
    eps, judged = _simulate(seed=4, guess=0.6)
    fit = fit_psychometric(eps, judged, n_boot=20)
    assert math.isnan(fit.eps50)
    assert fit.to_dict()["eps50"] is None
    assert math.isfinite(fit.eps75) and fit.eps75 > 0
    assert fit.ci["eps50"][1] == math.inf  # resamples without a 50 % point make the interval unbounded
    assert fit.to_dict()["ci"]["eps50"][1] is None


@pytest.mark.parametrize(
    ("eps", "judged", "kw", "match"),
    [
        ([0.0, 0.01], [True], {}, "differ in length"),
        ([], [], {}, "no trials"),
        ([0.0, 0.01, 0.01], [False, True, True], {}, "two distinct positive eps"),
        ([0.0, 0.01, -0.02], [False, True, True], {}, ">= 0"),
        ([0.0, 0.01, 0.02], [0, 1, 2], {}, "booleans"),
        ([0.0, 0.01, 0.02], [0, 1, 1], {"lapse": 0.5}, "lapse must be in"),
    ],
)
def test_psychometric_errors(eps, judged, kw, match):
    with pytest.raises(ValueError, match=match):
        fit_psychometric(eps, judged, **kw)


def test_study_and_archive_modules_do_not_import_torch() -> None:
    modules = ["backend.study.config", "backend.study.schedule", "backend.study.analysis", "backend.datasets.archive"]
    assert forbidden_imports(modules) == []
