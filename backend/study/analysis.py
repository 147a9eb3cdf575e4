"""Detection statistics of a study: rates with Wilson intervals, d', a psychometric fit, catch exclusions.

Pure numpy/scipy on plain rows (dicts, tuples or attribute objects such as SQLAlchemy rows); no database.

Row fields: ``eps`` (float, 0 = clean), ``judgment`` ("perturbed" | "clean"), ``participant_id``, and
optionally ``masked`` (bool: the perturbation spared the salient region), ``confidence`` (number), ``rt_ms``
(number) and ``phase`` ("practice" | "main" | "catch" | ...). A tuple is read positionally in that order:
``(eps, judgment, participant_id, masked, confidence, rt_ms, phase)``; trailing fields may be left off.

Missing values come back as None (not NaN) so results serialise to JSON directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import optimize, special, stats

_FIELDS = ("eps", "judgment", "participant_id", "masked", "confidence", "rt_ms", "phase")
_JUDGMENTS = ("perturbed", "clean")
Z95 = 1.959963984540054


# ---------------------------------------------------------------------------------------------------------------
# Rates


#: A participant who misses more catch trials than this is excluded (and flagged at completion).
MAX_CATCH_ERRORS = 1


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (95 % for the default ``z``).

    Unlike the Wald interval it stays inside [0, 1] and keeps its coverage for small ``n`` and rates near
    0 or 1. ``n == 0`` gives ``(0.0, 1.0)``: with no trials every rate is possible (a finite value, so it
    serialises to JSON, rather than NaN).
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson_interval needs 0 <= k <= n; got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def dprime(hits: int, misses: int, false_alarms: int, correct_rejections: int) -> float:
    """Sensitivity d' = z(H) - z(F) with the log-linear correction (Hautus 1995).

    ``H = (hits + 0.5) / (hits + misses + 1)`` and ``F = (false_alarms + 0.5) / (false_alarms +
    correct_rejections + 1)``, so rates of 0 or 1 stay finite and the bias is small. Returns NaN when there
    are no signal trials or no noise trials (d' is undefined then).
    """
    counts = (hits, misses, false_alarms, correct_rejections)
    if any(c < 0 for c in counts):
        raise ValueError(f"dprime counts must be >= 0; got {counts}")
    if hits + misses == 0 or false_alarms + correct_rejections == 0:
        return float("nan")
    h = (hits + 0.5) / (hits + misses + 1)
    f = (false_alarms + 0.5) / (false_alarms + correct_rejections + 1)
    return float(stats.norm.ppf(h) - stats.norm.ppf(f))


# ---------------------------------------------------------------------------------------------------------------
# Rows


def _row_get(row: Any, name: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(name)
    mapping = getattr(row, "_mapping", None)  # SQLAlchemy Row
    if mapping is not None:
        return mapping.get(name)
    if isinstance(row, Sequence) and not isinstance(row, str):
        i = _FIELDS.index(name)
        return row[i] if i < len(row) else None
    return getattr(row, name, None)


def _judged_perturbed(row: Any) -> bool:
    j = _row_get(row, "judgment")
    if j not in _JUDGMENTS:
        raise ValueError(f"judgment must be 'perturbed' or 'clean'; got {j!r} in row {row!r}")
    return j == "perturbed"


def _eps(row: Any) -> float:
    e = _row_get(row, "eps")
    try:
        e = float(e)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a number; got {e!r} in row {row!r}") from None
    if not math.isfinite(e) or e < 0:
        raise ValueError(f"eps must be finite and >= 0; got {e!r} in row {row!r}")
    return e


def _numbers(rows: list[Any], name: str) -> np.ndarray:
    vals = [_row_get(r, name) for r in rows]
    return np.array([float(v) for v in vals if v is not None and math.isfinite(float(v))], dtype=float)


def _opt(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def eps_table(rows: Iterable[Any], *, exclude_participants: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Detection statistics per eps level (and per masked/unmasked perturbation where rows say which).

    Pass main-phase rows; rows whose ``phase`` is given and is not "main" are skipped, as are the rows of
    ``exclude_participants`` (e.g. from `catch_exclusions`). Clean rows (eps 0) form one level whatever their
    ``masked`` value.

    Returns one dict per level, sorted by eps then masked (None, False, True), with keys: ``eps``,
    ``masked`` (None for clean or when rows don't say), ``n``, ``n_participants``, ``n_perturbed_judgments``,
    ``detection_rate`` (share judged perturbed), ``ci_low``/``ci_high`` (Wilson 95 %), ``hit_rate`` (= the
    detection rate for eps > 0, None for clean), ``false_alarm_rate`` (share of all clean trials judged
    perturbed; None without clean trials), ``dprime`` (this level's hits vs the clean trials, log-linear
    corrected; None for clean or without clean trials), ``mean_rt_ms``, ``median_rt_ms``, ``mean_confidence``
    (None when no row has the value).
    """
    excluded = set(exclude_participants)
    groups: dict[tuple[float, bool | None], list[Any]] = {}
    for row in rows:
        phase = _row_get(row, "phase")
        if phase is not None and phase != "main":
            continue
        if _row_get(row, "participant_id") in excluded:
            continue
        e = _eps(row)
        masked = _row_get(row, "masked")
        key = (e, None if e == 0 or masked is None else bool(masked))
        groups.setdefault(key, []).append(row)

    clean = groups.get((0.0, None), [])
    n_fa = sum(_judged_perturbed(r) for r in clean)
    fa_rate = n_fa / len(clean) if clean else None

    def order(key: tuple[float, bool | None]) -> tuple[float, int]:
        return key[0], {None: 0, False: 1, True: 2}[key[1]]

    table = []
    for key in sorted(groups, key=order):
        e, masked = key
        group = groups[key]
        n = len(group)
        k = sum(_judged_perturbed(r) for r in group)
        lo, hi = wilson_interval(k, n)
        rts, conf = _numbers(group, "rt_ms"), _numbers(group, "confidence")
        d = None
        if e > 0 and clean:
            d = _opt(dprime(k, n - k, n_fa, len(clean) - n_fa))
        table.append(
            {
                "eps": e,
                "masked": masked,
                "n": n,
                "n_participants": len({_row_get(r, "participant_id") for r in group}),
                "n_perturbed_judgments": k,
                "detection_rate": k / n,
                "ci_low": lo,
                "ci_high": hi,
                "hit_rate": k / n if e > 0 else None,
                "false_alarm_rate": fa_rate,
                "dprime": d,
                "mean_rt_ms": float(rts.mean()) if rts.size else None,
                "median_rt_ms": float(np.median(rts)) if rts.size else None,
                "mean_confidence": float(conf.mean()) if conf.size else None,
            }
        )
    return table


def catch_exclusions(rows: Iterable[Any], *, max_catch_errors: int = MAX_CATCH_ERRORS) -> list[Any]:
    """Participants who answered "clean" (or nothing) to more than ``max_catch_errors`` catch trials.

    Catch stimuli carry a plainly visible perturbation (`backend.study.schedule.CATCH_EPS`), so the right
    answer is always "perturbed"; missing them signals inattention. Pass catch-trial rows; rows whose
    ``phase`` is given and is not "catch" are skipped. A missing judgment (None, e.g. a timeout) counts as an
    error. Returns the flagged participant ids, sorted.
    """
    if max_catch_errors < 0:
        raise ValueError(f"max_catch_errors must be >= 0; got {max_catch_errors}")
    errors: dict[Any, int] = {}
    for row in rows:
        phase = _row_get(row, "phase")
        if phase is not None and phase != "catch":
            continue
        pid = _row_get(row, "participant_id")
        j = _row_get(row, "judgment")
        if j is not None and j not in _JUDGMENTS:
            raise ValueError(f"judgment must be 'perturbed', 'clean' or None; got {j!r} in row {row!r}")
        errors[pid] = errors.get(pid, 0) + (j != "perturbed")
    flagged = [pid for pid, n in errors.items() if n > max_catch_errors]
    try:
        return sorted(flagged)
    except TypeError:  # mixed id types
        return sorted(flagged, key=repr)


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


def _eps_at(p: float, alpha: float, beta: float, guess: float, lapse: float) -> float:
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
            d[k] = _opt(d[k])
        d["ci"] = {k: [_opt(lo), _opt(hi)] for k, (lo, hi) in self.ci.items()}
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
            draws.append((a_b, b_b, g_b, l_b, _eps_at(0.5, a_b, b_b, g_b, l_b), _eps_at(0.75, a_b, b_b, g_b, l_b)))
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
        eps50=_eps_at(0.5, alpha, beta, g, lam),
        eps75=_eps_at(0.75, alpha, beta, g, lam),
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
