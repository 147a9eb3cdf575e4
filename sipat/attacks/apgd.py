"""Auto-PGD (Croce & Hein, 2020, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks"), L-inf, with cross-entropy or DLR loss and the SIP-AT mask.

Follows the reference implementation (fra31/auto-attack, `autoattack/autopgd_base.py`, L-inf), not the
paper's float formula for the checkpoints: the first checkpoint comes after n_iter_2 = max(int(0.22 * steps), 1)
iterations, and each later gap is the previous one minus size_decr = max(int(0.03 * steps), 1), but at least
n_iter_min = max(int(0.06 * steps), 1) (integers throughout; at 100 steps: 22, 41, 57, 70, 80, 87, 93, 99).
At a checkpoint a sample's step size (initially 2 * eps) is halved and it restarts from its best point if its
loss rose in at most rho = 0.75 of the window's steps (as the reference counts them: the first window compares
its first loss with 0, the reference's still-empty `loss_steps[-1]`) or if the step size was not halved at the
last checkpoint and the best loss did not improve since. Momentum 0.75. Restarts re-attack only the samples
not yet fooled, keeping the best per sample. The reference takes no mask; here every step and projection uses
the per-pixel radius eps * m, which for m = 1 is the reference's arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor, nn

from sipat.attacks._core import (
    LossFn,
    as_eps,
    as_mask,
    ce_loss,
    check_batch,
    dlr_loss,
    eval_mode,
    input_grad,
    project_linf,
    radius,
    uniform_like,
)

_LOSSES = {"ce": ce_loss, "dlr": dlr_loss}


def apgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    steps: int = 100,
    *,
    loss: Literal["ce", "dlr"] = "ce",
    mask: Tensor | None = None,
    restarts: int = 1,
    rho: float = 0.75,
    generator: torch.Generator | None = None,
) -> Tensor:
    """APGD-CE / APGD-DLR within the (masked) L-inf ball |x' - x| <= eps * m.

    Each iteration (eta: per-sample step size, initially 2 * eps):
        z        = Proj( x_k + eta * sign(grad_k * m) )
        x_{k+1}  = Proj( x_k + 0.75 * (z - x_k) + 0.25 * (x_k - x_{k-1}) )
    At checkpoints w_j (0, 0.22, ...; gaps shrink by 0.03 to at least 0.06 of `steps`) a sample's eta is
    halved and it restarts from its best point if its loss rose in fewer than `rho` of the steps since
    the last checkpoint, or if eta was not halved last time and the best loss did not improve.

    Args:
        model: maps x (N, C, H, W) in [0, 1] to logits (N, K); run in eval mode, its modes, parameters'
            `requires_grad` and `.grad` left as they were.
        x: (N, C, H, W) in [0, 1].  y: (N,) class indices.
        eps: L-inf radius, float or (N,) tensor.
        steps: iterations per restart (>= 1).
        loss: "ce" (cross-entropy) or "dlr" (needs >= 3 classes).
        mask: None or broadcastable to (N, 1, H, W) in [0, 1] (0 = untouchable, bit-identical to x).
        restarts: random restarts; each attacks only the samples still classified correctly.
        rho: the share of rising steps below which the step size is halved.
        generator: a `torch.Generator` on x's device for the random starts.

    Returns:
        x_adv (N, C, H, W) in [0, 1], detached: for each sample a misclassified point if one was found,
        else the point of highest loss; x itself for samples already misclassified on x (not attacked).
    """
    check_batch(x, y)
    if loss not in _LOSSES:
        raise ValueError(f"loss must be 'ce' or 'dlr'; got {loss!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1; got {restarts!r}")
    e, m = as_eps(eps, x), as_mask(mask, x)
    x = x.detach()
    loss_fn = _LOSSES[loss]
    with eval_mode(model):
        best = x.clone()
        with torch.no_grad():  # as the reference: samples wrong on x are not attacked, x comes back
            fooled = model(x).argmax(1) != y
        best_loss = torch.full((x.shape[0],), -math.inf, device=x.device)
        for _ in range(restarts):
            todo = (~fooled).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            mt = None if m is None else m[todo]
            x_run, fooled_run, loss_run = _apgd_run(
                model, x[todo], y[todo], e[todo], mt, steps, loss_fn, rho, generator
            )
            better = fooled_run | (loss_run > best_loss[todo])
            idx = todo[better]
            best[idx] = x_run[better]
            best_loss[idx] = loss_run[better]
            fooled[idx] = fooled_run[better]
    return best


def checkpoint_windows(steps: int) -> Iterator[int]:
    """The reference's window lengths k: n_iter_2, then k - size_decr each time, never below n_iter_min."""
    k = max(int(0.22 * steps), 1)
    size_decr = max(int(0.03 * steps), 1)
    n_iter_min = max(int(0.06 * steps), 1)
    while True:
        yield k
        k = max(k - size_decr, n_iter_min)


def checkpoints(steps: int) -> list[int]:
    """Iteration counts (1-based) after which APGD checks its step size, as `autopgd_base.py` does for `steps`."""
    out: list[int] = []
    at = 0
    for k in checkpoint_windows(steps):
        at += k
        if at > steps:
            return out
        out.append(at)
    raise AssertionError("unreachable")  # pragma: no cover


def _apgd_run(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    e: Tensor,
    m: Tensor | None,
    steps: int,
    loss_fn: LossFn,
    rho: float,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One APGD run. Returns (x_adv, fooled (N,), loss of x_adv (N,))."""
    n = x.shape[0]
    r = radius(e, m)
    t = uniform_like(x, generator)
    t = t / (t.flatten(1).abs().amax(dim=1) + 1e-12).view(-1, 1, 1, 1)
    x_adv = project_linf(x + t * r, x, r)

    logits, loss_now, grad = input_grad(model, x_adv, y, loss_fn)
    fooled = logits.argmax(1) != y
    x_out = x_adv.clone()  # misclassified point if found, else the best-loss point
    x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss_now.clone()

    eta = 2.0 * e.clone()
    x_prev = x_adv.clone()
    checks = set(checkpoints(steps))
    last_check = 0
    rises = torch.zeros(n, device=x.device)
    loss_prev = torch.zeros_like(loss_now)  # the reference's loss_steps[-1]: still 0 in the first window
    loss_best_at_check = loss_best.clone()
    halved_last = torch.ones(n, dtype=torch.bool, device=x.device)

    for k in range(steps):
        g = grad if m is None else grad * m
        z = project_linf(x_adv + eta * g.sign(), x, r)
        momentum = 0.75 if k > 0 else 1.0
        x_new = project_linf(x_adv + momentum * (z - x_adv) + (1 - momentum) * (x_adv - x_prev), x, r)
        x_prev, x_adv = x_adv, x_new

        logits, loss_now, grad = input_grad(model, x_adv, y, loss_fn)
        now_fooled = logits.argmax(1) != y
        x_out[now_fooled] = x_adv[now_fooled]
        fooled |= now_fooled

        rises += (loss_now > loss_prev).float()
        loss_prev = loss_now
        improved = loss_now > loss_best
        x_best[improved], grad_best[improved], loss_best[improved] = (
            x_adv[improved],
            grad[improved],
            loss_now[improved],
        )

        if k + 1 in checks:
            span = k + 1 - last_check
            oscillating = rises <= span * rho
            stalled = (~halved_last) & (loss_best_at_check >= loss_best)
            halve = oscillating | stalled
            eta[halve] /= 2.0
            x_adv[halve] = x_best[halve]
            grad[halve] = grad_best[halve]
            halved_last = halve
            loss_best_at_check = loss_best.clone()
            rises.zero_()
            last_check = k + 1

    x_out[~fooled] = x_best[~fooled]
    return x_out.detach(), fooled, torch.where(fooled, torch.full_like(loss_best, math.inf), loss_best)
