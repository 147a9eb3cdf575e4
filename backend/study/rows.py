"""How the study statistics read a trial row: dicts, tuples or attribute objects such as SQLAlchemy rows.

Shared by `analysis.py`, `participants.py` and `model.py` so that every statistic checks a row the same way (a
judgment other than "perturbed"/"clean", or an eps that is not a finite number >= 0, is a ValueError naming the row).

Row fields: ``eps`` (float, 0 = clean), ``judgment`` ("perturbed" | "clean"), ``participant_id``, and
optionally ``masked`` (bool: the perturbation spared the salient region), ``confidence`` (number), ``rt_ms``
(number) and ``phase`` ("practice" | "main" | "catch" | ...). A tuple is read positionally in that order:
``(eps, judgment, participant_id, masked, confidence, rt_ms, phase)``; trailing fields may be left off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FIELDS = ("eps", "judgment", "participant_id", "masked", "confidence", "rt_ms", "phase")
JUDGMENTS = ("perturbed", "clean")


def row_get(row: Any, name: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(name)
    mapping = getattr(row, "_mapping", None)  # SQLAlchemy Row
    if mapping is not None:
        return mapping.get(name)
    if isinstance(row, Sequence) and not isinstance(row, str):
        i = FIELDS.index(name)
        return row[i] if i < len(row) else None
    return getattr(row, name, None)


def judged_perturbed(row: Any) -> bool:
    j = row_get(row, "judgment")
    if j not in JUDGMENTS:
        raise ValueError(f"judgment must be 'perturbed' or 'clean'; got {j!r} in row {row!r}")
    return j == "perturbed"


def row_eps(row: Any) -> float:
    e = row_get(row, "eps")
    try:
        e = float(e)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a number; got {e!r} in row {row!r}") from None
    if not math.isfinite(e) or e < 0:
        raise ValueError(f"eps must be finite and >= 0; got {e!r} in row {row!r}")
    return e


def finite_numbers(rows: list[Any], name: str) -> np.ndarray:
    vals = [row_get(r, name) for r in rows]
    return np.array([float(v) for v in vals if v is not None and math.isfinite(float(v))], dtype=float)


def or_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
