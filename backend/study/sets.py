"""Several stimulus sets of one study side by side: detection per level and thresholds per set, and each set's
threshold difference from the first set, all with participant-bootstrap intervals.

A study comparing sets (`StudyConfig.compare_stimulus_set_ids`) shows every participant trials of every set,
interleaved (`backend.study.schedule`), so the comparison is within participants. Each set has its own clean
trials (their false-alarm rate is the floor of that set's d' and curve). The bootstrap of
`backend.study.participants` resamples participants (and their trials) once per resample for all sets together:
the same people enter each set's statistics, so the difference of two sets' thresholds per resample is a paired
comparison, and its 2.5 / 97.5 percentiles are the interval of the difference.

Rows: as `backend.study.rows` (main phase) plus ``stimulus_set_id``; ``sets`` names the sets in the study's order
(the first is the reference of the differences). Missing values come back as None so results serialise to JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.study.analysis import dprime
from backend.study.participants import dprime_counts, percentile_interval, resample, threshold_fit
from backend.study.rows import judged_perturbed, or_none, row_eps, row_get


@dataclass(frozen=True)
class SetInfo:
    """One compared set as the results name it."""

    stimulus_set_id: int
    name: str
    masked: bool


def set_comparison(
    rows: Iterable[Any], sets: Sequence[SetInfo], *, n_boot: int = 200, seed: int = 0, within: bool = True
) -> dict[str, Any]:
    """Per set (in the order of `sets`): ``levels`` (eps, trials, participants, pooled detection rate with its
    participant-bootstrap ``ci``, ``dprime`` against the set's own clean trials with ``dprime_ci``) and the pooled
    fit's ``eps50``/``eps75`` with intervals; ``differences``: each further set minus the first, eps50 and eps75
    with the paired intervals. Rows of sets not in `sets`, and of other phases than main, are skipped."""
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0; got {n_boot}")
    known = {s.stimulus_set_id for s in sets}
    cells: dict[tuple[Any, tuple[int, float]], list[int]] = {}
    for row in rows:
        set_id = row_get(row, "stimulus_set_id")
        if set_id not in known or row_get(row, "phase") not in (None, "main"):
            continue
        cell = cells.setdefault((row_get(row, "participant_id"), (set_id, row_eps(row))), [0, 0])
        cell[0] += judged_perturbed(row)
        cell[1] += 1
    people = sorted({p for p, _ in cells}, key=repr)
    order = {s.stimulus_set_id: i for i, s in enumerate(sets)}
    keys = sorted({key for _, key in cells}, key=lambda c: (order[c[0]], c[1]))
    pi, kj = {p: i for i, p in enumerate(people)}, {c: j for j, c in enumerate(keys)}
    k, n = np.zeros((len(people), len(keys))), np.zeros((len(people), len(keys)))
    for (p, key), (kk, nn) in cells.items():
        k[pi[p], kj[key]], n[pi[p], kj[key]] = kk, nn
    kb, nb = resample(k, n, n_boot, np.random.default_rng(seed), within=within)  # (B, columns), paired across sets
    out_sets, draws = [], {}
    for info in sets:
        cols = [j for j, (set_id, _) in enumerate(keys) if set_id == info.stimulus_set_id]
        block, boot = _one_set(info, cols, keys, k, n, kb, nb)
        out_sets.append(block)
        draws[info.stimulus_set_id] = boot
    first = out_sets[0] if out_sets else None
    differences = [
        _difference(first, other, draws[first["stimulus_set_id"]], draws[other["stimulus_set_id"]])
        for other in out_sets[1:]
        if first is not None
    ]
    return {
        "n_participants": len(people),
        "n_boot": n_boot,
        "within": within,
        "sets": out_sets,
        "differences": differences,
    }


def _one_set(
    info: SetInfo,
    cols: list[int],
    keys: list[tuple[int, float]],
    k: np.ndarray,
    n: np.ndarray,
    kb: np.ndarray,
    nb: np.ndarray,
) -> tuple[dict[str, Any], np.ndarray]:
    """The block of one set and its (B, 2) bootstrap draws of eps50, eps75 (NaN: not reached or not fitted)."""
    levels = np.array([keys[j][1] for j in cols])
    k_all, n_all = k[:, cols].sum(0), n[:, cols].sum(0)
    kbs, nbs = kb[:, cols], nb[:, cols]
    rate_b = np.divide(kbs, nbs, out=np.full_like(kbs, np.nan), where=nbs > 0)
    clean = [i for i, e in enumerate(levels) if e == 0]
    rows = []
    for i, e in enumerate(levels):
        d: float | None = None
        d_ci: list[float | None] = [None, None]
        if e > 0 and clean:
            c = clean[0]
            kc, nc = int(k_all[c]), int(n_all[c])
            d = or_none(dprime(int(k_all[i]), int(n_all[i] - k_all[i]), kc, nc - kc))
            d_ci = list(percentile_interval(dprime_counts(kbs[:, i], nbs[:, i], kbs[:, c], nbs[:, c])))
        rows.append(
            {
                "eps": float(e),
                "n": int(n_all[i]),
                "n_participants": int((n[:, cols[i]] > 0).sum()),
                "detection_rate": float(k_all[i] / n_all[i]),
                "ci": list(percentile_interval(rate_b[:, i])),
                "dprime": d,
                "dprime_ci": d_ci,
            }
        )
    block: dict[str, Any] = {
        "stimulus_set_id": info.stimulus_set_id,
        "name": info.name,
        "masked": info.masked,
        "n_participants": int((n[:, cols].sum(1) > 0).sum()) if cols else 0,
        "n_trials": int(n_all.sum()),
        "levels": rows,
    }
    fields, boot, _ = threshold_fit(levels, k_all, n_all, kbs, nbs)
    block.update(fields)
    return block, boot


def _difference(first: dict[str, Any], other: dict[str, Any], a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """`other` minus `first`, per resample on the same people (paired)."""
    d = b - a
    return {
        "stimulus_set_id": other["stimulus_set_id"],
        "name": other["name"],
        "minus_stimulus_set_id": first["stimulus_set_id"],
        "minus_name": first["name"],
        "eps50": _sub(other["eps50"], first["eps50"]),
        "eps75": _sub(other["eps75"], first["eps75"]),
        "eps50_ci": list(percentile_interval(d[:, 0])),
        "eps75_ci": list(percentile_interval(d[:, 1])),
        "n_resamples_used": int((~np.isnan(d[:, 0])).sum()),
    }


def _sub(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None or not math.isfinite(x - y) else x - y
