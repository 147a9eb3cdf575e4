"""A logistic model of detection in eps and condition with participants as clusters (GEE, exchangeable).

    logit P(judged perturbed) = b0 + b1 * x + b2 * masked + b3 * masked * x,   x = log(eps / eps_ref)

fitted to the perturbed main-phase trials (eps > 0) by generalised estimating equations with an exchangeable
working correlation within each participant (`statsmodels.genmod.GEE`).

Why GEE and not `BinomialBayesMixedGLM`: the question ("does sparing the salient region change when people
notice?") is about the population, which is what GEE's population-averaged coefficients describe; its
sandwich standard errors stay valid whatever the true correlation of one person's trials (the exchangeable
structure only buys efficiency), and it gives the Wald tests and intervals a reviewer expects. statsmodels'
Bayesian mixed GLM is fitted by a variational approximation whose posterior spreads are known to be too
narrow and gives no test. The sandwich estimator itself is too optimistic with few clusters, so the
Mancl-DeRouen bias-reduced covariance (``cov_type="bias_reduced"``) is used and fewer than
`MIN_CLUSTERS` participants raise a warning.

``eps_ref`` (the geometric mean of the tested positive eps) centres x so the intercept is the log-odds at a
tested eps, not at an extrapolated eps of 1. The model's 50 % point of condition m is
``eps_ref * exp(-(b0 + b2 m) / (b1 + b3 m))``; the masked / unmasked ratio of these points gets a delta-method
interval on the log scale. The model has no false-alarm floor: it is a test of the condition, the thresholds
of record are the psychometric fits (`backend.study.participants`).
"""

from __future__ import annotations

import math
import warnings as pywarnings
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.genmod import families
from statsmodels.genmod.cov_struct import Exchangeable
from statsmodels.genmod.generalized_estimating_equations import GEE
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationError

from backend.study.analysis import Z95
from backend.study.rows import judged_perturbed, or_none, row_eps, row_get

#: Fewer participants than this: sandwich standard errors are unreliable even bias-reduced.
MIN_CLUSTERS = 20

#: A logit coefficient beyond this (per unit of log eps: 12 % -> 88 % within 10 % of eps) signals separation.
MAX_ABS_COEF = 20.0

TERMS = ("intercept", "log_eps", "masked", "masked:log_eps")


def condition_model(rows: Iterable[Any]) -> dict[str, Any]:
    """Fit the model above to main-phase rows (see `backend.study.rows` for the row fields).

    Returns a JSON-ready dict: ``method``, ``n_trials``, ``n_participants``, ``eps_ref``, ``working_correlation``
    (the estimated exchangeable correlation of one person's trials), ``coefficients`` (term, estimate, se,
    z, p, ci), ``masked_odds_ratio`` (at eps_ref, with ci and p; None without both conditions), ``eps50``
    (condition -> model 50 % point with ci), ``eps50_ratio`` (masked / unmasked with ci and p of ratio = 1),
    ``warnings``; or ``{"reason": ...}`` when the data cannot be modelled.
    """
    eps, y, group, masked = [], [], [], []
    for row in rows:
        phase = row_get(row, "phase")
        if phase is not None and phase != "main":
            continue
        e = row_eps(row)
        if e == 0:
            continue
        eps.append(e)
        y.append(float(judged_perturbed(row)))
        group.append(repr(row_get(row, "participant_id")))
        m = row_get(row, "masked")
        masked.append(None if m is None else float(bool(m)))
    levels = sorted(set(eps))
    if len(levels) < 2:
        return {"reason": f"the model needs perturbed trials at two or more eps levels; there are {len(levels)}"}
    _, groups = np.unique(np.array(group), return_inverse=True)
    n_clusters = int(groups.max()) + 1
    if n_clusters < 2:
        return {"reason": "the model needs two or more participants (they are its clusters)"}
    two = {m for m in masked if m is not None} == {0.0, 1.0} and None not in masked
    yv = np.array(y)
    cells: dict[tuple[float, float | None], list[float]] = {}
    for e, m, answer in zip(eps, masked, y, strict=True):
        cells.setdefault((e, m if two else None), []).append(answer)
    if all(min(v) == max(v) for v in cells.values()):
        return {
            "reason": "every eps level (and condition) has all answers alike (all 'perturbed' or all 'clean'): "
            "the answers split perfectly and a logistic model has no finite fit"
        }
    eps_ref = float(np.exp(np.mean(np.log(levels))))
    x = np.log(np.array(eps) / eps_ref)
    cols = [np.ones_like(x), x]
    if two:
        mv = np.array(masked, dtype=float)
        cols += [mv, mv * x]
    exog = np.column_stack(cols)
    order = np.argsort(groups, kind="stable")  # GEE wants each cluster's rows together
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always", ConvergenceWarning)
        try:
            model = GEE(yv[order], exog[order], groups[order], family=families.Binomial(), cov_struct=Exchangeable())
            res = model.fit(cov_type="bias_reduced", maxiter=100)
            params = np.asarray(res.params)
            cov = np.asarray(res.cov_params())
        except (np.linalg.LinAlgError, ValueError, OverflowError, PerfectSeparationError) as exc:
            return {"reason": f"the model could not be fitted to these answers ({type(exc).__name__}: {exc})"}
    warnings = []
    if any(issubclass(w.category, ConvergenceWarning) for w in caught) or not np.all(np.isfinite(params)):
        warnings.append(
            {"code": "not_converged", "message": "the GEE fit did not converge; its numbers are unreliable"}
        )
    if n_clusters < MIN_CLUSTERS:
        warnings.append(
            {
                "code": "few_clusters",
                "message": f"{n_clusters} participants (< {MIN_CLUSTERS}): the model's standard errors (bias-"
                "reduced sandwich) are approximate; prefer the participant bootstrap intervals",
            }
        )
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    if min(yv.mean(), 1 - yv.mean()) < 0.02 or np.any(np.abs(params) > MAX_ABS_COEF):
        warnings.append(
            {
                "code": "separation",
                "message": "the answers (nearly) split perfectly by eps or condition, so the coefficients run off "
                "towards infinity and their intervals mean little",
            }
        )
    out: dict[str, Any] = {
        "method": "GEE logistic, exchangeable working correlation within participant, bias-reduced sandwich SE",
        "n_trials": int(yv.size),
        "n_participants": n_clusters,
        "eps_ref": eps_ref,
        "working_correlation": or_none(float(model.cov_struct.dep_params)),
        "coefficients": [_wald(TERMS[i], params[i], se[i]) for i in range(params.size)],
        "masked_odds_ratio": None,
        "eps50": {},
        "eps50_ratio": None,
        "warnings": warnings,
    }
    conditions = {"unmasked": 0.0, "masked": 1.0} if two else {"all": 0.0}
    for name, m in conditions.items():
        g, grad = _log_eps50(params, m)
        s = math.sqrt(max(float(grad @ cov @ grad), 0.0)) if math.isfinite(g) else math.nan
        out["eps50"][name] = {
            "estimate": _exp(g, eps_ref),
            "ci": [_exp(g - Z95 * s, eps_ref), _exp(g + Z95 * s, eps_ref)],
        }
    if two:
        w = _wald("masked", params[2], se[2])
        out["masked_odds_ratio"] = {
            "estimate": _exp(float(params[2])),
            "ci": [_exp(w["ci"][0]), _exp(w["ci"][1])],
            "p": w["p"],
        }
        g1, d1 = _log_eps50(params, 1.0)
        g0, d0 = _log_eps50(params, 0.0)
        grad = d1 - d0
        s = math.sqrt(max(float(grad @ cov @ grad), 0.0))
        r = _wald("log ratio", g1 - g0, s)
        out["eps50_ratio"] = {
            "estimate": _exp(g1 - g0),
            "ci": [_exp(r["ci"][0]), _exp(r["ci"][1])],
            "p": r["p"],
        }
    return out


def _log_eps50(params: np.ndarray, m: float) -> tuple[float, np.ndarray]:
    """log(eps50 / eps_ref) = -(b0 + b2 m) / (b1 + b3 m) and its gradient in the parameters (NaN for a flat
    or falling curve, which has no 50 % point worth the name)."""
    b = np.zeros(4)
    b[: params.size] = params
    slope = b[1] + b[3] * m
    if slope <= 0:
        return math.nan, np.zeros(params.size)
    level = b[0] + b[2] * m
    g = -level / slope
    grad = np.array([-1.0 / slope, level / slope**2, -m / slope, m * level / slope**2])
    return g, grad[: params.size]


def _exp(v: float | None, scale: float = 1.0) -> float | None:
    """``scale * exp(v)``; None for a missing, NaN or overflowing value (JSON has no inf)."""
    if v is None or not math.isfinite(v) or v > 700:
        return None
    return or_none(scale * math.exp(v))


def _wald(term: str, est: float, se: float) -> dict[str, Any]:
    z = est / se if se > 0 else math.nan
    return {
        "term": term,
        "estimate": or_none(float(est)),
        "se": or_none(float(se)),
        "z": or_none(z),
        "p": or_none(float(2 * stats.norm.sf(abs(z)))) if math.isfinite(z) else None,
        "ci": [or_none(float(est - Z95 * se)), or_none(float(est + Z95 * se))],
    }
