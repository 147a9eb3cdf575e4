"""Datasets read from files: a CSV manifest in the authors' format (`ManifestDataset`) and class subfolders
with an optional parallel folder of salience PNGs (`ImageFolderDataset`); both check every file up front."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from sipat import vocabulary
from sipat.data.contract import DataError, Item, _size_attr, missing_salience
from sipat.salience import boxes_to_map
from sipat.vocabulary import parse_boxes

# one definition with the web upload (sipat.vocabulary), under the names this module always had
IMAGE_EXTENSIONS = vocabulary.IMAGE_EXTENSIONS
REQUIRED_COLUMNS = vocabulary.MANIFEST_REQUIRED_COLUMNS
SALIENCE_COLUMNS = vocabulary.MANIFEST_SALIENCE_COLUMNS


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
    """`sipat.vocabulary.parse_boxes` (the rule the web upload checks too), its errors as `DataError` naming the
    CSV line and image."""
    try:
        return parse_boxes(text, native)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None


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
            im = im.resize((w, h), Image.Resampling.BILINEAR)
        image = _to_tensor(im)
        if r.map_path is not None:
            sm = _load_pil(r.map_path, r.where, "L")
            if sm.size != (w, h):
                sm = sm.resize((w, h), Image.Resampling.BILINEAR)
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
