"""Projected Gradient Descent (Madry et al., 2018) under L-inf or L2, with the SIP-AT perturbation mask.

With a binary mask m = (s < 0.5) from a salience map s, this is exactly the attack of SIP-AT
(Redgrave & Czajka, 2025): salient pixels (m = 0) are never perturbed.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from sipat.attacks._core import (
    LossFn,
    as_eps,
    as_mask,
    ce_loss,
    check_batch,
    eval_mode,
    input_grad,
    project_linf,
    radius,
    uniform_like,
)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    alpha: float | Tensor,
    steps: int,
    *,
    norm: Literal["linf", "l2"] = "linf",
    mask: Tensor | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    loss_fn: LossFn = ce_loss,
) -> Tensor:
    """Maximise the cross-entropy (or `loss_fn`) of `model` within a (masked) eps-ball around x.

    L-inf, the SIP-AT attack:
        x'_0     = clip_[0,1]( x + U(-eps, eps) * m )            (x'_0 = x without random start)
        x'_{t+1} = clip_[0,1]( Proj_{|x' - x| <= eps * m}( x'_t + alpha * sign(grad * m) ) )
    A soft mask m in [0, 1] gives each pixel its own radius eps * m (the "budget" extension).
    An all-ones mask (or None) is ordinary PGD.

    L2: steps along grad * m / ||grad * m||_2 and projects onto ||x' - x||_2 <= eps; the mask weights
    the gradient (0 = untouched); the random start is uniform in the masked eps-ball direction-wise.

    Args:
        model: maps x (N, C, H, W) in [0, 1] to logits (N, K). The attack runs it in eval mode and leaves
            its modes, its parameters' `requires_grad` and `.grad` as they were.
        x: (N, C, H, W) in [0, 1].  y: (N,) class indices.
        eps: radius in x's units, float or (N,) tensor (per-sample budgets).
        alpha: step size, float or (N,) tensor.
        steps: number of gradient steps (0 returns the random start).
        norm: "linf" or "l2".
        mask: None or broadcastable to (N, 1, H, W), values in [0, 1] (1 = free, 0 = untouchable).
        random_start: start from a uniform point of the (masked) ball instead of x.
        generator: a `torch.Generator` on x's device for the random start; the global RNG otherwise.
        loss_fn: (logits, y) -> per-sample loss to maximise; cross-entropy by default (TRADES passes its KL).

    Returns:
        x_adv (N, C, H, W) in [0, 1], detached. Pixels with mask 0 are bit-identical to x.
    """
    check_batch(x, y)
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2'; got {norm!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0; got {steps!r}")
    e, m = as_eps(eps, x), as_mask(mask, x)
    a = as_eps(alpha, x, name="alpha")
    x = x.detach()
    with eval_mode(model):
        if norm == "linf":
            return _pgd_linf(model, x, y, e, a, steps, m, random_start, generator, loss_fn)
        return _pgd_l2(model, x, y, e, a, steps, m, random_start, generator, loss_fn)


def _pgd_linf(model, x, y, e, a, steps, m, random_start, generator, loss_fn) -> Tensor:
    r = radius(e, m)
    x_adv = project_linf(x + uniform_like(x, generator) * r, x, r) if random_start else x.clone()
    for _ in range(steps):
        _, _, grad = input_grad(model, x_adv, y, loss_fn)
        if m is not None:
            grad = grad * m
        x_adv = project_linf(x_adv + a * grad.sign(), x, r)
    return x_adv.detach()


def _l2_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(p=2, dim=1).view(-1, 1, 1, 1)


def _project_l2(delta: Tensor, e: Tensor) -> Tensor:
    return delta * torch.clamp(e / (_l2_norm(delta) + 1e-12), max=1.0)


def _pgd_l2(model, x, y, e, a, steps, m, random_start, generator, loss_fn) -> Tensor:
    keep = None if m is None else (m == 0)
    delta = torch.zeros_like(x)
    if random_start:
        u = uniform_like(x, generator)
        if m is not None:
            u = u * m
        delta = _project_l2(u * e / (_l2_norm(u) + 1e-12), e)
    x_adv = (x + delta).clamp(0.0, 1.0)
    for _ in range(steps):
        _, _, grad = input_grad(model, x_adv, y, loss_fn)
        if m is not None:
            grad = grad * m
        step = grad / (_l2_norm(grad) + 1e-12)
        delta = _project_l2(x_adv + a * step - x, e)
        x_adv = (x + delta).clamp(0.0, 1.0)
    if keep is not None:  # a guarantee, not a fix: untouchable pixels are x itself
        x_adv = torch.where(keep, x, x_adv)
    return x_adv.detach()


__all__ = ["pgd"]
