"""APGD-T (Croce & Hein, 2020): Auto-PGD on the targeted DLR loss, against the top-9 other classes in turn.

As AutoAttack's `APGDAttack_targeted` (autoattack/autopgd_base.py): for target rank t = 2 .. n_targets + 1,
the target of each still-robust sample is its t-th highest clean logit, and one APGD run (the reference
checkpoint schedule of `sipat.attacks.apgd`) maximises

    DLR_t(z, y) = -(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2 + 1e-12)       (z_(i): i-th largest logit)

Each target attacks only the samples that no earlier target has fooled.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sipat.attacks._core import as_eps, as_mask, check_batch, check_counts, eval_mode
from sipat.attacks.apgd import _apgd_run


def dlr_targeted_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Targeted DLR, (N, K) logits -> (N,); needs >= 4 classes (the scale uses the 3rd and 4th logits)."""
    z = logits.float()
    z_sorted, _ = z.sort(dim=1)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    z_t = z.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (z_sorted[:, -1] - 0.5 * (z_sorted[:, -3] + z_sorted[:, -4]) + 1e-12)


def apgd_targeted(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    steps: int = 100,
    *,
    n_targets: int = 9,
    mask: Tensor | None = None,
    rho: float = 0.75,
    generator: torch.Generator | None = None,
) -> Tensor:
    """APGD-T within the (masked) L-inf ball |x' - x| <= eps * m.

    Args:
        model: maps x (N, C, H, W) in [0, 1] to logits (N, K), K >= 4; run in eval mode, modes restored.
        x: (N, C, H, W) in [0, 1].  y: (N,) class indices.
        eps: L-inf radius, float or (N,) tensor.
        steps: APGD iterations per target (AutoAttack: 100).
        n_targets: how many of the highest other classes to try (AutoAttack: 9); capped at K - 1.
        mask: None or broadcastable to (N, 1, H, W) in [0, 1] (0 = untouchable, bit-identical to x).
        rho: APGD's step-size threshold.
        generator: a `torch.Generator` on x's device for the random starts.

    Returns:
        x_adv (N, C, H, W) in [0, 1], detached: a misclassified point where one was found, else x.

    Example::

        x_adv = apgd_targeted(model, x, y, 8 / 255, generator=torch.Generator().manual_seed(0))
    """
    check_batch(x, y)
    check_counts(steps=steps, n_targets=n_targets)
    e, m = as_eps(eps, x), as_mask(mask, x)
    x = x.detach()
    out = x.clone()
    with eval_mode(model), torch.no_grad():
        logits = model(x)
        if logits.shape[1] < 4:
            raise ValueError("APGD-T's targeted DLR loss needs at least 4 classes; use apgd(..., loss='ce')")
        order = logits.argsort(dim=1)
        robust = logits.argmax(1) == y
        for rank in range(2, min(n_targets, logits.shape[1] - 1) + 2):
            todo = robust.nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            target = order[todo, -rank]

            def loss_fn(z: Tensor, yy: Tensor, target: Tensor = target) -> Tensor:
                return dlr_targeted_loss(z, yy, target)

            mt = None if m is None else m[todo]
            x_run, fooled, _ = _apgd_run(model, x[todo], y[todo], e[todo], mt, steps, loss_fn, rho, generator)
            idx = todo[fooled]
            out[idx] = x_run[fooled]
            robust[idx] = False
    return out


__all__ = ["apgd_targeted", "dlr_targeted_loss"]
