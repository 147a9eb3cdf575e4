"""`evaluate` with the registry's attacks, the AutoAttack ensemble's columns and the sanity checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from sipat.attacks import AttackBudget
from sipat.attacks.checks import check_black_box, check_monotone, check_outputs, check_randomized, check_zero_grad
from sipat.evaluation import ATTACKS, evaluate, format_table

SMALL = AttackBudget(pgd_steps=5, apgd_steps=10, n_targets=3, fab_steps=10, square_queries=100)


def _data(digits, n: int = 120) -> TensorDataset:
    x, y = digits
    return TensorDataset(x[:n], y[:n], torch.zeros(n, 1, 8, 8))


class Quantized(nn.Module):
    """The trained model behind an input quantiser: zero gradients everywhere, so white-box attacks stall."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 4) / 4)


class Noisy(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + torch.randn(x.shape[0], 10)


def test_autoattack_columns_and_worst_case(trained_digits_model, digits):
    res = evaluate(
        trained_digits_model,
        _data(digits),
        eps_grid=[0.0, 0.03, 0.06],
        attacks=["apgd", "autoattack"],
        budget=SMALL,
        autoattack_every_sample=True,
    )
    stages = ("apgd-ce", "apgd-t", "fab-t", "square")
    cols = ["apgd", "autoattack", *(f"autoattack/+{s}" for s in stages), *(f"autoattack/{s}" for s in stages)]
    assert list(res.robust_acc) == cols
    assert all(res.robust_acc[c][0.0] == res.clean_acc for c in res.robust_acc)
    for e in (0.03, 0.06):
        worst = res.robust_acc["autoattack"][e]
        assert worst < res.clean_acc
        for s in stages:
            assert worst <= res.robust_acc[f"autoattack/{s}"][e]
        running = [res.robust_acc[f"autoattack/+{s}"][e] for s in stages]
        assert running == sorted(running, reverse=True) and running[-1] == worst
    d = res.to_dict()
    assert d["warnings"] == res.warnings and set(d["robust_acc"]) == set(res.robust_acc)
    assert "autoattack/+square" in format_table(res) and "| autoattack/fab-t |" in format_table(res)


def test_the_old_call_still_works_and_a_healthy_model_raises_no_warning(trained_digits_model, digits):
    res = evaluate(trained_digits_model, _data(digits), eps_grid=[0.0, 0.02, 0.05], pgd_steps=5, apgd_steps=10)
    assert list(res.robust_acc) == ["pgd", "apgd"]
    assert res.robust_acc["apgd"][0.05] < res.robust_acc["apgd"][0.02] < res.clean_acc
    assert res.warnings == []
    assert set(ATTACKS) >= {"pgd", "apgd", "fgsm", "apgd-t", "square", "autoattack"}
    with pytest.raises(ValueError, match="choose from"):
        evaluate(trained_digits_model, _data(digits), attacks=["cw"])


def test_gradient_masking_is_reported_with_numbers(trained_digits_model, digits):
    """A quantised input gives zero gradients: APGD stalls at clean accuracy, Square does not, and both
    checks say so."""
    model = Quantized(trained_digits_model)
    res = evaluate(model, _data(digits), eps_grid=[0.0, 0.2], attacks=["apgd", "square"], budget=SMALL)
    assert res.robust_acc["square"][0.2] < res.robust_acc["apgd"][0.2]
    text = "\n".join(res.warnings)
    assert "100.0% of 120 samples have an all-zero input gradient" in text
    assert "black-box square beats the white-box attacks at eps 0.2" in text


def test_probability_outputs_and_randomised_forward_are_reported(trained_digits_model, digits):
    x, y = digits
    probs = nn.Sequential(trained_digits_model, nn.Softmax(dim=1))
    assert "probabilities, not logits" in check_outputs(probs, x[:32])[0]
    assert check_outputs(trained_digits_model, x[:32]) == []
    assert "randomised" in check_randomized(Noisy(trained_digits_model), x[:32])[0]
    assert check_randomized(trained_digits_model, x[:32]) == []
    assert check_zero_grad(trained_digits_model, x[:32], y[:32]) == []


def test_accuracy_rising_with_eps_and_black_box_wins_are_flagged_with_numbers():
    acc = {"pgd": {0.0: 0.9, 0.1: 0.5, 0.2: 0.6}, "square": {0.0: 0.9, 0.1: 0.3, 0.2: 0.2}}
    rising = check_monotone(acc)
    assert rising == [
        "pgd: robust accuracy rises with eps (0.5000 at 0.1, 0.6000 at 0.2): the attack is failing; "
        "more steps or restarts are needed"
    ]
    bb = check_black_box(acc, frozenset({"square"}))
    assert len(bb) == 2 and "(0.3000 < 0.5000)" in bb[0] and "(0.2000 < 0.6000)" in bb[1]
    ensemble = {"autoattack": {0.1: 0.4}, "autoattack/+apgd-t": {0.1: 0.5}, "autoattack/+square": {0.1: 0.4}}
    (w,) = check_black_box(ensemble, frozenset({"square"}), n=200)
    assert "Square broke 0.1000 (20 of 200 samples) at eps 0.1" in w
