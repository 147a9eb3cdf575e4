"""Images and salience maps of an upload: fully decoded under a pixel limit (decompression bombs, truncation),
maps turned into 8-bit grayscale PNGs of their image's size, and bounding boxes rendered as maps.

Its own module because these checks are about one image's bytes, whatever layout the archive has
(`backend.datasets.archive`) and whatever container it came in (`backend.datasets.safezip`).
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, UnidentifiedImageError

from backend.datasets.safezip import ArchiveError
from backend.vocabulary import parse_boxes

#: Pillow plugins tried on uploaded bytes: formats every browser shows. Fewer parsers, less attack surface.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
# A map whose aspect ratio differs from its image's by more than this is almost surely the wrong file (or
# transposed), not a downscaled copy.
_ASPECT_TOLERANCE = 0.05


def open_checked(data: bytes, what: str, max_pixels: int) -> Image.Image:
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


def grayscale(im: Image.Image, what: str) -> np.ndarray:
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


def png(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def salience_png(data: bytes, what: str, size: tuple[int, int], max_pixels: int) -> bytes:
    width, height = size
    with open_checked(data, what, max_pixels) as im:
        gray = grayscale(im, what)
    h, w = gray.shape
    if (h, w) != (height, width):
        if abs((w / h) / (width / height) - 1.0) > _ASPECT_TOLERANCE:
            raise ArchiveError(
                f"{what} is {w}x{h} but its image is {width}x{height}; the aspect ratios differ, so it is not a "
                "map of this image (wrong file, or width and height swapped)"
            )
        gray = np.asarray(Image.fromarray(gray).resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)
    return png(gray)


def boxes_png(text: str, where: str, size: tuple[int, int]) -> bytes:
    """JSON ``[[x, y, w, h], ...]`` (or one flat box) in image pixels -> PNG, 255 on every touched pixel."""
    width, height = size
    try:
        boxes = parse_boxes(text, size)  # the rule `sipat.data` applies to the same manifest
    except ValueError as exc:
        raise ArchiveError(f"{where}: {exc}") from None
    gray = np.zeros((height, width), dtype=np.uint8)
    tol = 1e-6
    for x, y, w, h in boxes:
        if w == 0 or h == 0:
            continue  # marks nothing (the authors write [[0, 0, 0, 0]] for 'no salient region')
        c0, c1 = math.floor(x + tol), math.ceil(x + w - tol)
        r0, r1 = math.floor(y + tol), math.ceil(y + h - tol)
        gray[max(r0, 0) : min(r1, height), max(c0, 0) : min(c1, width)] = 255
    return png(gray)
