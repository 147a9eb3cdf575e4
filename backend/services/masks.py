"""Validation of painted salience masks (PNG) and reading image sizes from blob headers, with Pillow only.

A mask is accepted as the browser's canvas produces it (RGBA: the alpha channel is the paint) or as a
grayscale image (L or 1: the value is the paint, LA: the alpha is); it is stored as an 8-bit grayscale PNG,
255 = salient, 0 = not, at exactly the displayed image's width and height.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from backend.services.errors import InvalidInputError

MAX_MASK_BYTES = 4 * 1024 * 1024
ACCEPTED_MODES = ("L", "1", "LA", "RGBA")


def image_size(source: Path | BinaryIO) -> tuple[int, int]:
    """(width, height) of an image file (a path or a binary file object), read from its header only."""
    with Image.open(source) as img:
        return img.size


def normalize_mask(data: bytes, *, width: int, height: int) -> bytes:
    """The mask `data` (PNG bytes) as an 8-bit grayscale PNG of size (width, height); 422 when unusable."""
    if len(data) > MAX_MASK_BYTES:
        raise InvalidInputError(
            f"the mask PNG has {len(data)} bytes, more than the {MAX_MASK_BYTES} allowed; send a grayscale "
            f"or RGBA PNG of {width}x{height} pixels"
        )
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise InvalidInputError(
            f"the mask PNG claims far more pixels than the image has (a decompression bomb?); send a PNG of "
            f"{width}x{height} pixels"
        ) from None
    except (UnidentifiedImageError, OSError):
        raise InvalidInputError("the mask is not a readable image; send a PNG file") from None
    except ValueError as exc:  # Pillow's bound on a text or ICC chunk ("Decompressed Data Too Large")
        raise InvalidInputError(
            f"the mask PNG has a metadata chunk Pillow refuses ({exc}); send the canvas's PNG without text or "
            "colour-profile chunks"
        ) from None
    with img:
        if img.format != "PNG":
            raise InvalidInputError(f"the mask is a {img.format} image; send a PNG (lossless) instead")
        frames = getattr(img, "n_frames", 1)
        if frames > 1:
            raise InvalidInputError(f"the mask PNG is animated ({frames} frames); send a single still image")
        if img.size != (width, height):
            raise InvalidInputError(
                f"the mask is {img.size[0]}x{img.size[1]} pixels but the image is {width}x{height}; paint on "
                "a canvas of the image's natural size and send that"
            )
        if img.mode not in ACCEPTED_MODES:
            raise InvalidInputError(
                f"the mask PNG has mode {img.mode}; send grayscale (L: value = salience) or RGBA "
                "(alpha = salience), 8 bits per channel"
            )
        try:
            img.load()
        except (OSError, ValueError, SyntaxError):
            raise InvalidInputError("the mask PNG is truncated or corrupt; send it again") from None
        if img.mode in ("LA", "RGBA"):
            gray = img.getchannel("A")
        else:
            gray = img.convert("L")
    out = io.BytesIO()
    gray.save(out, format="PNG")
    return out.getvalue()
