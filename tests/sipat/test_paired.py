"""sipat.paired: paired statistics recover a known effect, reject at the nominal rate on null data, and the
frontier check places arms above, below or on a known PGD-AT frontier."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sipat.paired import (
    compare_margins,
    frontier_check,
    frontier_margin,
    frontier_plot,
    paired_difference,
    pareto_front,
)


def _seeds(rng: np.random.Generator, n: int = 8) -> np.ndarray:
    """Per-seed accuracies with a seed effect shared by both arms (what pairing removes)."""
    return rng.normal(0.80, 0.03, n)


def test_recovers_a_known_effect() -> None:
    rng = np.random.default_rng(1)
    base = _seeds(rng)
    a = base + 0.02 + rng.normal(0, 0.004, 8)  # +2 points, seed noise 3 points, pair noise 0.4
    r = paired_difference(a, base, n_resamples=4000)
    assert r.n == 8 and r.ci_low < 0.02 < r.ci_high and r.ci_low > 0
    assert r.significant() and r.wilcoxon_pvalue == pytest.approx(2 / 256)  # all 8 signs positive: exact
    assert abs(r.mean - 0.02) < 0.005
    assert "n=8" in r.summary()


def test_null_rejection_rate_is_nominal() -> None:
    """600 null experiments of 8 seeds: the tests reject at about 5 % (binomial sd 0.9 %), and the BCa interval
    excludes 0 more often than nominal (its documented undercoverage with few seeds)."""
    rng = np.random.default_rng(0)
    n_sim, t_rej, w_rej, ci_rej = 600, 0, 0, 0
    for k in range(n_sim):
        base = _seeds(rng)
        b = base + rng.normal(0, 0.01, 8)
        r = paired_difference(base, b, n_resamples=999, seed=k)
        t_rej += r.t_pvalue < 0.05
        w_rej += r.wilcoxon_pvalue < 0.05
        ci_rej += not (r.ci_low <= 0 <= r.ci_high)
    assert 0.025 < t_rej / n_sim < 0.08
    assert 0.02 < w_rej / n_sim < 0.08  # exact Wilcoxon with n = 8 is slightly conservative (0.039 attainable)
    assert 0.05 < ci_rej / n_sim < 0.2


def test_degenerate_and_bad_input() -> None:
    with pytest.warns(UserWarning, match="nothing to test"):
        r = paired_difference([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert r.mean == 0 and r.t_pvalue == 1.0 and not r.significant()
    with pytest.raises(ValueError, match="same number"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([0.1, math.nan], [0.1, 0.2])


FRONTIER_C = [0.95, 0.90, 0.80]  # PGD-AT at 0.5x, 0.75x, 1x eps: less clean ...
FRONTIER_R = [0.40, 0.55, 0.65]  # ... more robust


def test_frontier_margin_is_the_clean_gain_at_equal_robustness() -> None:
    assert frontier_margin(0.93, 0.55, FRONTIER_C, FRONTIER_R) == pytest.approx(0.03)
    assert frontier_margin(0.80, 0.60, FRONTIER_C, FRONTIER_R) == pytest.approx(-0.05)  # interpolated 0.85
    assert math.isnan(frontier_margin(0.99, 0.30, FRONTIER_C, FRONTIER_R))  # less robust than any radius
    least = FRONTIER_C[int(np.argmin(FRONTIER_R))]  # the least robust radius dominates a less clean arm below it
    assert frontier_margin(least - 0.04, 0.30, FRONTIER_C, FRONTIER_R) == pytest.approx(-0.04)
    assert frontier_margin(0.82, 0.70, FRONTIER_C, FRONTIER_R) == pytest.approx(0.02)  # dominates the 1x point
    assert math.isnan(frontier_margin(0.70, 0.70, FRONTIER_C, FRONTIER_R))
    c, r = pareto_front([0.9, 0.85, 0.8], [0.5, 0.45, 0.6])  # (0.85, 0.45) is dominated
    assert c.tolist() == [0.9, 0.8] and r.tolist() == [0.5, 0.6]


def _frontier_seeds(rng: np.random.Generator, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    shift = rng.normal(0, 0.02, (n, 1))  # a seed moves its whole frontier
    return np.array(FRONTIER_C) + shift, np.array(FRONTIER_R) + shift / 2


def test_frontier_check_verdicts() -> None:
    rng = np.random.default_rng(3)
    fc, fr = _frontier_seeds(rng)
    robust = fr[:, 1] + rng.normal(0, 0.005, 8)
    on_line = np.array([np.interp(robust[i], fr[i], fc[i]) for i in range(8)])
    above = frontier_check(on_line + 0.03 + rng.normal(0, 0.005, 8), robust, fc, fr)
    below = frontier_check(on_line - 0.03 + rng.normal(0, 0.005, 8), robust, fc, fr)
    on = frontier_check(on_line + rng.normal(0, 0.005, 8), robust, fc, fr)
    assert (above.verdict, below.verdict, on.verdict) == ("above", "below", "on")
    assert above.result is not None and abs(above.result.mean - 0.03) < 0.006
    outside = frontier_check(fc[:, 0] + 0.02, fr[:, 0] - 0.1, fc, fr)  # less robust, cleaner: not traced there
    assert outside.verdict == "outside" and outside.result is None
    dominated = frontier_check(fc[:, 0] - 0.03 + rng.normal(0, 0.005, 8), fr[:, 0] - 0.1, fc, fr)
    assert dominated.verdict == "below"  # less robust and less clean than the least robust radius
    with pytest.raises(ValueError, match="per seed"):
        frontier_check(on_line, robust, fc[:4], fr[:4])


def test_arm_beats_control_only_by_its_margin() -> None:
    rng = np.random.default_rng(4)
    fc, fr = _frontier_seeds(rng)
    robust = fr[:, 1]
    line = np.array([np.interp(robust[i], fr[i], fc[i]) for i in range(8)])
    arm = (line + 0.03 + rng.normal(0, 0.004, 8), robust)
    control = (line + 0.01 + rng.normal(0, 0.004, 8), robust)
    r = compare_margins(arm, control, fc, fr)
    assert r.significant() and abs(r.mean - 0.02) < 0.006
    same = compare_margins(arm, (arm[0] + rng.normal(0, 0.004, 8), robust), fc, fr)
    assert not same.significant() and abs(same.mean) < 0.004


def test_frontier_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    frontier = {
        f"pgd_at {k}x": ([c], [r]) for k, c, r in zip(("0.5", "0.75", "1"), FRONTIER_C, FRONTIER_R, strict=True)
    }
    trades = {"trades@beta=1": ([0.92], [0.5]), "trades": ([0.85], [0.6])}
    curves = {"PGD-AT frontier": frontier, "TRADES frontier": trades}
    out = frontier_plot(tmp_path / "f" / "frontier.png", curves, {"sip_at": ([0.93, 0.94], [0.55, 0.56])})
    assert out is not None and out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
