"""The one resize path for images and salience maps (CLI datasets, worker jobs, Grad-CAM and human maps).

Why one module: the same dataset used to train on bilinear pixels through ``sipat train`` and on bicubic ones
through a web job, and maps were downscaled by plain bilinear interpolation, which aliases thin strokes away.
A model trained on one resampling and attacked on another is measured on a shifted distribution, so every
caller goes through these functions:

- images: bicubic with antialiasing (``F.interpolate(mode="bicubic", antialias=True)``), clamped to [0, 1]
  because bicubic overshoots at edges;
- maps: area averaging when shrinking (the share of each output pixel the salient region covers, the
  antialiased choice for a coverage map), bilinear when enlarging; always in [0, 1]. An all-NaN map (no map,
  see `sipat.data`) stays all NaN.

Sizes are ``(H, W)`` in pixels. Tensors are float in [0, 1]: images ``(C, H, W)`` or ``(N, C, H, W)``, maps
``(1, H, W)`` or ``(N, 1, H, W)``. PIL images are converted to such tensors first (`pil_to_tensor`), so a PIL
source and a tensor source resample identically.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

__all__ = ["pil_to_tensor", "resize_image", "resize_map"]


def _size(size: tuple[int, int] | int) -> tuple[int, int]:
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if hw[0] < 1 or hw[1] < 1:
        raise ValueError(f"size must be positive (H, W) pixels; got {size}")
    return hw


def _batched(x: Tensor, what: str) -> tuple[Tensor, bool]:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what} must be a tensor; got {type(x).__name__}")
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() == 4:
        return x, False
    raise ValueError(f"{what} must be (C, H, W) or (N, C, H, W); got shape {tuple(x.shape)}")


def resize_image(x: Tensor, size: tuple[int, int] | int) -> Tensor:
    """Bicubic, antialiased resize of images in [0, 1] to ``size`` = (H, W); the result is clamped to [0, 1].

    Args:
        x: (C, H, W) or (N, C, H, W), float (uint8 is read as 0..255 and scaled to [0, 1]).
        size: (H, W) or one int for a square.

    Returns:
        float32 of the same rank; ``x`` itself (as float) when the size already matches.
    """
    hw = _size(size)
    xb, squeeze = _batched(x, "image")
    xb = xb.float() / 255.0 if xb.dtype == torch.uint8 else xb.float()
    if tuple(xb.shape[-2:]) != hw:
        xb = F.interpolate(xb, size=hw, mode="bicubic", align_corners=False, antialias=True).clamp_(0, 1)
    return xb[0] if squeeze else xb


def resize_map(s: Tensor, size: tuple[int, int] | int) -> Tensor:
    """Resize salience maps in [0, 1] to ``size`` = (H, W): area average when shrinking, bilinear when enlarging.

    Per axis the choice follows the scale (area needs an integer-free shrink, so a mixed shrink/enlarge is
    done in two passes). All-NaN maps (no map) stay all NaN; any other NaN is an error.

    Args:
        s: (1, H, W) or (N, 1, H, W).
        size: (H, W) or one int for a square.

    Returns:
        the same rank, s's floating dtype, values in [0, 1].
    """
    hw = _size(size)
    sb, squeeze = _batched(s, "salience map")
    if sb.shape[1] != 1:
        raise ValueError(f"a salience map has one channel; got shape {tuple(s.shape)}")
    if tuple(sb.shape[-2:]) == hw:
        return s
    dtype = sb.dtype if sb.is_floating_point() else torch.float32
    nan = torch.isnan(sb)
    missing = nan.flatten(1).all(dim=1)
    if (nan.flatten(1).any(dim=1) & ~missing).any():
        raise ValueError("a salience map is partly NaN; NaN marks a missing map and must fill the whole map")
    out = torch.where(nan, torch.zeros_like(sb), sb).float()
    for target in ((hw[0], int(out.shape[-1])), hw):  # height first, then width: each pass shrinks or enlarges one axis
        if tuple(out.shape[-2:]) == target:
            continue
        shrink = target[0] < out.shape[-2] or target[1] < out.shape[-1]
        mode = "area" if shrink else "bilinear"
        kwargs = {} if mode == "area" else {"align_corners": False}
        out = F.interpolate(out, size=target, mode=mode, **kwargs)
    out = out.clamp_(0, 1).to(dtype)
    if missing.any():
        out[missing] = float("nan")
    return out[0] if squeeze else out


def pil_to_tensor(img: Image.Image, *, channels: int, size: tuple[int, int] | int | None = None) -> Tensor:
    """A PIL image as (C, H, W) float32 in [0, 1] (C = 1 grey, 3 RGB), resized by `resize_image` if asked.

    Use this for maps too (``channels=1``) and pass the result to `resize_map` instead of ``size`` here.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels}")
    arr = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    x = torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], channels).permute(2, 0, 1)
    x = x.float() / 255.0
    return x if size is None else resize_image(x, size)
