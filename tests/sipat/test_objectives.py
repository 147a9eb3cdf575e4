"""The training objectives and the masked evaluation, written so that a broken method fails them.

Each test states the equivalence the method implies (TRADES with beta 0 is clean training; SIP-TRADES with every
pixel salient has an adversary without freedom; a map with nothing salient changes nothing) and compares exact
numbers, or, where an adversary runs, re-derives the loss from the reference formula with the same generator.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from sipat.attacks import pgd
from sipat.evaluation import evaluate
from sipat.salience import to_mask
from sipat.training import TrainConfig, batch_loss, train

ATTACK = {"eps": 0.3, "alpha": 0.1, "steps": 5}


class Net(nn.Module):
    """Conv + ReLU + linear, no BatchNorm or dropout: train and eval mode compute the same function."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 16, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


def _net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def _batch(digits, n: int = 48):
    x, y = digits
    return x[:n], y[:n]


def _gen(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference_trades_loss(model, x, y, s, beta: float, generator: torch.Generator, masked: bool) -> torch.Tensor:
    """TRADES as Zhang et al.'s reference code writes it: the inner PGD maximises KL(f(x) || f(x')) (model in
    eval mode), the outer loss is CE(f(x), y) + beta * KLDivLoss(sum)(log f(x'), f(x)) / batch size."""
    p_clean = F.softmax(model(x).detach(), dim=1)

    def kl(logits: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
        return (p_clean * (p_clean.log() - F.log_softmax(logits, dim=1))).sum(dim=1)

    mask = to_mask(s) if masked else None
    x_adv = pgd(model, x, y, generator=generator, mask=mask, loss_fn=kl, **ATTACK)
    logits = model(x)
    robust = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="sum") / x.shape[0]
    return F.cross_entropy(logits, y) + beta * robust


def test_trades_with_beta_zero_is_clean_training_on_the_same_batch(digits):
    model, (x, y) = _net(), _batch(digits)
    s = torch.full_like(x, math.nan)
    loss, _ = batch_loss(model, x, y, s, TrainConfig(method="trades", trades_beta=0.0, **ATTACK), _gen())
    assert torch.equal(loss, F.cross_entropy(model(x), y))


@pytest.mark.parametrize("method", ["trades", "sip_trades"])
def test_trades_loss_has_the_reference_form(digits, method):
    model, (x, y) = _net(), _batch(digits)
    s = (x > 0.5).float()  # strokes salient (sip_trades spares them)
    cfg = TrainConfig(method=method, trades_beta=6.0, **ATTACK)
    loss, _ = batch_loss(model, x, y, s, cfg, _gen())
    expected = _reference_trades_loss(model, x, y, s, 6.0, _gen(), masked=method == "sip_trades")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # the KL term is there and not negligible, so dropping it could not pass the comparison above
    assert loss.item() - F.cross_entropy(model(x), y).item() > 1e-3


def test_sip_trades_with_every_pixel_salient_has_an_adversary_without_freedom(digits):
    model, (x, y) = _net(), _batch(digits)
    everything = torch.ones_like(x)
    loss, _ = batch_loss(model, x, y, everything, TrainConfig(method="sip_trades", **ATTACK), _gen())
    # x' = x, so KL(f(x) || f(x')) vanishes up to rounding and the loss is the clean cross-entropy
    assert loss.item() == pytest.approx(F.cross_entropy(model(x), y).item(), abs=1e-6)
    trades, _ = batch_loss(model, x, y, everything, TrainConfig(method="trades", **ATTACK), _gen())
    assert trades.item() - loss.item() > 1e-3  # TRADES (no mask) does perturb the same batch


def test_sip_trades_without_maps_is_trades(digits):
    model, (x, y) = _net(), _batch(digits)
    none = torch.full_like(x, math.nan)
    a, _ = batch_loss(model, x, y, none, TrainConfig(method="sip_trades", **ATTACK), _gen())
    b, _ = batch_loss(model, x, y, none, TrainConfig(method="trades", **ATTACK), _gen())
    assert torch.equal(a, b)


def test_sip_at_loss_is_the_cross_entropy_on_the_masked_adversary(digits):
    model, (x, y) = _net(), _batch(digits)
    s = (x > 0.5).float()
    loss, _ = batch_loss(model, x, y, s, TrainConfig(method="sip_at", **ATTACK), _gen())
    x_adv = pgd(model, x, y, mask=to_mask(s), generator=_gen(), **ATTACK)
    assert torch.equal(x_adv[s.bool()], x[s.bool()])  # the map's salient pixels are never moved ...
    assert (x_adv != x)[~s.bool()].float().mean() > 0.5  # ... and the others mostly are
    assert loss.item() == pytest.approx(F.cross_entropy(model(x_adv), y).item(), rel=1e-6)
    plain, _ = batch_loss(model, x, y, s, TrainConfig(method="pgd_at", **ATTACK), _gen())
    assert abs(plain.item() - loss.item()) > 1e-3  # the map changes the adversary


def test_sip_at_with_an_all_zero_map_trains_exactly_as_pgd_at(digits):
    x, y = _batch(digits, 256)
    zero = torch.zeros_like(x)  # nothing salient: mask 1 everywhere
    cfg = {"epochs": 1, "batch_size": 64, "lr": 0.05, **ATTACK}
    a, b = _net(), _net()
    train(a, TensorDataset(x, y, zero), TrainConfig(method="sip_at", **cfg))
    train(b, TensorDataset(x, y, zero), TrainConfig(method="pgd_at", **cfg))
    for u, v in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(u, v)


@pytest.fixture(scope="module")
def trained(digits) -> Net:
    x, y = digits
    model = _net()
    data = TensorDataset(x[:1400], y[:1400], torch.full_like(x[:1400], math.nan))
    train(model, data, TrainConfig(method="standard", epochs=8, batch_size=64, lr=0.05, seed=0))
    return model


#: What masking is tested with: short attacks, and no sanity checks (they are evaluate's own tests).
FAST = {"pgd_steps": 10, "apgd_steps": 20, "checks": False}


def _test_set(digits, salience: str) -> TensorDataset:
    x, y = digits
    x, y = x[1400:], y[1400:]
    s = torch.ones_like(x) if salience == "all" else torch.zeros_like(x)
    return TensorDataset(x, y, s)


def test_masked_evaluation_leaves_salient_pixels_alone(trained, digits):
    kwargs = {"eps_grid": [0.0, 0.1, 0.3], "attacks": ["pgd", "apgd"], **FAST}
    masked = evaluate(trained, _test_set(digits, "all"), masked=True, **kwargs)
    unmasked = evaluate(trained, _test_set(digits, "all"), **kwargs)
    for attack in ("pgd", "apgd"):
        # every pixel salient: the masked adversary cannot move anything, robust accuracy is the clean one
        assert all(acc == masked.clean_acc for acc in masked.robust_acc[attack].values())
        assert unmasked.robust_acc[attack][0.3] < unmasked.clean_acc - 0.2


def test_masked_evaluation_with_nothing_salient_is_the_unmasked_one(trained, digits):
    kwargs = {"eps_grid": [0.1, 0.2], "attacks": ["pgd", "apgd"], "seed": 3, **FAST}
    masked = evaluate(trained, _test_set(digits, "none"), masked=True, **kwargs)
    unmasked = evaluate(trained, _test_set(digits, "none"), **kwargs)
    assert masked.robust_acc == unmasked.robust_acc


def test_pgd_at_is_more_robust_than_standard_training_at_the_training_eps(digits):
    """A seeded learning test: adversarial training must buy robustness (measured: 0.52 -> 0.74 at eps 0.1)."""
    x, y = digits
    train_set = TensorDataset(x[:1400], y[:1400], torch.full_like(x[:1400], math.nan))
    test_set = TensorDataset(x[1400:], y[1400:], torch.full_like(x[1400:], math.nan))
    robust = {}
    for method in ("standard", "pgd_at"):
        model = _net()
        cfg = TrainConfig(method=method, epochs=8, batch_size=64, lr=0.05, eps=0.1, alpha=0.04, steps=5, seed=0)
        train(model, train_set, cfg)
        result = evaluate(model, test_set, eps_grid=[0.1], attacks=["pgd"], pgd_steps=10)
        assert result.clean_acc > 0.85
        robust[method] = result.robust_acc["pgd"][0.1]
    assert robust["pgd_at"] - robust["standard"] > 0.12
