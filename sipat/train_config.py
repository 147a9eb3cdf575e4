"""`TrainConfig`: everything that decides a training run (stored in every checkpoint), and the recipe knobs.

The method defaults are the paper's (eps 8/255, 32 steps of 1/255, SGD lr 0.1, momentum 0.9, weight decay
1e-6, StepLR(10, 0.75), batch 32). The recipe knobs below default to *off*, so a config written before they
existed trains exactly as it did (and still resumes from its checkpoints). `RECIPE` holds the values that make
every adversarial baseline train on `shapes`: without an eps ramp and a learning-rate warm-up, PGD-AT collapsed
to chance in 2 of 3 seeds there, because the first updates at the full radius push the network to the
constant predictor before it has learnt any feature (see benchmarks/recipe.py). Its flip is wrong for data
whose class or cue is not mirror-symmetric (shapes' oriented textures, digits): ``flip`` off keeps the padded
crop alone. configs/shapes.json and mnist5k.json write ``flip`` off and keep ``augment`` off too, because the
crop alone kept PGD-AT on shapes at chance in a short check (docs/results.md).

Recipe knobs (all schedules are per batch, so a ramp over 2 epochs of 10 batches has 20 steps):

- ``eps_ramp_epochs``: the training radius grows linearly from 0 to ``eps`` over this many epochs (the step
  size ``alpha`` scales with it, keeping ``alpha / eps`` fixed); 0 = the full radius from the first batch.
  A ramp as long as the run or longer never trains at ``eps`` but in the last batch at best
  (`TrainConfig.eps_ramp_problem`): `train` warns (`EpsRampWarning`); an experiment config refuses a ramp
  longer than its epochs.
- ``warmup_epochs``: the learning rate grows linearly to the scheduled value over this many epochs (from 1/n
  of it at the first of n warm-up batches), then follows StepLR; 0 = no warm-up.
- ``grad_clip``: the largest global L2 norm of the gradient (after AMP unscaling); None = no clipping.
- ``weight_decay``: SGD's L2 penalty; 5e-4 is the adversarial-training norm (Madry, Rice et al.).
- ``augment`` / ``crop_padding`` / ``flip``: random crop after zero-padding by ``crop_padding`` pixels, then
  (with ``flip``, the default) a horizontal flip with probability 1/2, applied to the image and its salience map
  together (`sipat.augment`). ``flip`` False keeps the crop alone; without ``augment`` both are unused.
- ``val_share``: the share of the training set held out (seeded) to pick the best epoch by robust validation
  accuracy (``val_steps``-step PGD at ``eps``; clean accuracy breaks ties), against robust overfitting;
  the model returned is the best epoch's. 0 = no validation, the last epoch is kept.
- ``patience``: stop after this many epochs without a better validation score (needs ``val_share``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from sipat.vocabulary import MASKED_METHODS, METHODS, RECIPE, Method, eps_ramp_problem


class EpsRampWarning(UserWarning):
    """A run whose eps ramp is as long as the run or longer: it never trains at its nominal radius."""


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
    (see `sipat.objectives.clean_rows`); the `clean_mix` control of sipat.experiment. 0 = the method as published."""
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool = False
    num_workers: int = 0
    eps_ramp_epochs: int = 0
    warmup_epochs: int = 0
    grad_clip: float | None = None
    augment: bool = False
    crop_padding: int = 4
    flip: bool = True
    """With ``augment``: also flip horizontally. True, as before the knob existed, so old configs and
    checkpoints keep their meaning."""
    val_share: float = 0.0
    val_steps: int = 10
    patience: int | None = None

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
        for name in ("augment", "flip"):  # a config file's "false" (a string) would switch them on
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false; got {getattr(self, name)!r}")
        for name in ("eps_ramp_epochs", "warmup_epochs", "crop_padding", "val_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0, or None for no clipping; got {self.grad_clip}")
        if not 0 <= self.val_share < 1:
            raise ValueError(f"val_share must be in [0, 1); got {self.val_share}")
        if self.patience is not None:
            if self.patience < 1:
                raise ValueError(f"patience must be >= 1 epoch, or None; got {self.patience}")
            if self.val_share == 0:
                raise ValueError("patience (early stopping) needs a validation split: set val_share > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(**d)

    def with_recipe(self, **overrides: Any) -> TrainConfig:
        """This config with the `RECIPE` knobs switched on (``overrides`` win)."""
        return dataclasses.replace(self, **{**RECIPE, **overrides})

    def eps_at(self, progress_epochs: float) -> float:
        """The training radius after ``progress_epochs`` epochs (fractional, counted at the batch's end)."""
        if self.eps_ramp_epochs == 0:
            return self.eps
        return self.eps * min(1.0, max(0.0, progress_epochs) / self.eps_ramp_epochs)

    def eps_ramp_problem(self) -> str | None:
        """What is wrong when the eps ramp is as long as the run or longer, else None.

        Such a run never trains at ``eps`` (or only in its very last batch): a silent change of the experiment.
        The rule is `sipat.vocabulary.eps_ramp_problem`, which the web's train jobs apply too (``standard``
        training and eps 0 are exempt: a short Grad-CAM reference model may share an experiment's ramp).
        """
        return eps_ramp_problem(self.method, self.eps, self.epochs, self.eps_ramp_epochs)

    def lr_factor_at(self, progress_epochs: float) -> float:
        """The warm-up's multiplier of the scheduled learning rate after ``progress_epochs`` epochs."""
        if self.warmup_epochs == 0:
            return 1.0
        return min(1.0, max(0.0, progress_epochs) / self.warmup_epochs)


__all__ = ["MASKED_METHODS", "METHODS", "RECIPE", "EpsRampWarning", "Method", "TrainConfig"]
