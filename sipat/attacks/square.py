"""Square Attack (Andriushchenko et al., ECCV 2020), L-inf, score-based black box, with the SIP-AT mask.

Only the model's logits are used: no gradients, so it is the AutoAttack member that gradient masking
cannot fool. As the reference (`autoattack/square.py`, `attack_single_run`, L-inf):
    start   delta = r * s, s in {-1, +1} per (channel, column): vertical stripes, r = eps * m per pixel
    step i  a square window of side max(round(sqrt(p_i * H * W)), 1) (at most H - 1) at a random place, one
            random sign per channel: delta_window = r * s; keep the proposal if the margin loss
            z_y - max_{j != y} z_j went down
    p_i     p_init halved at 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of 10,000 (rescaled to `queries`)
A sample stops once its margin is negative (misclassified). Unlike the reference, the window is drawn per
sample rather than once per batch, and an unchanged proposal is not re-drawn (it just costs a query).
With a mask, pixels of m = 0 have radius 0 and stay bit-identical to x.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sipat.attacks._core import as_eps, as_mask, check_batch, eval_mode, project_linf, radius

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_fraction(p_init: float, it: int, queries: int) -> float:
    """The reference's `p_selection`: the share of pixels a window covers at query `it` of `queries`."""
    it = int(it / queries * 10000)
    return p_init / 2 ** sum(it > h for h in _HALVINGS)


def _margin(logits: Tensor, y: Tensor) -> Tensor:
    z = logits.float()
    z_y = z.gather(1, y[:, None]).squeeze(1)
    other = z.scatter(1, y[:, None], -math.inf).amax(dim=1)
    return z_y - other


def _signs(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
    return bits.to(like.dtype).mul_(2).sub_(1)


def square(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    queries: int = 5000,
    *,
    p_init: float = 0.8,
    mask: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Square Attack within the (masked) L-inf ball |x' - x| <= eps * m, at most `queries` forward passes.

    Args:
        model: maps x (N, C, H, W) in [0, 1] to logits (N, K); only called forward, in eval mode.
        x: (N, C, H, W) in [0, 1].  y: (N,) class indices.
        eps: L-inf radius, float or (N,) tensor.
        queries: model queries per sample (AutoAttack: 5,000).
        p_init: the initial share of pixels a square covers (AutoAttack: 0.8).
        mask: None or broadcastable to (N, 1, H, W) in [0, 1] (0 = untouchable, bit-identical to x).
        generator: a `torch.Generator` on x's device for the stripes, windows and signs.

    Returns:
        x_adv (N, C, H, W) in [0, 1], detached: a misclassified point where one was found, else the point
        of lowest margin; x itself for samples already misclassified on x (not attacked).

    Example::

        x_adv = square(model, x, y, 8 / 255, 5000, generator=torch.Generator().manual_seed(0))
    """
    check_batch(x, y)
    if not isinstance(queries, int) or queries < 1:
        raise ValueError(f"queries must be an integer >= 1; got {queries!r}")
    if not 0 < p_init <= 1:
        raise ValueError(f"p_init must lie in (0, 1]; got {p_init!r}")
    e, m = as_eps(eps, x), as_mask(mask, x)
    r = radius(e, m).expand_as(x)
    x = x.detach()
    n, c, h, w = x.shape
    with eval_mode(model), torch.no_grad():
        clean_ok = model(x).argmax(1) == y  # as the reference: samples wrong on x are not attacked
        stripes = project_linf(x + r * _signs((n, c, 1, w), generator, x), x, r)
        x_best = torch.where(clean_ok.view(-1, 1, 1, 1), stripes, x)
        margin = torch.where(clean_ok, _margin(model(x_best), y), torch.full_like(clean_ok, -1.0, dtype=x.dtype))
        rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
        for i in range(1, queries):
            todo = (margin > 0).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            k = todo.numel()
            side = min(max(round(math.sqrt(square_fraction(p_init, i, queries) * h * w)), 1), h - 1 or 1)
            top = torch.randint(0, h - side + 1, (k, 1, 1, 1), generator=generator, device=x.device)
            left = torch.randint(0, w - side + 1, (k, 1, 1, 1), generator=generator, device=x.device)
            window = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
            xt, rt = x[todo], r[todo]
            proposal = torch.where(window, xt + rt * _signs((k, c, 1, 1), generator, x), x_best[todo])
            proposal = project_linf(proposal, xt, rt)
            new_margin = _margin(model(proposal), y[todo])
            better = new_margin < margin[todo]
            idx = todo[better]
            x_best[idx] = proposal[better]
            margin[idx] = new_margin[better]
    return x_best


__all__ = ["square", "square_fraction"]
