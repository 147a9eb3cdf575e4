"""One training loop for standard training, PGD-AT, TRADES, SIP-AT and SIP-TRADES.

SIP-AT (Redgrave & Czajka, 2025) is Madry-style adversarial training whose inner maximisation spares the
salient pixels: cross-entropy on masked PGD examples only,

    min_theta  E[ CE( f(x + delta*), y ) ],   delta* = masked-PGD(x, y, eps, mask = to_mask(s))

Images without a salience map get mask 1 (plain adversarial training for them). `sip_trades` is TRADES
(Zhang et al., 2019) with the same masked inner maximisation:

    CE(f(x), y) + beta * KL( f(x) || f(x + delta*) ),   delta* maximises the KL within the masked ball.

Defaults are the paper's: eps 8/255, 32 steps of 1/255, SGD lr 0.1, momentum 0.9, weight decay 1e-6,
StepLR(10, 0.75), batch 32. Inputs are in [0, 1]; normalisation lives inside the model.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from sipat.attacks import eval_mode, pgd
from sipat.salience import to_mask

Method = Literal["standard", "pgd_at", "trades", "sip_at", "sip_trades"]
METHODS: tuple[str, ...] = ("standard", "pgd_at", "trades", "sip_at", "sip_trades")
MASKED_METHODS = frozenset({"sip_at", "sip_trades"})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored in every checkpoint."""

    method: Method = "sip_at"
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-6
    lr_step: int = 10
    lr_gamma: float = 0.75
    eps: float = 8 / 255
    alpha: float = 1 / 255
    steps: int = 32
    trades_beta: float = 6.0
    threshold: float | None = 0.5
    """Salience threshold of the binary mask m = (s < threshold); None for the soft budget m = 1 - s."""
    seed: int = 0
    clean_share: float = 0.0
    """pgd_at/sip_at only: the expected share of each batch trained on clean instead of adversarial inputs
    (see `clean_rows`); the `clean_mix` control of sipat.experiment. 0 = the method as published."""
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool = False
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be 'none', 'bf16' or 'fp16'; got {self.amp!r}")
        for name in ("epochs", "batch_size", "lr_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.steps < 0 or self.eps < 0 or self.alpha < 0 or self.lr <= 0:
            raise ValueError("steps, eps and alpha must be >= 0 and lr > 0")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1] or None (soft mask); got {self.threshold}")
        if not 0 <= self.clean_share < 1:
            raise ValueError(f"clean_share must be in [0, 1); got {self.clean_share}")
        if self.clean_share > 0 and self.method not in ("pgd_at", "sip_at"):
            raise ValueError(f"clean_share applies to pgd_at and sip_at only; got method {self.method!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(**d)


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
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: loss, accuracy, lr, seconds


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`cuda` when present, else the CPU; an explicit choice wins."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    return opt, sched


def _trades_kl(clean_logits: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    p_clean = F.softmax(clean_logits.detach().float(), dim=1)

    def kl(logits: Tensor, _y: Tensor) -> Tensor:
        return F.kl_div(F.log_softmax(logits.float(), dim=1), p_clean, reduction="none").sum(dim=1)

    return kl


def clean_rows(n: int, share: float, generator: torch.Generator) -> Tensor:
    """(n,) bool on the generator's device: the rows of a batch of n trained clean under `clean_share`.

    k = floor(share * n + u) rows with u ~ U(0, 1) (stochastic rounding, so E[k] = share * n exactly, also for
    small batches), chosen uniformly at random.
    """
    dev = generator.device
    k = int(torch.floor(share * n + torch.rand((), generator=generator, device=dev)))
    clean = torch.zeros(n, dtype=torch.bool, device=dev)
    clean[torch.randperm(n, generator=generator, device=dev)[:k]] = True
    return clean


def batch_loss(
    model: nn.Module, x: Tensor, y: Tensor, s: Tensor, cfg: TrainConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The training loss of one batch under `cfg.method`, and the logits it was computed from."""
    method = cfg.method
    if method == "standard":
        logits = model(x)
        return F.cross_entropy(logits.float(), y), logits
    mask = to_mask(s, cfg.threshold) if method in MASKED_METHODS else None
    if method in ("pgd_at", "sip_at"):
        if cfg.clean_share > 0:  # clean rows first, the attack on the others only
            adv = ~clean_rows(y.shape[0], cfg.clean_share, generator).to(x.device)
            x_adv = x.clone()
            if adv.any():
                m = None if mask is None else mask[adv]
                x_adv[adv] = pgd(model, x[adv], y[adv], cfg.eps, cfg.alpha, cfg.steps, mask=m, generator=generator)
        else:
            x_adv = pgd(model, x, y, cfg.eps, cfg.alpha, cfg.steps, mask=mask, generator=generator)
        logits = model(x_adv)
        return F.cross_entropy(logits.float(), y), logits
    # trades / sip_trades: the inner maximisation uses the KL to the clean prediction (model in eval mode,
    # as in the reference implementation), the outer loss CE(clean) + beta * KL(clean || adversarial).
    with torch.no_grad(), eval_mode(model):
        clean_eval = model(x)
    x_adv = pgd(
        model, x, y, cfg.eps, cfg.alpha, cfg.steps, mask=mask, generator=generator, loss_fn=_trades_kl(clean_eval)
    )
    logits = model(x)
    adv_logits = model(x_adv)
    kl = F.kl_div(F.log_softmax(adv_logits.float(), dim=1), F.softmax(logits.float(), dim=1), reduction="batchmean")
    return F.cross_entropy(logits.float(), y) + cfg.trades_beta * kl, logits


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def train(
    model: nn.Module,
    train_set: Dataset,
    cfg: TrainConfig,
    *,
    device: str | torch.device | None = None,
    progress: Callable[[Progress], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Train `model` in place on `train_set` items `(image (C,H,W) in [0,1], label, salience (1,H,W))`.

    Seeded: the same model initialisation, data and `cfg` give the same weights (on the CPU). The global RNG
    is forked, not reseeded, so the caller's random state is left as it was.

    Args:
        model: maps [0, 1] images to logits (normaliser inside, see sipat.models).
        train_set: a Dataset of (image, label, salience); salience all-NaN = no map (mask 1).
        cfg: the method and its hyper-parameters.
        device: where to train; `cuda` when present by default.
        progress: called after every batch with a `Progress`; raising from it stops training (the
            worker uses this to cancel).
        checkpoint: a path written (atomically) after each epoch with weights, optimiser, scheduler and
            RNG state; if it exists with the same config, training resumes after its last epoch.
        checkpoint_meta: extra entries stored in the checkpoint (e.g. the architecture, see save_checkpoint).
    """
    dev = pick_device(device)
    if cfg.amp == "fp16" and dev.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' or 'none' on the CPU")
    if len(train_set) == 0:
        raise ValueError("the training set is empty")
    model.to(dev)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(dev.type, enabled=cfg.amp == "fp16")
    result = TrainResult()
    start_epoch = 0
    data_gen = torch.Generator().manual_seed(cfg.seed)
    attack_gen = torch.Generator(device=dev).manual_seed(cfg.seed + 1)

    ckpt_path = Path(checkpoint) if checkpoint is not None else None
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

        loader = DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=data_gen,
            num_workers=cfg.num_workers,
            pin_memory=dev.type == "cuda",
            drop_last=False,
        )
        t0 = time.perf_counter()
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            loss_sum, correct, seen, t_epoch = 0.0, 0, 0, time.perf_counter()
            for step, (x, y, s) in enumerate(loader, start=1):
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                s = s.to(dev, non_blocking=True)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(cfg, dev):
                    loss, logits = batch_loss(model, x, y, s, cfg, attack_gen)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"training loss became {loss.item()} at epoch {epoch + 1}, batch {step}; "
                        f"lower lr (now {sched.get_last_lr()[0]:g}) or check the data"
                    )
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                n = y.shape[0]
                loss_sum += loss.item() * n
                correct += (logits.argmax(1) == y).sum().item()
                seen += n
                if progress is not None:
                    progress(
                        Progress(
                            epoch,
                            step,
                            len(loader),
                            cfg.epochs,
                            loss_sum / seen,
                            correct / seen,
                            time.perf_counter() - t0,
                        )
                    )
            result.history.append(
                {
                    "epoch": epoch + 1,
                    "loss": loss_sum / seen,
                    "accuracy": correct / seen,
                    "lr": sched.get_last_lr()[0],
                    "seconds": time.perf_counter() - t_epoch,
                }
            )
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
                    },
                )
    model.eval()
    if cfg.channels_last:
        model.to(memory_format=torch.contiguous_format)
    return result


CHECKPOINT_FORMAT = 1


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    cfg: TrainConfig,
    *,
    meta: dict[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
) -> Path:
    """Write weights + training config (+ `meta`, e.g. arch and classes) atomically to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "train_config": cfg.to_dict(),
        "meta": dict(meta or {}),
        "resume": resume,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict (state_dict, train_config, meta, resume). Weights only: no pickled code runs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged file
        raise ValueError(f"{path} is not a readable sipat checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a sipat checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


MODEL_META_KEYS = ("arch", "num_classes", "in_channels", "image_size")


def model_meta(model: nn.Module, *, num_classes: int, in_channels: int, image_size: Any, classes: list[str]) -> dict:
    """The checkpoint `meta` that `load_model` needs to rebuild a `sipat.models.build_model` network."""
    arch = getattr(model, "arch", None)
    if arch is None:
        raise ValueError("model_meta needs a model built by sipat.models.build_model (it records its arch)")
    return {
        "arch": arch,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "classes": list(classes),
    }


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint written with `model_meta`, in eval mode; returns (model, checkpoint)."""
    from sipat.models import build_model

    ckpt = read_checkpoint(path, map_location=map_location)
    meta = ckpt.get("meta") or {}
    missing = [k for k in MODEL_META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path} does not record {', '.join(missing)}; save it with meta=model_meta(...)")
    size = meta["image_size"]
    model = build_model(
        meta["arch"],
        num_classes=meta["num_classes"],
        in_channels=meta["in_channels"],
        image_size=size if isinstance(size, int) or size is None else max(size),
    )
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location).eval(), ckpt


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
    "METHODS",
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
    "train",
]
