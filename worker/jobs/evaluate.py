"""`evaluate`: clean and robust accuracy of a stored model on a dataset's images, kept with the model.

The metrics (`sipat.evaluation.evaluate`: unmasked attacks over the eps grid by default; `masked=True`
attacks only the non-salient pixels of images with an imported map) are the job's result and are merged
into the model's `metrics["evaluations"][key]` (key default `dataset<id>/<split or all>/<masked|unmasked>`),
so a second evaluation under another key adds to the model's record instead of replacing it.

Any attack of the registry (`EvaluateParams`: apgd-t, fab-t, square and the "autoattack" ensemble included) with
the CLI's budgets unless the params say otherwise; the result keeps the sanity checks' warnings (logits, zero
gradients, randomness, accuracy rising with eps, black box beating white box) beside the numbers, and the
budget it ran with. The job page and the model comparison show both (`backend.admin.evaluations`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from backend.db import session_scope
from backend.services.dataset_catalog import newest_map_blobs
from backend.services.job_params import EvaluateParams
from backend.services.jobs import JobRun
from backend.services.model_catalog import find_model, record_evaluation
from sipat.attacks import AttackBudget
from sipat.evaluation import evaluate
from worker.jobs.common import JobError, Phase, image_hw, load_map, load_stored_model, trained_or_wait
from worker.jobs.datasets import build_set, dataset_images, decode
from worker.runtime import Runtime

#: Attacks that run APGD-T, whose targeted DLR loss needs 4 classes: refused before any compute is spent.
TARGETED_DLR = ("apgd-t", "autoattack")


def evaluate_job(run: JobRun, rt: Runtime) -> dict[str, Any]:
    p = EvaluateParams.model_validate(run.params)
    with session_scope(rt.session_factory) as session:
        row = find_model(session, p.model_id)
        if row is None:
            raise JobError(f"model {p.model_id} does not exist")
        trained_or_wait(session, row)
        dataset_id = p.dataset_id if p.dataset_id is not None else row.dataset_id
        if dataset_id is None:
            raise JobError(f"model {p.model_id} names no dataset; pass dataset_id")
        _, infos = dataset_images(session, dataset_id, split=p.split)
        maps: dict[int, str] = {}
        if p.masked:
            maps = newest_map_blobs(session, [im.id for im in infos], ("imported",))
    run.progress(0.02, f"loading model {p.model_id} and {len(infos)} images")
    model, meta = load_stored_model(rt.storage, row, rt.device)
    size = image_hw(meta)
    targeted = [a for a in p.attacks if a in TARGETED_DLR]
    if targeted and len(meta["classes"]) < 4:
        raise JobError(
            f"{' and '.join(targeted)} need a model of at least 4 classes (the targeted DLR loss of APGD-T, also a "
            f"stage of autoattack); model {p.model_id} has {len(meta['classes'])}: use pgd, apgd, fab-t or square"
        )
    known = [im for im in infos if im.label in set(meta["classes"])]
    if not known:
        raise JobError(f"none of the {len(infos)} images has a label among the model's classes {meta['classes']}")
    salience = None
    if p.masked:
        salience = torch.stack(
            [load_map(rt.storage, maps[im.id], size) if im.id in maps else torch.full((1, *size), float("nan"))
             for im in known]
        )  # fmt: skip
    data = build_set(
        decode(rt.storage, known),
        known,
        classes=meta["classes"],
        channels=meta["in_channels"],
        size=size,
        salience=salience,
    )
    budget = AttackBudget(
        pgd_steps=p.steps,
        apgd_steps=p.apgd_steps,
        fab_steps=p.apgd_steps,
        n_targets=p.n_targets,
        square_queries=p.square_queries,
    )
    try:
        result = evaluate(
            model,
            data,
            eps_grid=p.eps,
            attacks=p.attacks,
            masked=p.masked,
            seed=p.seed,
            device=rt.device,
            progress=Phase(run, 0.05, 0.99).callback(),
            budget=budget,
            autoattack_every_sample=p.autoattack_every_sample,
        )
    except ValueError as exc:  # e.g. APGD-T on a model of fewer than 4 classes: the reason, not a traceback
        raise JobError(str(exc)) from None
    key = p.key or f"dataset{dataset_id}/{p.split or 'all'}/{'masked' if p.masked else 'unmasked'}"
    metrics = {
        **result.to_dict(),
        "dataset_id": dataset_id,
        "split": p.split,
        "attacks": list(p.attacks),
        "steps": p.steps,
        "budget": asdict(budget),
        "masked": p.masked,
        "skipped_unknown_labels": len(infos) - len(known),
    }
    run.check()
    with session_scope(rt.session_factory) as session:
        if not record_evaluation(session, p.model_id, key, metrics):
            raise JobError(f"model {p.model_id} was deleted during its evaluation")
    return {"model_id": p.model_id, "key": key, "metrics": metrics}
