"""Argument types and per-dataset defaults of the `sipat` commands (eps values through `sipat.vocabulary`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sipat import vocabulary

EPILOG = "eps values may be written as fractions, e.g. 8/255."


@dataclass(frozen=True)
class Defaults:
    eps: float
    steps: int
    alpha: float
    eval_grid: tuple[float, ...]


PAPER = Defaults(eps=8 / 255, steps=32, alpha=1 / 255, eval_grid=vocabulary.DEFAULT_EVAL_EPS)
MNIST = Defaults(eps=0.3, steps=20, alpha=0.0375, eval_grid=(0, 0.05, 0.1, 0.2, 0.3))
DATASET_DEFAULTS = {"mnist5k": MNIST, "shapes": PAPER}


def parse_eps(text: str) -> float:
    """'8/255' or '0.03' -> float by `sipat.vocabulary.parse_eps`, its errors in argparse's type so that argparse
    shows them next to the flag."""
    try:
        return vocabulary.parse_eps(text)
    except ValueError as exc:
        try:  # a negative number: say so plainly
            vocabulary.parse_eps(text.strip().removeprefix("-"))
        except ValueError:
            raise argparse.ArgumentTypeError(str(exc)) from None
        raise argparse.ArgumentTypeError(f"eps must be >= 0, got {text}") from None


def _threshold(text: str) -> float | None:
    if text.lower() in ("none", "soft"):
        return None
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("threshold must be in (0, 1], or 'soft' for the soft budget mask")
    return value


def _defaults(spec: str) -> Defaults:
    return DATASET_DEFAULTS.get(spec, PAPER)
