"""The `predicted` salience source: human maps where enough people painted, the predictor's maps elsewhere.

An image "has enough" human maps when at least ``min_annotators`` people painted it (with no counts given,
any non-NaN map counts). Every other image gets the predictor's map, and the result says which image got
which source, so a job can record it. The predictor runs only on the images that need it.

Shapes: human, predicted, maps (N, 1, H, W) in [0, 1]; a missing human map is all NaN (`sipat.data`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from sipat.predictor.model import predict_maps
from sipat.salience import has_salience

Source = Literal["human", "predicted"]


@dataclass(frozen=True)
class FilledMaps:
    """maps (N, 1, H, W) in [0, 1], none NaN; source[i] says where image i's map came from."""

    maps: Tensor
    source: list[Source]

    @property
    def predicted(self) -> Tensor:
        """(N,) bool: the images whose map the predictor made."""
        return torch.tensor([s == "predicted" for s in self.source], dtype=torch.bool)

    def counts(self) -> dict[str, int]:
        return {"human": self.source.count("human"), "predicted": self.source.count("predicted")}


def uses_human(human: Tensor, counts: Tensor | None = None, *, min_annotators: int = 1) -> Tensor:
    """(N,) bool: which images keep their human map (present, and painted by >= min_annotators people)."""
    if min_annotators < 1:
        raise ValueError(f"min_annotators must be >= 1; got {min_annotators}")
    present = has_salience(human)
    if counts is None:
        return present
    if counts.shape != present.shape:
        raise ValueError(f"counts must be (N,) = {tuple(present.shape)}; got {tuple(counts.shape)}")
    return present & (counts.to(present.device) >= min_annotators)


def fill_maps(human: Tensor, predicted: Tensor, *, counts: Tensor | None = None, min_annotators: int = 1) -> FilledMaps:
    """Human maps where `uses_human`, `predicted` maps for every other image."""
    if predicted.shape != human.shape:
        raise ValueError(f"predicted {tuple(predicted.shape)} must match human {tuple(human.shape)}")
    keep = uses_human(human, counts, min_annotators=min_annotators)
    need = ~keep
    if torch.isnan(predicted[need]).any():
        raise ValueError("a predicted map needed for an image without enough human maps is NaN")
    maps = torch.where(keep.view(-1, 1, 1, 1), human, predicted)
    return FilledMaps(maps=maps, source=["human" if k else "predicted" for k in keep.tolist()])


def fill_with_predictor(
    model: nn.Module, images: Tensor, human: Tensor, *, counts: Tensor | None = None, min_annotators: int = 1
) -> FilledMaps:
    """`fill_maps` with the predictor run (dropout off) only on the images that need a predicted map."""
    if images.shape[0] != human.shape[0] or images.shape[-2:] != human.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and human maps {tuple(human.shape)} must match in N, H, W")
    need = ~uses_human(human, counts, min_annotators=min_annotators)
    predicted = torch.full_like(human, float("nan"))
    if need.any():
        predicted[need] = predict_maps(model, images[need]).to(human.dtype)
    return fill_maps(human, predicted, counts=counts, min_annotators=min_annotators)


__all__ = ["FilledMaps", "Source", "fill_maps", "fill_with_predictor", "uses_human"]
