"""Server-side PNGs of the dashboard (Pillow + numpy): salience overlays, amplified perturbations, mean maps.

Arrays: images are float64 `(H, W, 3)` in [0, 1]; maps are float64 `(H, W)` in [0, 1] (1 = salient).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage

#: Colour stops of the heat map (value -> RGB in [0, 1]): dark blue, magenta, orange, yellow (like "plasma").
_STOPS = np.array([0.0, 0.35, 0.7, 1.0])
_COLOURS = np.array([[0.05, 0.03, 0.45], [0.8, 0.15, 0.55], [0.98, 0.55, 0.1], [0.95, 0.95, 0.15]])
#: The edge of the salient region (s >= 0.5) is drawn in this colour, visible on warm and on dark images.
OUTLINE = np.array([0.2, 0.95, 1.0])


def decode_rgb(data: bytes) -> np.ndarray:
    """Image file bytes -> `(H, W, 3)` float64 in [0, 1] (grey and palette images are expanded to RGB)."""
    with PILImage.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map `(H, W)` in [0, 1] resized (bilinear) to `size` = (width, height)."""
    img = PILImage.fromarray(np.asarray(values, dtype=np.float32), "F").resize(size, PILImage.Resampling.BILINEAR)
    return np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)


def heat(values: np.ndarray) -> np.ndarray:
    """A map `(H, W)` in [0, 1] coloured with the heat scale -> `(H, W, 3)`."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return np.stack([np.interp(v, _STOPS, _COLOURS[:, c]) for c in range(3)], axis=-1)


def region_edge(salience: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Pixels of the salient region (`salience >= threshold`) that touch a pixel outside it (4-neighbours);
    the image's border does not count as outside."""
    region = np.asarray(salience) >= threshold
    padded = np.pad(region, 1, mode="edge")
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return region & ~inner


def overlay(image: np.ndarray, salience: np.ndarray, *, opacity: float = 0.65, outline: bool = True) -> np.ndarray:
    """`image` with the heat colour of `salience` laid over it, each pixel weighted by its salience (so
    pixels of salience 0 show the image unchanged, salience 1 is `opacity` heat colour); with `outline`, the
    edge of the region the SIP-AT mask spares (s >= 0.5) in `OUTLINE` colour."""
    if image.shape[:2] != salience.shape:
        raise ValueError(f"image {image.shape[:2]} and map {salience.shape} differ in size; resize the map first")
    w = (opacity * np.clip(salience, 0.0, 1.0))[..., None]
    out = (1 - w) * image + w * heat(salience)
    if outline:
        out[region_edge(salience)] = OUTLINE
    return out


def signed_difference(clean: np.ndarray, perturbed: np.ndarray) -> np.ndarray:
    """x_adv - x mapped to [0, 1] with 0.5 = unchanged and the largest change at 0 or 1: shows the sign
    pattern that |x_adv - x| hides when an L-inf attack moves every pixel by the full eps."""
    diff = perturbed - clean
    peak = float(np.abs(diff).max()) if diff.size else 0.0
    return 0.5 + (diff / (2 * peak) if peak > 0 else diff)


def amplified_difference(clean: np.ndarray, perturbed: np.ndarray) -> tuple[np.ndarray, float]:
    """|perturbed - clean| per pixel and channel, scaled so that its largest value is 1 (full range); and that
    largest value in [0, 1] pixel units (the achieved L-inf norm). An identical pair gives a black image."""
    if clean.shape != perturbed.shape:
        raise ValueError(f"the clean {clean.shape} and perturbed {perturbed.shape} images differ in size")
    diff = np.abs(perturbed - clean)
    peak = float(diff.max()) if diff.size else 0.0
    return (diff / peak if peak > 0 else diff), peak
