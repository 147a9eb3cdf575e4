"""What a job function needs besides its row: settings, database sessions, the blob store, a device, scratch.

One `Runtime` per process (`get_runtime()`); a forked pool child builds its own, so no database connection is
shared across processes. Tests build one on their own settings with `Runtime.from_settings`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from sqlalchemy import Engine

from backend.blobstores import open_blob_store
from backend.db import make_engine, make_session_factory
from backend.services.jobs import JobTimings, SessionFactory
from backend.settings import Settings, get_settings
from backend.storage import BlobStore
from sipat.training import pick_device


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: SessionFactory
    storage: BlobStore
    timings: JobTimings
    device: torch.device = field(default_factory=pick_device)

    @classmethod
    def from_settings(cls, settings: Settings, *, durable: bool = True, device: str | None = None) -> Runtime:
        engine = make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=make_session_factory(engine),
            storage=open_blob_store(settings, durable=durable),
            timings=JobTimings.from_settings(settings),
            device=pick_device(device),
        )

    def scratch_dir(self, job_id: int) -> Path:
        """`<data_dir>/scratch/job-<id>/`: files a re-delivered job resumes from (e.g. the training checkpoint)."""
        path = self.settings.data_dir / "scratch" / f"job-{job_id}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def clear_scratch(self, job_id: int) -> None:
        shutil.rmtree(self.settings.data_dir / "scratch" / f"job-{job_id}", ignore_errors=True)

    def close(self) -> None:
        self.engine.dispose()


_runtime: tuple[int, Runtime] | None = None


def get_runtime() -> Runtime:
    """The runtime of this process, from the `SIPAT_*` settings (rebuilt after a fork)."""
    global _runtime
    if _runtime is None or _runtime[0] != os.getpid():
        if _runtime is not None:  # forked: leave the parent's connections to the parent
            _runtime[1].engine.dispose(close=False)
        _runtime = (os.getpid(), Runtime.from_settings(get_settings()))
    return _runtime[1]
