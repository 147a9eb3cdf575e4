"""L2 PGD against a transcription of the textbook algorithm, step for step, and the count check the attacks
share. Added for the mutants `make mutate` left alive in `sipat/attacks/pgd.py` and `_core.py` (docs/testing.md):
until then only the L-inf PGD was compared with a reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sipat.attacks import fgsm, pgd
from sipat.attacks._core import as_eps, as_mask, ce_loss, check_batch, check_counts, same_device
from tests.sipat.test_attacks import _batch, _binary_mask, _model

EPS, ALPHA = 0.6, 0.25  # large enough that the projection and the [0, 1] clip both act
#: the attacks take the loss in float32 (`input_grad`), so float64 iterates agree to ~1e-8, not to the last bit
TOL = 1e-6


def _norm(t: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((t**2).sum(dim=(1, 2, 3), keepdim=True))


def _reference_l2(model, x, y, eps, alpha, steps, m, x0):
    """Normalised gradient step (gradient times the mask), projection onto ||x' - x||_2 <= eps by scaling,
    clip to [0, 1]; every iterate."""
    out, xa = [], x0
    for _ in range(steps):
        xa = xa.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y, reduction="sum"), xa)
        g = g if m is None else g * m
        d = xa.detach() + alpha * g / _norm(g) - x
        d = d * torch.clamp(eps / _norm(d), max=1.0)
        xa = (x + d).clamp(0.0, 1.0)
        out.append(xa)
    return out


@pytest.mark.parametrize("masked", [False, True])
def test_l2_pgd_equals_the_textbook_algorithm_step_for_step(masked):
    model = _model(dtype=torch.float64)
    x, y = _batch(dtype=torch.float64)
    m = _binary_mask(len(x)).double() if masked else None
    reference = _reference_l2(model, x, y, EPS, ALPHA, 6, m, x)
    for t, expected in enumerate(reference, start=1):
        got = pgd(model, x, y, EPS, ALPHA, t, norm="l2", mask=m, random_start=False)
        torch.testing.assert_close(got, expected, rtol=0, atol=TOL, msg=f"step {t}")
    assert float(_norm(reference[-1] - x).max()) > EPS * 0.5  # it moved, and the clip acted on some pixels
    assert bool(((reference[0] == 0) | (reference[0] == 1)).any())


def test_l2_pgd_random_start_is_uniform_noise_scaled_to_the_radius_in_the_masked_pixels():
    model = _model(dtype=torch.float64)
    x, y = _batch(dtype=torch.float64)
    m = _binary_mask(len(x)).double()
    u = (torch.rand(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype) * 2 - 1) * m
    x0 = (x + u * EPS / _norm(u)).clamp(0.0, 1.0)
    got0 = pgd(model, x, y, EPS, ALPHA, 0, norm="l2", mask=m, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got0, x0, rtol=0, atol=TOL)
    expected = _reference_l2(model, x, y, EPS, ALPHA, 3, m, x0)[-1]
    got = pgd(model, x, y, EPS, ALPHA, 3, norm="l2", mask=m, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, expected, rtol=0, atol=TOL)
    assert torch.equal(got[m.expand_as(x) == 0], x[m.expand_as(x) == 0])


def test_the_count_check_takes_one_and_names_the_first_bad_count():
    check_counts(steps=1, n_targets=9)
    with pytest.raises(ValueError, match=r"^n_targets must be an integer >= 1; got 0$"):
        check_counts(steps=3, n_targets=0)
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1; got 2.0$"):
        check_counts(steps=2.0)


class OnePixel(torch.nn.Module):
    """Logits from pixel (0, 0) alone: every other pixel has an exactly zero gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x[:, 0, 0, 0]
        return torch.stack([p, -p, torch.zeros_like(p)], dim=1)


def test_linf_pgd_leaves_pixels_without_gradient_where_they_are_even_under_a_zero_mask():
    x = torch.full((2, 1, 3, 3), 0.5)
    y = torch.tensor([0, 1])
    m = torch.ones(2, 1, 3, 3)
    m[:, :, 1, 1] = 0  # a pixel without gradient and without budget: 0 / 0 must not leak a NaN
    got = pgd(OnePixel(), x, y, 0.3, 0.1, 3, mask=m, random_start=False)
    expected = x.clone()
    expected[0, 0, 0, 0], expected[1, 0, 0, 0] = 0.2, 0.8  # three steps of 0.1 against the true class
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert torch.equal(got[:, :, 1:], x[:, :, 1:])  # zero gradient: no step at all


def test_the_step_size_is_checked_under_its_own_name_and_zero_steps_is_the_start():
    x, y = _batch()
    with pytest.raises(ValueError, match=r"^alpha must be finite and >= 0$"):
        pgd(_model(), x, y, 0.1, -0.01, 3)
    assert torch.equal(pgd(_model(), x, y, 0.1, 0.01, 0, random_start=False), x)


def test_fgsm_leaves_pixels_without_gradient_where_they_are():
    x = torch.full((2, 1, 3, 3), 0.5)
    expected = x.clone()
    expected[0, 0, 0, 0], expected[1, 0, 0, 0] = 0.2, 0.8
    got = fgsm(OnePixel(), x, torch.tensor([0, 1]), 0.3)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert torch.equal(got[:, :, 1:], x[:, :, 1:])  # zero gradient: no step at all


def test_a_mask_is_brought_to_the_images_dtype_and_shape_and_refused_with_what_to_fix():
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    m = torch.rand(2, 4, 4)  # (N, H, W), float32
    got = as_mask(m, x)
    assert got.dtype == torch.float64 and got.shape == (2, 1, 4, 4)
    assert torch.equal(got, m.double().unsqueeze(1))
    assert as_mask(torch.ones(1, 1, 4, 4), x).shape == (2, 1, 4, 4)  # one channel for three, one map for all
    with pytest.raises(TypeError, match=r"^mask must be a tensor or None; got list$"):
        as_mask([[1.0]], x)


def test_the_cross_entropy_the_attacks_climb_is_per_sample():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    expected = torch.tensor([torch.log(1 + torch.exp(torch.tensor(-2.0))), torch.log(torch.tensor(2.0))])
    torch.testing.assert_close(ce_loss(logits, torch.tensor([0, 1])), expected)


def test_cuda_without_an_index_is_the_current_device_and_indices_must_otherwise_agree():
    d = torch.device
    assert same_device(d("cuda:0"), d("cuda")) and same_device(d("cuda"), d("cuda:1"))
    assert same_device(d("cuda:1"), d("cuda:1")) and same_device(d("cpu"), d("cpu"))
    assert not same_device(d("cuda:0"), d("cuda:1")) and not same_device(d("cpu"), d("cuda"))


def test_a_radius_is_brought_to_the_images_dtype_one_per_sample_and_named_in_its_errors():
    x = torch.zeros(3, 1, 2, 2, dtype=torch.float64)
    got = as_eps(torch.tensor(0.25), x)  # a 0-d tensor: the same radius for every sample
    assert got.dtype == torch.float64 and torch.equal(got, torch.full((3, 1, 1, 1), 0.25, dtype=torch.float64))
    assert as_eps(torch.tensor([0.1, 0.2, 0.3]), x).dtype == torch.float64
    with pytest.raises(ValueError, match=r"^eps must be finite and >= 0$"):
        as_eps(-0.1, x)
    with pytest.raises(ValueError, match=r"^eps must be a float or a tensor of shape \(N,\) = \(3,\); got \(2,\)$"):
        as_eps(torch.tensor([0.1, 0.2]), x)


def test_a_bad_batch_mask_or_radius_is_refused_with_what_to_fix():
    x, y = torch.rand(2, 3, 4, 4), torch.tensor([0, 1])
    cases = [
        (lambda: check_batch(x, [0, 1]), TypeError, "x and y must be torch tensors"),
        (
            lambda: check_batch(x.long(), y),
            TypeError,
            "x must be a floating-point tensor in [0, 1]; got dtype torch.int64",
        ),
        (lambda: check_batch(x, y[:, None]), ValueError, "y must have shape (N,) = (2,); got (2, 1)"),
        (
            lambda: check_batch(x * 2, y),
            ValueError,
            "x must lie in [0, 1]; normalise inside the model (sipat.models.NormalizedModel)",
        ),
        (lambda: as_eps("0.1", x), TypeError, "eps must be a float or a tensor; got str"),
    ]
    bad_mask = "mask values must lie in [0, 1] (1 = free to perturb, 0 = untouchable)"
    for value in (-0.5, float("nan"), 1.5):
        cases.append((lambda v=value: as_mask(torch.full((2, 1, 4, 4), v), x), ValueError, bad_mask))
    for call, kind, message in cases:
        with pytest.raises(kind) as caught:
            call()
        assert str(caught.value) == message
    assert as_mask(torch.ones(2, 3, 4, 4), x).shape == (2, 3, 4, 4)  # one map per channel
