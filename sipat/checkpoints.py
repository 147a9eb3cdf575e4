"""Checkpoints, exported models and the one atomic-write helper every file the training writes goes through.

Three kinds of file:

- a *checkpoint* (``.pt``, `save_checkpoint`): weights + `TrainConfig` + ``meta`` (+ resume state while a run
  trains). Read with ``torch.load(weights_only=True)``: no pickled code runs.
- an *export* (`export_model`): a directory with ``model.safetensors`` (the bare network's state dict, the
  `sipat.models` ``weights_path`` convention) and ``config.json`` (architecture, classes, sizes, normaliser
  stats, training config), readable without torch's pickle and by other tools; `load_exported` rebuilds it.
- the per-epoch CSV log beside a checkpoint (`sipat.runlog`).

Why atomic: a worker may be killed mid-epoch, and the resume logic trusts whatever file it finds, so every
write goes to a temporary file in the same directory and is renamed over the target (atomic on POSIX).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from sipat.train_config import TrainConfig

CHECKPOINT_FORMAT = 1
EXPORT_FORMAT = 1
MODEL_META_KEYS = ("arch", "num_classes", "in_channels", "image_size")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it over ``path``.

    Readers see the old file or the new one, never a half-written one. The directory is created; the
    temporary file is removed if ``write`` raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` of a UTF-8 text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    cfg: TrainConfig,
    *,
    meta: dict[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
) -> Path:
    """Write weights + training config (+ `meta`, e.g. arch and classes) atomically to `path`."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "train_config": cfg.to_dict(),
        "meta": dict(meta or {}),
        "resume": resume,
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict (state_dict, train_config, meta, resume). Weights only: no pickled code runs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged file
        raise ValueError(f"{path} is not a readable sipat checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a sipat checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def model_meta(model: nn.Module, *, num_classes: int, in_channels: int, image_size: Any, classes: list[str]) -> dict:
    """The checkpoint `meta` that `load_model` needs to rebuild a `sipat.models.new_model` network."""
    arch = getattr(model, "arch", None)
    if arch is None:
        raise ValueError("model_meta needs a model built by sipat.models.new_model (it records its arch)")
    return {
        "arch": arch,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "classes": list(classes),
    }


def _side(size: Any) -> int | None:
    return size if isinstance(size, int) or size is None else max(size)


def _model_from_meta(meta: dict[str, Any], where: Path) -> nn.Module:
    from sipat.models import new_model

    missing = [k for k in MODEL_META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{where} does not record {', '.join(missing)}; save it with meta=model_meta(...)")
    return new_model(
        meta["arch"],
        num_classes=meta["num_classes"],
        in_channels=meta["in_channels"],
        image_size=_side(meta["image_size"]),
    )


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint written with `model_meta`, in eval mode; returns (model, checkpoint)."""
    ckpt = read_checkpoint(path, map_location=map_location)
    model = _model_from_meta(ckpt.get("meta") or {}, Path(path))
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location).eval(), ckpt


def export_model(directory: str | Path, model: nn.Module, meta: dict[str, Any], cfg: TrainConfig | None = None) -> Path:
    """Write ``model.safetensors`` (the bare network) and ``config.json`` into ``directory``; returns it.

    Args:
        directory: created if missing; existing export files are replaced (each atomically).
        model: a `sipat.models.NormalizedModel` (from `new_model`); its normaliser's stats go to config.json.
        meta: `model_meta` of the model (arch, num_classes, in_channels, image_size, classes).
        cfg: the training config, recorded for provenance.
    """
    from safetensors.torch import save_file

    from sipat.models import NormalizedModel

    if not isinstance(model, NormalizedModel):
        raise TypeError("export_model needs a NormalizedModel built by sipat.models.new_model")
    directory = Path(directory)
    missing = [k for k in MODEL_META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"meta lacks {', '.join(missing)}; build it with sipat.checkpoints.model_meta")
    # safetensors refuses shared or non-contiguous storage: give every tensor its own contiguous copy
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.net.state_dict().items()}
    config = {
        "format": EXPORT_FORMAT,
        **{k: meta[k] for k in (*MODEL_META_KEYS, "classes") if k in meta},
        "mean": model.normalize.mean.flatten().tolist(),
        "std": model.normalize.std.flatten().tolist(),
        "train_config": None if cfg is None else cfg.to_dict(),
    }
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return directory


def load_exported(directory: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild an `export_model` directory: (model in eval mode on the CPU, its config.json)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not cfg_path.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{directory} is not an exported model: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{cfg_path} is not a sipat export config (format {EXPORT_FORMAT})")
    model = _model_from_meta(config, cfg_path)
    cast(nn.Module, model.net).load_state_dict(load_file(str(weights)))
    return model.eval(), config


__all__ = [
    "CHECKPOINT_FORMAT",
    "atomic_write",
    "atomic_write_text",
    "export_model",
    "load_exported",
    "load_model",
    "model_meta",
    "read_checkpoint",
    "save_checkpoint",
]
