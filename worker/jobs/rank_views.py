"""What a `rank_paintings` job keeps for the dashboard besides the ranking (issue 20): the predictor's held-out
quality and, per ranked image, the human mean, predicted map and uncertainty as small PNG blobs.

Held-out split (documented in docs/salience-model.md): of the painted training images, a seeded share
`HELD_OUT_SHARE` (at least one) is held out, once the study has `MIN_PAINTED_FOR_HELD_OUT` painted images;
the permutation is `torch.randperm` of the painted images in id order under the job's seed, so the same
paintings and seed hold out the same images. A second predictor, same config, learns from the rest and is
scored against the held-out mean human maps with CC, SIM and NSS (`sipat.predictor.metrics`, cheap at these
sizes). The ranking itself still uses the predictor trained on every painted image; the quality is that of a
predictor with slightly less data, which is what a curve over the number of paintings needs anyway.

Blobs are written before the result that names them is stored (the job returns it afterwards). Maps are
8-bit grayscale PNGs at the training size, 255 = 1; the uncertainty (MC-dropout per-pixel std, at most 0.5)
is scaled by the largest std among the shown images, recorded as `uncertainty_scale`, so brighter means
less sure on one scale across the panel.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from torch import Tensor

from backend.storage import BlobStore
from sipat.predictor import PredictorConfig, evaluate_maps, train_predictor
from sipat.predictor.model import mc_dropout, predict_maps

HELD_OUT_SHARE = 0.2
MIN_PAINTED_FOR_HELD_OUT = 5
MEASURES = ("cc", "sim", "nss")


def held_out_split(painted_rows: list[int], seed: int) -> tuple[list[int], list[int]]:
    """(fit rows, held-out rows), both sorted, of the painted rows (module docstring); no hold-out below the
    minimum."""
    n = len(painted_rows)
    if n < MIN_PAINTED_FOR_HELD_OUT:
        return sorted(painted_rows), []
    k = max(1, round(HELD_OUT_SHARE * n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    held = sorted(painted_rows[i] for i in perm[:k])
    fit = sorted(painted_rows[i] for i in perm[k:])
    return fit, held


def held_out_quality(
    x: Tensor,
    human: Tensor,
    size: tuple[int, int],
    painted_rows: list[int],
    paintings: list[int],
    cfg: PredictorConfig,
    device: str | torch.device,
) -> dict[str, Any]:
    """The predictor's quality on held-out painted images. `x`, `human`: padded (N, C, H', W'), (N, 1, H', W')
    (NaN = unpainted); `size`: the unpadded (H, W); `paintings[row]`: paintings of that image.

    Returns {"paintings", "images", "held_out", "cc", "sim", "nss"}: paintings and images the predictor
    learnt from; measures None when nothing could be held out."""
    fit, held = held_out_split(painted_rows, cfg.seed)
    out: dict[str, Any] = {
        "paintings": sum(paintings[r] for r in fit),
        "images": len(fit),
        "held_out": len(held),
        **dict.fromkeys(MEASURES),
    }
    if not held:
        return out
    masked = human.clone()
    masked[held] = float("nan")
    model = train_predictor(x, masked, cfg, device=device).model
    h, w = size
    pred = predict_maps(model, x[held].to(next(model.parameters()).device)).cpu()[..., :h, :w]
    scores = evaluate_maps(pred, human[held][..., :h, :w].cpu())
    out.update({m: round(scores[m], 6) for m in MEASURES})
    return out


def png(map01: Tensor) -> bytes:
    """(H, W) or (1, H, W) in [0, 1] as an 8-bit grayscale PNG."""
    a = (map01.detach().squeeze(0).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(a, mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def map_blobs(
    storage: BlobStore,
    model: torch.nn.Module,
    x: Tensor,
    rows: list[int],
    size: tuple[int, int],
    human_means: dict[int, Tensor],
    *,
    samples: int,
    seed: int,
) -> tuple[list[dict[str, str | None]], float]:
    """Per row of `rows` (ranked images): sha256 of the predicted map, the uncertainty and the human mean (if
    `human_means` has the row, else None), all put in `storage`; and the uncertainty's scale."""
    if not rows:
        return [], 0.0
    dev = next(model.parameters()).device
    h, w = size
    xs = x[rows].to(dev)
    pred = predict_maps(model, xs).cpu()[..., :h, :w]
    _mean, std = mc_dropout(model, xs, samples=samples, seed=seed)
    std = std.cpu()[..., :h, :w]
    scale = float(std.max()) if float(std.max()) > 0 else 1.0
    out: list[dict[str, str | None]] = []
    for k, row in enumerate(rows):
        human = human_means.get(row)
        out.append(
            {
                "predicted_sha256": storage.put(png(pred[k])),
                "uncertainty_sha256": storage.put(png(std[k] / scale)),
                "human_sha256": storage.put(png(human)) if human is not None else None,
            }
        )
    return out, round(scale, 6)


__all__ = ["HELD_OUT_SHARE", "MIN_PAINTED_FOR_HELD_OUT", "held_out_quality", "held_out_split", "map_blobs", "png"]
