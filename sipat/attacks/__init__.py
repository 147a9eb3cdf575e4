"""Adversarial attacks with the SIP-AT perturbation mask: one algorithm per module on a shared core.

x    (N, C, H, W) in [0, 1]      y (N,) class indices      eps float or (N,) tensor
mask None or (N, 1, H, W) in [0, 1]: the share of the radius each pixel may use (0 = untouchable)
"""

from sipat.attacks._core import ce_loss, dlr_loss, eval_mode
from sipat.attacks.apgd import apgd
from sipat.attacks.apgd_t import apgd_targeted
from sipat.attacks.fab import fab_targeted
from sipat.attacks.fgsm import fgsm
from sipat.attacks.pgd import pgd
from sipat.attacks.registry import ATTACKS, AttackBudget, autoattack, pgd_step_size, run_attack
from sipat.attacks.square import square

__all__ = [
    "ATTACKS",
    "AttackBudget",
    "apgd",
    "apgd_targeted",
    "autoattack",
    "ce_loss",
    "dlr_loss",
    "eval_mode",
    "fab_targeted",
    "fgsm",
    "pgd",
    "pgd_step_size",
    "run_attack",
    "square",
]
