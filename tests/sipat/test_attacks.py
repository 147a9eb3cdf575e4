"""Attacks: exact values on hand-built models, the authors' algorithm step for step, and invariants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sipat.attacks import apgd, fgsm, pgd
from tests.sipat.conftest import TinyCNN

EPS = 0.1


def _batch(n: int = 6, c: int = 1, hw: int = 8, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, hw, hw, generator=g, dtype=dtype)
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y


def _binary_mask(n: int, hw: int = 8, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, hw, hw, generator=g) > 0.4).float()


def _model(seed: int = 0, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return TinyCNN().to(dtype).eval()


ATTACKS = {
    "pgd_linf": lambda m, x, y, eps, mask, g: pgd(m, x, y, eps, EPS / 4, 5, mask=mask, generator=g),
    "pgd_l2": lambda m, x, y, eps, mask, g: pgd(m, x, y, eps, EPS / 4, 5, norm="l2", mask=mask, generator=g),
    "fgsm": lambda m, x, y, eps, mask, g: fgsm(m, x, y, eps, mask=mask),
    "apgd_ce": lambda m, x, y, eps, mask, g: apgd(m, x, y, eps, 10, mask=mask, generator=g),
    "apgd_dlr": lambda m, x, y, eps, mask, g: apgd(m, x, y, eps, 10, loss="dlr", mask=mask, generator=g),
}
LINF = ["pgd_linf", "fgsm", "apgd_ce", "apgd_dlr"]


# --- exact values --------------------------------------------------------------------------------------


def test_fgsm_exact_on_a_hand_built_linear_model():
    # logits = [x0 - x1, 0]; for y = 0, dCE/dx = (p0 - 1) * [1, -1], so sign(grad) = [-1, +1].
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 0.0]]))
    model = nn.Sequential(nn.Flatten(), lin)
    x = torch.tensor([[[[0.5, 0.5]]]])
    y = torch.tensor([0])
    torch.testing.assert_close(fgsm(model, x, y, 0.1), torch.tensor([[[[0.4, 0.6]]]]))
    mask = torch.tensor([[[[0.0, 1.0]]]])
    torch.testing.assert_close(fgsm(model, x, y, 0.1, mask=mask), torch.tensor([[[[0.5, 0.6]]]]))
    soft = torch.tensor([[[[0.5, 0.25]]]])
    torch.testing.assert_close(fgsm(model, x, y, 0.1, mask=soft), torch.tensor([[[[0.45, 0.525]]]]))


def _authors_masked_pgd(model, x, y, eps, alpha, steps, m, x0):
    """SIP-AT's attack as the paper writes it, step by step (mean-reduced CE, clamp the difference)."""
    x_adv, iterates = x0.clone(), []
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        grad = torch.autograd.grad(loss, x_adv)[0]
        x_adv = x_adv.detach() + alpha * torch.sign(grad * m)
        x_adv = torch.clamp(x + torch.clamp(x_adv - x, -eps, eps), 0, 1)
        iterates.append(x_adv)
    return iterates


def test_binary_mask_pgd_equals_the_authors_algorithm_step_for_step():
    model = _model(dtype=torch.float64)
    x, y = _batch(dtype=torch.float64)
    m = _binary_mask(len(x)).double()
    reference = _authors_masked_pgd(model, x, y, EPS, 0.02, 8, m, x)
    for t, expected in enumerate(reference, start=1):
        got = pgd(model, x, y, EPS, 0.02, t, mask=m, random_start=False)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12, msg=f"step {t}")
    assert not torch.equal(reference[-1], x)  # the attack did move


def test_binary_mask_pgd_random_start_is_the_authors_start():
    model = _model(dtype=torch.float64)
    x, y = _batch(dtype=torch.float64)
    m = _binary_mask(len(x)).double()
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype) * 2 - 1
    x0 = torch.clamp(x + u * EPS * m, 0, 1)  # U(-eps, eps) * m
    expected = _authors_masked_pgd(model, x, y, EPS, 0.02, 4, m, x0)[-1]
    got = pgd(model, x, y, EPS, 0.02, 4, mask=m, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_all_ones_mask_equals_unmasked_pgd_under_the_same_generator(norm):
    model = _model()
    x, y = _batch()
    a = pgd(model, x, y, EPS, 0.03, 5, norm=norm, generator=torch.Generator().manual_seed(3))
    b = pgd(
        model,
        x,
        y,
        EPS,
        0.03,
        5,
        norm=norm,
        mask=torch.ones(len(x), 1, 8, 8),
        generator=torch.Generator().manual_seed(3),
    )
    assert torch.equal(a, b)


# --- invariants ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("mask_kind", ["none", "binary", "soft"])
def test_in_range_within_budget_and_untouchable_pixels_identical(name, mask_kind):
    model = _model()
    x, _ = _batch(n=8)
    with torch.no_grad():  # labels the model gets right: APGD, as the reference, skips samples wrong on x
        y = model(x).argmax(1)
    eps = torch.tensor([0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.1, 0.1])
    if mask_kind == "none":
        mask = None
    elif mask_kind == "binary":
        mask = _binary_mask(len(x))
    else:
        mask = torch.rand(len(x), 1, 8, 8, generator=torch.Generator().manual_seed(9))
        mask[:, :, :2] = 0.0
    x_adv = ATTACKS[name](model, x, y, eps, mask, torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).abs()
    m = torch.ones_like(x) if mask is None else mask.expand_as(x)
    if name in LINF:
        assert (delta <= eps.view(-1, 1, 1, 1) * m + 1e-6).all()
    else:
        assert (delta.flatten(1).norm(dim=1) <= eps + 1e-5).all()
    untouchable = m == 0
    assert torch.equal(x_adv[untouchable], x[untouchable])
    assert torch.equal(x_adv[0], x[0])  # eps 0
    assert (delta[5] > 0).any()  # a real budget is used


@pytest.mark.parametrize("name", list(ATTACKS))
def test_model_modes_requires_grad_and_grads_are_left_as_they_were(name):
    model = _model()
    model.train()
    model.bn.eval()  # a mixed state that a blunt model.train(was_training) would destroy
    model.conv.weight.requires_grad_(False)
    model.head.weight.grad = torch.full_like(model.head.weight, 7.0)
    x, y = _batch()
    ATTACKS[name](model, x, y, EPS, _binary_mask(len(x)), torch.Generator().manual_seed(0))
    assert model.training and model.conv.training and model.head.training and not model.bn.training
    assert not model.conv.weight.requires_grad and model.head.weight.requires_grad
    assert torch.equal(model.head.weight.grad, torch.full_like(model.head.weight, 7.0))
    assert model.conv.bias.grad is None and model.head.bias.grad is None


def test_batchnorm_statistics_are_not_updated_by_an_attack():
    model = _model()
    model.train()
    before = model.bn.running_mean.clone()
    x, y = _batch()
    pgd(model, x, y, EPS, 0.03, 3)
    assert torch.equal(model.bn.running_mean, before)


@pytest.mark.parametrize("name", ["pgd_linf", "pgd_l2", "apgd_ce"])
def test_seeded_runs_repeat_and_seeds_differ(name):
    model = _model()
    x, y = _batch()
    run = lambda seed: ATTACKS[name](model, x, y, EPS, None, torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_per_sample_eps_equals_separate_calls():
    model = _model()
    x, y = _batch(n=4)
    eps = torch.tensor([0.02, 0.05, 0.1, 0.2])
    together = pgd(model, x, y, eps, eps / 4, 5, random_start=False)
    for i in range(4):
        alone = pgd(model, x[i : i + 1], y[i : i + 1], float(eps[i]), float(eps[i]) / 4, 5, random_start=False)
        torch.testing.assert_close(together[i : i + 1], alone, rtol=0, atol=1e-6)


def test_pgd_raises_the_loss_and_works_under_no_grad():
    model = _model()
    x, y = _batch(n=16)
    with torch.no_grad():
        x_adv = pgd(model, x, y, EPS, 0.02, 10)
        clean = F.cross_entropy(model(x), y)
        adv = F.cross_entropy(model(x_adv), y)
    assert adv > clean


def test_apgd_is_at_least_as_strong_as_pgd_on_a_trained_model(trained_digits_model, digits):
    x, y = digits
    x, y = x[:400], y[:400]
    model = trained_digits_model
    with torch.no_grad():
        clean_acc = (model(x).argmax(1) == y).float().mean().item()
    assert clean_acc > 0.9
    eps = 0.08
    x_pgd = pgd(model, x, y, eps, eps / 4, 10, generator=torch.Generator().manual_seed(0))
    x_apgd = apgd(model, x, y, eps, 50, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        acc_pgd = (model(x_pgd).argmax(1) == y).float().mean().item()
        acc_apgd = (model(x_apgd).argmax(1) == y).float().mean().item()
    assert acc_pgd < clean_acc  # the setting is not trivial
    assert acc_apgd <= acc_pgd


def test_apgd_restarts_only_improve(trained_digits_model, digits):
    x, y = digits
    x, y = x[:200], y[:200]
    one = apgd(trained_digits_model, x, y, 0.05, 20, generator=torch.Generator().manual_seed(0))
    three = apgd(trained_digits_model, x, y, 0.05, 20, restarts=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fooled_one = trained_digits_model(one).argmax(1) != y
        fooled_three = trained_digits_model(three).argmax(1) != y
    assert (fooled_three | ~fooled_one).all()  # a sample fooled after one restart stays fooled


# --- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": torch.rand(2, 1, 8, 8) * 2}, "must lie in \\[0, 1\\]"),
        ({"x": torch.rand(1, 8, 8)}, "shape \\(N, C, H, W\\)"),
        ({"eps": -0.1}, "finite and >= 0"),
        ({"eps": torch.tensor([0.1, 0.1, 0.1])}, "shape \\(N,\\)"),
        ({"mask": torch.ones(2, 1, 4, 4)}, "resize"),
        ({"mask": torch.full((2, 1, 8, 8), 2.0)}, "mask values"),
        ({"norm": "l1"}, "norm must be"),
        ({"steps": -1}, "steps must be"),
        ({"y": torch.zeros(2)}, "integer class indices"),
    ],
)
def test_bad_arguments_say_what_to_fix(kwargs, message):
    args = {
        "x": torch.rand(2, 1, 8, 8),
        "y": torch.zeros(2, dtype=torch.long),
        "eps": 0.1,
        "mask": None,
        "norm": "linf",
        "steps": 2,
    }
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        pgd(_model(), args["x"], args["y"], args["eps"], 0.01, args["steps"], norm=args["norm"], mask=args["mask"])


def test_dlr_needs_three_classes():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with pytest.raises(ValueError, match="at least 3 classes"):
        apgd(model, torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long), 0.1, 5, loss="dlr")


def test_a_generator_on_the_current_cuda_device_matches_cuda_0():
    """torch.Generator(device="cuda") reports `cuda` while tensors report `cuda:0`: one device (seen on an H100)."""
    from sipat.attacks._core import same_device

    assert same_device(torch.device("cuda"), torch.device("cuda:0"))
    assert same_device(torch.device("cpu"), torch.device("cpu"))
    assert not same_device(torch.device("cuda:1"), torch.device("cuda:0"))
    assert not same_device(torch.device("cpu"), torch.device("cuda:0"))
