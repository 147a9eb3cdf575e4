"""`generate_stimuli`: a stimulus set's images attacked at each eps level against its model, as 8-bit PNGs.

Every file of a set has the same byte length (uncompressed PNG, `sipat.stimuli.stimulus_png`): a compressed
file's size told clean from perturbed.

For each selected image (`StimulusSetOptions`: split, n_images drawn with the seed) and each level of
`{0} ∪ eps_levels`: eps 0 is the clean image itself; otherwise the set's attack (`sipat.attacks` pgd | fgsm |
apgd | square, L-inf; pgd also L2; `steps` are square's queries) against the set's model, untargeted on the
image's label (or the model's clean prediction when the label is not one of the model's classes), masked by
the image's salience when `masked=True` (`sipat.salience.to_mask` of its map; images without a map are
attacked everywhere). Plus one `catch` stimulus per image at `backend.study.schedule.CATCH_EPS`: uniform
random-sign noise of that amplitude (seeded by the set's seed and the image id), plainly visible.

Quantisation. Images are decoded to 8-bit values v/255, so the clean image is exact. The attack's float result
is rounded to 8 bits and, for L-inf, clipped back into the ball in integer units, |q - v| <= floor(255 eps).
So an eps that is a multiple of 1/255 (e.g. 8/255) survives exactly: the stored perturbation may use the
full radius and never exceeds it. Other levels are stored within floor(255 eps)/255 < eps. For L2 the
rounding is toward the clean value (never increases the norm). Pixels the mask protects are bit-identical
to the clean image. `linf`/`l2` on each row are measured on the stored (quantised) perturbation, in [0, 1]
units over all channels; `pred_before`/`pred_after` are the model's class names for the clean and stored
image.

Idempotent: a row per (set, image, eps, role) (unique in the database); existing ones are skipped, and
batches have a fixed composition and seed, so a re-run or a re-delivered job adds only what is missing and
makes the same pixels. Set status: pending -> generating -> ready (failed / back to pending when the job
fails / is cancelled, see `backend.services.jobs`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor, nn

from backend.db import session_scope
from backend.models import Stimulus, StimulusSet, TrainedModel
from backend.services.dataset_catalog import SALIENCE_PREFERENCE, ImageInfo, image_rows, newest_map_blobs
from backend.services.job_params import GenerateStimuliParams, StimulusSetOptions
from backend.services.jobs import JobRun
from backend.services.model_catalog import find_model
from backend.services.stimulus_sets import (
    add_stimuli,
    eps_key,
    find_stimulus_set,
    finish_generation,
    start_generation,
    stimulus_keys,
    trial_summary,
)
from backend.study.schedule import CATCH_EPS
from sipat.attacks import apgd, fgsm, pgd, square
from sipat.data import missing_salience
from sipat.salience import to_mask
from sipat.stimuli import norms, quantise, stimulus_png
from sipat.vocabulary import LINF_ONLY_ATTACKS
from worker.jobs.common import (
    JobError,
    image_hw,
    load_map,
    load_stored_model,
    open_image,
    to_array,
    to_tensor,
    trained_or_wait,
)
from worker.runtime import Runtime


def _model_or_wait(session: Any, sset: StimulusSet) -> TrainedModel:
    if sset.model_id is None:
        raise JobError(f"stimulus set {sset.id} names no model; set its model_id to a trained model")
    model = find_model(session, sset.model_id)
    if model is None:
        raise JobError(f"stimulus set {sset.id} names model {sset.model_id}, which does not exist")
    return trained_or_wait(session, model)


def select_images(images: Sequence[ImageInfo], opts: StimulusSetOptions) -> list[ImageInfo]:
    """The set's images: those of `opts.split` (all if null), `opts.n_images` of them drawn with the seed,
    in id order."""
    pool = sorted((im for im in images if opts.split is None or im.split == opts.split), key=lambda im: im.id)
    if not pool:
        raise JobError(f"the dataset has no images of split {opts.split!r}; choose another split or null for all")
    if opts.n_images is not None and opts.n_images < len(pool):
        pool = sorted(random.Random(opts.seed).sample(pool, opts.n_images), key=lambda im: im.id)
    return pool


@dataclass(frozen=True)
class AttackSpec:
    """The attack columns of a stimulus set."""

    attack: str
    norm: str
    steps: int
    masked: bool


def _attack(
    sset: AttackSpec, opts: StimulusSetOptions, model: nn.Module, x: Tensor, y: Tensor, eps: float,
    mask: Tensor | None, generator: torch.Generator,
) -> Tensor:  # fmt: skip
    if sset.attack == "fgsm":
        return fgsm(model, x, y, eps, mask=mask)
    if sset.attack == "apgd":
        return apgd(model, x, y, eps, max(1, sset.steps), loss="ce", mask=mask, generator=generator)
    if sset.attack == "square":
        return square(model, x, y, eps, max(1, sset.steps), mask=mask, generator=generator)
    alpha = opts.alpha if opts.alpha is not None else 2.5 * eps / max(1, sset.steps)
    norm = cast(Literal["linf", "l2"], sset.norm)  # a stored set's column; pgd rejects any other value
    return pgd(model, x, y, eps, alpha, sset.steps, norm=norm, mask=mask, generator=generator)


def _batch_seed(seed: int, level: int, batch: int) -> int:
    return (seed * 1_000_003 + level * 10_007 + batch) % (2**63)


def generate_stimuli(run: JobRun, rt: Runtime) -> dict[str, Any]:
    params = GenerateStimuliParams.model_validate(run.params)
    with session_scope(rt.session_factory) as session:
        sset = find_stimulus_set(session, params.stimulus_set_id)
        if sset is None:
            raise JobError(f"stimulus set {params.stimulus_set_id} does not exist")
        opts = StimulusSetOptions.model_validate(sset.params or {})
        model_row = _model_or_wait(session, sset)
        if sset.attack in LINF_ONLY_ATTACKS and sset.norm != "linf":
            raise JobError(f"{sset.attack} is an L-inf attack; use norm linf, or attack pgd for L2")
        levels = sorted({0.0, *(float(e) for e in sset.eps_levels)})
        if any(e < 0 or (sset.norm == "linf" and e > 1) for e in levels):
            raise JobError(f"eps levels must be >= 0 (and <= 1 for linf) in [0, 1] pixel units; got {levels}")
        found = image_rows(session, sset.dataset_id)
        images = select_images(found[1] if found is not None else [], opts)
        maps: dict[int, str] = {}
        if sset.masked:
            sources = (opts.salience_source,) if opts.salience_source else SALIENCE_PREFERENCE
            maps = newest_map_blobs(session, [im.id for im in images], sources)
        existing = stimulus_keys(session, sset.id)
        wanted = {(im.id, eps_key(e), "trial") for im in images for e in levels}
        if opts.catch:
            wanted |= {(im.id, eps_key(CATCH_EPS), "catch") for im in images}
        start_generation(sset, run.job_id, anything_to_make=not wanted <= existing)
        if wanted <= existing:
            return {"stimulus_set_id": sset.id, "images": len(images), "eps_levels": levels, "created": 0,
                    "skipped": len(wanted), **trial_summary(session, sset.id)}  # fmt: skip
        spec = AttackSpec(sset.attack, sset.norm, sset.steps, sset.masked)
        set_id, image_info = sset.id, [(im.id, im.sha256, im.label) for im in images]
    run.progress(0.02, f"loading model {model_row.id} and {len(image_info)} images")

    model, meta = load_stored_model(rt.storage, model_row, rt.device)
    classes = list(meta["classes"])
    size = image_hw(meta)
    channels = int(meta["in_channels"])
    arrays = [to_array(open_image(rt.storage, sha), channels=channels, size=size) for _, sha, _ in image_info]
    x_u8 = torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).astype(np.int16))  # (N, C, H, W) 0..255
    x_all = to_tensor(arrays)
    s_all = torch.stack(
        [load_map(rt.storage, maps[i], size) if i in maps else missing_salience(*size) for i, _, _ in image_info]
    )
    preds_clean = _predict(model, x_all, rt.device, opts.batch_size)
    label_idx = {c: k for k, c in enumerate(classes)}
    y_all = torch.tensor(
        [label_idx.get(label, int(preds_clean[k])) for k, (_, _, label) in enumerate(image_info)], dtype=torch.long
    )

    n = len(image_info)
    batches = [range(i, min(i + opts.batch_size, n)) for i in range(0, n, opts.batch_size)]
    total = len(levels) * len(batches) + (1 if opts.catch else 0)
    created = skipped = 0
    for li, eps in enumerate(levels):
        for bi, idx in enumerate(batches):
            done_units = li * len(batches) + bi
            run.progress(0.05 + 0.9 * done_units / total, f"eps {eps:.4g}: images {idx.start + 1}-{idx.stop} of {n}")
            todo = [k for k in idx if (image_info[k][0], eps_key(eps), "trial") not in existing]
            skipped += len(idx) - len(todo)
            if not todo:
                continue
            sel = torch.tensor(list(idx))
            x, xu, y = x_all[sel].to(rt.device), x_u8[sel], y_all[sel].to(rt.device)
            if eps == 0:
                q = xu.clone()
            else:
                mask = to_mask(s_all[sel], opts.threshold).to(rt.device) if spec.masked else None
                gen = torch.Generator(device=rt.device).manual_seed(_batch_seed(opts.seed, li, bi))
                x_adv = _attack(spec, opts, model, x, y, eps, mask, gen).cpu()
                q = quantise(xu, x_adv, eps, spec.norm)
            created += _store(rt, run, set_id, image_info, list(idx), todo, eps, "trial", xu, q, classes, model)
    if opts.catch:
        run.progress(0.05 + 0.9 * (total - 1) / total, "catch stimuli")
        todo = [k for k in range(n) if (image_info[k][0], eps_key(CATCH_EPS), "catch") not in existing]
        skipped += n - len(todo)
        if todo:
            sel = torch.tensor(todo)
            q = catch_noise(x_u8[sel], [image_info[k][0] for k in todo], opts.seed)
            created += _store(rt, run, set_id, image_info, todo, todo, CATCH_EPS, "catch", x_u8[sel], q, classes, model)

    with session_scope(rt.session_factory) as session:
        summary = finish_generation(session, set_id)
    if summary is None:
        raise JobError(f"stimulus set {set_id} was deleted while its stimuli were generated")
    unmasked = sum(1 for i, _, _ in image_info if i not in maps) if spec.masked else None
    return {
        "stimulus_set_id": set_id,
        "images": n,
        "eps_levels": levels,
        "created": created,
        "skipped": skipped,
        "images_without_salience": unmasked,
        **summary,
    }


def catch_noise(x_u8: Tensor, image_ids: list[int], seed: int) -> Tensor:
    """Clean 8-bit images plus uniform random-sign noise of amplitude floor(255 * CATCH_EPS), per image seeded
    by (seed, image id), clipped to 0..255."""
    amplitude = math.floor(CATCH_EPS * 255 + 1e-6)
    out = []
    for xu, image_id in zip(x_u8, image_ids, strict=True):
        signs = np.random.default_rng([seed, image_id]).choice(np.array([-1, 1], dtype=np.int16), size=xu.shape)
        out.append((xu + torch.from_numpy(signs) * amplitude).clamp(0, 255))
    return torch.stack(out)


@torch.no_grad()
def _predict(model: nn.Module, x: Tensor, device: torch.device, batch_size: int) -> Tensor:
    return torch.cat(
        [model(x[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, x.shape[0], batch_size)]
    )


def _store(
    rt: Runtime, run: JobRun, set_id: int, image_info: list[tuple[int, str, str]], idx: list[int],
    todo: list[int], eps: float, role: str, xu: Tensor, q: Tensor, classes: list[str], model: nn.Module,
) -> int:  # fmt: skip
    """PNG blobs first, then the rows of the `todo` images (a subset of the batch `idx`), in one transaction."""
    pos = {k: j for j, k in enumerate(idx)}
    rows = [pos[k] for k in todo]
    xu, q = xu[rows], q[rows]
    before = _predict(model, xu.float() / 255.0, rt.device, len(rows))
    after = _predict(model, q.float() / 255.0, rt.device, len(rows))
    linf, l2 = norms(xu, q)
    shas = [rt.storage.put(stimulus_png(qi.numpy().astype(np.uint8).transpose(1, 2, 0))) for qi in q]
    run.check()
    with session_scope(rt.session_factory) as session:
        add_stimuli(
            session,
            (
                Stimulus(
                    stimulus_set_id=set_id,
                    image_id=image_info[k][0],
                    eps=float(eps),
                    role=role,
                    sha256=sha,
                    linf=li,
                    l2=l2i,
                    pred_before=classes[int(b)],
                    pred_after=classes[int(a)],
                )
                for k, sha, li, l2i, b, a in zip(todo, shas, linf, l2, before, after, strict=True)
            ),
        )
    return len(todo)
