"""Training the salience predictor on (image, mean human map) pairs: seeded, resumable, with progress.

Loss: per-pixel binary cross-entropy between the predicted logits and the (soft) mean human map, on the
annotated images only: images whose map is all NaN (the `sipat.data` contract for "nobody painted it")
take no part, so a pool where k % is painted trains on exactly that k %. BCE with soft targets is
minimised by predicting the mean itself, which is what the SIP-AT mask thresholds later.

Augmentation: a horizontal flip that moves image and map together (seeded).
Progress: `sipat.training.Progress` after every batch, as classifier training reports it; `accuracy` is the
pixel agreement of the thresholded prediction with the thresholded human map (threshold 0.5).
Resume: with `checkpoint=path`, the weights, optimiser and RNG states are written atomically after each
epoch; a later call with the same config and data size continues after the last finished epoch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from sipat.predictor.model import SaliencyNet
from sipat.salience import has_salience
from sipat.training import Progress, pick_device

CHECKPOINT_KIND = "sipat-salience-predictor"


@dataclass(frozen=True)
class PredictorConfig:
    """Everything that decides a predictor training run; stored in its checkpoint."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    dropout: float = 0.2
    flip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1; got {self.epochs}, {self.batch_size}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0; got {self.lr}, {self.weight_decay}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def epochs_for(steps: int, images: int, batch_size: int = 32) -> int:
        """Epochs that give about `steps` optimiser steps on `images` painted images (at least one): a fixed
        budget of steps, so that a predictor learnt from a few paintings is not starved of updates."""
        return max(1, math.ceil(steps * batch_size / max(images, 1)))


@dataclass
class PredictorResult:
    model: SaliencyNet
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, accuracy, seconds
    trained_on: int = 0  # annotated images used


def annotated(maps: Tensor) -> Tensor:
    """(N,) bool: the images that carry a human map (not all NaN)."""
    return has_salience(maps)


def _check_pairs(images: Tensor, maps: Tensor) -> None:
    if images.dim() != 4 or maps.dim() != 4 or maps.shape[1] != 1:
        raise ValueError(
            f"need images (N, C, H, W) and maps (N, 1, H, W); got {tuple(images.shape)}, {tuple(maps.shape)}"
        )
    if images.shape[0] != maps.shape[0] or images.shape[-2:] != maps.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and maps {tuple(maps.shape)} must match in N, H and W")


def masked_loss(logits: Tensor, maps: Tensor) -> Tensor:
    """Mean per-pixel BCE over the images of the batch that carry a map; 0 (with a graph) if none does."""
    keep = has_salience(maps)
    if not keep.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[keep], maps[keep])


def train_predictor(
    images: Tensor,
    maps: Tensor,
    cfg: PredictorConfig = PredictorConfig(),
    *,
    device: str | torch.device | None = None,
    progress: Callable[[Progress], None] | None = None,
    checkpoint: str | Path | None = None,
) -> PredictorResult:
    """Train a `SaliencyNet` on the annotated images of (images, maps).

    Args:
        images: (N, C, H, W) in [0, 1].
        maps: (N, 1, H, W) mean human maps in [0, 1], 1 = salient; an image without one is all NaN.
        cfg: hyper-parameters and seed; the same inputs and cfg give the same weights (on the CPU).
        device: `cuda` when present by default.
        progress: called after every batch; raising from it stops training (how a worker cancels).
        checkpoint: a file to write after each epoch and to resume from.
    """
    _check_pairs(images, maps)
    keep = annotated(maps)
    if not keep.any():
        raise ValueError("no image carries a human map; paint some (or pass maps that are not all NaN)")
    x_all, s_all = images[keep].float(), maps[keep].float()
    n = x_all.shape[0]
    dev = pick_device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        model = SaliencyNet(images.shape[1], width=cfg.width, dropout=cfg.dropout).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        result = PredictorResult(model=model, trained_on=n)
        start = 0
        ckpt_path = Path(checkpoint) if checkpoint is not None else None
        if ckpt_path is not None and ckpt_path.is_file():
            state = _read_resume(ckpt_path, cfg, n)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["rng"]["data"])
            torch.set_rng_state(state["rng"]["torch"])
            start, result.history = state["epoch"], list(state["history"])
        x_all, s_all = x_all.to(dev), s_all.to(dev)
        steps = (n + cfg.batch_size - 1) // cfg.batch_size
        t0 = time.perf_counter()
        for epoch in range(start, cfg.epochs):
            model.train()
            t_epoch, loss_sum, agree, seen = time.perf_counter(), 0.0, 0.0, 0
            order = torch.randperm(n, generator=gen)
            flips = torch.rand(n, generator=gen) < 0.5 if cfg.flip else torch.zeros(n, dtype=torch.bool)
            for step, idx in enumerate(order.split(cfg.batch_size), start=1):
                x, s = x_all[idx], s_all[idx]
                f = flips[idx].to(dev).view(-1, 1, 1, 1)
                x, s = torch.where(f, x.flip(-1), x), torch.where(f, s.flip(-1), s)
                logits = model(x)
                loss = masked_loss(logits, s)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"predictor loss became {loss.item()} at epoch {epoch + 1}; lower lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                b = idx.numel()
                loss_sum += loss.item() * b
                agree += ((logits.detach() > 0) == (s >= 0.5)).float().mean().item() * b
                seen += b
                if progress is not None:
                    progress(
                        Progress(
                            epoch, step, steps, cfg.epochs, loss_sum / seen, agree / seen, time.perf_counter() - t0
                        )
                    )
            result.history.append(
                {
                    "epoch": epoch + 1,
                    "loss": loss_sum / seen,
                    "accuracy": agree / seen,
                    "seconds": time.perf_counter() - t_epoch,
                }
            )
            if ckpt_path is not None:
                _write_resume(ckpt_path, model, opt, cfg, n, epoch + 1, gen, result.history)
    model.eval()
    return result


def _write_resume(
    path: Path,
    model: SaliencyNet,
    opt: torch.optim.Optimizer,
    cfg: PredictorConfig,
    n: int,
    epoch: int,
    gen: torch.Generator,
    history: list[dict[str, float]],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "kind": CHECKPOINT_KIND,
        "config": cfg.to_dict(),
        "net": model.config(),
        "n": n,
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "rng": {"data": gen.get_state(), "torch": torch.get_rng_state()},
        "history": history,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def _read_resume(path: Path, cfg: PredictorConfig, n: int) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is not a salience-predictor checkpoint; pass another path to start anew")
    if state["config"] != cfg.to_dict() or state["n"] != n:
        raise ValueError(
            f"{path} holds a run with another config or another number of annotated images "
            f"({state['n']} vs {n}); remove it or pass another checkpoint path to start anew"
        )
    return state


def load_predictor(path: str | Path, map_location: str | torch.device = "cpu") -> SaliencyNet:
    """The trained `SaliencyNet` of a checkpoint written by `train_predictor`, in eval mode."""
    state = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is not a salience-predictor checkpoint")
    model = SaliencyNet(**state["net"])
    model.load_state_dict(state["model"])
    return model.eval()


__all__ = ["PredictorConfig", "PredictorResult", "annotated", "load_predictor", "masked_loss", "train_predictor"]
