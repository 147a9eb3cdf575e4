"""Our unmasked APGD-CE and AutoAttack ensemble against torchattacks 3.5.1 (a dev/test dependency only,
installed with --no-deps) on a small trained model: robust accuracy within one point."""

from __future__ import annotations

import pytest
import torch

from sipat.attacks import AttackBudget, apgd, autoattack

torchattacks = pytest.importorskip("torchattacks")

EPS = 0.05  # on the digits model: clean 0.98, APGD-CE about 0.86, so the attacks have work to do
N = 400


def _acc(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_apgd_ce_agrees_with_torchattacks(trained_digits_model, digits):
    x, y = digits[0][:N], digits[1][:N]
    model = trained_digits_model
    theirs = torchattacks.APGD(model, norm="Linf", eps=EPS, steps=100, n_restarts=1, seed=0, loss="ce")(x, y)
    ours = apgd(model, x, y, EPS, 100, generator=torch.Generator().manual_seed(0))
    a_theirs, a_ours = _acc(model, theirs, y), _acc(model, ours, y)
    assert a_ours < _acc(model, x, y) - 0.05  # not a trivial agreement at clean accuracy
    assert abs(a_ours - a_theirs) <= 0.01, (a_ours, a_theirs)


def test_autoattack_ensemble_agrees_with_torchattacks(trained_digits_model, digits):
    """torchattacks' standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square) with Square cut to 500 queries
    on both sides to keep the test short, and FAB at the reference's 100 steps (torchattacks defaults to 10)."""
    x, y = digits[0][:250], digits[1][:250]
    model = trained_digits_model
    ta = torchattacks
    members = [
        ta.APGD(model, norm="Linf", eps=EPS, seed=0, loss="ce", n_restarts=1),
        ta.APGDT(model, norm="Linf", eps=EPS, seed=0, n_classes=10, n_restarts=1),
        ta.FAB(model, norm="Linf", eps=EPS, steps=100, seed=0, multi_targeted=True, n_classes=10, n_restarts=1),
        ta.Square(model, norm="Linf", eps=EPS, seed=0, n_queries=500, n_restarts=1),
    ]
    a_theirs = _acc(model, ta.MultiAttack(members)(x, y), y)
    res = autoattack(
        model, x, y, EPS, generator=torch.Generator().manual_seed(0), budget=AttackBudget(square_queries=500)
    )
    a_ours = res.robust.float().mean().item()
    assert a_ours < res.stages["apgd-ce"].float().mean().item() + 1e-9
    assert abs(a_ours - a_theirs) <= 0.01, (a_ours, a_theirs)


def test_fab_t_agrees_with_torchattacks(trained_digits_model, digits):
    from sipat.attacks import fab_targeted

    x, y = digits[0][:200], digits[1][:200]
    model = trained_digits_model
    eps = 0.1
    theirs = torchattacks.FAB(
        model, norm="Linf", eps=eps, steps=100, seed=0, multi_targeted=True, n_classes=10, n_restarts=1
    )(x, y)
    a_theirs, a_ours = _acc(model, theirs, y), _acc(model, fab_targeted(model, x, y, eps), y)
    assert a_ours < _acc(model, x, y) - 0.2
    assert abs(a_ours - a_theirs) <= 0.01, (a_ours, a_theirs)
