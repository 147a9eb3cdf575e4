"""Two stimulus sets side by side on a simulated population whose thresholds differ between people and between sets:
per-set thresholds recover the population's, and the paired difference is found with an interval that is narrower
than an unpaired one would be (the people who notice early in one set notice early in the other too)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.study.sets import SetInfo, set_comparison

LEVELS = [0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255]
SETS = [SetInfo(11, "unmasked", False), SetInfo(12, "masked", True)]
#: Population 50 % thresholds of the two sets (the masked set is harder to notice: twice the eps).
TRUE_EPS50 = {11: 4 / 255, 12: 8 / 255}


def _simulate(n_people: int, per_level: int, seed: int, spread: float = 0.5) -> list[dict]:
    """Logistic-in-log-eps observers; a person's threshold is the set's times their own factor (shared across
    sets), false alarms 10 %."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_people):
        factor = float(np.exp(rng.normal(0.0, spread)))
        for set_id, eps50 in TRUE_EPS50.items():
            for e in LEVELS:
                prob = 0.1 if e == 0 else 0.1 + 0.89 / (1 + (eps50 * factor / e) ** 3)
                for hit in rng.random(per_level) < prob:
                    judgment = "perturbed" if hit else "clean"
                    row = {"participant_id": p, "stimulus_set_id": set_id, "eps": e, "judgment": judgment}
                    rows.append({**row, "phase": "main"})
    return rows


def test_per_set_thresholds_and_paired_difference() -> None:
    out = set_comparison(_simulate(24, 8, seed=3), SETS, n_boot=200, seed=0)
    assert out["n_participants"] == 24
    by_id = {s["stimulus_set_id"]: s for s in out["sets"]}
    assert [s["stimulus_set_id"] for s in out["sets"]] == [11, 12]
    for set_id, block in by_id.items():
        assert [lv["eps"] for lv in block["levels"]] == LEVELS
        assert all(lv["n"] == 24 * 8 and lv["n_participants"] == 24 for lv in block["levels"])
        lo, hi = block["eps50_ci"]
        assert lo is not None and hi is not None and lo < block["eps50"] < hi
        assert 0.5 * TRUE_EPS50[set_id] < block["eps50"] < 1.6 * TRUE_EPS50[set_id]
        rates = [lv["detection_rate"] for lv in block["levels"]]
        assert rates[0] < 0.25 and rates[-1] > rates[1]
        assert block["levels"][0]["dprime"] is None and block["levels"][-1]["dprime"] > 1
    (diff,) = out["differences"]
    assert (diff["stimulus_set_id"], diff["minus_stimulus_set_id"]) == (12, 11)
    assert diff["eps50"] == pytest.approx(by_id[12]["eps50"] - by_id[11]["eps50"])
    lo, hi = diff["eps50_ci"]
    assert 0 < lo < TRUE_EPS50[12] - TRUE_EPS50[11] < hi  # the difference is found and its interval covers it
    # Paired: people's shared spread cancels, so the interval is narrower than the unpaired combination.
    width = hi - lo
    unpaired = np.hypot(*(by_id[i]["eps50_ci"][1] - by_id[i]["eps50_ci"][0] for i in (11, 12)))
    assert width < 0.85 * unpaired, (width, unpaired)


def test_no_difference_when_sets_are_the_same() -> None:
    """Both sets drawn from one population: the interval of the difference covers 0."""
    TRUE_EPS50[12], saved = TRUE_EPS50[11], TRUE_EPS50[12]
    try:
        rows = _simulate(20, 8, seed=5)
    finally:
        TRUE_EPS50[12] = saved
    lo, hi = set_comparison(rows, SETS, n_boot=200, seed=1)["differences"][0]["eps50_ci"]
    assert lo < 0 < hi


def test_rows_of_other_sets_and_phases_are_left_out_and_too_few_levels_say_why() -> None:
    rows = [
        {"participant_id": 1, "stimulus_set_id": 11, "eps": 0.0, "judgment": "clean", "phase": "main"},
        {"participant_id": 1, "stimulus_set_id": 11, "eps": 8 / 255, "judgment": "perturbed", "phase": "main"},
        {"participant_id": 1, "stimulus_set_id": 99, "eps": 8 / 255, "judgment": "perturbed", "phase": "main"},
        {"participant_id": 2, "stimulus_set_id": 12, "eps": 8 / 255, "judgment": "perturbed", "phase": "catch"},
    ]
    out = set_comparison(rows, SETS, n_boot=10)
    first, second = out["sets"]
    assert first["n_trials"] == 2 and first["reason"] and first["eps50"] is None
    assert second["n_trials"] == 0 and second["levels"] == []
    assert out["differences"][0]["eps50"] is None
    with pytest.raises(ValueError, match="n_boot"):
        set_comparison(rows, SETS, n_boot=-1)
