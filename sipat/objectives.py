"""The training objectives of one batch: standard, PGD-AT, TRADES, and their salience-sparing forms SIP-AT and
SIP-TRADES, with `clean_share` for the clean_mix control. Apart from the training loop so that the method itself
reads on one screen (and `make mutate` mutates the method, not the loop)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sipat.attacks import eval_mode, pgd
from sipat.salience import to_mask
from sipat.train_config import MASKED_METHODS, TrainConfig


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
