"""Exact checks of the small pieces of the training objectives that the equivalence tests in
`test_objectives.py` pass through without pinning: the per-sample TRADES KL the inner maximisation climbs, and the
rows `clean_share` keeps clean. Each was added for a mutant `make mutate` left alive (docs/testing.md)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sipat.attacks import pgd
from sipat.objectives import _trades_kl, batch_loss, clean_rows
from sipat.salience import to_mask
from sipat.train_config import TrainConfig


def test_the_inner_trades_loss_is_the_per_sample_kl_from_the_clean_prediction():
    clean = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    adv = torch.tensor([[0.0, 1.0, 0.0], [1.0, -1.0, 0.5]])
    loss = _trades_kl(clean)(adv, torch.tensor([0, 1]))
    p, log_q = clean.softmax(1), adv.log_softmax(1)
    expected = [sum(float(p[i, j]) * (math.log(float(p[i, j])) - float(log_q[i, j])) for j in range(3)) for i in (0, 1)]
    assert loss.shape == (2,)  # one value per sample: APGD keeps each sample's best point by it
    assert torch.allclose(loss, torch.tensor(expected), atol=1e-6)
    assert float(_trades_kl(clean)(clean, torch.tensor([0, 1])).abs().max()) < 1e-6  # KL(p || p) = 0


def test_clean_rows_draw_k_and_then_the_rows_from_the_given_generator_only():
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        u = float(torch.rand((), generator=g))
        k = math.floor(0.3 * 32 + u)
        expected = torch.zeros(32, dtype=torch.bool)
        expected[torch.randperm(32, generator=g)[:k]] = True
        torch.manual_seed(1000 + seed)  # the global generator must play no part
        got = clean_rows(32, 0.3, torch.Generator().manual_seed(seed))
        assert torch.equal(got, expected) and int(got.sum()) == k


def _model() -> nn.Module:
    """No BatchNorm or dropout: rows are independent and train and eval mode agree."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _two_level_map(n: int) -> torch.Tensor:
    """0.6 on the left half, 0.8 on the right: at threshold 0.7 only the left half may be attacked, at the
    default 0.5 nothing, and the soft mask (1 - s) would attack both halves a little."""
    s = torch.full((n, 1, 8, 8), 0.8)
    s[..., :4] = 0.6
    return s


def test_sip_at_with_clean_rows_attacks_the_other_rows_under_the_map_at_the_configured_threshold(digits):
    x, y = digits[0][:24], digits[1][:24]
    s = _two_level_map(24)
    model = _model()
    cfg = TrainConfig(method="sip_at", eps=0.3, alpha=0.1, steps=3, clean_share=0.5, threshold=0.7)
    g = torch.Generator().manual_seed(7)
    adv = ~clean_rows(24, 0.5, g)
    x_ref = x.clone()
    x_ref[adv] = pgd(model, x[adv], y[adv], 0.3, 0.1, 3, mask=to_mask(s, 0.7)[adv], generator=g)
    with torch.no_grad():
        expected = model(x_ref)
    torch.manual_seed(123)  # the attack's random start comes from the batch's generator, not the global one
    loss, logits = batch_loss(model, x, y, s, cfg, torch.Generator().manual_seed(7))
    assert torch.equal(logits, expected)
    assert torch.allclose(loss, F.cross_entropy(expected, y))
    moved = (x_ref - x).abs().amax(dim=(0, 1, 2))
    assert float(moved[4:].max()) == 0.0 and float(moved[:4].max()) > 0.2  # the right half is salient at 0.7


def test_sip_at_and_sip_trades_read_the_threshold_of_the_config(digits):
    x, y = digits[0][:16], digits[1][:16]
    s = torch.full((16, 1, 8, 8), 0.6)
    model = _model()
    for method, free in (("sip_at", "pgd_at"), ("sip_trades", "trades")):
        attack = {"eps": 0.3, "alpha": 0.1, "steps": 3}
        below = batch_loss(model, x, y, s, TrainConfig(method=method, threshold=0.7, **attack), _gen())[0]
        unmasked = batch_loss(model, x, y, s, TrainConfig(method=free, **attack), _gen())[0]
        assert torch.equal(below, unmasked)  # 0.6 < 0.7: nothing is salient, the adversary is free
        spared = batch_loss(model, x, y, s, TrainConfig(method=method, threshold=0.5, **attack), _gen())[1]
        with torch.no_grad():
            assert torch.equal(spared, model(x))  # 0.6 >= 0.5: everything salient, the logits are the clean ones


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(3)
