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

This module reads the layouts; the container checks live in `backend.datasets.safezip` and the checks of one
image or map in `backend.datasets.archive_images`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from backend.datasets.archive_images import boxes_png, open_checked, salience_png
from backend.datasets.safezip import ArchiveError, MiB, checked_members, open_zip
from backend.vocabulary import IMAGE_EXTENSIONS, MANIFEST_REQUIRED_COLUMNS, MANIFEST_SALIENCE_COLUMNS

SPLIT_NAMES = frozenset({"train", "test", "val", "valid", "validation"})
SALIENCE_DIR = "salience"
MANIFEST_NAME = "manifest.csv"
# The authors' manifest columns, as `sipat.data` reads them (one definition: the vocabulary).
IMAGE_COL, CLASS_COL = MANIFEST_REQUIRED_COLUMNS
MAP_COL, BOX_COL = MANIFEST_SALIENCE_COLUMNS


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
        self.members, self.reader = checked_members(zf, max_bytes, max_files)
        self.max_pixels = max_pixels
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
            raise ArchiveError(f"{csv_rel} is empty; it needs the header {IMAGE_COL},{CLASS_COL}")
        header = [h.strip().lower() for h in header]
        if IMAGE_COL not in header or CLASS_COL not in header:
            raise ArchiveError(
                f"{csv_rel} header {header} lacks {IMAGE_COL} and {CLASS_COL}; expected "
                f"{IMAGE_COL},{CLASS_COL} and optionally {MAP_COL} or {BOX_COL}, split"
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

            image_cell, label = cell(IMAGE_COL), cell(CLASS_COL)
            if not image_cell:
                raise ArchiveError(f"{where}: {IMAGE_COL} is empty")
            if not label:
                raise ArchiveError(f"{where}: {CLASS_COL} is empty; give every image a class")
            image_rel = self._resolve(image_cell, where, IMAGE_COL)
            map_cell, box_cell = cell(MAP_COL), cell(BOX_COL)
            if map_cell and box_cell:
                raise ArchiveError(f"{where}: fill {MAP_COL} or {BOX_COL}, not both")
            salience = None
            if map_cell:
                map_rel = self._resolve(map_cell, where, MAP_COL)
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
    zf = open_zip(source, max_bytes)
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
            with open_checked(c.data, f"image {c.filename!r}", max_pixels) as im:
                width, height = im.size
            map_png = None
            if c.salience is not None:
                kind, where, payload = c.salience
                if kind == "map":
                    map_png = salience_png(payload, where, (width, height), max_pixels)
                else:
                    map_png = boxes_png(payload.decode(), where, (width, height))
            images.append(ArchiveImage(c.label, c.filename, c.data, width, height, map_png, c.split))

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
