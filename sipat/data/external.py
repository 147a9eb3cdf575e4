"""External datasets from their official archives extracted into a local folder (nothing is downloaded):
CIFAR-10/100 (no maps) and CUB-200-2011 (segmentations as maps)."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from sipat.data.contract import DataError, missing_salience
from sipat.data.files import _FileDataset, _load_pil, _Record, _to_tensor

# external datasets from local files (nothing is downloaded)


class ArrayDataset(Dataset):
    """uint8 images (N, H, W, C) held in memory, converted per item to float32 (C, H, W) in [0, 1]; no
    salience maps (every item's map is NaN). 50 000 CIFAR images take 150 MB this way rather than 600 MB."""

    has_no_salience = True

    def __init__(self, images: np.ndarray, labels: Sequence[int], classes: Sequence[str], *, name: str = "") -> None:
        if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(labels):
            raise ValueError("ArrayDataset needs uint8 images (N, H, W, C) and N labels")
        self.images = images
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.in_channels = images.shape[3]
        h, w = images.shape[1:3]
        self.image_size = h if h == w else (h, w)
        self.name = name

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, int, Tensor]:
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div_(255)
        return x, int(self.labels[i]), torch.full((1, *x.shape[1:]), float("nan"))


_CIFAR = {
    "cifar10": ("CIFAR10", "cifar-10-python.tar.gz"),
    "cifar100": ("CIFAR100", "cifar-100-python.tar.gz"),
}


def load_cifar(name: str, root: str | Path | None, split: str, *, check_md5: bool = True) -> ArrayDataset:
    """CIFAR-10 or CIFAR-100 from torchvision's python pickles under ``root`` (``download=False``).

    Layout: ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` or
    ``root/cifar-100-python/{train, test, meta}``, i.e. the official ``cifar-10-python.tar.gz`` /
    ``cifar-100-python.tar.gz`` extracted into ``root``. ``check_md5=False`` skips torchvision's checksums (for a
    subset or a copy you made yourself). No salience maps: use the gradcam variant.
    """
    import torchvision.datasets as tvd

    cls_name, archive = _CIFAR[name]
    base = getattr(tvd, cls_name)
    if root is None:
        raise ValueError(
            f"{name} is read from local files: pass data_root (--data-root), the folder into which "
            f"{archive} from https://www.cs.toronto.edu/~kriz/cifar.html was extracted"
        )
    root = Path(root)
    folder = root / base.base_folder
    needed = [f for f, _ in base.train_list + base.test_list] + [base.meta["filename"]]
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"{name}: {folder} lacks {', '.join(missing)}; download {archive} from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html and extract it into {root} "
            f"(tar xzf {archive} -C {root}) so that {folder / needed[0]} exists"
        )
    cls = base
    if not check_md5:  # torchvision's check_integrity accepts any existing file when md5 is None
        cls = type(
            f"Unchecked{cls_name}",
            (base,),
            {
                "train_list": [[f, None] for f, _ in base.train_list],
                "test_list": [[f, None] for f, _ in base.test_list],
                "meta": {**base.meta, "md5": None},
            },
        )
    try:
        ds = cls(str(root), train=split == "train", download=False)
    except RuntimeError as exc:
        raise DataError(
            f"{name}: the files in {folder} failed torchvision's checksums ({exc}); extract {archive} again, or "
            "set dataset_params check_md5 to false for files you made yourself"
        ) from exc
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as exc:
        raise DataError(f"{name}: cannot read the pickles in {folder} ({exc!r})") from exc
    return ArrayDataset(np.ascontiguousarray(ds.data), ds.targets, ds.classes, name=name)


CUB_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt")
CUB_LAYOUT = """\
    <data_root>/CUB_200_2011/images.txt               (from CUB_200_2011.tgz)
    <data_root>/CUB_200_2011/image_class_labels.txt
    <data_root>/CUB_200_2011/train_test_split.txt
    <data_root>/CUB_200_2011/classes.txt               (optional: class names)
    <data_root>/CUB_200_2011/images/<class>/<image>.jpg
    <data_root>/segmentations/<class>/<image>.png      (from segmentations.tgz, a separate download)"""


class CubDataset(_FileDataset):
    """CUB-200-2011: 200 bird species, salience = the segmentation mask (greyscale, /255; 1 = bird).

    Images and masks are resized (not cropped) to ``image_size`` x ``image_size`` bilinearly.
    """

    def load_salience(self, i: int) -> Tensor:
        """(1, H, W) in [0, 1]: the mask of item i alone (no image decoding)."""
        r = self.records[i]
        h, w = self._hw
        if r.map_path is None:  # a set read without segmentations
            return missing_salience(h, w)
        sm = _load_pil(r.map_path, r.where, "L")
        if sm.size != (w, h):
            sm = sm.resize((w, h), Image.Resampling.BILINEAR)
        return _to_tensor(sm).clamp_(0, 1)


def _read_pairs(path: Path) -> dict[int, str]:
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path} line {n}: expected '<image id> <value>', got {line!r}")
        out[int(parts[0])] = parts[1].strip()
    return out


def load_cub(
    root: str | Path | None, split: str, *, image_size: int = 224, segmentations: str | Path | None = None
) -> CubDataset:
    """CUB-200-2011 from local files, the official train/test split, segmentation masks as salience.

    ``root`` holds ``CUB_200_2011/`` (or is that folder itself); the masks are looked for in ``segmentations``,
    else ``root/segmentations``, else ``CUB_200_2011/segmentations``. Layout: `CUB_LAYOUT` (the official
    ``CUB_200_2011.tgz`` and ``segmentations.tgz`` extracted side by side into ``root``).
    """
    if root is None:
        raise ValueError(f"cub200 is read from local files: pass data_root (--data-root) laid out as\n{CUB_LAYOUT}")
    root = Path(root)
    base = root if (root / "images.txt").is_file() else root / "CUB_200_2011"
    missing = [f for f in CUB_FILES if not (base / f).is_file()]
    if missing or not (base / "images").is_dir():
        what = ", ".join([*missing, *([] if (base / "images").is_dir() else ["images/"])])
        raise DataError(f"cub200: {base} lacks {what}; extract CUB_200_2011.tgz into {root}, laid out as\n{CUB_LAYOUT}")
    if segmentations is not None:
        seg = Path(segmentations)
        candidates = [seg]
    else:
        candidates = [root / "segmentations", base / "segmentations"]
        seg = next((c for c in candidates if c.is_dir()), candidates[0])
    if not seg.is_dir():
        raise DataError(
            f"cub200: no segmentation masks at {' or '.join(map(str, candidates))}; extract segmentations.tgz "
            f"(a separate archive on the CUB-200-2011 page) into {root}, laid out as\n{CUB_LAYOUT}"
        )
    paths = _read_pairs(base / "images.txt")
    labels = _read_pairs(base / "image_class_labels.txt")
    is_train = _read_pairs(base / "train_test_split.txt")
    want = "1" if split == "train" else "0"
    ids = sorted(i for i, flag in is_train.items() if flag == want)
    if not ids:
        raise DataError(f"cub200: {base / 'train_test_split.txt'} lists no {split} images")
    names = _read_pairs(base / "classes.txt") if (base / "classes.txt").is_file() else {}
    all_labels = sorted({int(v) for v in labels.values()})
    classes = [names.get(k, str(k)) for k in range(1, max(all_labels) + 1)]
    records, absent = [], []
    for i in ids:
        if i not in paths or i not in labels:
            raise DataError(
                f"cub200: image id {i} is in train_test_split.txt but not in images.txt/image_class_labels.txt"
            )
        rel = Path(paths[i])
        image = base / "images" / rel
        mask = (seg / rel).with_suffix(".png")
        if not image.is_file() or not mask.is_file():
            absent.append(str(image if not image.is_file() else mask))
            continue
        records.append(_Record(image=image, label=int(labels[i]) - 1, where=f"cub200 image {i}", map_path=mask))
    if absent:
        raise DataError(
            f"cub200: {len(absent)} {split} image or mask file(s) are missing, e.g. {absent[:3]}; laid out as\n"
            f"{CUB_LAYOUT}"
        )
    return CubDataset(records, classes, image_size=image_size, grayscale=False, source=f"cub200 {base}")


# ----------------------------------------------------------------------------------------------------------
# built-in offline sets
