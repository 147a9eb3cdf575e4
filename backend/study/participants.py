"""Detection statistics at the level of participants: a two-stage bootstrap, per-participant d' and thresholds.

Repeated trials of one person are correlated: when people differ (they do: thresholds vary several-fold), an
interval computed as if every trial were independent (the pooled Wilson interval of `analysis.eps_table`) is
too narrow. Here the unit of resampling is the participant: each bootstrap resample draws participants with
replacement and then, within each drawn participant, their trials at each level with replacement (a binomial
draw from their own rate, which is the same thing on counts). Every statistic (detection rate per level, d',
the 50 % / 75 % thresholds of the psychometric fit, the masked-minus-unmasked threshold difference) is
recomputed on the pooled counts of each resample, and its 2.5 / 97.5 percentiles are the 95 % interval.

Resampling trials as well as participants adds the within-participant binomial noise a second time, so these
intervals lean conservative (Ren et al. 2010, "Nonparametric bootstrapping for hierarchical data");
``within=False`` resamples participants only. `tests/backend/study/test_study_participants.py` measures the
coverage of both against a simulated population.

Everything works on count matrices (participants x levels), so a resample is a few array operations; only the
threshold refit loops over resamples. Missing values come back as None so results serialise to JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from backend.study.analysis import dprime
from backend.study.psychometric import eps_at, fit_counts
from backend.study.rows import judged_perturbed, or_none, row_eps, row_get

#: Fewer participants than this: a participant-level interval rests on too few people to be trusted.
MIN_PARTICIPANTS = 10
#: Fewer trials than this per participant at a level: their rate there is mostly binomial noise.
MIN_TRIALS_PER_CELL = 5
#: Fewer trials than this per participant at one condition: no individual psychometric fit.
MIN_TRIALS_INDIVIDUAL_FIT = 20

Key = tuple[float, bool | None]  # (eps, masked): masked None for clean trials or when rows do not say


@dataclass(frozen=True)
class Counts:
    """Judged-perturbed counts ``k`` of ``n`` trials, shape (participants, columns); a column is one ``keys``
    entry (eps, masked), clean trials (eps 0) forming one column whatever their ``masked``."""

    participants: list[Any]
    keys: list[Key]
    k: np.ndarray
    n: np.ndarray

    def columns(self, condition: bool | None) -> list[int]:
        """The clean column and the perturbed columns of one condition (masked True/False, None = all)."""
        return [j for j, (e, m) in enumerate(self.keys) if e == 0 or condition is None or m == condition]


def count_matrix(rows: Iterable[Any]) -> Counts:
    """Main-phase rows (see `analysis`) -> `Counts`; rows of another phase are skipped."""
    cells: dict[tuple[Any, Key], list[int]] = {}
    for row in rows:
        phase = row_get(row, "phase")
        if phase is not None and phase != "main":
            continue
        e = row_eps(row)
        masked = row_get(row, "masked")
        key = (e, None if e == 0 or masked is None else bool(masked))
        cell = cells.setdefault((row_get(row, "participant_id"), key), [0, 0])
        cell[0] += judged_perturbed(row)
        cell[1] += 1
    try:
        participants = sorted({p for p, _ in cells})
    except TypeError:
        participants = sorted({p for p, _ in cells}, key=repr)
    keys = sorted({key for _, key in cells}, key=lambda c: (c[0], {None: 0, False: 1, True: 2}[c[1]]))
    pi = {p: i for i, p in enumerate(participants)}
    kj = {c: j for j, c in enumerate(keys)}
    k = np.zeros((len(participants), len(keys)))
    n = np.zeros_like(k)
    for (p, key), (kk, nn) in cells.items():
        k[pi[p], kj[key]], n[pi[p], kj[key]] = kk, nn
    return Counts(participants, keys, k, n)


def resample(
    k: np.ndarray, n: np.ndarray, n_boot: int, rng: np.random.Generator, *, within: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled counts of ``n_boot`` two-stage resamples: shape (..., P, L) -> (..., n_boot, L).

    Leading axes (e.g. simulated studies) are kept and resampled independently. Stage one draws P participants
    with replacement; stage two (``within``) redraws each drawn participant's trials at each level with
    replacement, i.e. ``Binomial(n, k / n)``.
    """
    p = k.shape[-2]
    lead = k.shape[:-2]
    idx = rng.integers(0, p, size=(*lead, n_boot, p))
    take = idx[..., None].repeat(k.shape[-1], axis=-1)  # (..., B, P, L)
    kb = np.take_along_axis(k[..., None, :, :], take, axis=-2)
    nb = np.take_along_axis(n[..., None, :, :], take, axis=-2)
    if within:
        kb = rng.binomial(nb.astype(np.int64), np.divide(kb, nb, out=np.zeros_like(kb), where=nb > 0))
    return kb.sum(axis=-2).astype(float), nb.sum(axis=-2)


def dprime_counts(k: Any, n: Any, k_clean: Any, n_clean: Any) -> np.ndarray:
    """Vectorised `analysis.dprime` (log-linear correction) on broadcastable count arrays; NaN where a side
    has no trials."""
    h = (k + 0.5) / (n + 1.0)
    f = (k_clean + 0.5) / (n_clean + 1.0)
    d = special.ndtri(h) - special.ndtri(f)
    return np.where((n > 0) & (n_clean > 0), d, np.nan)


def percentile_interval(draws: np.ndarray, *, missing_is_inf: bool = False) -> tuple[float | None, float | None]:
    """2.5 / 97.5 percentiles over axis 0. ``missing_is_inf``: a NaN draw (a threshold the resample's curve
    never reaches) counts as +inf, so the upper end honestly becomes unbounded (None) when that is common."""
    x = np.asarray(draws, dtype=float)
    if missing_is_inf:
        x = np.where(np.isnan(x), np.inf, x)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return None, None
    lo, hi = np.quantile(x, [0.025, 0.975], method="nearest" if np.isinf(x).any() else "linear")
    return or_none(float(lo)), or_none(float(hi))


def _thresholds(levels: np.ndarray, k: np.ndarray, n: np.ndarray, start: np.ndarray | None) -> tuple[Any, ...]:
    (a, b, g, lam), at_bound, theta = fit_counts(levels, k, n, start=start)
    return eps_at(0.5, a, b, g, lam), eps_at(0.75, a, b, g, lam), at_bound, theta


def threshold_fit(
    levels: np.ndarray, k: np.ndarray, n: np.ndarray, kb: np.ndarray, nb: np.ndarray
) -> tuple[dict[str, Any], np.ndarray, tuple[float, float]]:
    """eps50 / eps75 of one condition's pooled counts with participant-bootstrap intervals (`kb`, `nb`: the
    resampled counts, one row per resample), as the fields of a results block; with the (B, 2) draws (NaN: not
    reached or not fitted) for paired differences, and the point estimates as fitted (NaN when not fitted).
    One definition for the masked/unmasked conditions and for compared stimulus sets."""
    boot = np.full((kb.shape[0], 2), np.nan)
    fields: dict[str, Any]
    if (levels[n > 0] > 0).sum() < 2:
        fields = {
            "eps50": None,
            "eps75": None,
            "eps50_ci": [None, None],
            "eps75_ci": [None, None],
            "share_not_reached": None,
            "at_bound": [],
            "reason": "a fit needs trials at two or more positive eps levels",
        }
        return fields, boot, (math.nan, math.nan)
    e50, e75, at_bound, theta = _thresholds(levels, k, n, None)
    for r in range(kb.shape[0]):
        if (levels[nb[r] > 0] > 0).sum() >= 2:
            boot[r] = _thresholds(levels, kb[r], nb[r], theta)[:2]
    fields = {
        "eps50": or_none(e50),
        "eps75": or_none(e75),
        "eps50_ci": list(percentile_interval(boot[:, 0], missing_is_inf=True)),
        "eps75_ci": list(percentile_interval(boot[:, 1], missing_is_inf=True)),
        "share_not_reached": float(np.isnan(boot[:, 0]).mean()) if len(boot) else 0.0,
        "at_bound": at_bound,
        "reason": None,
    }
    return fields, boot, (e50, e75)


@dataclass(frozen=True)
class _Condition:
    name: str  # "all" | "unmasked" | "masked"
    flag: bool | None
    cols: list[int]


def _conditions(c: Counts) -> list[_Condition]:
    kinds = {m for e, m in c.keys if e > 0}
    if {False, True} <= kinds:
        return [_Condition("unmasked", False, c.columns(False)), _Condition("masked", True, c.columns(True))]
    return [_Condition("all", None, list(range(len(c.keys))))]


def participant_analysis(
    rows: Iterable[Any], *, n_boot: int = 200, seed: int = 0, within: bool = True, individual: bool = True
) -> dict[str, Any]:
    """The participant-level view of a study's main-phase rows (JSON-ready dict).

    Keys: ``n_participants``, ``n_boot``, ``within``; ``levels`` (per (eps, masked): pooled ``detection_rate``
    with its participant-bootstrap ``ci``, ``dprime`` with ``dprime_ci``, per-participant trial counts);
    ``thresholds`` (per condition: pooled-fit ``eps50``/``eps75`` with participant-bootstrap intervals and
    the share of resamples whose curve never reached the level); ``difference`` (masked minus unmasked eps50
    and eps75, paired within each resample, with intervals; None unless both conditions were tested);
    ``per_participant`` (their trials, false-alarm rate, d' over all perturbed trials, and per condition an
    individual fit's eps50/eps75, None with a reason when it cannot be fitted; ``individual`` False skips
    those fits, the slow part for many people); ``warnings`` (``code``,
    ``message``: where the data cannot carry a claim).
    """
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0; got {n_boot}")
    c = count_matrix(rows)
    warnings: list[dict[str, str]] = []
    out: dict[str, Any] = {"n_participants": len(c.participants), "n_boot": n_boot, "within": within}
    if not c.participants:
        return {**out, "levels": [], "thresholds": [], "difference": None, "per_participant": [], "warnings": []}
    rng = np.random.default_rng(seed)
    levels = np.array([e for e, _ in c.keys])
    clean = [j for j, (e, _) in enumerate(c.keys) if e == 0]
    kb, nb = resample(c.k, c.n, n_boot, rng, within=within)  # (B, L)
    k_all, n_all = c.k.sum(0), c.n.sum(0)
    out["levels"] = _levels(c, clean, kb, nb, k_all, n_all)
    out["thresholds"], out["difference"] = _threshold_block(c, levels, kb, nb, k_all, n_all, warnings)
    out["per_participant"] = _per_participant(c, clean, levels, individual)
    out["warnings"] = warnings + _data_warnings(c)
    return out


def _levels(
    c: Counts, clean: list[int], kb: np.ndarray, nb: np.ndarray, k_all: np.ndarray, n_all: np.ndarray
) -> list[dict[str, Any]]:
    rate_b = np.divide(kb, nb, out=np.full_like(kb, np.nan), where=nb > 0)
    out = []
    for j, (e, m) in enumerate(c.keys):
        d: float | None = None
        d_ci: tuple[float | None, float | None] = (None, None)
        if e > 0 and clean:
            cj = clean[0]
            d = or_none(dprime(int(k_all[j]), int(n_all[j] - k_all[j]), int(k_all[cj]), int(n_all[cj] - k_all[cj])))
            d_ci = percentile_interval(dprime_counts(kb[:, j], nb[:, j], kb[:, cj], nb[:, cj]))
        per = c.n[:, j]
        out.append(
            {
                "eps": e,
                "masked": m,
                "n": int(n_all[j]),
                "n_participants": int((per > 0).sum()),
                "min_trials_per_participant": int(per[per > 0].min()),
                "detection_rate": float(k_all[j] / n_all[j]),
                "ci": list(percentile_interval(rate_b[:, j])),
                "dprime": d,
                "dprime_ci": list(d_ci),
            }
        )
    return out


def _threshold_block(
    c: Counts,
    levels: np.ndarray,
    kb: np.ndarray,
    nb: np.ndarray,
    k_all: np.ndarray,
    n_all: np.ndarray,
    warnings: list[dict[str, str]],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Pooled fit per condition on the data and on every resample; the masked - unmasked difference per
    resample is taken on the same resample (the same people), so it is a paired comparison."""
    blocks: list[dict[str, Any]] = []
    draws: dict[str, np.ndarray] = {}
    for cond in _conditions(c):
        lv = levels[cond.cols]
        fields, boot, (e50, e75) = threshold_fit(
            lv, k_all[cond.cols], n_all[cond.cols], kb[:, cond.cols], nb[:, cond.cols]
        )
        blocks.append({"condition": cond.name, **fields})
        if fields["reason"]:
            continue
        draws[cond.name] = boot
        at_bound, not_reached = fields["at_bound"], fields["share_not_reached"]
        tested = lv[lv > 0]
        if at_bound:
            warnings.append(_w("fit_at_bound", f"{cond.name}: the fit ended at the bound of {', '.join(at_bound)}"))
        for name, v in (("eps50", e50), ("eps75", e75)):
            if not math.isnan(v) and not tested.min() <= v <= tested.max():
                warnings.append(_w("extrapolated", f"{cond.name}: {name} = {v:.4g} lies outside the tested eps range"))
        if not_reached > 0.025:
            warnings.append(
                _w(
                    "threshold_not_reached",
                    f"{cond.name}: {not_reached:.0%} of resamples never reach 50 % detection; the upper end "
                    "of its interval is unbounded",
                )
            )
    diff = None
    if {"unmasked", "masked"} <= draws.keys():
        d = draws["masked"] - draws["unmasked"]
        point = {b["condition"]: b for b in blocks}
        diff = {
            "eps50": _sub(point["masked"]["eps50"], point["unmasked"]["eps50"]),
            "eps75": _sub(point["masked"]["eps75"], point["unmasked"]["eps75"]),
            "eps50_ci": list(percentile_interval(d[:, 0])),
            "eps75_ci": list(percentile_interval(d[:, 1])),
            "n_resamples_used": int((~np.isnan(d[:, 0])).sum()),
        }
    return blocks, diff


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _per_participant(c: Counts, clean: list[int], levels: np.ndarray, individual: bool) -> list[dict[str, Any]]:
    out = []
    pert = [j for j, (e, _) in enumerate(c.keys) if e > 0]
    for i, pid in enumerate(c.participants):
        kc = c.k[i, clean].sum() if clean else 0.0
        nc = c.n[i, clean].sum() if clean else 0.0
        kp, np_ = c.k[i, pert].sum(), c.n[i, pert].sum()
        row: dict[str, Any] = {
            "participant_id": pid,
            "n_trials": int(c.n[i].sum()),
            "n_clean": int(nc),
            "false_alarm_rate": float(kc / nc) if nc else None,
            "hit_rate": float(kp / np_) if np_ else None,
            "dprime": or_none(float(dprime_counts(kp, np_, kc, nc))) if np_ and nc else None,
            "fits": {},
        }
        for cond in _conditions(c) if individual else []:
            lv, kk, nn = levels[cond.cols], c.k[i, cond.cols], c.n[i, cond.cols]
            if nn[lv > 0].sum() < MIN_TRIALS_INDIVIDUAL_FIT or (lv[nn > 0] > 0).sum() < 2:
                row["fits"][cond.name] = {"eps50": None, "eps75": None, "at_bound": [], "reason": "too few trials"}
                continue
            e50, e75, at_bound, _ = _thresholds(lv, kk, nn, None)
            row["fits"][cond.name] = {
                "eps50": or_none(e50),
                "eps75": or_none(e75),
                "at_bound": at_bound,
                "reason": None,
            }
        out.append(row)
    return out


def _data_warnings(c: Counts) -> list[dict[str, str]]:
    out = []
    if len(c.participants) < MIN_PARTICIPANTS:
        out.append(
            _w(
                "few_participants",
                f"{len(c.participants)} participants (< {MIN_PARTICIPANTS}): participant-level intervals rest on "
                "too few people to say how a population would respond",
            )
        )
    thin = [
        f"{e:g}" + ("" if m is None else (" masked" if m else " unmasked"))
        for j, (e, m) in enumerate(c.keys)
        if 0 < c.n[:, j][c.n[:, j] > 0].min() < MIN_TRIALS_PER_CELL
    ]
    if thin:
        out.append(
            _w(
                "few_trials_per_level",
                f"some participants have fewer than {MIN_TRIALS_PER_CELL} trials at eps {', '.join(thin)}: "
                "their rate there is mostly chance",
            )
        )
    return out


def _w(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}
