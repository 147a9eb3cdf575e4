"""Every evaluation attack by name, behind one signature: `run_attack(name, model, x, y, eps, ...)`.

One place for the settings an evaluation uses (`AttackBudget`: PGD-20 with step 2.5 * eps / steps, APGD
and FAB-T with 100 iterations, 9 targets for APGD-T and FAB-T, Square with 5,000 queries), so that the CLI,
the experiment runner and the web jobs cannot drift apart. The names are `sipat.vocabulary.EVAL_ATTACKS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sipat.attacks._core import as_eps, check_batch
from sipat.attacks.apgd import apgd
from sipat.attacks.apgd_t import apgd_targeted
from sipat.attacks.autoattack import STANDARD, EnsembleResult, StageFn, run_ensemble
from sipat.attacks.fab import fab_targeted
from sipat.attacks.fgsm import fgsm
from sipat.attacks.pgd import pgd
from sipat.attacks.square import square


def pgd_step_size(eps: float | Tensor, steps: int) -> float | Tensor:
    """PGD's step: 2.5 * eps / steps (Madry et al.), so that the walk can cross the ball in any direction."""
    return 2.5 * eps / max(steps, 1)


@dataclass(frozen=True)
class AttackBudget:
    """Iterations and queries per attack; the defaults are the published settings (AutoAttack's for APGD,
    APGD-T and Square)."""

    pgd_steps: int = 20
    apgd_steps: int = 100
    n_targets: int = 9
    fab_steps: int = 100
    square_queries: int = 5000
    square_p_init: float = 0.8

    def __post_init__(self) -> None:
        for name, least in (
            ("pgd_steps", 0),
            ("apgd_steps", 1),
            ("n_targets", 1),
            ("fab_steps", 1),
            ("square_queries", 1),
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v < least:
                raise ValueError(f"{name} must be an integer >= {least}; got {v!r}")


AttackFn = Callable[
    [nn.Module, Tensor, Tensor, "float | Tensor", "Tensor | None", "torch.Generator | None", AttackBudget], Tensor
]
"""(model, x, y, eps (float or (N,)), mask, generator, budget) -> x_adv (N, C, H, W)."""


def _stages(budget: AttackBudget) -> list[tuple[str, StageFn | None]]:
    """AutoAttack's standard stages under this budget."""
    table: dict[str, StageFn | None] = {
        "apgd-ce": lambda mo, x, y, e, m, g: apgd(mo, x, y, e, budget.apgd_steps, mask=m, generator=g),
        "apgd-t": lambda mo, x, y, e, m, g: apgd_targeted(
            mo, x, y, e, budget.apgd_steps, n_targets=budget.n_targets, mask=m, generator=g
        ),
        "fab-t": lambda mo, x, y, e, m, g: fab_targeted(
            mo, x, y, e, budget.fab_steps, n_targets=budget.n_targets, mask=m
        ),
        "square": lambda mo, x, y, e, m, g: square(
            mo, x, y, e, budget.square_queries, p_init=budget.square_p_init, mask=m, generator=g
        ),
    }
    return [(name, table[name]) for name in STANDARD]


def autoattack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    *,
    mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    budget: AttackBudget | None = None,
    every_sample: bool = False,
) -> EnsembleResult:
    """AutoAttack's standard ensemble (APGD-CE, APGD-T, FAB-T, Square) with the per-sample worst case.

    See `sipat.attacks.autoattack.run_ensemble` for the result and `every_sample`.

    Example::

        res = autoattack(model, x, y, 8 / 255, generator=torch.Generator().manual_seed(0))
        robust_acc = res.robust.float().mean().item()
    """
    check_batch(x, y)
    e = as_eps(eps, x).view(-1)
    stages = _stages(budget or AttackBudget())
    return run_ensemble(model, x, y, e, stages, mask=mask, generator=generator, every_sample=every_sample)


ATTACKS: dict[str, AttackFn] = {
    "pgd": lambda mo, x, y, e, m, g, b: pgd(
        mo, x, y, e, pgd_step_size(e, b.pgd_steps), b.pgd_steps, mask=m, generator=g
    ),
    "apgd": lambda mo, x, y, e, m, g, b: apgd(mo, x, y, e, b.apgd_steps, mask=m, generator=g),
    "fgsm": lambda mo, x, y, e, m, g, b: fgsm(mo, x, y, e, mask=m),
    "apgd-t": lambda mo, x, y, e, m, g, b: apgd_targeted(
        mo, x, y, e, b.apgd_steps, n_targets=b.n_targets, mask=m, generator=g
    ),
    "fab-t": lambda mo, x, y, e, m, g, b: fab_targeted(mo, x, y, e, b.fab_steps, n_targets=b.n_targets, mask=m),
    "square": lambda mo, x, y, e, m, g, b: square(
        mo, x, y, e, b.square_queries, p_init=b.square_p_init, mask=m, generator=g
    ),
    "autoattack": lambda mo, x, y, e, m, g, b: autoattack(mo, x, y, e, mask=m, generator=g, budget=b).x_adv,
}
"""Name -> attack. "apgd" is APGD-CE; "autoattack" returns the ensemble's worst-case points."""

#: Attacks that use no gradients (the gradient-masking check compares them with the rest).
BLACK_BOX: frozenset[str] = frozenset({"square", "autoattack/square"})


def run_attack(
    name: str,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    *,
    mask: Tensor | None = None,
    generator: torch.Generator | None = None,
    budget: AttackBudget | None = None,
) -> Tensor:
    """x_adv (N, C, H, W) in [0, 1] from attack `name` (a key of `ATTACKS`) within the (masked) eps-ball."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    check_batch(x, y)
    as_eps(eps, x)  # checked here, passed on as given (a float stays a float: PGD's step is computed from it)
    return ATTACKS[name](model, x, y, eps, mask, generator, budget or AttackBudget())


__all__ = ["ATTACKS", "BLACK_BOX", "AttackBudget", "AttackFn", "autoattack", "pgd_step_size", "run_attack"]
