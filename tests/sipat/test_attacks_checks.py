"""The evaluation's sanity checks (`sipat.attacks.checks`) on hand-made models and tables: each check fires
exactly past its threshold, not at it, and its message carries the numbers that triggered it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sipat.attacks.checks import check_black_box, check_monotone, check_outputs, check_randomized, check_zero_grad


class Fixed(nn.Module):
    """Returns the given rows, whatever the input."""

    def __init__(self, rows: list[list[float]], dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.rows = torch.tensor(rows, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rows[: x.shape[0]]


class Drifting(nn.Module):
    """Outputs (scale, calls * step, 0): two passes differ by `step`, the largest output is `scale`."""

    def __init__(self, scale: float, step: float) -> None:
        super().__init__()
        self.scale, self.step, self.calls = scale, step, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = torch.zeros(x.shape[0], 3, dtype=torch.float64)
        out[:, 0] = self.scale
        out[:, 1] = self.calls * self.step
        return out


X2 = torch.zeros(2, 1, 2, 2)


def test_probabilities_are_flagged_with_their_range_and_row_sums():
    (w,) = check_outputs(Fixed([[0.0, 1.0], [0.25, 0.75]]), X2)
    assert w == (
        "the model seems to output probabilities, not logits (outputs in [0, 1], rows sum to 1 within 0): "
        "CE/DLR attacks saturate; remove the softmax"
    )
    assert len(check_outputs(Fixed([[0.5, 0.5 + 4e-6], [0.5, 0.5]], torch.float64), X2)) == 1  # within 1e-5
    assert check_outputs(Fixed([[0.5, 0.5 + 4e-5], [0.5, 0.5]], torch.float64), X2) == []  # rows do not sum to 1
    assert len(check_outputs(Fixed([[0.5, 0.5 + 1.5e-5], [0.5, 0.5]], torch.float64), X2)) == 1  # atol + rtol
    assert check_outputs(Fixed([[-0.5, 1.5], [0.25, 0.75]]), X2) == []  # logits: outside [0, 1]
    assert check_outputs(Fixed([[1.000004, 0.0], [0.25, 0.75]], torch.float64), X2) == []  # just above 1
    assert check_outputs(Fixed([[1.25, -0.25], [0.25, 0.75]]), X2) == []


def test_a_randomised_forward_is_flagged_past_a_threshold_relative_to_the_outputs():
    (w,) = check_randomized(Drifting(1.0, 2e-5), X2)
    assert w == (
        "the forward pass is randomised (two passes on one batch differ by up to 2e-05): a single gradient "
        "misleads the attacks; fix the randomness or attack the expectation (EOT)"
    )
    assert check_randomized(Drifting(0.5, 0.5e-5), X2) == []  # below 1e-5 of an output scale of 1
    assert len(check_randomized(Drifting(0.5, 1.5e-5), X2)) == 1  # outputs below 1 count as a scale of 1
    assert check_randomized(Drifting(97.65625, 2**-10), X2) == []  # exactly 1e-5 of the scale: not past it
    assert check_randomized(Drifting(100.0, 5e-4), X2) == []  # below 1e-5 of 100
    assert len(check_randomized(Drifting(100.0, 2e-3), X2)) == 1
    assert check_randomized(Drifting(1.0, 1.0), torch.zeros(0, 1, 2, 2)) == []  # an empty batch


class Relu(nn.Module):
    """Logits w * relu(x - 0.5) summed over pixels: samples with every pixel below 0.5 have no gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(x - 0.5).flatten(1).sum(1)
        return torch.stack([s, -s, 2 * s], dim=1)


def test_zero_input_gradients_are_counted_per_sample():
    x = torch.full((4, 1, 2, 2), 0.8)
    y = torch.zeros(4, dtype=torch.long)
    assert check_zero_grad(Relu(), x, y) == []
    x[1] = 0.2
    (w,) = check_zero_grad(Relu(), x, y)
    assert w == (
        "25.0% of 4 samples have an all-zero input gradient: white-box attacks cannot move them and their "
        "robust accuracy is overstated (gradient masking)"
    )
    assert check_zero_grad(Relu(), x[:0], y[:0]) == []
    x[2, 0, 0, 0] = 0.2  # one pixel without gradient does not make a sample count
    assert check_zero_grad(Relu(), x, y)[0].startswith("25.0% of 4 samples")
    assert check_zero_grad(Relu(), x[1:2], y[1:2])[0].startswith("100.0% of 1 samples")


def test_monotone_checks_every_attack_along_the_sorted_grid_and_allows_ties():
    acc = {"pgd": {0.2: 0.5, 0.0: 0.9, 0.1: 0.5}, "apgd": {0.1: 0.4, 0.0: 0.9, 0.2: 0.45}}
    assert check_monotone(acc) == [
        "apgd: robust accuracy rises with eps (0.4000 at 0.1, 0.4500 at 0.2): the attack is failing; "
        "more steps or restarts are needed"
    ]
    assert check_monotone({"pgd": {0.0: 0.9, 0.1: 0.5, 0.2: 0.6}, "fgsm": {0.1: 0.3, 0.0: 0.2}}) == [
        "pgd: robust accuracy rises with eps (0.5000 at 0.1, 0.6000 at 0.2): the attack is failing; "
        "more steps or restarts are needed",
        "fgsm: robust accuracy rises with eps (0.2000 at 0, 0.3000 at 0.1): the attack is failing; "
        "more steps or restarts are needed",
    ]


def test_black_box_is_compared_with_the_best_white_box_attack_at_the_same_eps():
    acc = {
        "pgd": {0.1: 0.5, 0.2: 0.4},
        "apgd": {0.1: 0.45},
        "square": {0.1: 0.45, 0.2: 0.3, 0.3: 0.1},
        "autoattack": {0.1: 0.0, 0.2: 0.0},  # the worst case, not a single attack
        "autoattack/+apgd-ce": {0.1: 0.0, 0.2: 0.0},  # a running accuracy, not a single attack
    }
    assert check_black_box(acc, frozenset({"square"})) == [
        "black-box square beats the white-box attacks at eps 0.2 (0.3000 < 0.4000): the gradients are likely "
        "masked; the white-box numbers overstate robustness"
    ]  # at 0.1 it ties with APGD; at 0.3 no white-box attack ran
    own = {"autoattack/apgd-ce": {0.1: 0.2}, "autoattack/square": {0.1: 0.1}}
    (w,) = check_black_box(own, frozenset({"autoattack/square"}))
    assert w.startswith("black-box autoattack/square beats the white-box attacks at eps 0.1 (0.1000 < 0.2000)")
    assert check_black_box(own, frozenset()) == []


def test_the_ensembles_square_stage_is_flagged_for_what_it_broke_after_the_white_box_stages():
    running = {"autoattack/+apgd-t": {0.1: 0.5, 0.2: 0.3}, "autoattack/+square": {0.1: 0.4, 0.2: 0.3}}
    assert check_black_box(running, frozenset({"square"}), n=200) == [
        "Square broke 0.1000 (20 of 200 samples) at eps 0.1 that the white-box stages did not: a sign of "
        "gradient masking, or of too few white-box iterations"
    ]
    (w,) = check_black_box(running, frozenset({"square"}))
    assert w.startswith("Square broke 0.1000 at eps 0.1 that")
    first = {"autoattack/+square": {0.1: 0.4}, "autoattack/+apgd-t": {0.1: 0.5}}
    assert check_black_box(first, frozenset({"square"}), n=200) == []  # no stage before Square


@pytest.mark.parametrize("n", [0, None])
def test_no_sample_count_without_a_positive_n(n):
    running = {"autoattack/+apgd-t": {0.1: 0.5}, "autoattack/+square": {0.1: 0.25}}
    (w,) = check_black_box(running, frozenset({"square"}), n=n)
    assert w.startswith("Square broke 0.2500 at eps 0.1 that the white-box stages did not")
