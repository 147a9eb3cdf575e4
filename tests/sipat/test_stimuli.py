"""`sipat.stimuli`: the stored 8-bit stimulus stays in the eps-ball of the 8-bit clean image; PNG is lossless."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from sipat.stimuli import norms, quantise, stimulus_png, to_png


def test_linf_quantisation_stays_within_floor_255_eps_levels_and_in_range():
    g = torch.Generator().manual_seed(0)
    x_u8 = torch.randint(0, 256, (4, 3, 8, 8), generator=g).to(torch.int16)
    x_adv = (x_u8.double() / 255 + (torch.rand(4, 3, 8, 8, generator=g, dtype=torch.float64) - 0.5) * 0.2).clamp(0, 1)
    q = quantise(x_u8, x_adv, 8 / 255, "linf")
    assert q.dtype == torch.int16 and int(q.min()) >= 0 and int(q.max()) <= 255
    assert int((q - x_u8).abs().max()) == 8  # the noise exceeds the ball, so the clip is reached exactly
    linf, l2 = norms(x_u8, q)
    assert max(linf) == 8 / 255 and all(b >= a for a, b in zip(linf, l2, strict=True))


def test_l2_quantisation_never_grows_the_perturbation():
    x_u8 = torch.full((1, 1, 4, 4), 100, dtype=torch.int16)
    x_adv = x_u8.double() / 255 + torch.linspace(-0.01, 0.01, 16, dtype=torch.float64).reshape(1, 1, 4, 4)
    q = quantise(x_u8, x_adv, 0.05, "l2")
    assert ((q - x_u8).abs().double() <= (x_adv * 255 - x_u8).abs() + 1e-9).all()


def test_png_round_trips_gray_and_rgb_bit_exactly():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for u8 in (rgb, rgb[..., :1]):
        back = np.asarray(Image.open(io.BytesIO(to_png(u8))))
        assert np.array_equal(back.reshape(u8.shape), u8)
        assert to_png(u8) == to_png(u8.copy())


def test_stimulus_png_length_depends_on_the_shape_alone_and_round_trips():
    rng = np.random.default_rng(1)
    for shape in [(28, 28, 1), (32, 32, 3)]:
        flat = np.full(shape, 120, dtype=np.uint8)
        noisy = np.clip(flat.astype(np.int16) + rng.choice([-8, 8], size=shape), 0, 255).astype(np.uint8)
        random = rng.integers(0, 256, shape, dtype=np.uint8)
        # Compressed, the added noise shows in the length (the leak); uncompressed, every length is equal.
        assert len(to_png(flat)) < len(to_png(noisy)) / 2
        assert len({len(stimulus_png(u8)) for u8 in (flat, noisy, random)}) == 1
        for u8 in (flat, noisy, random):
            back = np.asarray(Image.open(io.BytesIO(stimulus_png(u8))))
            assert np.array_equal(back.reshape(u8.shape), u8) and stimulus_png(u8) == stimulus_png(u8.copy())
