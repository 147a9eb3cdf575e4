"""What a study's paintings are worth at a point of the run, measured the same way for every pool.

Why not the ranking job's own held-out numbers: those score the predictor on a fifth of the study's *own*
painted images, a sample the pool itself chose (an active pool paints hard images and is scored on them), so
they cannot compare pools. Here the paintings in the database (read as the worker reads them) train a fresh
predictor for a fixed number of optimiser steps (small pools are not starved), scored on the same held-out
test images for both pools against other simulated people's mean painting, and by "fill CC": the training
maps SIP-AT would get (paintings where painted, predictions elsewhere) against every training image's mean.
"""

from __future__ import annotations

from typing import Any

import torch
from sqlalchemy import func, select

from backend.db import session_scope
from backend.models import Job
from backend.services.paint_next import newest_ranking, rank_jobs
from backend.services.training_coverage import annotation_masks
from benchmarks.study_loop.world import World
from sipat.predictor import PredictorConfig, compare, fill_maps, human_mean, predict_maps, train_predictor
from sipat.predictor.metrics import cc
from sipat.salience import has_salience
from worker.jobs.common import mean_map


class Yardstick:
    """The held-out references of one run: other simulated people's mean paintings of the test images and of
    every training image (seeded apart from the study's people)."""

    def __init__(self, world: World, seed: int) -> None:
        self.test_human = human_mean(world.test_masks, seed=seed + 10_000)
        self.train_human = human_mean(world.train_masks, seed=seed + 20_000)


def study_maps(world: World, study_id: int) -> tuple[torch.Tensor, int]:
    """(the study's mean painting of each training image, NaN where unpainted; its accepted paintings)."""
    size = (int(world.train_x.shape[-2]), int(world.train_x.shape[-1]))
    with session_scope(world.rt.session_factory) as session:
        masks = annotation_masks(session, study_id, world.train_ids)
    maps = torch.full((len(world.train_ids), 1, *size), float("nan"))
    for k, image_id in enumerate(world.train_ids):
        if masks.get(image_id):
            maps[k] = mean_map(world.rt.storage, masks[image_id], size)
    return maps, sum(len(v) for v in masks.values())


def rankings(world: World, study_id: int) -> tuple[int, float | None]:
    """(succeeded rankings of the study, the newest one's own held-out CC, as its dashboard shows it)."""
    with session_scope(world.rt.session_factory) as session:
        done = rank_jobs(study_id).where(Job.status == "succeeded")
        count = session.scalar(select(func.count()).select_from(done.subquery())) or 0
        newest = newest_ranking(session, study_id)
        heldout = (newest.result or {}).get("heldout", {}).get("cc") if newest is not None else None
    return int(count), (float(heldout) if heldout is not None else None)


def measure(world: World, study_id: int, yardstick: Yardstick, *, steps: int, width: int, seed: int) -> dict[str, Any]:
    """The row of one pool at this point of the run (module docstring)."""
    maps, paintings = study_maps(world, study_id)
    painted = has_salience(maps)
    n = int(painted.sum())
    cfg = PredictorConfig(epochs=PredictorConfig.epochs_for(steps, n), width=width, seed=seed)
    model = train_predictor(world.train_x, maps, cfg, device="cpu").model
    quality = compare(yardstick.test_human, {"p": predict_maps(model, world.test_x)})["p"]
    filled = fill_maps(maps, predict_maps(model, world.train_x)).maps
    per_class = torch.bincount(world.train_labels[painted], minlength=int(world.train_labels.max()) + 1)
    count, heldout = rankings(world, study_id)
    return {
        "paintings": paintings,
        "images": n,
        "class_spread": int(per_class.max() - per_class.min()),
        "rankings": count,
        **quality,
        "fill_cc": float(cc(filled, yardstick.train_human).mean()),
        "ranking_heldout_cc": heldout,
    }
