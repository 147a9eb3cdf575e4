"""A study's annotations as a zip: every painted mask as a PNG, each image's mean map as a PNG, and a COCO-style
`annotations.json` whose segmentations are uncompressed RLE (column-major counts, `maskstats.rle_encode`).

Layout of the zip:

    annotations.json          COCO: info, images, categories (the image labels), annotations
    masks/<annotation id>.png 8-bit grayscale as painted, 255 = salient (the stored file)
    mean/<image id>.png       mean of the unflagged annotators' masks, 8-bit grayscale
    README.txt                what the fields mean

Per annotation, besides COCO's fields (`segmentation` = the mask binarised at 50 %, `area`, `bbox`,
`iscrowd` 0): `participant_id`, `participant_index`, `flagged` (excluded by the catch trials), `duration_ms`,
`mask_file`.

One builder for the dashboard's download (`backend.admin.annotations`) and the research API's
(`GET /api/v1/studies/{id}/annotations.zip`, `backend.api.exports`), so the two cannot drift apart.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from backend.models import Study
from backend.services.admin_views import PaintedMask
from backend.services.maskstats import bbox, binarize, decode_map, encode_png, mean_map, rle_encode

README = """Salience annotations of study {slug!r} ({title}), exported {when}.

annotations.json  COCO-style: images (id = image id, size = the size participants painted at), categories (the
                  image labels), annotations (id = annotation id) with `segmentation` as uncompressed RLE:
                  {{"size": [height, width], "counts": [...]}}, counts of alternating 0s and 1s in column-major
                  order starting with 0s, as pycocotools reads them. The mask is binarised at 50 %.
masks/            each annotation's mask as painted (grayscale, 255 = salient).
mean/             each image's mean over the annotators not flagged by the catch trials (grayscale 0..255).
"""


@dataclass(frozen=True)
class ImageMasks:
    """The masks of one image at one size (the first annotation's; others are resized to it)."""

    image_id: int
    size: tuple[int, int]  # (width, height)
    masks: list[tuple[PaintedMask, np.ndarray]]  # with the mask as (H, W) floats in [0, 1]

    @property
    def kept(self) -> list[np.ndarray]:
        """Masks of participants not flagged by the catch trials."""
        return [m for painted, m in self.masks if not painted.participant.flagged]


def group_masks(painted: list[PaintedMask], load: Callable[[str], bytes]) -> list[ImageMasks]:
    """The annotations grouped by image (in the order given), each mask decoded at its image's first size."""
    groups: dict[int, list[PaintedMask]] = {}
    for p in painted:
        groups.setdefault(p.image.id, []).append(p)
    out = []
    for image_id, items in groups.items():
        size = (items[0].annotation.width, items[0].annotation.height)
        out.append(ImageMasks(image_id, size, [(p, decode_map(load(p.annotation.mask_sha256), size)) for p in items]))
    return out


def coco_document(study: Study, grouped: list[ImageMasks]) -> dict[str, Any]:
    labels = sorted({p.image.label for g in grouped for p, _ in g.masks})
    category = {label: k + 1 for k, label in enumerate(labels)}
    images, annotations = [], []
    for g in grouped:
        first = g.masks[0][0].image
        images.append({"id": g.image_id, "file_name": first.filename, "width": g.size[0], "height": g.size[1]})
        for painted, mask in g.masks:
            binary = binarize(mask)
            annotations.append(
                {
                    "id": painted.annotation.id,
                    "image_id": g.image_id,
                    "category_id": category[painted.image.label],
                    "segmentation": rle_encode(binary),
                    "area": int(binary.sum()),
                    "bbox": bbox(binary),
                    "iscrowd": 0,
                    "participant_id": painted.participant.id,
                    "participant_index": painted.participant.index,
                    "flagged": painted.participant.flagged,
                    "duration_ms": painted.annotation.duration_ms,
                    "mask_file": f"masks/{painted.annotation.id}.png",
                }
            )
    return {
        "info": {
            "description": f"Salience annotations of study {study.slug} ({study.title})",
            "version": "1.0",
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": images,
        "categories": [{"id": k, "name": label, "supercategory": "image"} for label, k in category.items()],
        "annotations": annotations,
    }


def annotations_zip(study: Study, painted: list[PaintedMask], load: Callable[[str], bytes]) -> bytes:
    """The zip described above, built in memory (masks are small PNGs)."""
    grouped = group_masks(painted, load)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("annotations.json", json.dumps(coco_document(study, grouped), separators=(",", ":")))
        for g in grouped:
            for p, _ in g.masks:
                zf.writestr(f"masks/{p.annotation.id}.png", load(p.annotation.mask_sha256))
            if g.kept:
                zf.writestr(f"mean/{g.image_id}.png", encode_png(mean_map(g.kept)))
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        zf.writestr("README.txt", README.format(slug=study.slug, title=study.title, when=when))
    return out.getvalue()
