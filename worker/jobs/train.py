"""`train`: one model on a dataset (standard, PGD-AT, TRADES, SIP-AT, SIP-TRADES), then its evaluation.

Steps (job progress in brackets):

1. Data [0-5 %]: the dataset's images decoded with Pillow; images of split 'test' are held out for the
   evaluation (without any, a seeded 20 %); all are brought to one size (`image_size`, or the size they
   share) and to 1 channel if every image is greyscale, else 3. Classes: the sorted labels of the dataset.
2. Salience of the training images [5-15 %], by `TrainParams.salience`:
   - `annotations`: the painted masks of the study's trials on each image (participants flagged by the
     catch trials left out), averaged (`sipat.salience.mean_of_annotators`) where an image has at least
     `min_annotators` (default: the study's setting). The means are also stored as `human_mean` salience
     maps (at the image's own size), e.g. for masked stimulus sets.
   - `predicted`: the study's means as for `annotations`; a salience predictor (`sipat.predictor`, seeded,
     `predictor_epochs`) trained on them fills every other training image (`worker/jobs/predicted.py`); the
     metrics' `salience_sources` list which image got a human map and which a predicted one.
   - `imported`: the newest `imported` salience map of each image.
   - `gradcam`: Grad-CAM (`sipat.salience.gradcam`) of a reference model for every image.
   - `none`: no maps.
   Images left without a map get Grad-CAM when `fallback='gradcam'`, else none (mask 1: ordinary
   adversarial training for them, as in the paper). The reference model is `reference_model_id` or, when
   null, a standard model of the same architecture trained `reference_epochs` on the same training images
   (seeded; not stored). The threshold (`threshold`, 0.5) is applied by `sipat.training`.
3. Training [15-85 %] with `sipat.training.train`, seeded, with the recipe knobs of the params (eps ramp,
   lr warm-up, gradient clipping, weight decay, joint augmentation, validation split with best-epoch
   selection, early stopping; the defaults are `sipat.train_config.RECIPE`, as `sipat train --recipe`) and a
   resumable checkpoint in `<data_dir>/scratch/job-<id>/train.pt`: a job re-delivered after its worker died
   resumes after the last finished epoch. The progress callback writes the job's progress and stops the run
   when it was cancelled; after each epoch the per-epoch log so far is the job's result (`train_log`), so the
   job page draws the curves while it trains.
4. Evaluation [85-100 %] on the held-out images with `sipat.evaluation.evaluate` (unmasked attacks over the
   eps grid).
5. The final checkpoint (weights + meta: arch, num_classes, in_channels, image_size, classes) is stored as a
   blob and the job's `models` row (made with the job by `create_train_job`, or here) gets it with the
   metrics: one model row per job, however often the job runs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import nn

from backend.db import session_scope
from backend.schemas.jobs import TRAIN_LOG_KEY
from backend.services.dataset_catalog import add_salience_maps, newest_map_blobs
from backend.services.job_params import RankPaintingsParams, TrainParams
from backend.services.jobs import JobRun
from backend.services.model_catalog import find_model, store_trained_model
from backend.services.training_coverage import coverage_summary, study_paintings
from sipat.evaluation import evaluate
from sipat.models import default_arch_for, gradcam_layer, new_model
from sipat.salience import gradcam
from sipat.training import Progress, TrainConfig, train
from sipat.vocabulary import MASKED_METHODS
from worker.jobs.common import (
    JobError,
    Phase,
    load_map,
    load_stored_model,
    map_png,
    mean_map,
    model_meta,
    save_model_blob,
)
from worker.jobs.datasets import (
    ImageInfo,
    build_set,
    channels_of,
    common_size,
    dataset_images,
    decode,
    split_train_eval,
)
from worker.jobs.predicted import predict_missing
from worker.jobs.trainlog import publish_train_log
from worker.runtime import Runtime


def train_job(run: JobRun, rt: Runtime) -> dict[str, Any]:
    p = TrainParams.model_validate(run.params)
    with session_scope(rt.session_factory) as session:
        dataset_name, infos = dataset_images(session, p.dataset_id)
    train_infos, eval_infos, held_out = split_train_eval(infos, p.seed)
    if not train_infos:
        raise JobError(f"dataset {p.dataset_id} has only 'test' images; add training images")
    run.progress(0.01, f"decoding {len(infos)} images")
    pil_train, pil_eval = decode(rt.storage, train_infos), decode(rt.storage, eval_infos)
    channels = channels_of(pil_train + pil_eval)
    size = common_size(infos, p.image_size)
    classes = sorted({im.label for im in infos})
    if len(classes) < 2:
        raise JobError(f"dataset {p.dataset_id} has a single class {classes}; training needs at least two")
    arch = p.arch or default_arch_for(max(size), channels)
    meta = model_meta(arch, classes, channels, size[0] if size[0] == size[1] else list(size))
    train_set = build_set(pil_train, train_infos, classes=classes, channels=channels, size=size, name=dataset_name)
    eval_set = build_set(pil_eval, eval_infos, classes=classes, channels=channels, size=size, name=dataset_name)
    run.progress(0.05, f"{len(train_infos)} training images, {len(eval_infos)} held out ({held_out})")

    train_set.salience, salience_counts, coverage, sources = _salience(run, rt, p, train_set, train_infos, meta)

    cfg = train_config(p)
    model = _new_model(meta, p.seed)
    scratch = rt.scratch_dir(run.job_id)
    phase = Phase(run, 0.15, 0.85)

    def on_batch(pr: Progress) -> None:
        ramp = f", eps {cfg.eps_at(pr.epoch + pr.step / pr.steps_per_epoch):.4f}" if cfg.eps_ramp_epochs else ""
        phase(
            pr.fraction,
            f"epoch {pr.epoch + 1}/{pr.epochs}, batch {pr.step}/{pr.steps_per_epoch}: "
            f"loss {pr.loss:.3f}, accuracy {pr.accuracy:.3f}{ramp}",
        )

    trained = train(
        model,
        train_set,
        cfg,
        device=rt.device,
        progress=on_batch,
        checkpoint=scratch / "train.pt",
        checkpoint_meta=meta,
        on_epoch=lambda history: publish_train_log(run, history),
    )
    history = trained.history
    run.progress(0.85, "evaluating")
    result = evaluate(
        model,
        eval_set,
        eps_grid=p.eval_eps,
        attacks=p.eval_attacks,
        pgd_steps=p.eval_steps,
        apgd_steps=p.eval_steps,
        seed=p.seed,
        device=rt.device,
        progress=Phase(run, 0.85, 0.99).callback(),
    )
    sha = save_model_blob(rt.storage, scratch / "model.pt", model, cfg, meta)
    metrics = {
        **result.to_dict(),
        "eval_attacks": list(p.eval_attacks),
        "eval_steps": p.eval_steps,
        "n_train": len(train_infos),
        "held_out": held_out,
        "history": history,
        "best_epoch": trained.best_epoch,
        "stopped_early": trained.stopped_early,
        "salience": salience_counts,
        "coverage": coverage,
        **({"salience_sources": sources} if sources else {}),
    }
    run.check()
    with session_scope(rt.session_factory) as session:
        model_id = store_trained_model(
            session,
            run.job_id,
            name=p.name,
            default_name=f"{p.method} {arch} on {dataset_name} (job {run.job_id})",
            arch=arch,
            method=p.method,
            dataset_id=p.dataset_id,
            checkpoint_sha256=sha,
            config={"params": run.params, "train": cfg.to_dict(), "meta": meta},
            metrics=metrics,
        )
    rt.clear_scratch(run.job_id)
    return {"model_id": model_id, "checkpoint_sha256": sha, "metrics": metrics, TRAIN_LOG_KEY: history}


def train_config(p: TrainParams) -> TrainConfig:
    """The `TrainConfig` of a job's params: the method's settings and the recipe knobs (defaults: `RECIPE`)."""
    return TrainConfig(
        method=p.method,
        epochs=p.epochs,
        batch_size=p.batch_size,
        lr=p.lr,
        eps=p.eps,
        alpha=p.alpha,
        steps=p.steps,
        threshold=p.threshold,
        seed=p.seed,
        eps_ramp_epochs=p.eps_ramp_epochs,
        warmup_epochs=p.warmup_epochs,
        grad_clip=p.grad_clip,
        weight_decay=p.weight_decay,
        augment=p.augment,
        crop_padding=p.crop_padding,
        flip=p.flip,
        val_share=p.val_share,
        val_steps=p.val_steps,
        patience=p.patience,
    )


def _new_model(meta: dict[str, Any], seed: int) -> nn.Module:
    """The architecture of `meta` with weights drawn from `seed` by the CLI's factory (`sipat.models.new_model`:
    the same seed gives the same initial weights here and in `sipat train`; the global RNG is left alone)."""
    size = meta["image_size"]
    return new_model(
        meta["arch"], meta["num_classes"], meta["in_channels"], size if isinstance(size, int) else max(size), seed
    )


def _salience(
    run: JobRun, rt: Runtime, p: TrainParams, train_set: Any, infos: list[ImageInfo], meta: dict[str, Any]
) -> tuple[torch.Tensor, dict[str, int], dict[str, Any] | None, dict[str, Any] | None]:
    """(N, 1, H, W) maps of the training images (NaN = none), how many came from each source, the coverage
    record (`backend.services.training_coverage.coverage_summary`; None when the method uses none) and, for
    salience 'predicted', the record of which image got which map (`predicted.predict_missing`)."""
    n, size = len(infos), tuple(train_set.images.shape[-2:])
    s = train_set.salience.clone()  # all NaN
    counts: dict[str, int] = defaultdict(int)
    if p.method not in MASKED_METHODS:
        return s, {"none": n}, None, None
    human_ids: list[int] = []
    need, too_few, flagged = None, 0, 0
    sources: dict[str, Any] | None = None
    if p.salience == "none" and p.fallback == "none":
        counts["none"] = n
        return s, dict(counts), coverage_summary(source="none", n_train=n, human_ids=[], fallback="none"), None
    run.progress(0.06, f"salience maps ({p.salience})")
    if p.salience in ("annotations", "predicted"):
        have, need, too_few, flagged = _annotation_means(rt, p, infos, size)
        for k, im in enumerate(infos):
            if im.id in have:
                s[k] = have[im.id]
                counts["human" if p.salience == "predicted" else "annotations"] += 1
                human_ids.append(im.id)
    if p.salience == "predicted":
        if not human_ids:
            raise JobError(f"no training image has {need} or more paintings in study {p.study_id}; nothing to learn")
        s, sources = predict_missing(
            train_set.images,
            s,
            [im.id for im in infos],
            epochs=p.predictor_epochs,
            batch_size=p.predictor_batch_size,
            seed=p.seed,
            device=rt.device,
            phase=Phase(run, 0.06, 0.14),
            checkpoint=rt.scratch_dir(run.job_id) / "predictor.pt",
        )
        counts["predicted"] = sources["counts"]["predicted"]
    elif p.salience == "imported":
        with session_scope(rt.session_factory) as session:
            newest = newest_map_blobs(session, [im.id for im in infos], ("imported",))
        for k, im in enumerate(infos):
            if im.id in newest:
                s[k] = load_map(rt.storage, newest[im.id], size)
                counts["imported"] += 1
    missing = torch.isnan(s).flatten(1).all(dim=1)
    if p.salience == "gradcam" or (p.fallback == "gradcam" and missing.any()):
        todo = missing.nonzero().squeeze(1)
        reference = reference_model(run, rt, p, train_set, meta)
        run.progress(0.13, f"Grad-CAM of {len(todo)} images")
        x = train_set.images[todo].to(rt.device)
        y = train_set.labels[todo].to(rt.device)
        s[todo] = gradcam(reference, x, y, gradcam_layer(reference)).cpu()
        counts["gradcam"] += len(todo)
    counts["none"] += int(torch.isnan(s).flatten(1).all(dim=1).sum())
    coverage = coverage_summary(
        source=p.salience,
        n_train=n,
        human_ids=human_ids,
        fallback=p.fallback,
        min_annotators=need,
        study_id=p.study_id,
        painted_too_few=too_few,
        flagged_paintings=flagged,
    )
    run.progress(0.15, "salience ready: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return s, dict(counts), coverage, sources


def reference_model(
    run: JobRun,
    rt: Runtime,
    p: TrainParams | RankPaintingsParams,
    train_set: Any,
    meta: dict[str, Any],
    phase: Phase | None = None,
) -> nn.Module:
    """The classifier whose Grad-CAM gives automatic salience: `p.reference_model_id` (checked against the
    data), or a standard model trained `p.reference_epochs` on `train_set` (seeded; not stored). Shared by
    the train job and the `rank_paintings` job (both params carry the same reference fields)."""
    if p.reference_model_id is not None:
        with session_scope(rt.session_factory) as session:
            row = find_model(session, p.reference_model_id)
            if row is None:
                raise JobError(f"reference model {p.reference_model_id} does not exist")
        model, ref_meta = load_stored_model(rt.storage, row, rt.device)
        for key in ("in_channels", "image_size", "classes"):
            if ref_meta[key] != meta[key]:
                raise JobError(
                    f"reference model {row.id} has {key} {ref_meta[key]!r}, the training data {meta[key]!r}; "
                    "choose a model trained on this dataset, or none to train one"
                )
        return model
    model = _new_model(meta, p.seed)
    cfg = TrainConfig(method="standard", epochs=p.reference_epochs, batch_size=p.batch_size, lr=p.lr, seed=p.seed)
    phase = phase or Phase(run, 0.07, 0.13)
    train(
        model, train_set, cfg, device=rt.device, progress=lambda pr: phase(pr.fraction, "training the Grad-CAM model")
    )
    return model


def _annotation_means(
    rt: Runtime, p: TrainParams, infos: list[ImageInfo], size: tuple[int, int]
) -> tuple[dict[int, torch.Tensor], int, int, int]:
    """(image id -> (1, H, W) mean of its annotators' masks for images with at least min_annotators, that
    minimum, how many painted images had fewer, how many paintings of flagged participants were left out).
    The queries are the ones the coverage before queueing uses
    (`training_coverage.study_paintings`). The means are also stored as `human_mean` salience maps at the
    image's own size (once per distinct map)."""
    by_id = {im.id: im for im in infos}
    study_id = p.study_id
    with session_scope(rt.session_factory) as session:
        found = study_paintings(session, study_id, list(by_id), p.min_annotators) if study_id is not None else None
    if found is None:
        raise JobError(f"study {study_id} does not exist; salience 'annotations' needs an existing study_id")
    need, masks, flagged = found.min_annotators, found.masks, found.flagged
    means: dict[int, torch.Tensor] = {}
    stored: list[tuple[int, str]] = []
    for image_id, shas in masks.items():
        if len(shas) < need:
            continue
        means[image_id] = mean_map(rt.storage, shas, size)
        im = by_id[image_id]
        native = mean_map(rt.storage, shas, (im.height, im.width))
        stored.append((image_id, rt.storage.put(map_png(native))))
    with session_scope(rt.session_factory) as session:
        add_salience_maps(session, "human_mean", stored)
    return means, need, len(masks) - len(means), flagged
