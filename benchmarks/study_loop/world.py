"""The platform of one simulated study run: a migrated SQLite database, its blob store, the app, an inline
worker, a dataset with exact object masks imported as it would be uploaded, and one study per painting pool.

Why inline: the app's enqueuer is replaced by `worker.runner.execute` of the queued job, so the ranking that
`rerank_every` queues after a painting runs to the end before the next participant enrols. That is a
deployment whose worker is never behind (the upper bound of what active choice can gain); with a slow worker
the next participants paint from an older ranking. Everything else is the service as deployed: the routes, the
background refresh after a painting, the claims, the worker's job function and its storage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from backend.api.deps import get_enqueuer
from backend.datasets.archive import ArchiveImage
from backend.db import session_scope
from backend.main import create_app
from backend.migrate import upgrade
from backend.models import Image, Job, Stimulus, StimulusSet
from backend.services.datasets import import_archive
from backend.services.studies import create_study, open_study
from backend.settings import Settings
from backend.study.config import StudyConfig
from sipat.data import load_builtin
from sipat.stimuli import to_png
from worker.runner import execute
from worker.runtime import Runtime

POOLS = ("random", "active")


@dataclass(frozen=True)
class LoopConfig:
    """One simulated study run (`python -m benchmarks.study_loop --help` says what each is)."""

    dataset: str = "shapes"
    n_train: int = 300
    n_test: int = 100
    paintings: int = 100
    every: int = 10
    per_session: int = 5
    min_annotators: int = 1
    predictor_steps: int = 150
    width: int = 8

    def __post_init__(self) -> None:
        if self.every % self.per_session or self.paintings % self.every:
            raise ValueError(
                f"every ({self.every}) must be a multiple of per_session ({self.per_session}) and paintings "
                f"({self.paintings}) a multiple of every, so each measurement falls between two sessions"
            )


@dataclass
class World:
    """What a run needs: the runtime (database, blobs), the HTTP client of the app, the study of each pool, and
    the dataset in memory (images as the service stores them, exact masks, labels) indexed by image id."""

    rt: Runtime
    client: TestClient
    studies: dict[str, tuple[int, str]]  # pool -> (study id, slug)
    train_ids: list[int]  # image ids of the training split, in dataset order
    test_ids: list[int]
    by_sha: dict[str, int]  # sha256 of a training image's PNG -> its index in train_ids
    train_x: torch.Tensor  # (N, C, H, W) in [0, 1], the stored 8-bit pixels
    train_masks: torch.Tensor  # (N, 1, H, W) exact object masks
    train_labels: torch.Tensor
    test_x: torch.Tensor
    test_masks: torch.Tensor


def _archive(cfg: LoopConfig, seed: int) -> tuple[list[ArchiveImage], dict[str, tuple[torch.Tensor, ...]]]:
    """The dataset as an upload (PNG bytes, no salience: the study's people provide it) and, per split, the
    8-bit images as floats, the exact masks and the labels."""
    archive: list[ArchiveImage] = []
    arrays: dict[str, tuple[torch.Tensor, ...]] = {}
    for split, n in (("train", cfg.n_train), ("test", cfg.n_test)):
        ds = load_builtin(cfg.dataset, split=split, seed=seed, **{f"n_{split}": n})
        u8 = (ds.images.clamp(0, 1) * 255).round().to(torch.uint8)
        for i in range(len(ds)):
            label = str(int(ds.labels[i]))
            pixels = u8[i].permute(1, 2, 0).numpy()
            archive.append(
                ArchiveImage(
                    label=label,
                    filename=f"{split}/{label}/{i:05d}.png",
                    data=to_png(pixels),
                    width=pixels.shape[1],
                    height=pixels.shape[0],
                    salience_png=None,
                    split=split,
                )
            )
        arrays[split] = (u8.float() / 255, (ds.salience >= 0.5).float(), ds.labels.clone())
    return archive, arrays


def _stimulus_set(rt: Runtime, dataset_id: int, test_ids: list[int]) -> int:
    """A ready set of the test images, clean and at eps 0.1, for the detection trials (what people judge does
    not matter here; the set only has to exist for a study to open)."""
    with session_scope(rt.session_factory) as session:
        sset = StimulusSet(dataset_id=dataset_id, eps_levels=[0.1], status="ready", params={"split": "test"})
        session.add(sset)
        session.flush()
        for image in session.scalars(select(Image).where(Image.id.in_(test_ids))):
            session.add_all(
                Stimulus(stimulus_set_id=sset.id, image_id=image.id, eps=e, sha256=image.sha256) for e in (0, 0.1)
            )
        return sset.id


def _studies(rt: Runtime, cfg: LoopConfig, set_id: int, seed: int) -> dict[str, tuple[int, str]]:
    """One open study per pool, alike but for `painting_pool`; both re-rank after every `every` paintings with
    the ranking's default params (the random pool does not use the rankings; the dashboard shows their
    held-out quality, which the report sets beside the fair one)."""
    out: dict[str, tuple[int, str]] = {}
    for pool in POOLS:
        config = StudyConfig.model_validate(
            {
                "stimulus_set_id": set_id,
                "n_main": 2,
                "n_practice": 0,
                "n_catch": 0,
                "n_annotate": cfg.per_session,
                "min_annotators": cfg.min_annotators,
                "painting_pool": pool,
                "rerank_every": cfg.every,
                "seed": seed,
            }
        )
        with session_scope(rt.session_factory) as session:
            study = create_study(session, slug=f"loop-{pool}", title=f"simulated study, {pool} pool", config=config)
            open_study(session, study.id)
            out[pool] = (study.id, study.slug)
    return out


@contextmanager
def build_world(root: Path, cfg: LoopConfig, seed: int) -> Iterator[World]:
    """A fresh platform under `root` for one seed (see the module docstring); closed on exit."""
    db = root / "sipat.db"
    upgrade(f"sqlite:///{db}")
    settings = Settings(
        database_url=f"sqlite:///{db}",
        data_dir=root / "data",
        broker_url=f"sqla+sqlite:///{root / 'broker.db'}",
        secret_key=SecretStr("study-loop-" + "s" * 40),
        rate_limit_enrol_per_client="",  # every simulated person comes from the one test client
    )
    rt = Runtime.from_settings(settings, durable=False, device="cpu")
    archive, arrays = _archive(cfg, seed)
    with session_scope(rt.session_factory) as session:
        dataset_id = import_archive(session, rt.storage, archive, f"{cfg.dataset}-{seed}").id
    with session_scope(rt.session_factory) as session:
        rows = session.execute(
            select(Image.id, Image.split, Image.sha256).where(Image.dataset_id == dataset_id).order_by(Image.id)
        ).all()
    train = [(i, sha) for i, split, sha in rows if split == "train"]
    test_ids = [i for i, split, _ in rows if split == "test"]
    if len(train) != cfg.n_train or len(test_ids) != cfg.n_test:
        raise RuntimeError("identical images were merged on import; use another seed or size")
    studies = _studies(rt, cfg, _stimulus_set(rt, dataset_id, test_ids), seed)
    app = create_app(settings)
    app.dependency_overrides[get_enqueuer] = lambda: _run_inline(rt)
    try:
        with TestClient(app) as client:
            yield World(
                rt=rt,
                client=client,
                studies=studies,
                train_ids=[i for i, _ in train],
                test_ids=test_ids,
                by_sha={sha: k for k, (_, sha) in enumerate(train)},
                train_x=arrays["train"][0],
                train_masks=arrays["train"][1],
                train_labels=arrays["train"][2],
                test_x=arrays["test"][0],
                test_masks=arrays["test"][1],
            )
    finally:
        rt.close()


def _run_inline(rt: Runtime) -> Callable[[Job], None]:
    """The app's enqueuer: the job runs here and now (module docstring); a failed job stops the run."""

    def send(job: Job) -> None:
        outcome = execute(job.id, runtime=rt)
        if outcome.status != "succeeded":
            raise RuntimeError(f"job {job.id} ({job.kind}) {outcome.status}")

    return send
