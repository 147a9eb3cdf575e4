"""Helpers of the worker tests (a module of its own: `conftest` names clash across test directories)."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from backend.datasets.archive import ArchiveImage
from backend.db import session_scope
from backend.services.datasets import import_archive
from backend.settings import Settings
from worker.runtime import Runtime

TEST_SECRET = "worker-test-secret-" + "y" * 32
N_CLASSES = 6


def make_settings(db_url: str, root: Path, **overrides: object) -> Settings:
    """Settings of one test: its database, blobs and broker under `root`, short job timings."""
    values: dict[str, object] = {
        "database_url": db_url,
        "data_dir": root / "data",
        "broker_url": f"sqla+sqlite:///{root / 'broker.db'}",
        "secret_key": TEST_SECRET,
        "job_heartbeat_s": 0.5,
        "job_stale_after_s": 3.0,
        "job_reaper_interval_s": 1.0,
        "job_wait_retry_s": 1.0,
    }
    values.update(overrides)
    return Settings(**values)


@lru_cache(maxsize=4)
def mnist_archive(n_train: int = 48, n_test: int = 12) -> tuple[ArchiveImage, ...]:
    """Real digits of classes 0..N_CLASSES-1 as PNG ArchiveImages with imported stroke salience."""
    from sipat.data import load_builtin

    out: list[ArchiveImage] = []
    for split, n in (("train", n_train), ("test", n_test)):
        ds = load_builtin("mnist5k", split=split, seed=0)
        keep = [i for i in range(len(ds)) if int(ds.labels[i]) < N_CLASSES]
        per = -(-n // N_CLASSES)
        chosen: list[int] = []
        for c in range(N_CLASSES):
            chosen += [i for i in keep if int(ds.labels[i]) == c][:per]
        for i in sorted(chosen)[:n]:
            pixels = (ds.images[i, 0].numpy() * 255).round().astype(np.uint8)
            sal = (ds.salience[i, 0].numpy() * 255).astype(np.uint8)
            label = str(int(ds.labels[i]))
            out.append(
                ArchiveImage(
                    label=label,
                    filename=f"{split}/{label}/{i:05d}.png",
                    data=_png(pixels),
                    width=28,
                    height=28,
                    salience_png=_png(sal),
                    split=split,
                )
            )
    return tuple(out)


def _png(u8: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(u8, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def import_mnist(rt: Runtime, *, n_train: int = 48, n_test: int = 12, name: str = "digits") -> int:
    """A committed dataset of real digits; returns its id."""
    with session_scope(rt.session_factory) as session:
        return import_archive(session, rt.storage, list(mnist_archive(n_train, n_test)), name).id


#: Train params of a tiny, fast run (1 epoch, 2 PGD steps, small eval).
FAST_TRAIN = {
    "method": "pgd_at",
    "arch": "small_cnn",
    "epochs": 1,
    "batch_size": 16,
    "lr": 0.05,
    "eps": 0.1,
    "alpha": 0.05,
    "steps": 2,
    "eval_eps": [0.0, 0.1],
    "eval_steps": 2,
}
