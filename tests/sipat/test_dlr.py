"""The DLR losses on hand-made logits: the values of Croce & Hein (2020), eq. (6) and its targeted form, so a flipped
sign, a wrong runner-up or a wrong scale cannot pass (the attacks' own tests only see their success rates)."""

import pytest
import torch

from sipat.attacks._core import dlr_loss
from sipat.attacks.apgd_t import dlr_targeted_loss

Z = torch.tensor([[3.0, 1.0, 0.5, 0.0], [3.0, 1.0, 0.5, 0.0]])


def test_dlr_is_minus_the_margin_over_the_top_to_third_spread():
    # correct (y = 0): -(3 - 1) / (3 - 0.5); wrong (y = 1): the runner-up is the top logit, +(3 - 1) / (3 - 0.5)
    assert dlr_loss(Z, torch.tensor([0, 1])).tolist() == pytest.approx([-0.8, 0.8])
    # y = 3, the lowest: -(0 - 3) / 2.5
    assert dlr_loss(Z[:1], torch.tensor([3])).item() == pytest.approx(1.2)


def test_dlr_is_scale_and_shift_invariant():
    y = torch.tensor([0, 2])
    assert torch.allclose(dlr_loss(7.0 * Z - 4.0, y), dlr_loss(Z, y))


def test_targeted_dlr_uses_the_target_and_the_third_and_fourth_logits():
    # -(z_y - z_t) / (z_max - (z_3rd + z_4th) / 2): y = 0, t = 2 -> -(3 - 0.5) / (3 - 0.25)
    got = dlr_targeted_loss(Z[:1], torch.tensor([0]), torch.tensor([2]))
    assert got.item() == pytest.approx(-2.5 / 2.75)
