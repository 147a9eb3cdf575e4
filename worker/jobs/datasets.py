"""A dataset's image rows (read by `backend.services.dataset_catalog`) -> `sipat.data.InMemoryDataset` (decoded
with Pillow), and the held-out split."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from backend.services.dataset_catalog import ImageInfo, image_rows
from backend.services.training_coverage import training_image_ids
from backend.storage import BlobStore
from sipat.data import InMemoryDataset, missing_salience
from sipat.imaging import pil_to_tensor
from worker.jobs.common import JobError, channels_of, open_image


def dataset_images(session: Session, dataset_id: int, *, split: str | None = None) -> tuple[str, list[ImageInfo]]:
    """(dataset name, its images in id order, only those of `split` when given; `backend.services.dataset_catalog`
    reads them); `JobError` if there is no such dataset or no such image."""
    found = image_rows(session, dataset_id, split=split)
    if found is None:
        raise JobError(f"dataset {dataset_id} does not exist")
    name, infos = found
    if not infos:
        where = f" of split {split!r}" if split is not None else ""
        raise JobError(f"dataset {dataset_id} has no images{where}")
    return name, infos


def split_train_eval(infos: Sequence[ImageInfo], seed: int) -> tuple[list[ImageInfo], list[ImageInfo], str]:
    """(train, held-out, how) by `backend.services.training_coverage.training_image_ids` (the rule the
    coverage shown before a job is queued uses too): split 'test' held out, else a seeded 20 %."""
    try:
        train_ids, how = training_image_ids([(im.id, im.split) for im in infos], seed)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    chosen = set(train_ids)
    return [im for im in infos if im.id in chosen], [im for im in infos if im.id not in chosen], how


def common_size(infos: Sequence[ImageInfo], image_size: int | None) -> tuple[int, int]:
    """(H, W) every image is brought to: `image_size` squared, or the one size all images share."""
    if image_size is not None:
        return image_size, image_size
    sizes = {(im.height, im.width) for im in infos}
    if len(sizes) != 1:
        shown = ", ".join(f"{w}x{h}" for h, w in sorted(sizes)[:5])
        raise JobError(f"the images have different sizes ({shown} ...); set image_size to resize them all")
    return sizes.pop()


def decode(storage: BlobStore, infos: Sequence[ImageInfo]) -> list[PILImage.Image]:
    return [open_image(storage, im.sha256) for im in infos]


def build_set(
    pil: Sequence[PILImage.Image],
    infos: Sequence[ImageInfo],
    *,
    classes: Sequence[str],
    channels: int,
    size: tuple[int, int],
    salience: torch.Tensor | None = None,
    name: str = "",
) -> InMemoryDataset:
    """An InMemoryDataset of the decoded images at `size` (H, W) with `channels`, labels as indices of
    `classes`, and `salience` (N, 1, H, W) (default: none, all NaN)."""
    index = {c: k for k, c in enumerate(classes)}
    unknown = sorted({im.label for im in infos} - set(index))
    if unknown:
        raise JobError(f"labels {unknown[:5]} are not among the model's classes {list(classes)[:10]}")
    # The one resize path of the CLI too (`sipat.imaging`: antialiased bicubic), so a model trained here and
    # one trained by `sipat train` see the same pixels; at the stored size it is the decoded 8-bit values / 255.
    tensors = [pil_to_tensor(img, channels=channels, size=size) for img in pil]
    images = torch.stack(tensors) if tensors else torch.zeros(0, channels, *size)
    labels = torch.tensor([index[im.label] for im in infos], dtype=torch.long)
    if salience is None:
        salience = missing_salience(*size).unsqueeze(0).repeat(len(infos), 1, 1, 1)
    return InMemoryDataset(images, labels, salience, classes, name=name, params={"image_ids": [im.id for im in infos]})


__all__ = [
    "ImageInfo",
    "build_set",
    "channels_of",
    "common_size",
    "dataset_images",
    "decode",
    "split_train_eval",
]
