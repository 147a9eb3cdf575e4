"""A small dense salience predictor: image -> map of what a person would paint, with MC-dropout uncertainty.

Why this shape: human maps on the built-in sets are blob-like regions at the image's resolution, so a light
U-Net (two stride-2 stages down, two up, skip connections) is enough, trains in CPU seconds, and keeps the
full resolution the mask threshold needs. GroupNorm instead of BatchNorm makes a prediction independent of
which other images share its batch, and lets MC-dropout switch on dropout only (no batch statistics to
freeze). Dropout2d sits in the bottleneck and decoder, where it acts on the features that decide the map.

Shapes: x (N, C, H, W) in [0, 1]; logits and maps (N, 1, H, W); maps in [0, 1], 1 = salient. H and W are
any size divisible by 4 (the two down-sampling stages).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(min(4, c_out), c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.GroupNorm(min(4, c_out), c_out),
        nn.ReLU(inplace=True),
    )


class SaliencyNet(nn.Module):
    """Light encoder-decoder (U-Net style) that outputs salience logits; `sigmoid` gives the map.

    Args:
        in_channels: 1 (grey) or 3 (colour).
        width: channels of the first stage; the next ones have 2x and 4x (default 16: ~0.1 M parameters).
        dropout: Dropout2d probability in the bottleneck and decoder; > 0 is needed for MC-dropout spread.

    Inputs are centred (x - 0.5) inside the model, so callers pass [0, 1] images as everywhere in sipat.
    """

    def __init__(self, in_channels: int = 3, *, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        if in_channels < 1 or width < 4:
            raise ValueError(f"need in_channels >= 1 and width >= 4; got {in_channels}, {width}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}")
        w = width
        self.in_channels, self.width, self.dropout = in_channels, width, dropout
        self.enc1 = _block(in_channels, w)
        self.enc2 = _block(w, 2 * w, stride=2)
        self.enc3 = _block(2 * w, 4 * w, stride=2)
        self.drop3 = nn.Dropout2d(dropout)
        self.dec2 = _block(4 * w + 2 * w, 2 * w)
        self.drop2 = nn.Dropout2d(dropout)
        self.dec1 = _block(2 * w + w, w)
        self.head = nn.Conv2d(w, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, 1, H, W) for x (N, C, H, W) in [0, 1]."""
        return self.decode(*self.encode(x))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The deterministic encoder features (full, 1/2 and 1/4 resolution); no dropout acts here."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be (N, {self.in_channels}, H, W); got {tuple(x.shape)}")
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"height and width must be divisible by 4; got {tuple(x.shape[-2:])}")
        h1 = self.enc1(x - 0.5)
        h2 = self.enc2(h1)
        return h1, h2, self.enc3(h2)

    def decode(self, h1: Tensor, h2: Tensor, h3: Tensor) -> Tensor:
        """Logits from the encoder features; every dropout layer is here, so MC-dropout encodes only once."""
        h3 = self.drop3(h3)
        u2 = F.interpolate(h3, size=h2.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self.drop2(self.dec2(torch.cat([u2, h2], dim=1)))
        u1 = F.interpolate(d2, size=h1.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.dec1(torch.cat([u1, h1], dim=1)))

    def config(self) -> dict[str, int | float]:
        """What `SaliencyNet(**config)` needs to rebuild this network (stored in checkpoints)."""
        return {"in_channels": self.in_channels, "width": self.width, "dropout": self.dropout}


@contextmanager
def _mode(model: nn.Module, *, dropout_on: bool) -> Iterator[None]:
    """Eval mode for the whole model, with dropout layers in train mode when `dropout_on`; modes restored."""
    before = {m: m.training for m in model.modules()}
    model.eval()
    if dropout_on:
        for m in model.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.train()
    try:
        yield
    finally:
        for m, training in before.items():
            m.train(training)


@torch.no_grad()
def predict_maps(model: nn.Module, x: Tensor, *, batch_size: int = 256) -> Tensor:
    """Deterministic maps (N, 1, H, W) in [0, 1] (dropout off), for x (N, C, H, W) in [0, 1]."""
    out = []
    with _mode(model, dropout_on=False):
        for i in range(0, x.shape[0], batch_size):
            out.append(torch.sigmoid(model(x[i : i + batch_size])))
    return torch.cat(out) if out else x.new_zeros((0, 1, *x.shape[-2:]))


@torch.no_grad()
def mc_dropout(
    model: nn.Module, x: Tensor, *, samples: int = 16, seed: int = 0, batch_size: int = 256
) -> tuple[Tensor, Tensor]:
    """Monte-Carlo dropout (Gal & Ghahramani 2016): `samples` stochastic passes with dropout on.

    Returns (mean, std), each (N, 1, H, W): the mean map in [0, 1] and the per-pixel standard deviation of
    the sampled maps (the predictor's uncertainty). Seeded: the global RNG is forked and seeded with `seed`,
    so the same model, x and seed give the same numbers and the caller's random state is left as it was.
    """
    if samples < 2:
        raise ValueError(f"samples must be >= 2 to measure a spread; got {samples}")
    if not any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        raise ValueError("the model has no active dropout layer; build it with dropout > 0 for MC-dropout")
    dev = x.device
    means, stds = [], []
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), _mode(model, dropout_on=True):
        torch.manual_seed(seed)
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size]
            if isinstance(model, SaliencyNet):  # the encoder has no dropout: run it once per batch
                feats = model.encode(xb)
                draws = torch.stack([torch.sigmoid(model.decode(*feats)) for _ in range(samples)])
            else:
                draws = torch.stack([torch.sigmoid(model(xb)) for _ in range(samples)])
            means.append(draws.mean(0))
            stds.append(draws.std(0))
    if not means:
        empty = x.new_zeros((0, 1, *x.shape[-2:]))
        return empty, empty.clone()
    return torch.cat(means), torch.cat(stds)


__all__ = ["SaliencyNet", "mc_dropout", "predict_maps"]
