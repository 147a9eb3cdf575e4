"""Painted masks as numbers (and as PNG bytes): decoding and encoding, binarisation, the annotators' mean map,
agreement (IoU), COCO run-length encoding.

Masks come as 8-bit grayscale arrays `(H, W)` (255 = painted, as stored by the participant protocol) or as
floats in [0, 1]; a pixel counts as painted when its value reaches half the range (`threshold` 0.5, the same
rule that turns a salience map into SIP-AT's mask).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image as PILImage


def decode_map(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """Grayscale PNG bytes -> `(H, W)` float64 in [0, 1], resized (bilinear) to `size` = (width, height)."""
    with PILImage.open(io.BytesIO(data)) as img:
        gray = img.getchannel("A") if img.mode in ("LA", "RGBA") else img.convert("L")
        if size is not None and gray.size != size:
            gray = gray.resize(size, PILImage.Resampling.BILINEAR)
        return np.asarray(gray, dtype=np.float64) / 255.0


def encode_png(array: np.ndarray) -> bytes:
    """`(H, W)` or `(H, W, 3)` float in [0, 1] (or uint8) -> PNG bytes."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    PILImage.fromarray(a, "L" if a.ndim == 2 else "RGB").save(out, format="PNG")
    return out.getvalue()


def as_unit(mask: np.ndarray) -> np.ndarray:
    """`mask` as float64 in [0, 1]: integer arrays are divided by 255, bool arrays become 0/1."""
    a = np.asarray(mask)
    if a.dtype == bool:
        return a.astype(np.float64)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float64) / 255.0
    return np.clip(a.astype(np.float64), 0.0, 1.0)


def binarize(mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Painted pixels (`as_unit(mask) >= threshold`) as a bool array of the same shape."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1]; got {threshold}")
    return as_unit(mask) >= threshold


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two binary masks of one shape; two empty masks agree perfectly (1.0)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}; compare masks of the same image size")
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def mean_pairwise_iou(masks: Sequence[np.ndarray], threshold: float = 0.5) -> float | None:
    """Inter-annotator agreement: the mean IoU over all pairs of the binarised masks; None for fewer than 2."""
    binary = [binarize(m, threshold) for m in masks]
    pairs = list(itertools.combinations(binary, 2))
    if not pairs:
        return None
    return float(np.mean([iou(a, b) for a, b in pairs]))


def mean_map(masks: Sequence[np.ndarray]) -> np.ndarray:
    """The annotators' mean salience map, float64 `(H, W)` in [0, 1] (the human mean map of the method)."""
    if not masks:
        raise ValueError("mean_map needs at least one mask")
    units = [as_unit(m) for m in masks]
    shapes = {u.shape for u in units}
    if len(shapes) != 1:
        raise ValueError(f"masks differ in shape: {sorted(shapes)}; resize them to one size first")
    return np.mean(np.stack(units), axis=0)


# --- COCO run-length encoding ---------------------------------------------------------------------------------


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE of a binary mask `(H, W)`: `{"size": [H, W], "counts": [...]}`.

    The mask is read in column-major (Fortran) order, as pycocotools does; `counts` alternate runs of 0s and
    1s and always start with a run of 0s (of length 0 when the first pixel is set). Their sum is H * W.
    """
    a = np.asarray(mask)
    if a.ndim != 2:
        raise ValueError(f"rle_encode needs a 2-D mask (H, W); got shape {a.shape}")
    flat = a.astype(bool).ravel(order="F")
    if flat.size == 0:
        return {"size": [int(a.shape[0]), int(a.shape[1])], "counts": []}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [int(a.shape[0]), int(a.shape[1])], "counts": [int(c) for c in counts]}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """The bool mask `(H, W)` of an uncompressed COCO RLE (the inverse of `rle_encode`)."""
    height, width = (int(v) for v in rle["size"])
    counts = [int(c) for c in rle["counts"]]
    if sum(counts) != height * width:
        raise ValueError(f"RLE counts sum to {sum(counts)}, not {height} * {width}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((height, width), order="F")


def bbox(mask: np.ndarray) -> list[float]:
    """COCO box `[x, y, width, height]` (pixels) around the set pixels; zeros for an empty mask."""
    a = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    if rows.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]
