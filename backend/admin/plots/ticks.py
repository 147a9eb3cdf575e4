"""Round axis ticks (1-2-5 steps, per decade on a log axis) and their labels.

Its own module because ticks are plain arithmetic on numbers, used by every chart and by the bin edges of the
histograms, and tested on their own.
"""

from __future__ import annotations

import math


def nice_step(span: float, n: int) -> float:
    """The 1-2-5 step (…, 0.1, 0.2, 0.5, 1, 2, 5, 10, …) that cuts `span` into about `n` intervals."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power * (1 + 1e-9):
            return m * power
    return 10 * power


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values from `lo` to `hi` (both inclusive when they fall on a step), about `n` intervals.

    >>> nice_ticks(0, 1)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        return [float(lo)]
    step = nice_step(hi - lo, n)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [round(k * step, digits) + 0.0 for k in range(first, last + 1)]


def nice_range(lo: float, hi: float, n: int = 5) -> tuple[float, float]:
    """[lo, hi] widened outwards to the nearest ticks (a flat range gets a unit around it)."""
    if hi == lo:
        return (lo - 1, hi + 1) if lo != 0 else (0.0, 1.0)
    step = nice_step(hi - lo, n)
    return math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade between `lo` and `hi` (> 0)."""
    if lo <= 0 or hi <= 0:
        raise ValueError(f"a log axis needs positive limits; got {lo}, {hi}")
    ticks = []
    for decade in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**decade
            if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
                ticks.append(v)
    return ticks


def format_tick(v: float) -> str:
    """A tick label without float noise: 0.30000000000000004 -> '0.3', 2.0 -> '2'."""
    return f"{v:.6g}"
