"""One training loop for standard training, PGD-AT, TRADES, SIP-AT and SIP-TRADES.

SIP-AT (Redgrave & Czajka, 2025) is Madry-style adversarial training whose inner maximisation spares the
salient pixels: cross-entropy on masked PGD examples only,

    min_theta  E[ CE( f(x + delta*), y ) ],   delta* = masked-PGD(x, y, eps, mask = to_mask(s))

Images without a salience map get mask 1 (plain adversarial training for them). `sip_trades` is TRADES
(Zhang et al., 2019) with the same masked inner maximisation:

    CE(f(x), y) + beta * KL( f(x) || f(x + delta*) ),   delta* maximises the KL within the masked ball.

Defaults are the paper's: eps 8/255, 32 steps of 1/255, SGD lr 0.1, momentum 0.9, weight decay 1e-6,
StepLR(10, 0.75), batch 32. Inputs are in [0, 1]; normalisation lives inside the model.

The recipe knobs (eps ramp, lr warm-up, gradient clipping, joint augmentation, validation split with best-epoch
selection on robust accuracy, early stopping) live in `sipat.train_config` and are off by default; `RECIPE`
switches them on. Checkpoints and exports live in `sipat.checkpoints`, the per-epoch CSV/TensorBoard log in
`sipat.runlog`; their names are re-exported here for the callers that import them from this module.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from sipat.attacks import eval_mode, pgd
from sipat.augment import Augmented
from sipat.checkpoints import (
    CHECKPOINT_FORMAT,
    MODEL_META_KEYS,
    load_model,
    model_meta,
    read_checkpoint,
    save_checkpoint,
)
from sipat.objectives import batch_loss, clean_rows
from sipat.runlog import EpochLog, csv_beside
from sipat.train_config import MASKED_METHODS, METHODS, RECIPE, EpsRampWarning, Method, TrainConfig


@dataclass(frozen=True)
class Progress:
    """Handed to the progress callback after every batch. Raise from the callback to stop training."""

    epoch: int  # 0-based
    step: int  # batches done in this epoch
    steps_per_epoch: int
    epochs: int
    loss: float  # running mean over this epoch
    accuracy: float  # running accuracy on the examples trained on (adversarial ones for AT methods)
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return (self.epoch * self.steps_per_epoch + self.step) / max(1, self.epochs * self.steps_per_epoch)

    @property
    def eta_s(self) -> float | None:
        f = self.fraction
        return None if f <= 0 else self.elapsed_s * (1 - f) / f


@dataclass
class TrainResult:
    """Per epoch: epoch, loss, accuracy, lr (the one used last, warm-up included), eps (the training radius
    at the epoch's end), seconds; with a validation split also val_clean and val_robust. ``best_epoch`` is the
    1-based epoch whose weights the model holds after a run with a validation split (None without one);
    ``stopped_early`` says whether `TrainConfig.patience` ended the run."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`cuda` when present, else the CPU; an explicit choice wins."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    return opt, sched


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def split_validation(dataset: Dataset, cfg: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """(train part, validation part or None): a seeded random ``cfg.val_share`` of ``dataset`` held out.

    The permutation depends on ``cfg.seed`` and the dataset size only, so a resumed run holds out the same
    images. At least one image is held out and at least one kept when ``val_share`` > 0.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if cfg.val_share == 0:
        return dataset, None
    k = min(max(1, round(cfg.val_share * n)), n - 1)
    if k < 1:
        raise ValueError(f"val_share {cfg.val_share} needs at least 2 training images; got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 3)).tolist()
    return Subset(dataset, order[k:]), Subset(dataset, order[:k])


def validate(model: nn.Module, val_set: Dataset, cfg: TrainConfig, device: torch.device) -> tuple[float, float]:
    """(clean accuracy, robust accuracy) on ``val_set``: unmasked ``cfg.val_steps``-step L-inf PGD at the
    full ``cfg.eps`` (step 2.5 eps / steps, one random start drawn from a generator seeded afresh each call,
    so epochs are compared on the same attack). The threat model of the evaluation, whatever the method."""
    loader = DataLoader(val_set, batch_size=max(cfg.batch_size, 128), shuffle=False)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 4)
    alpha = 2.5 * cfg.eps / max(cfg.val_steps, 1)
    clean = robust = seen = 0
    with eval_mode(model):
        for x, y, _s in loader:
            x, y = x.to(device), y.to(device)
            with torch.no_grad():
                clean += int((model(x).argmax(1) == y).sum())
            if cfg.eps > 0 and cfg.val_steps > 0:
                x = pgd(model, x, y, cfg.eps, alpha, cfg.val_steps, generator=gen)
            with torch.no_grad():
                robust += int((model(x).argmax(1) == y).sum())
            seen += y.shape[0]
    return clean / seen, robust / seen


def train(
    model: nn.Module,
    train_set: Dataset,
    cfg: TrainConfig,
    *,
    device: str | torch.device | None = None,
    progress: Callable[[Progress], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_meta: dict[str, Any] | None = None,
    log_csv: str | Path | None = None,
    tensorboard: str | Path | None = None,
    on_epoch: Callable[[list[dict[str, float]]], None] | None = None,
) -> TrainResult:
    """Train `model` in place on `train_set` items `(image (C,H,W) in [0,1], label, salience (1,H,W))`.

    Seeded: the same model initialisation, data and `cfg` give the same weights (on the CPU). The global RNG
    is forked, not reseeded, so the caller's random state is left as it was.

    Args:
        model: maps [0, 1] images to logits (normaliser inside, see sipat.models).
        train_set: a Dataset of (image, label, salience); salience all-NaN = no map (mask 1). With
            ``cfg.val_share`` > 0 a seeded share of it is held out for validation (`split_validation`).
        cfg: the method, its hyper-parameters and the recipe knobs (`sipat.train_config`).
        device: where to train; `cuda` when present by default.
        progress: called after every batch with a `Progress`; raising from it stops training (the
            worker uses this to cancel).
        checkpoint: a path written (atomically) after each epoch with weights, optimiser, scheduler and
            RNG state; if it exists with the same config, training resumes after its last epoch.
        checkpoint_meta: extra entries stored in the checkpoint (e.g. the architecture, see save_checkpoint).
        log_csv: the per-epoch CSV log (`sipat.runlog`); by default ``<checkpoint>.csv`` beside the
            checkpoint when one is given, else none.
        tensorboard: a directory for TensorBoard scalars, or None (default) for none.
        on_epoch: called after each epoch (its row logged and its checkpoint written) with the history so
            far, the rows of the CSV log; the worker shows them on the job page while the job runs.

    Returns:
        the history; with a validation split the model ends holding its best epoch's weights (highest robust
        validation accuracy, then clean), not the last.
    """
    dev = pick_device(device)
    if cfg.amp == "fp16" and dev.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' or 'none' on the CPU")
    if len(train_set) == 0:  # type: ignore[arg-type]
        raise ValueError("the training set is empty")
    ramp_problem = cfg.eps_ramp_problem()
    if ramp_problem is not None:  # a warning, not an error: a quick look at a few epochs stays possible
        warnings.warn(ramp_problem, EpsRampWarning, stacklevel=2)
    fit_set, val_set = split_validation(train_set, cfg)
    if cfg.augment:
        fit_set = Augmented(fit_set, padding=cfg.crop_padding, flip=cfg.flip)
    model.to(dev)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(dev.type, enabled=cfg.amp == "fp16")
    result = TrainResult()
    start_epoch = 0
    best: dict[str, Any] | None = None  # {"epoch", "score": [robust, clean], "state_dict"}
    data_gen = torch.Generator().manual_seed(cfg.seed)
    attack_gen = torch.Generator(device=dev).manual_seed(cfg.seed + 1)

    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if log_csv is None and ckpt_path is not None:
        log_csv = csv_beside(ckpt_path)
    log = EpochLog(log_csv, tensorboard)
    resumed = _load_resume_state(ckpt_path, cfg) if ckpt_path is not None else None
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(cfg.seed + 2)
        if resumed is not None:
            model.load_state_dict(resumed["model"])
            opt.load_state_dict(resumed["optimizer"])
            sched.load_state_dict(resumed["scheduler"])
            data_gen.set_state(resumed["rng"]["data"])
            attack_gen.set_state(resumed["rng"]["attack"])
            torch.set_rng_state(resumed["rng"]["torch"])
            start_epoch = resumed["epoch"]
            result.history = list(resumed["history"])
            best = resumed.get("best")

        loader = DataLoader(
            fit_set,
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=data_gen,
            num_workers=cfg.num_workers,
            pin_memory=dev.type == "cuda",
            drop_last=False,
        )
        per_epoch = len(loader)
        t0 = time.perf_counter()
        for epoch in range(start_epoch, cfg.epochs):
            if best is not None and cfg.patience is not None and epoch + 1 - best["epoch"] > cfg.patience:
                result.stopped_early = True  # resumed after the epoch that met the patience
                break
            model.train()
            loss_sum, correct, seen, t_epoch = 0.0, 0, 0, time.perf_counter()
            lr_used, eps_used = sched.get_last_lr()[0], cfg.eps
            for step, (x, y, s) in enumerate(loader, start=1):
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                s = s.to(dev, non_blocking=True)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                done = epoch + step / per_epoch  # epochs of training once this batch is through
                eps_used = cfg.eps_at(done)
                step_cfg = cfg
                if eps_used != cfg.eps:  # the ramp: alpha shrinks with eps, keeping alpha / eps
                    step_cfg = dataclasses.replace(cfg, eps=eps_used, alpha=cfg.alpha * eps_used / cfg.eps)
                with _autocast(cfg, dev):
                    loss, logits = batch_loss(model, x, y, s, step_cfg, attack_gen)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"training loss became {loss.item()} at epoch {epoch + 1}, batch {step}; "
                        f"lower lr (now {sched.get_last_lr()[0]:g}) or check the data"
                    )
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip is not None:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                lr_used = _step(opt, scaler, sched.get_last_lr(), cfg.lr_factor_at(done))
                n = y.shape[0]
                loss_sum += loss.item() * n
                correct += (logits.argmax(1) == y).sum().item()
                seen += n
                if progress is not None:
                    progress(
                        Progress(
                            epoch,
                            step,
                            per_epoch,
                            cfg.epochs,
                            loss_sum / seen,
                            correct / seen,
                            time.perf_counter() - t0,
                        )
                    )
            row = {
                "epoch": epoch + 1,
                "loss": loss_sum / seen,
                "accuracy": correct / seen,
                "lr": lr_used,
                "eps": eps_used,
                "seconds": time.perf_counter() - t_epoch,
            }
            if val_set is not None:
                row["val_clean"], row["val_robust"] = validate(model, val_set, cfg, dev)
                score = [row["val_robust"], row["val_clean"]]
                if best is None or score > best["score"]:
                    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                    best = {"epoch": epoch + 1, "score": score, "state_dict": state}
            result.history.append(row)
            log.write(result.history)
            sched.step()
            if ckpt_path is not None:
                save_checkpoint(
                    ckpt_path,
                    model,
                    cfg,
                    meta=checkpoint_meta,
                    resume={
                        "epoch": epoch + 1,
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "rng": {
                            "data": data_gen.get_state(),
                            "attack": attack_gen.get_state().cpu(),
                            "torch": torch.get_rng_state(),
                        },
                        "history": result.history,
                        "best": best,
                    },
                )
            if on_epoch is not None:
                on_epoch(list(result.history))
            if best is not None and cfg.patience is not None and epoch + 1 - best["epoch"] >= cfg.patience:
                result.stopped_early = epoch + 1 < cfg.epochs
                break
    log.close()
    if best is not None:
        model.load_state_dict(best["state_dict"])
        result.best_epoch = int(best["epoch"])
    model.eval()
    if cfg.channels_last:
        model.to(memory_format=torch.contiguous_format)
    return result


def _step(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, lrs: list[float], factor: float) -> float:
    """One optimiser step at the scheduled learning rates times the warm-up ``factor``; returns the first
    group's rate used. The scheduled rates are put back after the step, so StepLR's chain never sees the
    warm-up and a resumed run continues the same schedule."""
    if factor != 1.0:
        for group, lr in zip(opt.param_groups, lrs, strict=True):
            group["lr"] = lr * factor
    scaler.step(opt)
    scaler.update()
    used = opt.param_groups[0]["lr"]
    if factor != 1.0:
        for group, lr in zip(opt.param_groups, lrs, strict=True):
            group["lr"] = lr
    return float(used)


def _load_resume_state(path: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    ckpt = read_checkpoint(path)  # RNG states must stay on the CPU
    if ckpt.get("resume") is None:
        return None
    try:  # compared as configs, so a checkpoint written before a new setting existed still resumes
        same = TrainConfig.from_dict(ckpt["train_config"]) == cfg
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ValueError(
            f"{path} holds a run with another config; remove it or pass another checkpoint path to start anew"
        )
    state = dict(ckpt["resume"])
    state["model"] = ckpt["state_dict"]
    return state


__all__ = [
    "CHECKPOINT_FORMAT",
    "MASKED_METHODS",
    "METHODS",
    "MODEL_META_KEYS",
    "RECIPE",
    "EpsRampWarning",
    "Method",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "batch_loss",
    "clean_rows",
    "load_model",
    "model_meta",
    "pick_device",
    "read_checkpoint",
    "save_checkpoint",
    "split_validation",
    "train",
    "validate",
]
