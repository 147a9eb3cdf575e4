"""Paired statistics across seeds, and the PGD-AT clean-vs-robust frontier an arm must beat.

Why paired: every arm of one seed starts from the same initial weights and sees the same data
(`sipat.experiment`), so seed-to-seed variation is shared; the per-seed *differences* carry the effect with
far less noise than two independent means. Every claim is reported as

- the mean paired difference with a bootstrap interval (`scipy.stats.bootstrap`, BCa, over seeds), and
- a paired test: Student's t on the differences (`scipy.stats.ttest_rel`) and the Wilcoxon signed-rank test
  (`scipy.stats.wilcoxon`, exact for few seeds; with 8 seeds its smallest two-sided p is 2/256 = 0.0078).

With 8 seeds the BCa interval is narrower than nominal (its coverage is about 0.88 at a nominal 0.95, see
tests/sipat/test_paired.py), so decisions rest on the tests; the interval says how large the effect is.

Why a frontier: sparing part of the image perturbs less, and perturbing less (a smaller PGD-AT radius) also buys
clean accuracy. PGD-AT at several radii traces what "perturbing less" buys; an arm shows more than that only
if it lies *above* the frontier: more clean accuracy at the same robust accuracy. `frontier_margin` is that
horizontal distance (arm clean minus frontier clean at the arm's robust accuracy, by linear interpolation
between the frontier's Pareto points); `frontier_check` takes it per seed (each seed's own frontier) and tests
it against 0, and `compare_margins` tests an arm against a control (displaced or random maps, clean_mix).
Linear interpolation is lenient to the arm where the true frontier is concave between two radii: trace it
with radii close enough (e.g. 0.5, 0.75, 1x the training eps) that this does not decide the verdict.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import stats

Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class PairedResult:
    """Paired comparison of a and b over the same seeds: differences d = a - b (per seed, seed order)."""

    differences: tuple[float, ...]
    mean: float
    ci_low: float
    ci_high: float
    confidence: float
    t_pvalue: float
    wilcoxon_pvalue: float
    alternative: str

    @property
    def n(self) -> int:
        return len(self.differences)

    def significant(self, alpha: float = 0.05) -> bool:
        """Both paired tests reject "no difference" at level alpha (the conservative reading of two tests)."""
        return self.t_pvalue < alpha and self.wilcoxon_pvalue < alpha

    def summary(self, unit: float = 100.0) -> str:
        """``+2.10 [+0.80, +3.30] (t p=0.004, W p=0.008, n=8)``, values times `unit` (percentage points)."""
        return (
            f"{self.mean * unit:+.2f} [{self.ci_low * unit:+.2f}, {self.ci_high * unit:+.2f}] "
            f"(t p={self.t_pvalue:.3g}, W p={self.wilcoxon_pvalue:.3g}, n={self.n})"
        )


def _as_vector(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be one value per seed (1-D); got shape {v.shape}")
    return v


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    alternative: Alternative = "two-sided",
    n_resamples: int = 9999,
    seed: int = 0,
) -> PairedResult:
    """Compare per-seed values a[i] and b[i] (same seed i, e.g. clean accuracy of SIP-AT and of PGD-AT).

    Args:
        a, b: (n,) values, n >= 2 seeds, same seed order; no NaN.
        confidence: level of the bootstrap interval of the mean difference.
        alternative: of the tests: ``two-sided``, ``greater`` (a > b) or ``less``.
        n_resamples: bootstrap resamples; seed: its generator (the interval is reproducible).

    Returns:
        `PairedResult`. When all differences are equal the interval is that value and the p-values are 1 if it
        is 0, else NaN (no variance to test against), with a warning.
    """
    va, vb = _as_vector(a, "a"), _as_vector(b, "b")
    if va.shape != vb.shape or va.size < 2:
        raise ValueError(f"a and b need the same number (>= 2) of seeds; got {va.size} and {vb.size}")
    if np.isnan(va).any() or np.isnan(vb).any():
        raise ValueError("a and b must not contain NaN (drop the seed from both, or rerun it)")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = va - vb
    mean = float(d.mean())
    if np.all(d == d[0]):
        warnings.warn(f"all {d.size} paired differences equal {d[0]}: nothing to test", stacklevel=2)
        p = 1.0 if d[0] == 0 else math.nan
        return PairedResult(tuple(d.tolist()), mean, mean, mean, confidence, p, p, alternative)
    boot = stats.bootstrap(
        (d,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="BCa",
        random_state=np.random.default_rng(seed),
    )
    t_p = float(stats.ttest_rel(va, vb, alternative=alternative).pvalue)
    w_p = float(stats.wilcoxon(d, alternative=alternative, zero_method="wilcox").pvalue)
    ci = boot.confidence_interval
    return PairedResult(tuple(d.tolist()), mean, float(ci.low), float(ci.high), confidence, t_p, w_p, alternative)


# ----------------------------------------------------------------------------------------------------------
# the PGD-AT frontier


def pareto_front(clean: Sequence[float], robust: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The non-dominated (clean, robust) points, sorted by robust accuracy ascending (clean then descends)."""
    c, r = _as_vector(clean, "clean"), _as_vector(robust, "robust")
    if c.shape != r.shape or c.size < 1:
        raise ValueError("the frontier needs one clean and one robust accuracy per radius (at least one radius)")
    keep = [i for i in range(c.size) if not np.any((c >= c[i]) & (r >= r[i]) & ((c > c[i]) | (r > r[i])))]
    order = sorted(keep, key=lambda i: (r[i], -c[i]))
    return c[order], r[order]


def frontier_margin(
    arm_clean: float, arm_robust: float, frontier_clean: Sequence[float], frontier_robust: Sequence[float]
) -> float:
    """Clean accuracy of the arm minus the frontier's clean accuracy at the arm's robust accuracy.

    > 0: above the frontier (more clean accuracy at equal robustness than any PGD-AT radius interpolates to);
    < 0: below. Beyond the most robust radius, an arm that is also cleaner than it dominates it (margin: the
    clean difference to it, a lower bound); below the least robust radius, an arm that is also less clean than
    it is dominated by it (margin: the clean difference, negative, an upper bound: never a false "above").
    Otherwise the frontier is not traced there: NaN (add radii).
    """
    c, r = pareto_front(frontier_clean, frontier_robust)
    if arm_robust > r[-1]:
        gap = float(arm_clean - c[-1])
        return gap if gap >= 0 else math.nan
    if arm_robust < r[0]:
        gap = float(arm_clean - c[0])
        return gap if gap <= 0 else math.nan
    if c.size == 1 and arm_robust != r[0]:
        return math.nan
    return float(arm_clean - np.interp(arm_robust, r, c))


@dataclass(frozen=True)
class FrontierCheck:
    """Per-seed frontier margins of one arm and their paired test against 0, with the verdict."""

    margins: tuple[float, ...]
    result: PairedResult | None
    verdict: Literal["above", "below", "on", "outside"]


def _margins(
    arm_clean: Sequence[float], arm_robust: Sequence[float], frontier_clean: np.ndarray, frontier_robust: np.ndarray
) -> np.ndarray:
    ac, ar = _as_vector(arm_clean, "arm_clean"), _as_vector(arm_robust, "arm_robust")
    fc, fr = np.asarray(frontier_clean, dtype=np.float64), np.asarray(frontier_robust, dtype=np.float64)
    if fc.ndim != 2 or fc.shape != fr.shape or fc.shape[0] != ac.size or ar.shape != ac.shape:
        raise ValueError(
            "per seed: arm_clean, arm_robust (n,) and frontier_clean, frontier_robust (n, radii); got "
            f"{ac.shape}, {ar.shape}, {fc.shape}, {fr.shape}"
        )
    return np.array([frontier_margin(ac[i], ar[i], fc[i], fr[i]) for i in range(ac.size)])


def frontier_check(
    arm_clean: Sequence[float],
    arm_robust: Sequence[float],
    frontier_clean: Sequence[Sequence[float]] | np.ndarray,
    frontier_robust: Sequence[Sequence[float]] | np.ndarray,
    *,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> FrontierCheck:
    """Does the arm lie above the PGD-AT frontier, seed by seed?

    Args:
        arm_clean, arm_robust: (n,) the arm's clean and robust accuracy per seed (robust at the evaluation eps).
        frontier_clean, frontier_robust: (n, radii) PGD-AT's, per seed and training radius, same evaluation.
        alpha: level of the paired tests; confidence: of the bootstrap interval.

    Returns:
        `FrontierCheck`: verdict ``above`` (both tests reject 0 and the mean margin is positive), ``below``
        (likewise, negative), ``on`` (not distinguishable from the frontier) or ``outside`` (some seed's arm
        lies where the frontier is not traced: add radii).
    """
    m = _margins(arm_clean, arm_robust, np.asarray(frontier_clean), np.asarray(frontier_robust))
    if np.isnan(m).any():
        return FrontierCheck(tuple(m.tolist()), None, "outside")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # equal margins: reported as "on" or by the sign below
        res = paired_difference(m, np.zeros_like(m), confidence=confidence)
    verdict: Literal["above", "below", "on"] = "on"
    if res.significant(alpha):
        verdict = "above" if res.mean > 0 else "below"
    return FrontierCheck(tuple(m.tolist()), res, verdict)


def compare_margins(
    arm: tuple[Sequence[float], Sequence[float]],
    control: tuple[Sequence[float], Sequence[float]],
    frontier_clean: Sequence[Sequence[float]] | np.ndarray,
    frontier_robust: Sequence[Sequence[float]] | np.ndarray,
    *,
    confidence: float = 0.95,
) -> PairedResult:
    """Paired difference of frontier margins, arm minus control (each a (clean, robust) pair of (n,) per-seed
    values): does the arm gain more over "perturbing less" than its control (displaced or random maps at equal
    coverage, clean_mix)? Seeds where either margin is NaN (outside the frontier) are an error: add radii."""
    fc, fr = np.asarray(frontier_clean), np.asarray(frontier_robust)
    ma, mc = _margins(*arm, fc, fr), _margins(*control, fc, fr)
    if np.isnan(ma).any() or np.isnan(mc).any():
        raise ValueError(
            "an arm lies outside the traced frontier for some seed; add frontier points (PGD-AT radii, TRADES "
            "betas) around it"
        )
    return paired_difference(ma, mc, confidence=confidence)


def frontier_plot(
    path: str | Path,
    frontiers: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    arms: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
) -> Path | None:
    """Clean (y) vs robust (x) accuracy: each frontier (``frontiers``: its name -> label -> per-seed clean,
    robust; e.g. the PGD-AT radii, the TRADES betas) as mean points joined into its Pareto line, each arm as a
    mean point with per-seed dots. Written to ``path`` (format from its suffix). Returns None, with a warning,
    when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend
    except ImportError:
        warnings.warn("matplotlib is not installed: no frontier plot (pip install matplotlib)", stacklevel=2)
        return None
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    for (name, frontier), style in zip(frontiers.items(), ("-", "--", ":", "-."), strict=False):
        means = {k: (float(np.mean(c)), float(np.mean(r))) for k, (c, r) in frontier.items()}
        fc, fr = pareto_front([v[0] for v in means.values()], [v[1] for v in means.values()])
        ax.plot(fr, fc, style, color="0.4", label=name)
        for label, (c, r) in frontier.items():
            ax.scatter(r, c, s=8, color="0.6")
            ax.annotate(
                label, (means[label][1], means[label][0]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    for label, (c, r) in arms.items():
        dots = ax.scatter(r, c, s=8, alpha=0.5)
        ax.scatter([np.mean(r)], [np.mean(c)], s=40, color=dots.get_facecolor()[0], label=label, edgecolor="k")
    ax.set_xlabel("robust accuracy")
    ax.set_ylabel("clean accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    return out
