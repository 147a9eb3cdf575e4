"""Set-ups that make robustness numbers meaningless, in the spirit of AutoAttack's `checks.py`.

Each check returns warning texts with the numbers that triggered them (empty when all is well); the
caller decides whether to print, log or store them. They catch the usual ways an evaluation overstates
robustness (Carlini et al., 2019, "On evaluating adversarial robustness"; Croce & Hein, 2020):
    - the model returns probabilities: CE and DLR on softmax outputs saturate, gradients vanish;
    - zero input gradients: white-box attacks have nothing to follow;
    - randomised forward passes: a single gradient sample misleads (use EOT, or fix the randomness);
    - robust accuracy rising with eps: a larger ball contains the smaller one, so the attack failed;
    - a black-box attack beating the white-box ones: the gradients are masked or obfuscated.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

import torch
from torch import Tensor, nn

from sipat.attacks._core import ce_loss, input_grad


def check_outputs(model: nn.Module, x: Tensor) -> list[str]:
    """Warn when the outputs on x (N, C, H, W) look like probabilities (in [0, 1], rows summing to 1)."""
    with torch.no_grad():
        out = model(x).float()
    sums = out.sum(dim=1)
    if out.min() >= 0 and out.max() <= 1 and torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
        return [
            f"the model seems to output probabilities, not logits (outputs in [{out.min():.3g}, {out.max():.3g}], "
            f"rows sum to 1 within {float((sums - 1).abs().max()):.2g}): CE/DLR attacks saturate; remove the softmax"
        ]
    return []


def check_randomized(model: nn.Module, x: Tensor) -> list[str]:
    """Warn when two forward passes on the same x give different outputs (in the current mode)."""
    with torch.no_grad():
        a, b = model(x).float(), model(x).float()
    if a.numel() == 0:  # an empty batch: nothing to compare (and `max` of nothing raises)
        return []
    diff = float((a - b).abs().max())
    if diff > 1e-5 * max(float(a.abs().max()), 1.0):
        return [
            f"the forward pass is randomised (two passes on one batch differ by up to {diff:.3g}): a single gradient "
            f"misleads the attacks; fix the randomness or attack the expectation (EOT)"
        ]
    return []


def check_zero_grad(model: nn.Module, x: Tensor, y: Tensor) -> list[str]:
    """Warn when some samples have an all-zero input gradient of the cross-entropy."""
    if x.shape[0] == 0:
        return []
    _, _, grad = input_grad(model, x, y, ce_loss)
    zero = (grad.flatten(1).abs().amax(dim=1) == 0).float().mean().item()
    if zero > 0:
        return [
            f"{zero:.1%} of {x.shape[0]} samples have an all-zero input gradient: white-box attacks cannot move "
            f"them and their robust accuracy is overstated (gradient masking)"
        ]
    return []


def check_monotone(robust_acc: Mapping[str, Mapping[float, float]]) -> list[str]:
    """Warn where an attack's robust accuracy rises with eps (the larger ball holds every smaller one)."""
    out = []
    for attack, per_eps in robust_acc.items():
        grid = sorted(per_eps)
        for lo, hi in pairwise(grid):
            if per_eps[hi] > per_eps[lo]:
                out.append(
                    f"{attack}: robust accuracy rises with eps ({per_eps[lo]:.4f} at {lo:.4g}, {per_eps[hi]:.4f} at "
                    f"{hi:.4g}): the attack is failing; more steps or restarts are needed"
                )
    return out


def check_black_box(
    robust_acc: Mapping[str, Mapping[float, float]], black_box: frozenset[str], n: int | None = None
) -> list[str]:
    """Warn where a black-box attack's accuracy is below every white-box attack's at the same eps.

    `robust_acc` maps attack -> {eps: accuracy}; attacks in `black_box` use no gradients. The ensemble's
    columns follow `sipat.evaluation`: "autoattack" (worst case) and "autoattack/+<stage>" (running accuracy
    after each stage) are not single attacks; "autoattack/<stage>" (each attack's own accuracy) are.
    Also flags the ensemble's Square stage when it broke samples the white-box stages had not.
    """
    out = []
    single = [a for a in robust_acc if a != "autoattack" and not a.startswith("autoattack/+")]
    white = [a for a in single if a not in black_box]
    for bb in (a for a in single if a in black_box):
        for e, acc in robust_acc[bb].items():
            best_white = min((robust_acc[w][e] for w in white if e in robust_acc[w]), default=None)
            if best_white is not None and acc < best_white:
                out.append(
                    f"black-box {bb} beats the white-box attacks at eps {e:.4g} ({acc:.4f} < {best_white:.4f}): "
                    f"the gradients are likely masked; the white-box numbers overstate robustness"
                )
    running = [k for k in robust_acc if k.startswith("autoattack/+")]
    if "autoattack/+square" in running and running.index("autoattack/+square") > 0:
        before = running[running.index("autoattack/+square") - 1]
        for e, acc in robust_acc["autoattack/+square"].items():
            drop = robust_acc[before][e] - acc
            if drop > 0:
                count = f" ({round(drop * n)} of {n} samples)" if n else ""
                out.append(
                    f"Square broke {drop:.4f}{count} at eps {e:.4g} that the white-box stages did not: a sign of "
                    f"gradient masking, or of too few white-box iterations"
                )
    return out


__all__ = ["check_black_box", "check_monotone", "check_outputs", "check_randomized", "check_zero_grad"]
