"""`rank_paintings`: which of a study's unpainted training images people should paint next (issue 20).

Why: human maps are the expensive part of SIP-AT; a painting teaches most where the salience predictor is
unsure and where the automatic alternative (Grad-CAM) disagrees with it. The job refreshes that ranking from
the paintings so far; the dashboard's study page shows its top, and studies with an active painting pool
schedule its images (`backend.services.paint_next`).

Steps (job progress in brackets):

1. The pool [0-5 %] (`backend.services.training_coverage.painting_pool`, the rule the 422 before queueing
   used): the study's dataset, its training images (the train job's hold-out rule with `seed`), the images
   with >= min_annotators paintings (participants flagged by the catch trials and pilots left out) and the
   candidates (every other training image). Images decoded and sized as in the train job.
2. The predictor [5-35 %]: `sipat.predictor.train_predictor` on the painted images' mean maps (seeded);
   [35-45 %] its held-out quality (`worker.jobs.rank_views`: a second predictor without a seeded 20 % of
   the painted images, CC/SIM/NSS on those, with the number of paintings it learnt from).
3. Grad-CAM [45-80 %] of a reference classifier (`reference_model_id`, or a quick standard model).
4. The ranking [80-100 %]: `sipat.predictor.acquisition_signals` (MC-dropout spread, 1 - CC with Grad-CAM,
   seeded) and `select_balanced` (classes in turn, the painted images' classes counted, so that the heads of
   successive rankings keep the study's paintings balanced): the `top` candidates in pick order, each with its
   label, score, spread, disagreement, paintings so far and three PNG blobs (predicted map, MC-dropout spread
   map, the human mean when someone painted it), written before the result names them. The same data, params and
   seed give the same ranking (on the CPU).
"""

from __future__ import annotations

from typing import Any

import torch

from backend.db import session_scope
from backend.services.errors import ServiceError
from backend.services.job_params import RankPaintingsParams
from backend.services.jobs import JobRun
from backend.services.training_coverage import annotation_masks, painting_pool
from sipat.models import default_arch_for, gradcam_layer
from sipat.predictor import PredictorConfig, acquisition_signals, select_balanced, train_predictor
from sipat.salience import gradcam
from sipat.training import Progress
from worker.jobs.common import JobError, Phase, mean_map, model_meta
from worker.jobs.datasets import build_set, channels_of, common_size, dataset_images, decode, split_train_eval
from worker.jobs.predicted import pad4
from worker.jobs.rank_views import held_out_quality, map_blobs
from worker.jobs.train import reference_model
from worker.runtime import Runtime


def rank_paintings_job(run: JobRun, rt: Runtime) -> dict[str, Any]:
    p = RankPaintingsParams.model_validate(run.params)
    with session_scope(rt.session_factory) as session:
        try:
            pool = painting_pool(session, p.study_id, p.seed, p.min_annotators)
        except ServiceError as exc:  # the study changed since it was queued: say why, do not retry
            raise JobError(exc.message) from None
        dataset_name, infos = dataset_images(session, pool["dataset_id"])
        painted = set(pool["painted"])
        masks = annotation_masks(session, p.study_id, sorted(painted))
    train_infos, _eval, _held = split_train_eval(infos, p.seed)
    if [im.id for im in train_infos] != pool["train_ids"]:
        raise JobError("the dataset's images changed while the job ran; queue it again")
    run.progress(0.01, f"decoding {len(train_infos)} training images")
    pil = decode(rt.storage, train_infos)
    channels, size = channels_of(pil), common_size(infos, p.image_size)
    classes = sorted({im.label for im in infos})
    if len(classes) < 2:
        raise JobError(f"dataset {pool['dataset_id']} has a single class; Grad-CAM needs a classifier")
    meta = model_meta(
        default_arch_for(max(size), channels), classes, channels, size[0] if size[0] == size[1] else list(size)
    )
    train_set = build_set(pil, train_infos, classes=classes, channels=channels, size=size, name=dataset_name)
    human = torch.full((len(train_infos), 1, *size), float("nan"))
    for k, im in enumerate(train_infos):
        if im.id in painted:
            human[k] = mean_map(rt.storage, masks[im.id], size)
    candidates = torch.tensor([im.id not in painted for im in train_infos], dtype=torch.bool)
    run.progress(0.05, f"{len(painted)} painted, {int(candidates.sum())} candidates")

    x, (h, w) = pad4(train_set.images.float())
    s, _ = pad4(human)
    cfg = PredictorConfig(epochs=p.predictor_epochs, batch_size=p.predictor_batch_size, seed=p.seed)
    phase = Phase(run, 0.05, 0.35)

    def on_batch(pr: Progress) -> None:
        phase(pr.fraction, f"salience predictor: epoch {pr.epoch + 1}/{pr.epochs}: loss {pr.loss:.3f}")

    checkpoint = rt.scratch_dir(run.job_id) / "predictor.pt"
    trained = train_predictor(x, s, cfg, device=rt.device, progress=on_batch, checkpoint=checkpoint)
    run.progress(0.35, "held-out quality of the predictor")
    rows = [k for k, im in enumerate(train_infos) if im.id in painted]
    per_row = [len(masks.get(im.id, [])) for im in train_infos]
    heldout = held_out_quality(x, s, (h, w), rows, per_row, cfg, rt.device)

    reference = reference_model(run, rt, p, train_set, meta, Phase(run, 0.45, 0.7))
    todo = candidates.nonzero().squeeze(1)
    run.progress(0.7, f"Grad-CAM of {len(todo)} candidates")
    cams = torch.zeros(len(train_infos), 1, h, w)
    if len(todo):
        xs, ys = train_set.images[todo].to(rt.device), train_set.labels[todo].to(rt.device)
        cams[todo] = gradcam(reference, xs, ys, gradcam_layer(reference)).cpu().float()
    cams, _ = pad4(cams)
    run.progress(0.8, "ranking")
    dev = next(trained.model.parameters()).device
    signals = acquisition_signals(
        trained.model, x.to(dev), cams.to(dev), candidates=candidates, seed=p.seed, samples=p.samples, weight=p.weight
    )
    k = min(p.top, len(todo))
    labels = train_set.labels.cpu()
    picks = select_balanced(signals["score"], labels, k, candidates=candidates, painted=~candidates, seed=p.seed)
    picked = picks.tolist()
    with session_scope(rt.session_factory) as session:  # ranked images painted by too few people so far
        some = annotation_masks(session, p.study_id, [train_infos[i].id for i in picked])
    human_means = {
        i: mean_map(rt.storage, some[train_infos[i].id], size) for i in picked if some.get(train_infos[i].id)
    }
    run.progress(0.9, "maps of the ranked images")
    blobs, scale = map_blobs(rt.storage, trained.model, x, picked, (h, w), human_means, samples=p.samples, seed=p.seed)
    ranking = [
        {
            "image_id": train_infos[i].id,
            "label": train_infos[i].label,
            "score": round(float(signals["score"][i]), 6),
            "spread": round(float(signals["spread"][i]), 6),
            "disagreement": round(float(signals["disagreement"][i]), 6),
            "paintings": len(some.get(train_infos[i].id, [])),
            **shas,
        }
        for i, shas in zip(picked, blobs, strict=True)
    ]
    rt.clear_scratch(run.job_id)
    return {
        "study_id": p.study_id,
        "dataset_id": pool["dataset_id"],
        "n_train": len(train_infos),
        "painted": len(painted),
        "paintings": sum(per_row),
        "candidates": len(todo),
        "min_annotators": pool["min_annotators"],
        "seed": p.seed,
        "ranking": ranking,
        "predictor": {"trained_on": trained.trained_on, "history": trained.history},
        "heldout": heldout,
        "uncertainty_scale": scale,
    }


__all__ = ["rank_paintings_job"]
