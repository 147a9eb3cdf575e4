"""sipat.imaging (the one antialiased resize path) and sipat.augment (image and map move together)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import TensorDataset

from sipat.augment import Augmented, joint_transform
from sipat.imaging import pil_to_tensor, resize_image, resize_map
from sipat.salience import resize_to


def _checkerboard(n: int) -> torch.Tensor:
    i = torch.arange(n)
    return ((i[:, None] + i[None, :]) % 2).float().expand(1, 1, n, n).clone()


def test_image_downscale_is_antialiased_where_plain_bicubic_aliases():
    board = _checkerboard(48).expand(1, 3, 48, 48)  # a shrink by 3 samples plain bicubic at pixel centres
    ours = resize_image(board, (16, 16))
    plain = F.interpolate(board, size=(16, 16), mode="bicubic", align_corners=False)
    assert (ours - 0.5).abs().max() < 0.1  # the 1-px pattern averages to grey
    assert (plain - 0.5).abs().max() > 0.45  # without antialiasing it samples black or white


def test_image_resize_keeps_range_rank_and_reads_uint8():
    x = torch.zeros(3, 20, 20)
    x[:, 5:15, 5:15] = 1.0  # a hard edge: bicubic overshoots, we clamp
    y = resize_image(x, 37)
    assert y.shape == (3, 37, 37) and y.min() >= 0 and y.max() <= 1
    u8 = (x * 255).to(torch.uint8)
    assert torch.allclose(resize_image(u8, 37), y)
    with pytest.raises(ValueError, match="positive"):
        resize_image(x, (0, 4))


def test_map_downscale_preserves_coverage_of_thin_strokes():
    s = torch.zeros(1, 1, 48, 48)
    s[..., 0::3] = 1.0  # thin salient columns a plain bilinear shrink by 3 steps over
    ours = resize_map(s, (16, 16))
    plain = F.interpolate(s, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(ours, torch.full_like(ours, 1 / 3))  # each output pixel: a third salient
    assert plain.max() == 0  # the aliased shrink loses the strokes entirely
    assert torch.equal(resize_to(s, (16, 16)), ours)  # sipat.salience goes through the same path


def test_map_resize_keeps_missing_maps_missing_and_mixed_axes():
    s = torch.rand(2, 1, 12, 30)
    s[1] = math.nan
    out = resize_map(s, (24, 10))  # taller, narrower
    assert out.shape == (2, 1, 24, 10) and torch.isnan(out[1]).all() and not torch.isnan(out[0]).any()
    assert out[0].min() >= 0 and out[0].max() <= 1
    s[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="partly NaN"):
        resize_map(s, (6, 6))


def test_pil_and_tensor_sources_resample_identically():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    from_pil = pil_to_tensor(Image.fromarray(arr), channels=3, size=(20, 25))
    from_tensor = resize_image(torch.from_numpy(arr).permute(2, 0, 1), (20, 25))
    assert torch.equal(from_pil, from_tensor)
    assert pil_to_tensor(Image.fromarray(arr), channels=1).shape == (1, 40, 50)


def _pairs(n: int = 16, size: int = 12) -> TensorDataset:
    """Images whose first channel *is* the salience map, so any misalignment shows as inequality."""
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(n, 1, size, size, generator=g) > 0.7).float()
    x = torch.cat([s, torch.rand(n, 2, size, size, generator=g)], dim=1)
    return TensorDataset(x, torch.arange(n), s)


def test_augmentation_moves_image_and_map_together():
    data = _pairs()
    aug = Augmented(data, padding=3)
    torch.manual_seed(0)
    moved = 0
    for i in range(len(data)):
        x, y, s = aug[i]
        assert x.shape == data[i][0].shape and s.shape == data[i][2].shape and y == i
        assert type(x) is torch.Tensor and type(s) is torch.Tensor
        assert torch.equal(x[:1], s)  # the map is exactly where its pixels went (padding 0 in both)
        moved += not torch.equal(x, data[i][0])
    assert moved >= len(data) // 2  # the transform did something


def test_augmentation_without_flip_crops_image_and_map_together_and_never_mirrors():
    size, pad = 12, 3
    data = _pairs(n=32, size=size)
    aug = Augmented(data, padding=pad, flip=False)
    torch.manual_seed(0)
    shifted = 0
    for i in range(len(data)):
        x0 = data[i][0]
        x, _y, s = aug[i]
        assert torch.equal(x[:1], s)  # the map went where its pixels went
        padded = F.pad(x0, (pad, pad, pad, pad))
        crops = [padded[:, dy : dy + size, dx : dx + size] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
        assert any(torch.equal(x, c) for c in crops)  # a window of the zero-padded image ...
        assert not any(torch.equal(x, c.flip(-1)) for c in crops)  # ... never a mirrored one
        shifted += not torch.equal(x, x0)
    assert shifted >= len(data) // 2  # the crop did move most of them (1 of 49 windows is the identity)


def test_augmentation_keeps_an_unannotated_item_unannotated():
    x = torch.rand(1, 3, 8, 8)
    data = TensorDataset(x, torch.tensor([0]), torch.full((1, 1, 8, 8), math.nan))
    torch.manual_seed(0)
    _x, _y, s = Augmented(data, padding=2)[0]
    assert torch.isnan(s).all()


def test_joint_transform_flip_only_and_bad_padding():
    torch.manual_seed(1)
    t = joint_transform((4, 4), padding=0)
    x = torch.arange(16.0).view(1, 4, 4)
    outs = {tuple(t(x).flatten().tolist()) for _ in range(20)}
    assert outs == {tuple(x.flatten().tolist()), tuple(x.flip(-1).flatten().tolist())}
    assert torch.equal(joint_transform((4, 4), padding=0, flip=False)(x), x)  # neither crop nor flip: identity
    with pytest.raises(ValueError, match="padding"):
        joint_transform((4, 4), padding=-1)
