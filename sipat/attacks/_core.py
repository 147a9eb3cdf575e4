"""The small core every attack shares: argument checks, the per-pixel radius, projection, input gradients.

Conventions (all attacks):
    x      (N, C, H, W) float, values in [0, 1]; normalisation lives inside the model.
    y      (N,) int64 class indices.
    eps    float or (N,) tensor: the L-inf (or L2) radius per sample, in the units of x.
    mask   None, or a tensor broadcastable to (N, 1, H, W) / (N, C, H, W) with values in [0, 1]:
           the share of the radius each pixel may use. 1 = free, 0 = untouchable. A binary mask is
           the SIP-AT attack of Redgrave & Czajka (2025); a soft one grades the budget per pixel.

Nothing here keeps state between calls or touches the global RNG; randomness comes from an explicit
`torch.Generator` on x's device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LossFn = Callable[[Tensor, Tensor], Tensor]
"""(logits (N, K), y (N,)) -> per-sample loss (N,) that the attack maximises."""


def check_batch(x: Tensor, y: Tensor) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError("x and y must be torch tensors")
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor in [0, 1]; got dtype {x.dtype}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape (N,) = ({x.shape[0]},); got {tuple(y.shape)}")
    if y.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"y must hold integer class indices; got dtype {y.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("x must lie in [0, 1]; normalise inside the model (sipat.models.NormalizedModel)")


def check_counts(**counts: object) -> None:
    """Each named count (steps, targets, queries) is an integer >= 1; the error names the first that is not."""
    for name, n in counts.items():
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {n!r}")


def as_eps(eps: float | Tensor, x: Tensor, name: str = "eps") -> Tensor:
    """A float or an (N,) tensor of radii, as an (N, 1, 1, 1) tensor on x's device and dtype."""
    n = x.shape[0]
    if isinstance(eps, Tensor):
        if eps.dim() == 0:
            eps = eps.expand(n)
        if eps.shape != (n,):
            raise ValueError(f"{name} must be a float or a tensor of shape (N,) = ({n},); got {tuple(eps.shape)}")
        t = eps.to(device=x.device, dtype=x.dtype)
    elif isinstance(eps, (int, float)):
        t = torch.full((n,), float(eps), device=x.device, dtype=x.dtype)
    else:
        raise TypeError(f"{name} must be a float or a tensor; got {type(eps).__name__}")
    if not torch.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    return t.view(n, 1, 1, 1)


def as_mask(mask: Tensor | None, x: Tensor) -> Tensor | None:
    """Validate a perturbation mask and bring it to x's device and dtype, broadcast to (N, 1|C, H, W)."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a tensor or None; got {type(mask).__name__}")
    n, c, h, w = x.shape
    m = mask.to(device=x.device, dtype=x.dtype)
    if m.dim() == 3:  # (N, H, W) -> (N, 1, H, W)
        m = m.unsqueeze(1)
    if m.dim() != 4 or m.shape[1] not in (1, c) or m.shape[2:] != (h, w) or m.shape[0] not in (1, n):
        raise ValueError(
            f"mask must be broadcastable to (N, 1, H, W) = ({n}, 1, {h}, {w}) or (N, C, H, W); "
            f"got {tuple(mask.shape)}. Resize salience maps to the image first (sipat.salience.resize_to)"
        )
    if torch.isnan(m).any() or (m < 0).any() or (m > 1).any():
        raise ValueError("mask values must lie in [0, 1] (1 = free to perturb, 0 = untouchable)")
    return m.expand(n, m.shape[1], h, w)


def radius(eps: Tensor, mask: Tensor | None) -> Tensor:
    """Per-pixel L-inf radius eps * mask, (N, 1|C, H, W) (or (N, 1, 1, 1) without a mask)."""
    return eps if mask is None else eps * mask


def project_linf(x_adv: Tensor, x: Tensor, r: Tensor) -> Tensor:
    """Nearest point to x_adv with |x_adv - x| <= r per pixel, inside [0, 1].

    Written as min(max(.)) rather than x + clamp(x_adv - x) so that pixels with r == 0 come back as
    exactly x (bit-identical), not as x + (x_adv - x) rounded.
    """
    return torch.minimum(torch.maximum(x_adv, x - r), x + r).clamp_(0.0, 1.0)


def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits.float(), y, reduction="none")


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of Logits Ratio (Croce & Hein, 2020): scale-invariant margin loss; needs >= 3 classes."""
    z = logits.float()
    if z.shape[1] < 3:
        raise ValueError("the DLR loss needs at least 3 classes; use loss='ce'")
    z_sorted, _ = z.sort(dim=1)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    top_is_y = (z.argmax(dim=1) == y).to(z.dtype)
    z_other = z_sorted[:, -2] * top_is_y + z_sorted[:, -1] * (1.0 - top_is_y)
    return -(z_y - z_other) / (z_sorted[:, -1] - z_sorted[:, -3] + 1e-12)


def input_grad(model: nn.Module, x_adv: Tensor, y: Tensor, loss_fn: LossFn) -> tuple[Tensor, Tensor, Tensor]:
    """Logits, per-sample loss and d(sum of loss)/d(x_adv) at x_adv.

    `torch.autograd.grad` w.r.t. the input alone: parameter `.grad` is never written, and the backward
    pass skips the weight gradients, so an attack step costs less than a training step.
    """
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        loss = loss_fn(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
    return logits.detach(), loss.detach(), grad


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the attack with every module in eval mode and give each its own previous mode back."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, was_training in modes:
            m.training = was_training


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are one; `cuda` (the current one) matches `cuda:0`, as torch itself treats them."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def uniform_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U(-1, 1) noise of x's shape from the given generator (which must live on x's device)."""
    if generator is not None and not same_device(generator.device, x.device):
        raise ValueError(
            f"generator is on {generator.device} but x is on {x.device}; "
            f"create it with torch.Generator(device=x.device)"
        )
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype).mul_(2).sub_(1)
