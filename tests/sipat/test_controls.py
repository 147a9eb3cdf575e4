"""sipat.controls: displaced maps keep coverage exactly and leave the salient region (overlap ~0), random maps
keep coverage exactly, top-share maps keep a fixed share of the most salient pixels."""

from __future__ import annotations

import pytest
import torch

from sipat.controls import coverage, displace_maps, overlap, random_maps, salient, topshare_maps
from sipat.premise import load_premise


@pytest.fixture(scope="module")
def masks() -> torch.Tensor:
    return load_premise("train", 0, n_train=120, clutter=0).salience  # exact object masks, 15-30 % coverage


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_displaced_maps_leave_the_object_at_equal_coverage(masks: torch.Tensor) -> None:
    moved = displace_maps(masks, margin=1, generator=_gen())
    assert torch.equal(coverage(moved), coverage(masks))
    # ~0 overlap: exactly 0 except where the object is too big to fit beside itself on the 32 px torus (a large
    # square), and there the least any shift can give (brute force over all 1024 shifts)
    shared = overlap(masks, moved)
    assert float(shared.mean()) < 0.005 and float(shared.max()) < 0.05
    for i in torch.nonzero(shared > 0).flatten().tolist():
        least = min(
            float(overlap(masks[i : i + 1], torch.roll(masks[i : i + 1], (dy, dx), (-2, -1))))
            for dy in range(32)
            for dx in range(32)
        )
        assert float(shared[i]) == least > 0
    # the margin: the ring of pixels around the object stays clear too, unless no shift at all can clear it
    grown = torch.nn.functional.max_pool2d(masks, 3, stride=1, padding=1)
    touching = torch.nonzero(overlap(moved, grown) > 0).flatten().tolist()
    assert len(touching) < len(masks) // 4
    for i in touching:  # brute force: every shift touches the grown region
        assert all(
            float((torch.roll(masks[i], (dy, dx), (-2, -1)) * grown[i]).sum()) > 0
            for dy in range(32)
            for dx in range(32)
        )
    # the same shape, moved: each displaced map is a roll of its original
    i = 7
    rolls = [torch.roll(masks[i], (dy, dx), (-2, -1)) for dy in range(32) for dx in range(32)]
    assert any(torch.equal(moved[i], r) for r in rolls)


def test_soft_maps_keep_their_values_and_big_regions_get_the_least_overlap() -> None:
    g = _gen(3)
    soft = torch.rand(5, 1, 6, 6, generator=g)  # ~50 % salient: no shift can avoid overlap
    moved = displace_maps(soft, margin=0, generator=_gen())
    for i in range(5):
        assert torch.equal(moved[i].flatten().sort().values, soft[i].flatten().sort().values)
        best = min(
            int((salient(soft[i : i + 1]) & salient(torch.roll(soft[i : i + 1], (dy, dx), (-2, -1)))).sum())
            for dy in range(6)
            for dx in range(6)
        )  # brute force over every shift
        assert int((salient(soft[i : i + 1]) & salient(moved[i : i + 1])).sum()) == best
    assert torch.equal(coverage(moved), coverage(soft))


def test_displace_keeps_missing_and_empty_maps_and_is_seeded(masks: torch.Tensor) -> None:
    s = torch.cat([masks[:3], torch.full((1, 1, 32, 32), float("nan")), torch.zeros(1, 1, 32, 32)])
    a = displace_maps(s, generator=_gen(1))
    assert torch.isnan(a[3]).all() and torch.equal(a[4], s[4])
    assert torch.allclose(a, displace_maps(s, generator=_gen(1)), rtol=0, atol=0, equal_nan=True)
    with pytest.raises(ValueError, match="N, 1, H, W"):
        displace_maps(masks[:, 0])


def test_random_maps_equal_coverage_and_chance_overlap(masks: torch.Tensor) -> None:
    r = random_maps(masks, generator=_gen())
    assert torch.equal(coverage(r), coverage(masks))
    assert set(r.unique().tolist()) <= {0.0, 1.0}
    # expected overlap = coverage; 120 maps of ~230 pixels: the mean is within 0.02 of it
    assert abs(float(overlap(masks, r).mean() - coverage(masks).mean())) < 0.02
    blobs = random_maps(masks, smooth=2.0, generator=_gen())
    assert torch.equal(coverage(blobs), coverage(masks))

    def neighbours(m: torch.Tensor) -> float:  # share of salient pixels whose right neighbour is salient
        return float((m[..., :-1] * m[..., 1:]).sum() / m[..., :-1].sum())

    assert neighbours(blobs) > neighbours(r) + 0.3


def test_topshare_keeps_the_most_salient_fixed_share() -> None:
    cam = torch.rand(4, 1, 10, 10, generator=_gen(2))
    top = topshare_maps(cam, 0.25, generator=_gen())
    assert coverage(top).tolist() == [0.25] * 4
    for i in range(4):
        chosen, rest = cam[i][top[i].bool()], cam[i][~top[i].bool()]
        assert float(chosen.min()) > float(rest.max())
    nan = torch.full((1, 1, 10, 10), float("nan"))
    assert torch.isnan(topshare_maps(torch.cat([cam, nan]), 0.25)[4]).all()
    with pytest.raises(ValueError, match="share"):
        topshare_maps(cam, 1.5)


def test_topshare_breaks_ties_at_random_and_warns_on_constant_maps() -> None:
    cam = torch.zeros(2, 1, 10, 10)
    cam[:, :, 9, 9] = 1.0  # one positive pixel, 99 tied zeros
    with pytest.warns(UserWarning, match="constant"):
        topshare_maps(torch.zeros(1, 1, 10, 10), 0.2, generator=_gen())
    top = topshare_maps(cam, 0.2, generator=_gen())
    assert bool(top[:, 0, 9, 9].all())
    assert float(top[:, :, :2].sum()) < 40  # raster order would fill the first two rows (40 pixels) for the ties
