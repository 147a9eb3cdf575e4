"""Edges of the salience-to-mask code that mutation testing (`make mutate`) found unguarded: the threshold's
range, dtypes, the shapes `mean_of_annotators` accepts, box bounds and partial-pixel cover, and the per-image
scaling of maps that do not start at 0. Each test names the rule it pins; the messages are part of the
interface (a researcher reads them), so they are matched too."""

import pytest
import torch

from sipat.salience import boxes_to_map, has_salience, mean_of_annotators, normalise_per_image, to_mask


def test_threshold_range_is_open_at_zero_and_closed_at_one():
    s = torch.tensor([[[[0.2, 0.99]]]])
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\] or None for a soft mask; got 0\.0"):
        to_mask(s, threshold=0.0)
    with pytest.raises(ValueError, match=r"got 1\.5"):
        to_mask(s, threshold=1.5)
    assert to_mask(s, threshold=1.0).tolist() == [[[[1.0, 1.0]]]]  # 1.0 is allowed: only pixels with s == 1 are spared


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_mask_has_the_maps_dtype(dtype):
    s = torch.tensor([[[[0.2, 0.8]]]], dtype=dtype)
    assert to_mask(s).dtype == dtype and to_mask(s, threshold=None).dtype == dtype


def test_bad_maps_are_named_in_the_message():
    with pytest.raises(TypeError, match="salience must be a tensor; got list"):
        to_mask([[0.5]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"salience must have shape \(N, 1, H, W\); got \(2, 2\)"):
        to_mask(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"annotator maps values must lie in \[0, 1\]"):
        mean_of_annotators(torch.full((2, 1, 3, 3), 2.0))


def test_has_salience_refuses_what_is_not_a_batch():
    with pytest.raises(ValueError, match=r"has_salience expects an \(N, 1, H, W\) batch, got <class 'list'>"):
        has_salience([1.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"got torch.Size\(\[1, 3, 3\]\)"):
        has_salience(torch.zeros(1, 3, 3))


def test_mean_of_annotators_accepts_the_three_shapes_and_one_map():
    a, b = torch.zeros(1, 4, 5), torch.ones(1, 4, 5)
    from_list = mean_of_annotators([a, b])
    from_3d = mean_of_annotators(torch.stack([a[0], b[0]]))  # (K, H, W)
    from_4d = mean_of_annotators(torch.stack([a, b]))  # (K, 1, H, W)
    for m in (from_list, from_3d, from_4d):
        assert m.shape == (1, 1, 4, 5) and torch.all(m == 0.5)
    one = mean_of_annotators([torch.rand(4, 5)])  # a single annotator is its own mean
    assert one.shape == (1, 1, 4, 5)
    with pytest.raises(ValueError, match="needs at least one map"):
        mean_of_annotators([])
    with pytest.raises(ValueError, match="needs at least one map"):
        mean_of_annotators(torch.zeros(0, 1, 4, 5))


def test_boxes_must_lie_inside_the_image_on_every_side():
    for box in ([-1, 0, 2, 2], [0, -1, 2, 2], [3, 0, 2, 2], [0, 3, 2, 2], [0, 0, -1, 2], [0, 0, 2, -1]):
        with pytest.raises(ValueError, match="lies outside the 4x4 image"):
            boxes_to_map([box], 4, 4)
    full = boxes_to_map([[0, 0, 4, 4]], 4, 4)  # touching the far edges is inside
    assert full.shape == (1, 1, 4, 4) and full.sum() == 16


def test_an_empty_box_marks_nothing_and_later_boxes_still_count():
    s = boxes_to_map([[1, 1, 0, 2], [0, 0, 1, 1]], 4, 4)  # zero width, then a real box
    assert s.sum() == 1 and s[0, 0, 0, 0] == 1
    assert boxes_to_map([[1, 1, 2, 0]], 4, 4).sum() == 0  # zero height alone


def test_boxes_are_scaled_per_axis_from_the_native_size():
    # native 8 wide x 4 high onto a 4x4 grid: x scales by 1/2, y by 1; box x 2..6 -> columns 1..3, y 1..2 -> row 1
    s = boxes_to_map([[2, 1, 4, 1]], 4, 4, native=(8, 4))
    expected = torch.zeros(1, 1, 4, 4)
    expected[..., 1:2, 1:3] = 1
    assert torch.equal(s, expected)
    # native 4 wide x 8 high: y scales by 1/2; box y 2..6 -> rows 1..3, x 0..1 -> column 0
    s = boxes_to_map([[0, 2, 1, 4]], 4, 4, native=(4, 8))
    expected = torch.zeros(1, 1, 4, 4)
    expected[..., 1:3, 0:1] = 1
    assert torch.equal(s, expected)


def test_normalise_per_image_subtracts_each_maps_minimum():
    s = torch.tensor([[[[2.0, 3.0, 4.0]]], [[[5.0, 5.0, 5.0]]]])
    out = normalise_per_image(s)
    assert out[0].flatten().tolist() == [0.0, 0.5, 1.0]
    assert out[1].flatten().tolist() == [0.0, 0.0, 0.0]  # a constant map becomes 0, not NaN or 1
