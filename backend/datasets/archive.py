"""Validate an uploaded dataset zip and read its images (and salience maps) into memory.

Two layouts are accepted, optionally wrapped in one top folder (``mydata/...``):

(a) **ImageFolder**: ``<class>/<image>`` (deeper folders inside a class are fine), or
    ``train/<class>/<image>`` and ``test/<class>/<image>`` (also ``val``/``valid``/``validation``), which
    sets each image's ``split``. An optional parallel ``salience/<class>/<name>.png`` (or
    ``salience/<split>/<class>/<name>.png``) holds a grayscale map per image, matched by the image's path
    without its extension (``cat/001.jpg`` <- ``salience/cat/001.png`` or ``salience/cat/001.jpg.png``).
    Text files at the top level (README, LICENSE, ...) are ignored.
(b) **CSV manifest** in the authors' format: ``manifest.csv`` (or the only ``.csv``) at the top, with header
    ``image_path,image_class`` and optionally ``salience_map_path`` (a grayscale image) or ``bounding_boxes``
    (JSON ``[[x, y, w, h], ...]`` in the image's pixels, top-left origin; rendered 255 inside any box, 0
    outside; zero-sized boxes mark nothing, as in `sipat.data`) and ``split``. Paths are relative to the
    CSV's folder. An empty cell means no salience for that image.

Salience maps come back as 8-bit grayscale PNGs of the image's size (255 = salient), resized bilinearly when
the archive's map has another size. Uploads are untrusted, so everything is checked before it is believed:
member paths (no ``..``, absolute paths or symlinks), the declared and the actually decompressed size,
the member count, image headers (pixel count before decoding), full decodes (truncation), and the
manifest's references. Nothing is written to disk. OS litter (``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``,
dotfiles) is skipped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

MiB = 1 << 20

#: Pillow plugins tried on uploaded bytes: formats every browser shows. Fewer parsers, less attack surface.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
#: File name extensions treated as images when deciding what a stray top-level file is.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jfif", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
SPLIT_NAMES = frozenset({"train", "test", "val", "valid", "validation"})
SALIENCE_DIR = "salience"
MANIFEST_NAME = "manifest.csv"
_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
_READ_CHUNK = 1 * MiB
# A map whose aspect ratio differs from its image's by more than this is almost surely the wrong file (or
# transposed), not a downscaled copy.
_ASPECT_TOLERANCE = 0.05


class ArchiveError(ValueError):
    """The upload is not an acceptable dataset archive; the message names the member and what to fix."""


@dataclass
class ArchiveImage:
    """One image of an archive.

    ``filename``: the member path inside the zip; ``data``: its bytes, unchanged; ``width``/``height`` in
    pixels; ``salience_png``: 8-bit grayscale PNG of size (width, height) with 255 = salient, or None;
    ``split``: "train", "test", ... or None.
    """

    label: str
    filename: str
    data: bytes
    width: int
    height: int
    salience_png: bytes | None
    split: str | None


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (the content address used for deduplication and the blob store)."""
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# The zip container


def _is_junk(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    return "__MACOSX" in parts[:-1] or name.lower() in _JUNK_NAMES or name.startswith(".")


def _safe_name(info: zipfile.ZipInfo) -> str:
    """The member's normalised path; ArchiveError for traversal, absolute paths, links and encryption."""
    raw = info.filename
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"member {raw!r} has an absolute path; archive members must have relative paths")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"member {raw!r} points outside the archive ('..' in its path); remove it")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveError(f"member {raw!r} is a symbolic link; replace links with the files themselves")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"member {raw!r} is encrypted; upload an archive without a password")
    return "/".join(parts) + ("/" if info.is_dir() else "")


#: Most an archive may inflate to, as a multiple of its compressed size (PNG and JPEG barely compress).
MAX_COMPRESSION_RATIO = 100
#: Inflating this much is always allowed (small archives of well-compressing files, e.g. a CSV manifest).
MIN_INFLATE_BUDGET = 16 * MiB


def inflate_budget(compressed_bytes: int) -> int:
    """Bytes an archive of `compressed_bytes` may inflate to (declared and actually read)."""
    return max(MIN_INFLATE_BUDGET, compressed_bytes * MAX_COMPRESSION_RATIO)


class _Zip:
    """Reads members with a running total of decompressed bytes, whatever the headers claim."""

    def __init__(self, zf: zipfile.ZipFile, max_bytes: int) -> None:
        self.zf = zf
        self.max_bytes = max_bytes
        self.total = 0

    def read(self, info: zipfile.ZipInfo, name: str) -> bytes:
        buf = bytearray()
        try:
            with self.zf.open(info) as fh:
                while chunk := fh.read(_READ_CHUNK):
                    buf += chunk
                    self.total += len(chunk)
                    if self.total > self.max_bytes:
                        raise ArchiveError(
                            f"the archive decompresses to more than {self.max_bytes} bytes (reached at {name!r}); "
                            "split it into smaller uploads"
                        )
                    if len(buf) > info.file_size:
                        raise ArchiveError(
                            f"member {name!r} holds more data than the {info.file_size} bytes its header declares; "
                            "the archive is corrupt or malicious"
                        )
        except ArchiveError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise ArchiveError(
                f"member {name!r} cannot be decompressed ({exc}); its data or declared size is wrong: re-create "
                "the archive"
            ) from exc
        except NotImplementedError as exc:
            raise ArchiveError(
                f"member {name!r} uses an unsupported compression method ({exc}); use deflate or store"
            ) from exc
        if len(buf) != info.file_size:
            raise ArchiveError(
                f"member {name!r} holds {len(buf)} bytes but its header declares {info.file_size}; "
                "the archive is corrupt"
            )
        return bytes(buf)


def _open_zip(source: str | Path | BinaryIO, max_bytes: int) -> zipfile.ZipFile:
    try:
        if isinstance(source, str | Path):
            return zipfile.ZipFile(source)
        if not (hasattr(source, "seekable") and source.seekable()):
            # zipfile needs to seek; an archive is at most a little larger than what it decompresses to.
            data = source.read(max_bytes + 64 * MiB + 1)
            if len(data) > max_bytes + 64 * MiB:
                raise ArchiveError(f"the upload is larger than {max_bytes} bytes; split it into smaller uploads")
            source = io.BytesIO(data)
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"the upload is not a zip archive ({exc}); upload a .zip file") from exc
    except OSError as exc:
        raise ArchiveError(f"cannot read the upload: {exc}") from exc


# ---------------------------------------------------------------------------------------------------------------
# Images and salience maps


def _open_checked(data: bytes, what: str, max_pixels: int) -> Image.Image:
    """A fully decoded image; ArchiveError if it is no image, too large, or truncated/corrupt."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ArchiveError(
                    f"{what} is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
                    "(a decompression bomb or an oversized image); downscale it"
                )
            im.verify()
        im = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        im.load()
        return im
    except ArchiveError:
        raise
    except Image.DecompressionBombError as exc:
        raise ArchiveError(f"{what} has too many pixels ({exc}); downscale it") from exc
    except UnidentifiedImageError as exc:
        raise ArchiveError(
            f"{what} is not an image in a supported format ({', '.join(IMAGE_FORMATS)}); convert or remove it"
        ) from exc
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises many types on malformed data
        raise ArchiveError(f"{what} is a truncated or corrupt image ({type(exc).__name__}: {exc})") from exc


def _grayscale(im: Image.Image, what: str) -> np.ndarray:
    """(H, W) uint8 with 255 = salient; alpha, where present, multiplies (transparent = not salient)."""
    mode = im.mode
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.float64)
        if a.max(initial=0) > 255:  # 16-bit data
            a = a / 257.0
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if a.max(initial=0) <= 1.0:  # a [0, 1] map
            a = a * 255.0
        return np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8)
    if mode in ("LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX"):
        a = np.asarray(im.convert("RGBA"), dtype=np.int16)
        rgb, alpha = a[..., :3], a[..., 3]
        spread = int((rgb.max(axis=2) - rgb.min(axis=2)).max(initial=0))
        if spread > 8:
            raise ArchiveError(
                f"{what} is a colour image (e.g. a heat-map palette); a salience map must be grayscale with "
                "white = salient, black = not salient"
            )
        gray = rgb.mean(axis=2) * (alpha / 255.0)
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    raise ArchiveError(
        f"{what} has pixel mode {mode!r}, which is not a grayscale map; save it as an 8-bit grayscale PNG"
    )


def _png(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _salience_png(data: bytes, what: str, size: tuple[int, int], max_pixels: int) -> bytes:
    width, height = size
    with _open_checked(data, what, max_pixels) as im:
        gray = _grayscale(im, what)
    h, w = gray.shape
    if (h, w) != (height, width):
        if abs((w / h) / (width / height) - 1.0) > _ASPECT_TOLERANCE:
            raise ArchiveError(
                f"{what} is {w}x{h} but its image is {width}x{height}; the aspect ratios differ, so it is not a "
                "map of this image (wrong file, or width and height swapped)"
            )
        gray = np.asarray(Image.fromarray(gray).resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)
    return _png(gray)


def _boxes_png(text: str, where: str, size: tuple[int, int]) -> bytes:
    """JSON ``[[x, y, w, h], ...]`` (or one flat box) in image pixels -> PNG, 255 on every touched pixel."""
    width, height = size
    try:
        boxes = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArchiveError(f"{where}: bounding_boxes is not valid JSON ({exc.msg}): {text!r}") from exc

    def number(v: object) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(boxes, list) and len(boxes) == 4 and all(number(v) for v in boxes):
        boxes = [boxes]
    if not isinstance(boxes, list):
        raise ArchiveError(f"{where}: bounding_boxes must be a JSON list of [x, y, w, h] boxes; got {text!r}")
    gray = np.zeros((height, width), dtype=np.uint8)
    tol = 1e-6
    for box in boxes:
        if not isinstance(box, list) or len(box) != 4 or not all(number(v) for v in box):
            raise ArchiveError(f"{where}: bounding box {box!r} is not [x, y, w, h] with 4 finite numbers")
        x, y, w, h = (float(v) for v in box)
        if w < 0 or h < 0:
            raise ArchiveError(f"{where}: bounding box {box} has a negative width or height")
        if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
            raise ArchiveError(f"{where}: bounding box {box} (x, y, w, h) reaches outside the {width}x{height} image")
        if w == 0 or h == 0:
            continue  # marks nothing (the authors write [[0, 0, 0, 0]] for 'no salient region')
        c0, c1 = math.floor(x + tol), math.ceil(x + w - tol)
        r0, r1 = math.floor(y + tol), math.ceil(y + h - tol)
        gray[max(r0, 0) : min(r1, height), max(c0, 0) : min(c1, width)] = 255
    return _png(gray)


# ---------------------------------------------------------------------------------------------------------------
# Layouts


@dataclass
class _Candidate:
    label: str
    filename: str
    data: bytes
    split: str | None
    salience: tuple[str, str, bytes] | None = None  # ("map", member, bytes) or ("boxes", where, json text)


class _Archive:
    def __init__(self, zf: zipfile.ZipFile, max_bytes: int, max_files: int, max_pixels: int) -> None:
        infos = zf.infolist()
        if len(infos) > max_files:
            raise ArchiveError(f"the archive has {len(infos)} members, over the limit of {max_files}; split it")
        self.reader = _Zip(zf, max_bytes)
        self.max_pixels = max_pixels
        self.members: dict[str, zipfile.ZipInfo] = {}
        declared = 0
        for info in infos:
            name = _safe_name(info)
            declared += info.file_size
            if name.endswith("/") or _is_junk(name):
                continue
            if name in self.members:
                raise ArchiveError(f"member {name!r} appears twice in the archive; keep one")
            self.members[name] = info
        if declared > max_bytes:
            raise ArchiveError(
                f"the archive declares {declared} bytes uncompressed, over the limit of {max_bytes}; "
                "split it into smaller uploads"
            )
        # A zip bomb: images barely compress, so an archive that inflates to many times its size is refused
        # before a byte is inflated (declared sizes), and a lying header is caught while reading (the budget).
        budget = inflate_budget(sum(info.compress_size for info in infos))
        if declared > budget:
            raise ArchiveError(
                f"the archive declares {declared} bytes uncompressed from {sum(i.compress_size for i in infos)} "
                f"compressed, more than {MAX_COMPRESSION_RATIO} times its size (a zip bomb?); images barely "
                "compress: store them as PNG or JPEG"
            )
        self.reader.max_bytes = min(max_bytes, budget)
        if not self.members:
            raise ArchiveError("the archive holds no files; add images (one folder per class) or a manifest.csv")
        # one wrapping top folder is transparent
        tops = {n.split("/", 1)[0] for n in self.members}
        self.prefix = ""
        if len(tops) == 1 and all("/" in n for n in self.members):
            top = next(iter(tops))
            inner = [n[len(top) + 1 :] for n in self.members]
            # strip it only if it wraps a layout (folders or a manifest), not when it is the one class folder
            wraps = any("/" in r or r.lower().endswith(".csv") for r in inner)
            if wraps and top.lower() not in SPLIT_NAMES and top != SALIENCE_DIR:
                self.prefix = top + "/"
        self.rel = {n[len(self.prefix) :]: n for n in self.members}

    def read(self, rel: str) -> bytes:
        name = self.rel[rel]
        return self.reader.read(self.members[name], name)

    # -- CSV manifest ----------------------------------------------------------------------------------------

    def manifest(self) -> str | None:
        csvs = sorted(r for r in self.rel if "/" not in r and r.lower().endswith(".csv"))
        for r in csvs:
            if r.lower() == MANIFEST_NAME:
                return r
        if len(csvs) > 1:
            raise ArchiveError(
                f"the archive has several CSV files at the top ({', '.join(csvs)}); name the manifest {MANIFEST_NAME!r}"
            )
        return csvs[0] if csvs else None

    def _resolve(self, cell: str, where: str, column: str) -> str:
        path = cell.strip().replace("\\", "/")
        if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
            raise ArchiveError(f"{where}: {column} {cell!r} is absolute; give a path relative to the CSV")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ArchiveError(f"{where}: {column} {cell!r} points outside the archive ('..')")
        rel = "/".join(parts)
        if rel in self.rel:
            return rel
        if rel in self.members:  # written relative to the zip root, including the top folder
            return rel[len(self.prefix) :]
        raise ArchiveError(f"{where}: {column} {cell!r} is not in the archive; add the file or fix the path")

    def from_manifest(self, csv_rel: str, max_rows: int) -> list[_Candidate]:
        raw = self.read(csv_rel)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ArchiveError(f"{csv_rel} is not UTF-8 text ({exc}); save it as UTF-8 CSV") from exc
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            raise ArchiveError(f"{csv_rel} is empty; it needs the header image_path,image_class")
        header = [h.strip().lower() for h in header]
        if "image_path" not in header or "image_class" not in header:
            raise ArchiveError(
                f"{csv_rel} header {header} lacks image_path and image_class; expected "
                "image_path,image_class and optionally salience_map_path or bounding_boxes, split"
            )
        col = {name: i for i, name in enumerate(header)}
        out: list[_Candidate] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{csv_rel} line {reader.line_num}"
            if len(out) >= max_rows:
                raise ArchiveError(f"{csv_rel} has more than {max_rows} rows; split the dataset")

            def cell(name: str, row: list[str] = row) -> str:
                i = col.get(name)
                return row[i].strip() if i is not None and i < len(row) else ""

            image_cell, label = cell("image_path"), cell("image_class")
            if not image_cell:
                raise ArchiveError(f"{where}: image_path is empty")
            if not label:
                raise ArchiveError(f"{where}: image_class is empty; give every image a class")
            image_rel = self._resolve(image_cell, where, "image_path")
            map_cell, box_cell = cell("salience_map_path"), cell("bounding_boxes")
            if map_cell and box_cell:
                raise ArchiveError(f"{where}: fill salience_map_path or bounding_boxes, not both")
            salience = None
            if map_cell:
                map_rel = self._resolve(map_cell, where, "salience_map_path")
                salience = ("map", f"{where}: salience map {map_rel!r}", self.read(map_rel))
            elif box_cell:
                salience = ("boxes", where, box_cell.encode())
            out.append(
                _Candidate(
                    label=label,
                    filename=self.rel[image_rel],
                    data=self.read(image_rel),
                    split=cell("split").lower() or None,
                    salience=salience,
                )
            )
        return out

    # -- ImageFolder -----------------------------------------------------------------------------------------

    def from_folders(self) -> list[_Candidate]:
        files = sorted(self.rel)
        nested = [r for r in files if "/" in r]
        for r in files:
            if "/" not in r and PurePosixPath(r).suffix.lower() in IMAGE_EXTENSIONS:
                raise ArchiveError(
                    f"{self.rel[r]!r} is not inside a class folder; put each image in a folder named after its "
                    "class (<class>/<image>) or add a manifest.csv"
                )
        tops = sorted({r.split("/", 1)[0] for r in nested} - {SALIENCE_DIR})
        splits = [t for t in tops if t.lower() in SPLIT_NAMES]
        if splits and len(splits) != len(tops):
            others = [t for t in tops if t.lower() not in SPLIT_NAMES]
            raise ArchiveError(
                f"the archive mixes split folders ({', '.join(splits)}) with class folders ({', '.join(others)}); "
                "put every class folder inside train/ or test/, or use no split folders"
            )
        saliences: dict[tuple[str | None, str, str], str] = {}
        images: list[tuple[str | None, str, str, str]] = []  # (split, label, path within class, rel)
        for r in nested:
            parts = r.split("/")
            if parts[0] == SALIENCE_DIR:
                rest = parts[1:]
                split = None
                if splits and len(rest) >= 3 and rest[0].lower() in SPLIT_NAMES:
                    split, rest = rest[0].lower(), rest[1:]
                if len(rest) < 2:
                    raise ArchiveError(
                        f"salience map {self.rel[r]!r} is not in a class folder; use salience/<class>/<name>.png"
                    )
                saliences[(split, rest[0], "/".join(rest[1:]))] = r
                continue
            if splits:
                if len(parts) < 3:
                    raise ArchiveError(f"{self.rel[r]!r} lies directly in {parts[0]}/; put it in {parts[0]}/<class>/")
                images.append((parts[0].lower(), parts[1], "/".join(parts[2:]), r))
            else:
                images.append((None, parts[0], "/".join(parts[1:]), r))

        def stem(path: str) -> str:
            p = PurePosixPath(path)
            return str(p.with_suffix("")) if p.suffix else path

        index: dict[tuple[str | None, str, str], list[str]] = {}  # (split, class, name sans suffix) -> maps
        for (split, label, path), srel in sorted(saliences.items(), key=lambda kv: kv[1]):
            index.setdefault((split, label, stem(path)), []).append(srel)
        used: set[str] = set()
        out: list[_Candidate] = []
        for split, label, path, r in images:
            salience = None
            keys = [(s, label, name) for s in dict.fromkeys((split, None)) for name in (stem(path), path)]
            found = next((m for key in keys for m in index.get(key, ()) if m not in used), None)
            if found is not None:
                used.add(found)
                salience = ("map", f"salience map {self.rel[found]!r}", self.read(found))
            out.append(_Candidate(label, self.rel[r], self.read(r), split, salience))
        orphans = sorted(set(saliences.values()) - used)
        if orphans:
            raise ArchiveError(
                f"salience map {self.rel[orphans[0]]!r} matches no image (expected an image at <class>/<name>.* "
                f"for salience/<class>/<name>.png){f' (and {len(orphans) - 1} more)' if len(orphans) > 1 else ''}"
            )
        return out


def read_archive(
    source: str | Path | BinaryIO,
    *,
    max_bytes: int = 512 * MiB,
    max_files: int = 100_000,
    max_pixels: int = 40_000_000,
) -> list[ArchiveImage]:
    """All images of a dataset zip, validated, in a deterministic order.

    ``source``: a path or a seekable binary file (an upload). ``max_bytes`` bounds the total decompressed
    size (declared and actually read), ``max_files`` the number of zip members, ``max_pixels`` the pixels
    of any one image or map (checked from the header, before decoding).

    Order: CSV manifests keep their row order; ImageFolder archives are sorted by member path. An image
    whose bytes repeat an earlier one (same sha256) is dropped silently (with its salience map). Raises
    `ArchiveError` (a ValueError) naming the member and the problem.
    """
    for name, value in (("max_bytes", max_bytes), ("max_files", max_files), ("max_pixels", max_pixels)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}")
    zf = _open_zip(source, max_bytes)
    with zf:
        archive = _Archive(zf, max_bytes, max_files, max_pixels)
        manifest = archive.manifest()
        candidates = archive.from_manifest(manifest, max_files) if manifest else archive.from_folders()

        seen: set[str] = set()
        images: list[ArchiveImage] = []
        for c in candidates:
            digest = sha256_hex(c.data)
            if digest in seen:
                continue
            seen.add(digest)
            with _open_checked(c.data, f"image {c.filename!r}", max_pixels) as im:
                width, height = im.size
            salience_png = None
            if c.salience is not None:
                kind, where, payload = c.salience
                if kind == "map":
                    salience_png = _salience_png(payload, where, (width, height), max_pixels)
                else:
                    salience_png = _boxes_png(payload.decode(), where, (width, height))
            images.append(ArchiveImage(c.label, c.filename, c.data, width, height, salience_png, c.split))

    if not images:
        raise ArchiveError(
            "the archive holds no images; use <class>/<image> folders or a manifest.csv with image_path,image_class"
        )
    classes = sorted({im.label for im in images})
    if len(classes) < 2:
        raise ArchiveError(
            f"the archive has only {len(classes)} class ({', '.join(classes)}); a classification dataset needs "
            "at least 2 (one folder per class, or distinct image_class values)"
        )
    return images
