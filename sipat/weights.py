"""Weights from local files: a ``.pt``/``.pth`` state dict or ``.safetensors`` loaded into a network, with the
classifier and the first conv allowed to differ (another class count, grey input, a small-input stem).

Its own module because reading and matching a foreign state dict is independent of which network is built
(`sipat.models.build_model` calls it with the architecture's head and stem prefixes). Nothing is downloaded.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, Tensor]:
    """Accept a bare state dict, a checkpoint holding one under ``state_dict``/``model``, keys with a
    ``module.`` (DataParallel) prefix, or the state dict of a whole `NormalizedModel` (``net.`` keys)."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of parameter names to tensors)")
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    if any(k.startswith("net.") for k in sd):
        sd = {k[len("net.") :]: v for k, v in sd.items() if k.startswith("net.")}
    return sd


def load_weights(
    net: nn.Module, weights_path: str | Path, *, head: Sequence[str] = (), stem: Sequence[str] = ()
) -> None:
    """Load a local state-dict file (``.pt``/``.pth`` via torch, ``.safetensors``) into ``net`` (in place).

    The file must name exactly the network's parameters and buffers. Two kinds of disagreement are allowed,
    each with a `warnings.warn` saying what was left at its random init:

    - the classifier (keys starting with a ``head`` prefix) has another shape, e.g. 1000 ImageNet classes
      against our ``num_classes``: everything else is loaded;
    - the first conv (``stem`` prefixes) has another shape: with the same kernel but 3 input channels in
      the file and 1 in the net, the file's weights are summed over channels (grey = R + G + B response);
      otherwise it keeps its random init (e.g. the small-input 3x3 stem against an ImageNet 7x7 file).

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ValueError: the file is not a state dict, or other keys are missing, extra, or of another shape.
    """
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist (weights are only read from local files)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign/corrupt files
        raise ValueError(f"cannot read weights file {path}: {exc}") from exc
    source = _unwrap_state_dict(obj, path)
    target = net.state_dict()

    missing = sorted(set(target) - set(source))
    extra = sorted(set(source) - set(target))
    if missing or extra:
        raise ValueError(
            f"weights file {path} does not fit {type(net).__name__}: missing keys {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected keys {extra[:5]}{' ...' if len(extra) > 5 else ''}"
            "; is it a state dict of the same architecture?"
        )
    to_load: dict[str, Tensor] = {}
    skipped_head: list[str] = []
    skipped_stem: list[str] = []
    summed_stem: list[str] = []
    for key, want in target.items():
        have = source[key]
        if have.shape == want.shape:
            to_load[key] = have
        elif key.startswith(tuple(head)):
            skipped_head.append(key)
        elif key.startswith(tuple(stem)):
            if have.dim() == 4 and want.shape[1] == 1 and have.shape[1] == 3 and have.shape[2:] == want.shape[2:]:
                to_load[key] = have.sum(dim=1, keepdim=True)
                summed_stem.append(key)
            else:
                skipped_stem.append(key)
        else:
            raise ValueError(
                f"weights file {path}: {key} has shape {tuple(have.shape)} but the network needs "
                f"{tuple(want.shape)}; only the classifier and the first conv may differ"
            )
    net.load_state_dict({**target, **to_load})
    if skipped_head:
        warnings.warn(
            f"{path}: classifier {skipped_head} has another shape (another class count?); "
            "loaded everything else, the classifier keeps its random init",
            stacklevel=2,
        )
    if summed_stem:
        warnings.warn(f"{path}: summed the RGB first-conv weights {summed_stem} for 1-channel input", stacklevel=2)
    if skipped_stem:
        warnings.warn(
            f"{path}: first conv {skipped_stem} has another shape (small-input stem or other channel count); "
            "it keeps its random init",
            stacklevel=2,
        )
