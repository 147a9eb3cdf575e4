"""A small real study for the browser tests: 64x64 RGB PNGs (a coloured disc on a gradient per class), their
perturbed versions at graded eps (plain sign noise of amplitude eps, clearly visible at the larger levels), and
an open study over them, written by `tests.seeding.seed_ready_study` (as `tests/backend/factories.py` does).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from backend.models import Study
from backend.storage import BlobStore
from tests.seeding import Pictures, seed_ready_study

SIZE = 64
EPS_LEVELS = [8 / 255, 32 / 255]
CLASSES = ["apple", "lemon"]
#: 2 practice, 4 main (+1 catch), 1 annotation: 8 trials, the smallest session that walks every phase.
CONFIG: dict[str, Any] = {"n_main": 4, "n_practice": 2, "n_catch": 1, "n_annotate": 1, "seed": 3}
TOTAL = 2 + 4 + 1 + 1


def source_image(k: int) -> np.ndarray:
    """Image k as uint8 (64, 64, 3): a vertical gradient and a disc whose colour says its class."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    base = np.stack([40 + 1.5 * y, 60 + k * 12 + 0.5 * x, 90 + 0.8 * y], axis=-1)
    disc = (x - 32 - (k % 3) * 4) ** 2 + (y - 30) ** 2 < 18**2
    base[disc] = (220, 40, 40) if k % 2 == 0 else (235, 215, 40)
    return np.clip(base, 0, 255).astype(np.uint8)


def perturbed(img: np.ndarray, eps: float, seed: int) -> np.ndarray:
    """`img` plus sign noise of amplitude eps (L-inf, images in [0, 1]), clipped to the valid range."""
    if eps == 0:
        return img
    rng = np.random.default_rng(seed)
    noise = rng.choice([-1.0, 1.0], size=img.shape) * eps * 255
    return np.clip(img.astype(np.float32) + noise, 0, 255).round().astype(np.uint8)


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(array, "RGB").save(out, format="PNG")
    return out.getvalue()


#: The browser tests' pictures: a disc whose colour says its class, stimuli with sign noise of amplitude eps.
DISCS = Pictures(
    SIZE,
    SIZE,
    label=lambda k: CLASSES[k % 2],
    image=lambda k: png(source_image(k)),
    stimulus=lambda k, eps: png(perturbed(source_image(k), eps, seed=k * 100 + int(eps * 255))),
)


def make_study(session: Session, storage: BlobStore, *, slug: str, n_images: int = 6, **config: Any) -> Study:
    """Dataset of `n_images`, a ready stimulus set (clean, EPS_LEVELS, catch) and an open study; committed
    (`tests.seeding.seed_ready_study` with the disc pictures)."""
    return seed_ready_study(
        session,
        storage,
        DISCS,
        slug=slug,
        n_images=n_images,
        eps_levels=EPS_LEVELS,
        title="How do images look?",
        dataset_name=f"browser-{slug}",
        set_name="browser set",
        steps=1,
        **{**CONFIG, **config},
    )
