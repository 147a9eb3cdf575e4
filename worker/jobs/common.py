"""Shared by the jobs: image and map blobs <-> tensors, stored models <-> checkpoints, progress phases.

Images are decoded with Pillow into 8-bit arrays first, so a tensor `u8 / 255` holds exactly the values the
stored PNG/JPEG decodes to; that is what makes stored stimuli exact (see `worker.jobs.stimuli`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from sqlalchemy.orm import Session
from torch import Tensor, nn

from backend.models import Image, TrainedModel
from backend.services.jobs import JobRun, WaitFor
from backend.services.model_catalog import train_job_of
from backend.storage import BlobStore
from sipat.imaging import pil_to_tensor, resize_map
from sipat.models import build_model
from sipat.salience import mean_of_annotators
from sipat.stimuli import to_png
from sipat.training import TrainConfig, read_checkpoint, save_checkpoint

GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


class JobError(ValueError):
    """The job cannot be done as asked (missing rows, unusable data); the message says what to fix."""


def open_image(storage: BlobStore, sha256: str) -> PILImage.Image:
    with storage.open(sha256) as fh:
        img = PILImage.open(io.BytesIO(fh.read()))
        img.load()
    return img


def channels_of(images: Sequence[PILImage.Image]) -> int:
    """1 if every image is greyscale, else 3."""
    return 1 if all(img.mode in GREY_MODES for img in images) else 3


def to_array(img: PILImage.Image, *, channels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 (H, W, C) of `img` in L (C=1) or RGB (C=3), resized (bicubic) to `size` = (H, W) if it differs."""
    converted = img.convert("L" if channels == 1 else "RGB")
    if size is not None and converted.size != (size[1], size[0]):
        converted = converted.resize((size[1], size[0]), PILImage.Resampling.BICUBIC)
    arr = np.asarray(converted, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def to_tensor(arrays: Sequence[np.ndarray]) -> Tensor:
    """(N, C, H, W) float32 in [0, 1] from uint8 (H, W, C) arrays."""
    stacked = np.stack(arrays).transpose(0, 3, 1, 2)
    return torch.from_numpy(stacked.astype(np.float32) / 255.0)


def load_map(storage: BlobStore, sha256: str, size: tuple[int, int]) -> Tensor:
    """A grayscale map PNG (255 = salient) as (1, H, W) float32 in [0, 1] at `size` = (H, W), resized by the
    one map path (`sipat.imaging.resize_map`: area average when shrinking, so thin strokes are not aliased away)."""
    return resize_map(pil_to_tensor(open_image(storage, sha256), channels=1), size)


def mean_map(storage: BlobStore, shas: Sequence[str], size: tuple[int, int]) -> Tensor:
    """The mean of several people's paintings of one image, (1, H, W) at `size`: each read by `load_map`."""
    return mean_of_annotators([load_map(storage, sha, size) for sha in shas])[0]


def map_png(s: Tensor) -> bytes:
    """(1, H, W) map in [0, 1] -> 8-bit grayscale PNG, 255 = salient."""
    u8 = (s.squeeze(0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return to_png(u8[..., None])


# ------------------------------------------------------------------------------------------------------------
# models


def model_meta(arch: str, classes: Sequence[str], in_channels: int, image_size: int | list[int]) -> dict[str, Any]:
    """The checkpoint `meta` a stored model is rebuilt from (`load_stored_model`)."""
    return {
        "arch": arch,
        "num_classes": len(classes),
        "in_channels": in_channels,
        "image_size": image_size,
        "classes": list(classes),
    }


def image_hw(meta: dict[str, Any]) -> tuple[int, int]:
    size = meta["image_size"]
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def build_from_meta(meta: dict[str, Any]) -> nn.Module:
    h, w = image_hw(meta)
    return build_model(
        meta["arch"], num_classes=meta["num_classes"], in_channels=meta["in_channels"], image_size=max(h, w)
    )


def save_model_blob(storage: BlobStore, path: Path, model: nn.Module, cfg: TrainConfig, meta: dict[str, Any]) -> str:
    """Write the final checkpoint (weights, config, meta; no resume state) and store it; returns its sha256."""
    save_checkpoint(path, model, cfg, meta=meta)
    with open(path, "rb") as fh:
        return storage.put_file(fh)


def trained_or_wait(session: Session, model: TrainedModel) -> TrainedModel:
    """`model` if its checkpoint exists; `WaitFor` while its train job is queued or running (the job that
    needs it goes back to the queue without spending an attempt); `JobError` with the reason otherwise."""
    if model.checkpoint_sha256 is not None:
        return model
    job = train_job_of(session, model)
    if job is None:
        raise JobError(f"model {model.id} has no checkpoint and no train job that could make one")
    if job.status in ("queued", "running"):
        raise WaitFor(f"model {model.id} is not trained yet (train job {job.id} is {job.status})")
    reason = f": {job.error}" if job.error else ""
    raise JobError(f"model {model.id} has no checkpoint: its train job {job.id} ended {job.status}{reason}")


def load_stored_model(storage: BlobStore, row: TrainedModel, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The model of `row` (in eval mode, on `device`) and its checkpoint meta."""
    if row.checkpoint_sha256 is None:
        raise JobError(f"model {row.id} has no checkpoint yet")
    if not storage.exists(row.checkpoint_sha256):
        raise JobError(f"the checkpoint blob of model {row.id} is missing from the blob store at {storage.location}")
    with storage.as_local_file(row.checkpoint_sha256) as path:
        ckpt = read_checkpoint(path)
    meta = ckpt.get("meta") or {}
    missing = [k for k in ("arch", "num_classes", "in_channels", "image_size", "classes") if k not in meta]
    if missing:
        raise JobError(f"the checkpoint of model {row.id} does not record {', '.join(missing)}")
    model = build_from_meta(meta)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), meta


def image_rows_sorted(images: Sequence[Image]) -> list[Image]:
    return sorted(images, key=lambda im: im.id)


class Phase:
    """Maps a phase's own progress (0..1) into [lo, hi] of the job's: `Phase(run, 0.1, 0.8)(0.5, 'msg')`."""

    def __init__(self, run: JobRun, lo: float, hi: float) -> None:
        self.run, self.lo, self.hi = run, lo, hi

    def __call__(self, fraction: float, message: str | None = None) -> None:
        self.run.progress(self.lo + (self.hi - self.lo) * min(1.0, max(0.0, fraction)), message)

    def callback(self) -> Callable[[float, str], None]:
        return lambda fraction, message: self(fraction, message)
