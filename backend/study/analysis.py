"""Detection statistics of a study: rates with Wilson intervals, d' per eps level, catch exclusions.

Pure numpy/scipy on plain rows (dicts, tuples or attribute objects such as SQLAlchemy rows); no database. How a
row is read (its fields, a tuple's order) is `backend.study.rows`; the psychometric fit is
`backend.study.psychometric`, the participant-level statistics `participants.py`, the GEE model `model.py`.

Missing values come back as None (not NaN) so results serialise to JSON directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats

from backend.study.rows import JUDGMENTS, finite_numbers, judged_perturbed, or_none, row_eps, row_get

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
        phase = row_get(row, "phase")
        if phase is not None and phase != "main":
            continue
        if row_get(row, "participant_id") in excluded:
            continue
        e = row_eps(row)
        masked = row_get(row, "masked")
        key = (e, None if e == 0 or masked is None else bool(masked))
        groups.setdefault(key, []).append(row)

    clean = groups.get((0.0, None), [])
    n_fa = sum(judged_perturbed(r) for r in clean)
    fa_rate = n_fa / len(clean) if clean else None

    def order(key: tuple[float, bool | None]) -> tuple[float, int]:
        return key[0], {None: 0, False: 1, True: 2}[key[1]]

    table = []
    for key in sorted(groups, key=order):
        e, masked = key
        group = groups[key]
        n = len(group)
        k = sum(judged_perturbed(r) for r in group)
        lo, hi = wilson_interval(k, n)
        rts, conf = finite_numbers(group, "rt_ms"), finite_numbers(group, "confidence")
        d = None
        if e > 0 and clean:
            d = or_none(dprime(k, n - k, n_fa, len(clean) - n_fa))
        table.append(
            {
                "eps": e,
                "masked": masked,
                "n": n,
                "n_participants": len({row_get(r, "participant_id") for r in group}),
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
        phase = row_get(row, "phase")
        if phase is not None and phase != "catch":
            continue
        pid = row_get(row, "participant_id")
        j = row_get(row, "judgment")
        if j is not None and j not in JUDGMENTS:
            raise ValueError(f"judgment must be 'perturbed', 'clean' or None; got {j!r} in row {row!r}")
        errors[pid] = errors.get(pid, 0) + (j != "perturbed")
    flagged = [pid for pid, n in errors.items() if n > max_catch_errors]
    try:
        return sorted(flagged)
    except TypeError:  # mixed id types
        return sorted(flagged, key=repr)
