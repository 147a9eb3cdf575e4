"""Fast Gradient Sign Method (Goodfellow et al., 2015), with an optional perturbation mask."""

from __future__ import annotations

from torch import Tensor, nn

from sipat.attacks._core import as_eps, as_mask, ce_loss, check_batch, eval_mode, input_grad, project_linf, radius


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float | Tensor, *, mask: Tensor | None = None) -> Tensor:
    """One signed-gradient step to the edge of the (masked) L-inf ball.

    x_adv = clip_[0,1]( x + eps * m * sign(grad_x CE(f(x), y)) )

    Args:
        model: maps x (N, C, H, W) in [0, 1] to logits (N, K). Run in eval mode; its modes, parameters'
            `requires_grad` and `.grad` are left as they were.
        x: (N, C, H, W) in [0, 1].  y: (N,) class indices.
        eps: L-inf radius, float or (N,) tensor.
        mask: None or (N, 1, H, W) in [0, 1]; the share of eps each pixel may use (0 = untouched,
            bit-identical to x).

    Returns:
        x_adv (N, C, H, W) in [0, 1], detached, with |x_adv - x| <= eps * mask.
    """
    check_batch(x, y)
    e, m = as_eps(eps, x), as_mask(mask, x)
    r = radius(e, m)
    with eval_mode(model):
        _, _, grad = input_grad(model, x, y, ce_loss)
    return project_linf(x + r * grad.sign(), x, r).detach()


__all__ = ["fgsm"]
