"""AutoAttack's standard ensemble (Croce & Hein, 2020) on the SIP-AT attacks: the per-sample worst case.

As `autoattack.py::run_standard_evaluation` (version "standard", L-inf): the attacks run in the order
APGD-CE, APGD-T, FAB-T, Square, each only on the samples that are still classified correctly, so the
robust accuracy is that of the per-sample worst case over the ensemble and the later, costlier attacks
see few samples. Samples misclassified on clean inputs count as broken without being attacked.

A stage given as None is skipped and named in `EnsembleResult.skipped`, so that a caller can say that
its number is only an upper bound on AutoAttack's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from sipat.attacks._core import as_mask, check_batch, eval_mode

#: AutoAttack's standard order.
STANDARD: tuple[str, ...] = ("apgd-ce", "apgd-t", "fab-t", "square")

StageFn = Callable[[nn.Module, Tensor, Tensor, Tensor, "Tensor | None", "torch.Generator | None"], Tensor]
"""(model, x, y, eps (n,), mask or None, generator) -> x_adv for one stage."""


@dataclass
class EnsembleResult:
    """The ensemble's outcome per sample.

    x_adv:   (N, C, H, W), for each sample the first adversarial point found, else x.
    robust:  (N,) bool, the per-sample worst case: correct on x and under every attack that ran on it.
    stages:  attack name -> (N,) bool, still robust after that attack and all before it (AutoAttack's
             running robust accuracy); the last stage equals `robust`.
    own:     attack name -> (N,) bool, each attack's own result on every clean-correct sample; filled only
             when the ensemble was run with `every_sample=True` (each attack then costs its full price).
    skipped: stages given without an attack, not run.
    """

    x_adv: Tensor
    robust: Tensor
    stages: dict[str, Tensor] = field(default_factory=dict)
    own: dict[str, Tensor] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()


def run_ensemble(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: Tensor,
    stages: Sequence[tuple[str, StageFn | None]],
    *,
    mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    every_sample: bool = False,
) -> EnsembleResult:
    """Run `stages` in order on the samples still robust (or, with `every_sample`, each on all of them).

    Args:
        model: maps x (N, C, H, W) in [0, 1] to logits (N, K).
        x: (N, C, H, W) in [0, 1].  y: (N,) class indices.  eps: (N,) L-inf radii.
        stages: (name, attack) pairs in order; an attack of None is recorded as skipped.
        mask: None or broadcastable to (N, 1, H, W) in [0, 1], passed to every stage.
        generator: a `torch.Generator` on x's device, drawn from in stage order.
        every_sample: also measure each attack's own accuracy on every clean-correct sample. The worst
            case is then the per-sample AND over the attacks' own results, the cost that of all attacks.
    """
    check_batch(x, y)
    m = as_mask(mask, x)
    x = x.detach()
    x_adv = x.clone()
    with eval_mode(model), torch.no_grad():
        robust = model(x).argmax(1) == y
        clean = robust.clone()
        result = EnsembleResult(x_adv=x_adv, robust=robust)
        skipped = []
        for name, attack in stages:
            if attack is None:
                skipped.append(name)
                continue
            todo = (clean if every_sample else robust).nonzero().squeeze(1)
            if todo.numel() == 0:
                result.stages[name] = robust.clone()
                continue
            mt = None if m is None else m[todo]
            adv = attack(model, x[todo], y[todo], eps[todo], mt, generator)
            held = model(adv).argmax(1) == y[todo]
            if every_sample:
                own = clean.clone()
                own[todo] = held
                result.own[name] = own
            newly = todo[~held & robust[todo]]
            x_adv[newly] = adv[~held & robust[todo]]
            robust[newly] = False
            result.stages[name] = robust.clone()
        result.skipped = tuple(skipped)
    return result


__all__ = ["STANDARD", "EnsembleResult", "StageFn", "run_ensemble"]
