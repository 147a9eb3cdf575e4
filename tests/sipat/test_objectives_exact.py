"""Exact checks of the small pieces of the training objectives that the equivalence tests in
`test_objectives.py` pass through without pinning: the per-sample TRADES KL the inner maximisation climbs, and the
rows `clean_share` keeps clean. Each was added for a mutant `make mutate` left alive (docs/testing.md)."""

from __future__ import annotations

import math

import torch

from sipat.objectives import _trades_kl, clean_rows


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
