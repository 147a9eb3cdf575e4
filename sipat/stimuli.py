"""From an attacked float image to a stored stimulus: 8 bits inside the eps-ball, its norms, lossless PNG.

Stimuli are stored as *uncompressed* PNG (`stimulus_png`): a compressed PNG's size follows the image's
entropy, and adversarial noise adds entropy, so the file size alone told a participant (or a script reading
the network tab) which trials were perturbed: on the digits a clean stimulus compressed to a fraction of a
perturbed one, a perfect separation. Without compression the size depends only on width, height and channels,
the same for every stimulus of a set (clean, perturbed, catch). The price is the raw pixel size (150 kB at
224 x 224 RGB, about what a perturbed image compresses to anyway).

Shared by the worker's stimulus generation and `benchmarks/stimuli.py`, so that what is benchmarked is what
participants see; here rather than in the worker because none of it needs the database.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image as PILImage
from torch import Tensor


def quantise(x_u8: Tensor, x_adv: Tensor, eps: float, norm: str) -> Tensor:
    """8-bit version of `x_adv` that stays in the eps-ball of the 8-bit clean image `x_u8` (int16 tensors).

    L-inf rounds each pixel's change and clips it to floor(255 eps) levels; L2 truncates towards the clean
    pixel, which can only shrink the perturbation's norm.
    """
    delta = x_adv.double() * 255.0 - x_u8.double()
    if norm == "linf":
        radius = math.floor(eps * 255 + 1e-6)
        d = delta.round().clamp(-radius, radius)
    else:
        d = delta.trunc()
    return (x_u8 + d.to(torch.int16)).clamp(0, 255)


def norms(x_u8: Tensor, q_u8: Tensor) -> tuple[list[float], list[float]]:
    """Per image, the L-inf and L2 norms of the stored (quantised) perturbation, in [0, 1] units."""
    d = (q_u8 - x_u8).double().flatten(1) / 255.0
    return d.abs().amax(dim=1).tolist(), d.norm(dim=1).tolist()


def to_png(u8: np.ndarray, *, compress: bool = True) -> bytes:
    """Lossless PNG of a uint8 (H, W, 1|3) array (deterministic bytes for the same pixels).

    `compress=False` stores the pixels in deflate's uncompressed blocks: the length then depends only on the
    array's shape (see `stimulus_png`).
    """
    img = PILImage.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8, mode="L" if u8.shape[-1] == 1 else "RGB")
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=-1 if compress else 0)
    return out.getvalue()


def stimulus_png(u8: np.ndarray) -> bytes:
    """A stimulus as an uncompressed PNG, so that its byte length is the same for every image of that shape and
    does not tell clean from perturbed (see the module docstring)."""
    return to_png(u8, compress=False)
