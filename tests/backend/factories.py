"""Rows and blobs for backend tests, written straight to the database (no API), with tiny real PNGs."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from backend.auth import create_user
from backend.models import Dataset, StimulusSet, Study, User
from backend.storage import BlobStore
from tests.seeding import Pictures, add_dataset, add_stimulus_set, add_study, seed_ready_study

#: Parametrise a test that uses the `db_url` fixture (conftest.py) over SQLite and PostgreSQL.
BOTH_DATABASES = pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


EPS_LEVELS = [0.0, 2 / 255, 8 / 255]
SIZE = (8, 6)  # width, height of every test image


def png_bytes(
    width: int = SIZE[0], height: int = SIZE[1], *, seed: int = 0, noise: float = 0.0, mode: str = "RGB"
) -> bytes:
    """A small PNG: a flat colour chosen by `seed`, plus uniform noise of amplitude `noise` (0..1)."""
    rng = random.Random(seed)
    base = [rng.randrange(256) for _ in range(3)]
    img = PILImage.new("RGB", (width, height), tuple(base))
    if noise:
        amp = int(noise * 255)
        img.putdata([tuple(max(0, min(255, c + rng.randint(-amp, amp))) for c in base) for _ in range(width * height)])
    out = io.BytesIO()
    img.convert(mode).save(out, format="PNG")
    return out.getvalue()


def mask_png(width: int = SIZE[0], height: int = SIZE[1], *, mode: str = "L", fill: int = 255) -> bytes:
    """A mask image with the left half painted (`fill`) in `mode`; format PNG."""
    img = PILImage.new("L", (width, height), 0)
    img.paste(fill, (0, 0, width // 2, height))
    if mode == "RGBA":
        rgba = PILImage.new("RGBA", (width, height), (255, 0, 0, 0))
        rgba.putalpha(img)
        img = rgba
    elif mode != "L":
        img = img.convert(mode)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


#: The backend tests' pictures: flat colours of 8x6 pixels, stimuli with uniform noise of amplitude eps.
TINY = Pictures(
    SIZE[0],
    SIZE[1],
    label=lambda k: f"class{k % 2}",
    image=lambda k: png_bytes(seed=k),
    stimulus=lambda k, eps: png_bytes(seed=k, noise=eps),
)


def make_dataset(
    session: Session, storage: BlobStore, *, n_images: int = 6, name: str = "tiny", owner_id: int | None = None
) -> Dataset:
    """A dataset of tiny test images; `owner_id` None: the administrators' (as rows made before owners)."""
    dataset = add_dataset(session, storage, TINY, n_images=n_images, name=name)
    dataset.owner_id = owner_id
    return dataset


def make_stimulus_set(
    session: Session,
    storage: BlobStore,
    dataset: Dataset,
    *,
    eps_levels: list[float] | None = None,
    status: str = "ready",
    with_stimuli: bool = True,
    owner_id: int | None = None,
) -> StimulusSet:
    """A stimulus set with, per image, a trial stimulus at every eps (0 = clean) and a catch stimulus;
    `owner_id` None: the administrators'."""
    levels = list(EPS_LEVELS if eps_levels is None else eps_levels)
    sset = add_stimulus_set(
        session,
        storage,
        dataset,
        TINY,
        eps_levels=levels,
        name="test set",
        steps=4,
        status=status,
        with_stimuli=with_stimuli,
    )
    sset.owner_id = owner_id
    return sset


SMALL_CONFIG: dict[str, Any] = {"n_main": 4, "n_practice": 2, "n_catch": 1, "n_annotate": 1}


def make_study(
    session: Session, stimulus_set: StimulusSet, *, slug: str = "pilot", status: str = "open", **config: Any
) -> Study:
    """A study over `stimulus_set` with a small schedule (2 practice, 4 main, 1 catch, 1 annotate)."""
    return add_study(
        session, stimulus_set, slug=slug, title=f"Study {slug}", status=status, **{**SMALL_CONFIG, **config}
    )


def make_open_study(session: Session, storage: BlobStore, *, slug: str = "pilot", **config: Any) -> Study:
    """Dataset + ready stimulus set + open study (`tests.seeding.seed_ready_study` with the tiny pictures),
    committed."""
    return seed_ready_study(
        session,
        storage,
        TINY,
        slug=slug,
        n_images=6,
        eps_levels=EPS_LEVELS,
        title=f"Study {slug}",
        dataset_name="tiny",
        set_name="test set",
        **{**SMALL_CONFIG, **config},
    )


def make_user(
    session: Session, email: str = "ada@example.org", *, password: str = "correct horse", admin: bool = True
) -> User:
    user = create_user(session, email, password, is_admin=admin)
    session.commit()
    return user
