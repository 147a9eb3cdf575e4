"""The load benchmark's service side: a schema of its own in PostgreSQL, the seeded study, the service's settings."""

from __future__ import annotations

import io
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.seeding import Pictures, seed_ready_study  # one seed for tests and benchmarks

REPO = Path(__file__).resolve().parents[2]
SECRET = "bench-secret-" + "z" * 40
IMAGE_SIZE = (64, 64)
EPS_LEVELS = [2 / 255, 4 / 255, 8 / 255]
#: 2 practice + 14 main + 2 catch + 2 annotation = 20 trials per session.
STUDY_CONFIG = {"n_practice": 2, "n_main": 14, "n_catch": 2, "n_annotate": 2, "stimulus_duration_ms": 500}
N_IMAGES = 16


def postgres_url_from(arg: str | None) -> str:
    url = arg or os.environ.get("SIPAT_BENCH_POSTGRES_URL") or os.environ.get("SIPAT_TEST_POSTGRES_URL")
    if not url:
        sys.exit(
            "no PostgreSQL: pass --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test or set "
            "SIPAT_BENCH_POSTGRES_URL / SIPAT_TEST_POSTGRES_URL"
        )
    return url


def schema_url(base_url: str, schema: str) -> str:
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def bench_schema(base_url: str, *, migrate: bool = True) -> Iterator[str]:
    """URL of a new schema `bench_<random>` (migrated to head), dropped when the block ends."""
    from sqlalchemy import text

    from backend.db import make_engine
    from backend.migrate import upgrade

    schema = f"bench_{secrets.token_hex(5)}"
    admin = make_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = schema_url(base_url, schema)
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def _png(seed: int, noise: float, size: tuple[int, int] = IMAGE_SIZE, mode: str = "RGB") -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3)
    pixels = np.clip(base + rng.uniform(-noise, noise, size=(size[1], size[0], 3)) * 255, 0, 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").convert(mode).save(out, format="PNG")
    return out.getvalue()


#: The benchmark's pictures: 64 px noise around a colour per image, stimuli with noise of amplitude eps.
NOISE = Pictures(
    IMAGE_SIZE[0],
    IMAGE_SIZE[1],
    label=lambda k: f"class{k % 4}",
    image=lambda k: _png(k, 0),
    stimulus=_png,
    filename=lambda k: f"class{k % 4}/{k}.png",
)


def seed_study(url: str, data_dir: Path, *, slug: str = "bench") -> int:
    """A dataset of N_IMAGES images, a ready stimulus set (every eps + a catch stimulus), an open study
    (`tests.seeding.seed_ready_study`, as the tests seed theirs)."""
    from backend.db import make_engine, make_session_factory, session_scope
    from backend.storage import LocalBlobStore

    storage = LocalBlobStore(data_dir / "blobs", durable=False)
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            study = seed_ready_study(
                session,
                storage,
                NOISE,
                slug=slug,
                n_images=N_IMAGES,
                eps_levels=EPS_LEVELS,
                title="Load test",
                dataset_name="bench",
                set_name="bench",
                steps=4,
                **STUDY_CONFIG,
            )
            return study.id
    finally:
        engine.dispose()


def service_env(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SIPAT_DATABASE_URL": url,
        "SIPAT_DATA_DIR": str(data_dir),
        "SIPAT_SECRET_KEY": SECRET,
        "SIPAT_ENV": "development",
        # every simulated participant enrols from 127.0.0.1, all within the first second: no per-client /
        # per-study enrolment limit here (not even with --abuse: the per-second one would refuse the crowd)
        "SIPAT_RATE_LIMIT_ENROL_PER_CLIENT": "",
        "SIPAT_RATE_LIMIT_ENROL_PER_STUDY": "",
        "SIPAT_RATE_LIMIT_ENROL_BURST_PER_STUDY": "",
        "PYTHONPATH": str(REPO),
        **extra,
    }
