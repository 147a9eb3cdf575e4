"""Salience maps -> masks, annotator means, boxes, resizing and Grad-CAM."""

from __future__ import annotations

import math

import pytest
import torch

from sipat.salience import boxes_to_map, gradcam, has_salience, mean_of_annotators, resize_to, to_mask
from tests.sipat.conftest import TinyCNN


def test_binary_mask_is_the_authors_threshold():
    s = torch.tensor([[[[0.0, 0.49, 0.5, 1.0]]]])
    assert torch.equal(to_mask(s), torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]]))
    assert torch.equal(to_mask(s, threshold=0.25), torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]]))


def test_soft_mask_is_one_minus_salience():
    s = torch.tensor([[[[0.0, 0.25, 1.0]]]])
    torch.testing.assert_close(to_mask(s, threshold=None), torch.tensor([[[[1.0, 0.75, 0.0]]]]))


def test_an_image_without_a_map_is_perturbed_everywhere():
    s = torch.stack([torch.full((1, 2, 2), math.nan), torch.ones(1, 2, 2)])
    m = to_mask(s)
    assert torch.equal(m[0], torch.ones(1, 2, 2)) and torch.equal(m[1], torch.zeros(1, 2, 2))
    assert has_salience(s).tolist() == [False, True]


def test_mean_of_annotators():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    torch.testing.assert_close(mean_of_annotators([a, b]), torch.tensor([[[[0.5, 0.0], [1.0, 0.5]]]]))
    torch.testing.assert_close(mean_of_annotators(torch.stack([a, b]).unsqueeze(1)), mean_of_annotators([a, b]))
    with pytest.raises(ValueError, match="at least one"):
        mean_of_annotators([])


def test_boxes_to_map():
    s = boxes_to_map([[1, 0, 2, 2], [3, 3, 1, 1]], height=4, width=5)
    expected = torch.zeros(4, 5)
    expected[0:2, 1:3] = 1
    expected[3, 3] = 1
    assert torch.equal(s[0, 0], expected)
    with pytest.raises(ValueError, match="outside"):
        boxes_to_map([[4, 0, 2, 2]], height=4, width=5)
    assert not boxes_to_map([[0, 0, 0, 0]], height=4, width=5).any()  # the authors' "no salient region"
    # boxes given on a 10x8 original, drawn on the 5x4 grid: a box over half a pixel covers that pixel
    assert torch.equal(boxes_to_map([[2, 0, 3, 4]], height=4, width=5, native=(10, 8))[0, 0], expected_half())


def expected_half() -> torch.Tensor:
    e = torch.zeros(4, 5)
    e[0:2, 1:3] = 1
    return e


def test_resize_to_keeps_range_and_shape():
    s = torch.zeros(2, 1, 4, 4)
    s[:, :, :2] = 1
    r = resize_to(s, (8, 8))
    assert r.shape == (2, 1, 8, 8) and r.min() >= 0 and r.max() <= 1
    assert r[0, 0, 0, 0] == 1 and r[0, 0, -1, -1] == 0


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(1, 2, 4, 4), torch.full((1, 1, 4, 4), 1.5), torch.zeros(4, 4)],
    ids=["channels", "range", "dims"],
)
def test_bad_maps_are_refused(bad):
    with pytest.raises(ValueError):
        to_mask(bad)


def test_gradcam_is_a_normalised_map_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = TinyCNN()
    model.train()
    model.head.weight.grad = torch.full_like(model.head.weight, 3.0)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    cam = gradcam(model, x, torch.arange(5), model.conv)
    assert cam.shape == (5, 1, 8, 8)
    assert cam.min() >= 0 and cam.max() <= 1
    assert (cam.flatten(1).amax(1) == 1).sum() >= 1  # normalised per image
    assert model.training and torch.equal(model.head.weight.grad, torch.full_like(model.head.weight, 3.0))


def test_gradcam_finds_the_evidence():
    # Two feature channels, one per image quadrant; the class-1 logit reads only the top-left one, so
    # Grad-CAM (channel weights = mean gradient) must light the top-left quadrant and nothing else.
    class Quadrants(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.feat = torch.nn.Identity()
            self.register_buffer("tl", torch.zeros(1, 1, 8, 8))
            self.tl[..., :4, :4] = 1

        def forward(self, x):
            f = self.feat(torch.cat([x * self.tl, x * self.tl.flip(-1, -2)], dim=1))
            q = f[:, 0].mean(dim=(1, 2))
            return torch.stack([torch.zeros_like(q), q], dim=1)

    model = Quadrants()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.5
    cam = gradcam(model, x, torch.ones(2, dtype=torch.long), model.feat)
    assert cam[:, :, :4, :4].min() > 0.4 and cam[:, :, 4:, 4:].max() == 0
