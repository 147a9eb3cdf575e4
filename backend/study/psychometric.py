"""The psychometric function of a detection study and its maximum-likelihood fit with bootstrap intervals.

Split from `analysis.py` (the rates) because the fit is its own piece of numerics: the model, the optimiser's
bounded multi-start problem and the parametric bootstrap. Pure numpy/scipy; no database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import optimize, special

from backend.study.rows import or_none

# ---------------------------------------------------------------------------------------------------------------
# Psychometric function
#
# P(judged perturbed | eps) = gamma + (1 - gamma - lapse) * F(eps),  F(eps) = 1 / (1 + (alpha / eps) ** beta)
#
# F is a logistic function of log eps (a log-logistic in eps): perturbation size acts multiplicatively, like
# contrast, and F(0) = 0, so clean trials sit exactly on the floor gamma (the false-alarm rate) instead of
# needing an arbitrary log of zero. alpha is the eps where F = 1/2 (midway between floor and ceiling), beta
# the slope in log eps.


def _f(eps: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    eps = np.asarray(eps, dtype=float)
    out = np.zeros_like(eps)
    pos = eps > 0
    out[pos] = special.expit(beta * (np.log(eps[pos]) - math.log(alpha)))
    return out


def psychometric(eps: Any, alpha: float, beta: float, guess: float, lapse: float) -> np.ndarray:
    """P(judged perturbed) at ``eps`` (array-like, >= 0) under the model above."""
    return guess + (1.0 - guess - lapse) * _f(np.asarray(eps, dtype=float), alpha, beta)


def eps_at(p: float, alpha: float, beta: float, guess: float, lapse: float) -> float:
    """The eps where P(judged perturbed) = p; NaN when p lies outside (guess, 1 - lapse)."""
    top = 1.0 - lapse
    if not guess < p < top:
        return float("nan")
    f = (p - guess) / (top - guess)
    return float(alpha * (f / (1.0 - f)) ** (1.0 / beta))


@dataclass(frozen=True)
class PsychometricFit:
    """Maximum-likelihood fit of the psychometric function and parametric-bootstrap 95 % intervals.

    ``eps50``/``eps75``: eps at which half / three quarters of the images are judged perturbed (NaN -> None
    in `to_dict` when the fitted curve never gets there, e.g. a false-alarm floor above 0.5). ``alpha``: the
    curve's midpoint between floor and ceiling. ``ci``: name -> (low, high) percentile interval over
    ``n_boot`` resamples for alpha, beta, guess, lapse, eps50, eps75. ``grid_eps``/``grid_p``: the fitted
    curve on a log-spaced grid spanning the tested positive eps, for plotting.
    """

    alpha: float
    beta: float
    guess: float
    lapse: float
    eps50: float
    eps75: float
    log_likelihood: float
    n_trials: int
    n_boot: int
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    grid_eps: list[float] = field(default_factory=list)
    grid_p: list[float] = field(default_factory=list)

    def predict(self, eps: Any) -> np.ndarray:
        return psychometric(eps, self.alpha, self.beta, self.guess, self.lapse)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None."""
        d = asdict(self)
        for k in ("alpha", "beta", "guess", "lapse", "eps50", "eps75", "log_likelihood"):
            d[k] = or_none(d[k])
        d["ci"] = {k: [or_none(lo), or_none(hi)] for k, (lo, hi) in self.ci.items()}
        return d


_GUESS_MAX = 0.75
_LAPSE_MAX = 0.2
_BETA_BOUNDS = (0.2, 30.0)
_P_CLIP = 1e-9


class _Problem:
    """Binomial counts per unique eps and which of (guess, lapse) are free parameters."""

    def __init__(self, levels: np.ndarray, k: np.ndarray, n: np.ndarray, guess: float | None, lapse: float | None):
        self.levels, self.k, self.n = levels, k, n
        self.guess, self.lapse = guess, lapse
        pos = levels[levels > 0]
        lo, hi = math.log(pos.min()), math.log(pos.max())
        span = max(hi - lo, math.log(2.0))
        self.log_alpha_bounds = (lo - span, hi + span)
        self.log_levels = np.log(np.where(levels > 0, levels, 1.0))

    def unpack(self, theta: np.ndarray) -> tuple[float, float, float, float]:
        i = 2
        g = self.guess
        if g is None:
            g = float(theta[i])
            i += 1
        lam = self.lapse
        if lam is None:
            lam = float(theta[i])
        return float(math.exp(theta[0])), float(math.exp(theta[1])), g, lam

    def bounds(self) -> list[tuple[float, float]]:
        b = [self.log_alpha_bounds, (math.log(_BETA_BOUNDS[0]), math.log(_BETA_BOUNDS[1]))]
        if self.guess is None:
            b.append((0.0, _GUESS_MAX))
        if self.lapse is None:
            b.append((0.0, _LAPSE_MAX))
        return b

    def nll(self, theta: np.ndarray, k: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative binomial log likelihood and its gradient in theta."""
        alpha, beta, g, lam = self.unpack(theta)
        pos = self.levels > 0
        d = self.log_levels - math.log(alpha)
        f = np.where(pos, special.expit(beta * d), 0.0)
        p = np.clip(g + (1.0 - g - lam) * f, _P_CLIP, 1 - _P_CLIP)
        value = float(-(k * np.log(p) + (self.n - k) * np.log1p(-p)).sum())
        dp = -(k / p - (self.n - k) / (1.0 - p))  # d nll / d p per level
        slope = np.where(pos, (1.0 - g - lam) * f * (1.0 - f), 0.0)  # d p / d (beta * d)
        grad = [float((dp * slope * -beta).sum()), float((dp * slope * beta * d).sum())]
        if self.guess is None:
            grad.append(float((dp * (1.0 - f)).sum()))
        if self.lapse is None:
            grad.append(float((dp * -f).sum()))
        return value, np.array(grad)

    def fit(self, k: np.ndarray, starts: list[np.ndarray]) -> tuple[np.ndarray, float]:
        best_x: np.ndarray | None = None
        best_f = math.inf
        bounds = self.bounds()
        for x0 in starts:
            x0 = np.clip(x0, [b[0] for b in bounds], [b[1] for b in bounds])
            res = optimize.minimize(self.nll, x0, args=(k,), jac=True, method="TNC", bounds=bounds)
            if res.fun < best_f:
                best_x, best_f = res.x, float(res.fun)
        if best_x is None:
            raise RuntimeError("no start of the fit reached a finite negative log-likelihood")
        return best_x, best_f

    def starts(self, k: np.ndarray) -> list[np.ndarray]:
        pos = self.levels[self.levels > 0]
        clean_n = self.n[self.levels == 0].sum()
        g0 = (k[self.levels == 0].sum() + 0.5) / (clean_n + 1) if clean_n else 0.05
        g0 = min(g0, _GUESS_MAX * 0.9)
        out = []
        for a in np.quantile(np.log(pos), [0.25, 0.5, 0.75]):
            for b in (math.log(1.0), math.log(4.0)):
                x = [a, b]
                if self.guess is None:
                    x.append(g0)
                if self.lapse is None:
                    x.append(0.02)
                out.append(np.array(x, dtype=float))
        return out


def fit_psychometric(
    eps: Sequence[float] | np.ndarray,
    judged_perturbed: Sequence[bool] | np.ndarray,
    *,
    guess: float | None = None,
    lapse: float | None = 0.01,
    n_boot: int = 200,
    seed: int = 0,
    n_grid: int = 101,
) -> PsychometricFit:
    """Fit P(judged perturbed) = guess + (1 - guess - lapse) / (1 + (alpha / eps) ** beta) by maximum likelihood.

    ``eps``: per-trial perturbation size (>= 0; 0 = clean); ``judged_perturbed``: per-trial bool. ``guess``
    None fits the false-alarm floor (clean trials pin it down), a number fixes it. ``lapse`` is the share of
    misses at large eps (fixed 0.01 by default; None fits it in [0, 0.2]). Needs at least two distinct
    positive eps levels. Confidence intervals: parametric bootstrap with ``n_boot`` binomial resamples from
    the fitted curve, drawn from ``numpy.random.default_rng(seed)``, each refitted; 2.5/97.5 percentiles.
    """
    x = np.asarray(eps, dtype=float).ravel()
    y = np.asarray(judged_perturbed).ravel()
    if x.size != y.size:
        raise ValueError(f"eps and judged_perturbed differ in length ({x.size} vs {y.size})")
    if x.size == 0:
        raise ValueError("no trials to fit")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("eps must be finite and >= 0")
    if y.dtype != bool:
        if not np.all(np.isin(y, [0, 1])):
            raise ValueError("judged_perturbed must be booleans (or 0/1)")
        y = y.astype(bool)
    for name, v, hi in (("guess", guess, _GUESS_MAX), ("lapse", lapse, _LAPSE_MAX)):
        if v is not None and not 0.0 <= v <= hi:
            raise ValueError(f"{name} must be in [0, {hi}] or None (fitted); got {v}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0; got {n_boot}")
    levels, inverse = np.unique(x, return_inverse=True)
    if (levels > 0).sum() < 2:
        raise ValueError(
            f"a psychometric fit needs at least two distinct positive eps levels; got {levels[levels > 0].tolist()}"
        )
    n = np.bincount(inverse, minlength=levels.size).astype(float)
    k = np.bincount(inverse, weights=y.astype(float), minlength=levels.size)

    prob = _Problem(levels, k, n, guess, lapse)
    theta, nll = prob.fit(k, prob.starts(k))
    alpha, beta, g, lam = prob.unpack(theta)

    ci: dict[str, tuple[float, float]] = {}
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        p_hat = psychometric(levels, alpha, beta, g, lam)
        draws = []
        for _ in range(n_boot):
            k_b = rng.binomial(n.astype(np.int64), p_hat).astype(float)
            th_b, _ = prob.fit(k_b, [theta])  # the MLE is a good start for a resample of itself
            a_b, b_b, g_b, l_b = prob.unpack(th_b)
            draws.append((a_b, b_b, g_b, l_b, eps_at(0.5, a_b, b_b, g_b, l_b), eps_at(0.75, a_b, b_b, g_b, l_b)))
        arr = np.array(draws)
        for j, name in enumerate(("alpha", "beta", "guess", "lapse", "eps50", "eps75")):
            col = arr[:, j]
            # A resample whose curve never reaches the level has no threshold: count it as +inf (beyond any
            # tested eps), so the upper bound honestly becomes inf when that happens often.
            col = np.where(np.isnan(col), np.inf, col)
            # no inf - inf interpolation
            method: Literal["nearest", "linear"] = "nearest" if np.isinf(col).any() else "linear"
            lo, hi = np.quantile(col, [0.025, 0.975], method=method)
            ci[name] = (float(lo), float(hi))

    pos = levels[levels > 0]
    grid = np.geomspace(pos.min() / 2, pos.max() * 2, n_grid)
    return PsychometricFit(
        alpha=alpha,
        beta=beta,
        guess=g,
        lapse=lam,
        eps50=eps_at(0.5, alpha, beta, g, lam),
        eps75=eps_at(0.75, alpha, beta, g, lam),
        log_likelihood=-nll,
        n_trials=int(x.size),
        n_boot=n_boot,
        ci=ci,
        grid_eps=grid.tolist(),
        grid_p=psychometric(grid, alpha, beta, g, lam).tolist(),
    )


def fit_counts(
    levels: np.ndarray,
    k: np.ndarray,
    n: np.ndarray,
    *,
    guess: float | None = None,
    lapse: float | None = 0.01,
    start: np.ndarray | None = None,
) -> tuple[tuple[float, float, float, float], list[str], np.ndarray]:
    """The ML fit of `fit_psychometric` on binomial counts, without intervals, for callers that refit many
    resamples (the participant bootstrap): ``k[i]`` of ``n[i]`` trials at ``levels[i]`` judged perturbed.

    ``start``: the internal parameter vector of a previous fit (third return value) to start from alone, which
    is much faster than the default multi-start. Returns ``(alpha, beta, guess, lapse)``, the names of the
    parameters that ended at a bound of their range (a fit there says the data do not pin it down), and the
    internal vector.
    """
    levels, k, n = (np.asarray(a, dtype=float) for a in (levels, k, n))
    keep = n > 0
    levels, k, n = levels[keep], k[keep], n[keep]
    if (levels > 0).sum() < 2:
        raise ValueError("a psychometric fit needs trials at two or more positive eps levels")
    prob = _Problem(levels, k, n, guess, lapse)
    theta, _ = prob.fit(k, [start] if start is not None else prob.starts(k))
    names = ["alpha", "beta"] + (["guess"] if guess is None else []) + (["lapse"] if lapse is None else [])
    at_bound = []
    for name, value, (lo, hi) in zip(names, theta, prob.bounds(), strict=True):
        if name in ("guess", "lapse") and value - lo < 1e-9:
            continue  # no false alarms / no lapses at all: a fine value, not a failed fit
        if min(value - lo, hi - value) < 1e-6 * max(1.0, abs(value)):
            at_bound.append(name)
    return prob.unpack(theta), at_bound, theta
