"""FAB-T (Croce & Hein, ICML 2020, "Minimally distorted adversarial examples with a fast adaptive boundary
attack"), targeted, L-inf, as AutoAttack runs it (fab-t: 9 targets, 100 iterations, no random start).

FAB searches the smallest L-inf perturbation that reaches the target's decision boundary. Each iteration
linearises the boundary f(z) = z_t - z_y = 0 at the current point x_k, giving the hyperplane
w . z = w . x_k - f(x_k) with w = grad f(x_k), and projects onto it (inside the box [0, 1]) both x_k and
the original x:
    d_k = Proj(x_k) - x_k,   d_0 = Proj(x) - x,   alpha = min(|d_k| / (|d_k| + |d_0|), alpha_max)
    x_{k+1} = clip( (1 - alpha) (x_k + eta d_k) + alpha (x + eta d_0) )
Once x_{k+1} is adversarial it is kept if it is the closest so far, and the search steps back towards x:
x_{k+1} = x + beta (x_{k+1} - x). The sample counts as broken if the closest adversarial point lies within
the eps-ball. Settings are the reference's (alpha_max 0.1, eta 1.05, beta 0.9).

The mask: w is zeroed on untouchable pixels (mask 0), so every projection leaves them exactly at x. With a
mask, the closest adversarial point is clipped into the masked ball |x' - x| <= eps * m and kept if it
still fools the model (FAB minimises one L-inf radius, not per-pixel ones).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sipat.attacks._core import as_eps, as_mask, check_batch, check_counts, eval_mode, project_linf, radius


def project_linf_hyperplane(t: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """The step d of least L-inf norm with w . (t + d) = b and t + d in [0, 1]; t, w (N, D), b (N,).

    Moving coordinate i by at most lam in its helpful direction (sign of w_i times the sign of the gap)
    changes w . t by at most |w_i| min(lam, room_i), room_i the distance to the box edge on that side; the
    total g(lam) is piecewise linear and increasing, so the smallest lam with g(lam) >= |gap| is found on
    the sorted rooms. Where even the whole box cannot close the gap, every coordinate goes to its edge.
    Coordinates with w_i = 0 are not moved.
    """
    gap = b - (w * t).sum(1)
    direction = torch.sign(w) * torch.where(gap >= 0, 1.0, -1.0).unsqueeze(1)  # +1: increase t_i
    room = torch.where(direction > 0, 1 - t, t).clamp_min(0) * (w != 0)
    aw = w.abs()
    room_s, order = room.sort(dim=1)
    aw_s = aw.gather(1, order)
    cum_wr = torch.cumsum(aw_s * room_s, dim=1)  # sum_{j <= k} |w_j| room_j
    cum_w = torch.cumsum(aw_s, dim=1)
    total_w = cum_w[:, -1:]
    g_at = cum_wr + room_s * (total_w - cum_w)  # g(room_(k)), non-decreasing in k
    need = gap.abs().unsqueeze(1)
    k = torch.searchsorted(g_at.contiguous(), need).clamp_max(room.shape[1] - 1)  # first k with g >= need
    prev_wr = torch.where(k > 0, cum_wr.gather(1, (k - 1).clamp_min(0)), torch.zeros_like(need))
    prev_w = torch.where(k > 0, cum_w.gather(1, (k - 1).clamp_min(0)), torch.zeros_like(need))
    lam = (need - prev_wr) / (total_w - prev_w).clamp_min(1e-12)
    feasible = g_at[:, -1:] >= need
    lam = torch.where(feasible, lam, room_s[:, -1:])
    return direction * torch.minimum(lam, room)


def _linf(d: Tensor) -> Tensor:
    return d.flatten(1).abs().amax(dim=1)


def fab_targeted(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    steps: int = 100,
    *,
    n_targets: int = 9,
    mask: Tensor | None = None,
    alpha_max: float = 0.1,
    eta: float = 1.05,
    beta: float = 0.9,
) -> Tensor:
    """FAB-T within the (masked) L-inf ball; deterministic (AutoAttack's fab-t uses no random start).

    Args:
        model: maps x (N, C, H, W) in [0, 1] to logits (N, K), K >= 2; run in eval mode, modes restored.
        x: (N, C, H, W) in [0, 1].  y: (N,) class indices.
        eps: L-inf radius for accepting a point, float or (N,) tensor.
        steps: iterations per target (AutoAttack: 100).
        n_targets: the highest other classes to try in turn (AutoAttack: 9); capped at K - 1.
        mask: None or broadcastable to (N, 1, H, W) in [0, 1] (0 = untouchable, bit-identical to x).

    Returns:
        x_adv (N, C, H, W) in [0, 1], detached: the closest adversarial point found within the ball, else x.

    Example::

        x_adv = fab_targeted(model, x, y, 8 / 255)
    """
    check_batch(x, y)
    check_counts(steps=steps, n_targets=n_targets)
    e, m = as_eps(eps, x), as_mask(mask, x)
    x = x.detach()
    out = x.clone()
    with eval_mode(model), torch.no_grad():
        logits = model(x)
        order = logits.argsort(dim=1)
        robust = logits.argmax(1) == y
        for rank in range(2, min(n_targets, logits.shape[1] - 1) + 2):
            todo = robust.nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            mt = None if m is None else m[todo]
            adv, dist = _fab_run(model, x[todo], y[todo], order[todo, -rank], steps, mt, alpha_max, eta, beta)
            if mt is None:  # the reference's test: the closest adversarial point lies in the ball
                ok = dist <= e[todo].view(-1)
            else:  # per-pixel radii: clip the point into the masked ball and keep it if it still fools
                adv = project_linf(adv, x[todo], radius(e[todo], mt))
                ok = torch.isfinite(dist) & (model(adv).argmax(1) != y[todo])
            idx = todo[ok]
            out[idx] = adv[ok]
            robust[idx] = False
    return out


def _fab_run(
    model: nn.Module,
    x0: Tensor,
    y: Tensor,
    target: Tensor,
    steps: int,
    m: Tensor | None,
    alpha_max: float,
    eta: float,
    beta: float,
) -> tuple[Tensor, Tensor]:
    """One targeted FAB run. Returns (closest adversarial point or x0, its L-inf distance or inf) per sample."""
    n = x0.shape[0]
    free = None if m is None else (m > 0).expand_as(x0)
    x1 = x0.clone()
    adv = x0.clone()
    best = torch.full((n,), float("inf"), device=x0.device, dtype=x0.dtype)
    flat0 = x0.flatten(1)
    for _ in range(steps):
        x_in = x1.detach().requires_grad_(True)
        with torch.enable_grad():
            z = model(x_in)
            f = z.gather(1, target[:, None]).squeeze(1) - z.gather(1, y[:, None]).squeeze(1)
            (g,) = torch.autograd.grad(f.sum(), x_in)
        if free is not None:
            g = g * free
        w = g.flatten(1)
        b = (w * x1.flatten(1)).sum(1) - f.detach()
        d = project_linf_hyperplane(torch.cat((x1.flatten(1), flat0)), torch.cat((w, w)), torch.cat((b, b)))
        d1, d2 = d[:n].view_as(x0), d[n:].view_as(x0)
        a1, a2 = _linf(d1).clamp_min(1e-8), _linf(d2).clamp_min(1e-8)
        alpha = (a1 / (a1 + a2)).clamp(0.0, alpha_max).view(-1, 1, 1, 1)
        x1 = ((x1 + eta * d1) * (1 - alpha) + (x0 + eta * d2) * alpha).clamp(0.0, 1.0)
        if free is not None:
            x1 = torch.where(free, x1, x0)
        is_adv = model(x1).argmax(1) != y
        if is_adv.any():
            dist = _linf(x1 - x0)
            closer = is_adv & (dist < best)
            adv[closer] = x1[closer]
            best[closer] = dist[closer]
            x1[is_adv] = x0[is_adv] + (x1[is_adv] - x0[is_adv]) * beta
    return adv, best


__all__ = ["fab_targeted", "project_linf_hyperplane"]
