"""Salience maps and the perturbation masks made from them.

A salience map s is (N, 1, H, W) in [0, 1], 1 = meaningful to the annotator. The perturbation mask that
the attacks take is the share of the radius each pixel may use:

    binary (the authors' SIP-AT):   m = (s < threshold), threshold 0.5
    soft ("budget" extension):      m = 1 - s

Images without a map carry NaN (see sipat.data); their mask is 1, i.e. ordinary adversarial training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check_map(s: Tensor, name: str = "salience") -> None:
    if not isinstance(s, Tensor):
        raise TypeError(f"{name} must be a tensor; got {type(s).__name__}")
    if s.dim() != 4 or s.shape[1] != 1:
        raise ValueError(f"{name} must have shape (N, 1, H, W); got {tuple(s.shape)}")
    finite = s[~torch.isnan(s)]
    if finite.numel() and (finite.min() < 0 or finite.max() > 1):
        raise ValueError(f"{name} values must lie in [0, 1] (1 = salient)")


def to_mask(s: Tensor, threshold: float | None = 0.5) -> Tensor:
    """Perturbation mask from a salience map: binary `s < threshold`, or soft `1 - s` for threshold=None.

    Args:
        s: (N, 1, H, W) in [0, 1]; a sample that is all NaN has no map and gets mask 1 (perturbed everywhere).
        threshold: in (0, 1], or None for the soft mask.

    Returns:
        (N, 1, H, W) in [0, 1], s's dtype.
    """
    _check_map(s)
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1] or None for a soft mask; got {threshold}")
    missing = torch.isnan(s)
    m = (s < threshold).to(s.dtype) if threshold is not None else 1.0 - s
    return torch.where(missing, torch.ones_like(s), m)


def has_salience(s: Tensor) -> Tensor:
    """(N,) bool: which samples of an (N, 1, H, W) batch carry a salience map (False where all NaN)."""
    if not isinstance(s, Tensor) or s.dim() != 4:
        raise ValueError(f"has_salience expects an (N, 1, H, W) batch, got {getattr(s, 'shape', type(s))}")
    return ~torch.isnan(s).flatten(1).all(dim=1)


def mean_of_annotators(maps: Sequence[Tensor] | Tensor) -> Tensor:
    """Average several annotators' maps of one image: (K, 1, H, W) or a list of (1, H, W) -> (1, 1, H, W)."""
    stacked: Tensor | None
    if isinstance(maps, Tensor):
        stacked = maps
    else:
        stacked = torch.stack([torch.as_tensor(m).reshape(1, *m.shape[-2:]) for m in maps]) if maps else None
    if stacked is None or stacked.shape[0] == 0:
        raise ValueError("mean_of_annotators needs at least one map")
    if stacked.dim() == 3:
        stacked = stacked.unsqueeze(1)
    _check_map(stacked, "annotator maps")
    return stacked.float().mean(dim=0, keepdim=True)


def boxes_to_map(
    boxes: Sequence[Sequence[float]], height: int, width: int, *, native: tuple[int, int] | None = None
) -> Tensor:
    """Bounding boxes [x, y, w, h] -> (1, 1, H, W) map: 1 on every pixel a box touches, 0 elsewhere.

    Args:
        boxes: in pixels of the `native` (W, H) image (default: the output grid itself). A box of zero width
            or height marks nothing (the authors write [[0, 0, 0, 0]] for "no salient region").
        height, width: the output grid; boxes are scaled onto it, and partly covered edge pixels count, so
            the protected region never shrinks when resizing.
    """
    nw, nh = native if native is not None else (width, height)
    sx, sy = width / nw, height / nh
    s = torch.zeros(1, 1, height, width)
    for box in boxes:
        if len(box) != 4:
            raise ValueError(f"a bounding box is [x, y, w, h]; got {list(box)}")
        x, y, w, h = (float(v) for v in box)
        if w < 0 or h < 0 or x < -1e-6 or y < -1e-6 or x + w > nw + 1e-6 or y + h > nh + 1e-6:
            raise ValueError(f"bounding box {list(box)} (x, y, w, h) lies outside the {nw}x{nh} image")
        if w == 0 or h == 0:
            continue
        c0, c1 = math.floor(x * sx + 1e-6), math.ceil((x + w) * sx - 1e-6)
        r0, r1 = math.floor(y * sy + 1e-6), math.ceil((y + h) * sy - 1e-6)
        s[..., max(r0, 0) : min(r1, height), max(c0, 0) : min(c1, width)] = 1.0
    return s


def resize_to(s: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize (N, 1, h, w) maps to (N, 1, H, W) by `sipat.imaging.resize_map` (area average when shrinking,
    so thin salient strokes are not aliased away; bilinear when enlarging), staying in [0, 1]."""
    from sipat.imaging import resize_map

    _check_map(s)
    return resize_map(s, size)


def normalise_per_image(s: Tensor) -> Tensor:
    """Min-max scale each (1, H, W) map of a batch to [0, 1]; a constant map becomes 0."""
    flat = s.flatten(1)
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    span = (hi - lo).view(-1, 1, 1, 1)
    return torch.where(span > 0, (s - lo.view(-1, 1, 1, 1)) / span.clamp_min(1e-12), torch.zeros_like(s))


def gradcam(model: nn.Module, x: Tensor, target: Tensor, layer: nn.Module, *, batch_size: int = 64) -> Tensor:
    """Grad-CAM salience of a reference model, for images without human maps.

    Captum's `LayerGradCam` at `layer` (the last convolutional layer; `sipat.models.gradcam_layer`),
    ReLU'd, upsampled bilinearly to the image size and min-max normalised per image to [0, 1].

    Args:
        model: maps x (N, C, H, W) in [0, 1] to logits; run in eval mode, its modes restored after.
        x: (N, C, H, W) in [0, 1].  target: (N,) the class to explain (usually the label).

    Returns:
        (N, 1, H, W) in [0, 1], 1 = most salient.
    """
    from captum.attr import LayerGradCam  # imported here: captum is slow to import and needed only here

    from sipat.attacks._core import eval_mode

    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got {tuple(x.shape)}")
    cam = LayerGradCam(model, layer)
    out = []
    with eval_mode(model), torch.enable_grad():
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size].detach().clone().requires_grad_(True)
            a = cam.attribute(xb, target=target[i : i + batch_size], relu_attributions=True)
            a = a.detach().sum(dim=1, keepdim=True)
            out.append(F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False))
    return normalise_per_image(torch.cat(out).clamp_min(0))
