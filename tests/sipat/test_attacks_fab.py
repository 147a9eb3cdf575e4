"""FAB-T on hand-made linear models, where the least L-inf adversarial point is known in closed form.

For logits z = W x + c the boundary z_t = z_y is the hyperplane (W_t - W_y) . x = c_y - c_t, so the
linearisation FAB makes at every step is exact: from x the least L-inf step to it moves every coordinate
by |f(x)| / ||w||_1 in the direction sign(w) (away from the box edges, which these tests keep clear).
That pins FAB's step (the overshoot eta, the mix alpha with the projection of the original x, the step back
beta), the acceptance by eps, the targets in clean-logit rank order and the mask, each test under 1 s.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from sipat.attacks.fab import fab_targeted, project_linf_hyperplane

D = 4  # pixels per image, shape (1, 1, D)


def _linear(weight: list[list[float]], bias: list[float]) -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(D, len(bias)))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(weight, dtype=torch.float64))
        model[1].bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return model.double()


def _img(*v: float) -> Tensor:
    return torch.tensor([v], dtype=torch.float64).view(1, 1, 1, D)


def _linf(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max())


# Two classes; f = z_1 - z_0 = w . x + c with w = (1, -2, 0.5, 0), c = -0.3; the least step is |f| / ||w||_1.
# Class 0's own logit is not constant, so f must be the difference z_1 - z_0, not z_1 alone.
W2 = [[0.5, 0.0, 0.0, 0.0], [1.5, -2.0, 0.5, 0.0]]
B2 = [0.25, -0.05]
X2 = _img(0.5, 0.5, 0.5, 0.5)
F2 = 0.5 - 1.0 + 0.25 - 0.3  # f(X2) = -0.55 < 0: class 0
DELTA2 = abs(F2) / 3.5  # ||w||_1 = 3.5: the least L-inf distance to the boundary, 0.157...
STEP2 = torch.tensor([1.0, -1.0, 1.0, 0.0], dtype=torch.float64).view(1, 1, 1, D)  # sign(w); w_4 = 0 stays


def _reference(model: nn.Module, x0: Tensor, y: int, t: int, steps: int, beta: float = 0.9) -> tuple[Tensor, float]:
    """Croce & Hein's targeted FAB loop (AutoAttack's fab_pt, alpha_max 0.1, eta 1.05, beta 0.9) for a
    linear model, with the box-free closed-form projection (valid while the iterates stay inside [0, 1])."""
    lin = model[1]
    w = (lin.weight[t] - lin.weight[y]).detach()
    c = float((lin.bias[t] - lin.bias[y]).detach())

    def proj(p: Tensor) -> Tensor:
        f = float((w * p.flatten()).sum()) + c
        return (-f / float(w.abs().sum())) * torch.sign(w).view_as(p)

    x1, best, adv = x0.clone(), float("inf"), x0.clone()
    d2 = proj(x0)
    for _ in range(steps):
        d1 = proj(x1)
        a1, a2 = max(float(d1.abs().max()), 1e-8), max(float(d2.abs().max()), 1e-8)
        alpha = min(a1 / (a1 + a2), 0.1)
        x1 = ((x1 + 1.05 * d1) * (1 - alpha) + (x0 + 1.05 * d2) * alpha).clamp(0, 1)
        if float((w * x1.flatten()).sum()) + c > 0:
            dist = _linf(x1, x0)
            if dist < best:
                best, adv = dist, x1.clone()
            x1 = x0 + (x1 - x0) * beta
    return adv, best


def test_one_fab_step_on_a_linear_model_is_the_least_step_overshot_by_eta():
    """At step 1 x_k = x, so both projections agree and x_1 = x + eta d exactly, whatever alpha is."""
    model = _linear(W2, B2)
    adv = fab_targeted(model, X2, torch.tensor([0]), 1.0, steps=1, n_targets=1)
    expected = X2 + 1.05 * DELTA2 * STEP2
    assert torch.allclose(adv, expected, atol=1e-7, rtol=0)
    assert adv[0, 0, 0, 3] == X2[0, 0, 0, 3]  # w_4 = 0: the pixel the boundary ignores is not moved
    assert model(adv).argmax(1).item() == 1


@pytest.mark.parametrize("steps", [2, 3, 5, 12])
def test_fab_iterates_equal_the_reference_loop_on_a_linear_model(steps):
    model = _linear(W2, B2)
    adv = fab_targeted(model, X2, torch.tensor([0]), 1.0, steps=steps, n_targets=1)
    ref, best = _reference(model, X2, 0, 1, steps)
    assert torch.allclose(adv, ref, atol=1e-10, rtol=0)
    assert _linf(adv, X2) == pytest.approx(best, abs=1e-10)


def test_fab_closes_in_on_the_least_linf_distance_and_accepts_only_within_eps():
    model = _linear(W2, B2)
    y = torch.tensor([0])
    adv = fab_targeted(model, X2, y, 0.5, steps=100, n_targets=1)
    dist = _linf(adv, X2)
    assert model(adv).argmax(1).item() == 1  # on the target's side of the boundary
    assert DELTA2 <= dist <= DELTA2 * 1.01  # within 1 % of the least distance (the loop settles at 1.0052)
    assert dist < DELTA2 * 1.04  # better than the first (overshot by eta) point: the search went on
    # a radius just above what 100 steps reach accepts the point; just below the least distance keeps x
    assert torch.equal(fab_targeted(model, X2, y, dist, steps=100, n_targets=1), adv)  # the radius is closed
    below = fab_targeted(model, X2, y, DELTA2 * 0.999, steps=100, n_targets=1)
    assert torch.equal(below, X2)


def test_fab_leaves_samples_wrong_on_x_and_those_out_of_reach_exactly_at_x():
    model = _linear(W2, B2)
    x = torch.cat((X2, X2, X2))
    y = torch.tensor([0, 1, 0])  # sample 1 is already wrong (model says 0): not attacked
    eps = torch.tensor([0.5, 0.5, 0.05], dtype=torch.float64)  # sample 2: the boundary is 0.157 away
    adv = fab_targeted(model, x, y, eps, steps=20, n_targets=1)
    assert model(adv[:1]).argmax(1).item() == 1
    assert torch.equal(adv[1:], x[1:])


# Four classes, class 0 right; clean logits rank the others 1 > 2 > 3 (biases -0.1, -0.2, -0.3 at x = 0.5,
# where every weighted sum below is 0.5 * sum(row)). Class 1 is reachable only through pixel 1 and far
# (gain 0.5 per unit), class 2 through pixel 2 and near (gain 4), class 3 through pixel 3 and nearer (gain 8).
W4 = [[0.0] * 4, [0.5, 0.0, 0.0, 0.0], [0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 8.0, 0.0]]
B4 = [0.0, -0.1 - 0.25, -0.2 - 2.0, -0.3 - 4.0]  # logits at X2: 0, -0.1, -0.2, -0.3
X4 = X2.clone()
DIST4 = {1: 0.1 / 0.5, 2: 0.2 / 4.0, 3: 0.3 / 8.0}  # least L-inf distance to each target: 0.2, 0.05, 0.0375


@pytest.mark.parametrize(
    ("eps", "n_targets", "hit"),
    [
        (0.3, 3, 1),  # every target within eps: the first in rank order (class 1) wins, not the nearest
        (0.1, 1, None),  # class 1 only, and it is 0.2 away
        (0.1, 2, 2),  # class 1 fails, class 2 (next rank) is tried and breaks it
        (0.1, 9, 2),  # 9 targets capped at K - 1 = 3; class 2 comes before the nearer class 3
        (0.045, 3, 3),  # only class 3 is near enough: all three tried
        (0.03, 9, None),  # nothing within eps: x back, and no out-of-range target is indexed
    ],
)
def test_fab_tries_the_targets_in_clean_logit_rank_order(eps, n_targets, hit):
    model = _linear(W4, B4)
    y = torch.tensor([0])
    adv = fab_targeted(model, X4, y, eps, steps=40, n_targets=n_targets)
    if hit is None:
        assert torch.equal(adv, X4)
        return
    assert model(adv).argmax(1).item() == hit
    dist = _linf(adv, X4)
    assert DIST4[hit] <= dist <= DIST4[hit] * 1.01 and dist <= eps
    moved = (adv != X4).flatten()
    assert moved.tolist() == [i == hit - 1 for i in range(D)]  # only the pixel that target's logit reads


def test_fab_default_is_nine_targets():
    """Eleven classes, the right one first and only the 10th-ranked reachable: 9 targets by default miss it,
    10 find it. (The default of 100 steps is not pinned: on a linear model the loop settles after 2 steps.)"""
    k = 11
    weight = [[0.0] * D for _ in range(k)]
    weight[10][0] = 1.0
    bias = [0.0] + [-0.01 * r for r in range(1, 10)] + [-0.1 - 0.5]
    model = _linear(weight, bias)
    y = torch.tensor([0])
    assert model(X2).argsort(1)[0, 0].item() == 10  # the lowest clean logit: the 10th target
    assert torch.equal(fab_targeted(model, X2, y, 0.5, steps=20), X2)
    assert model(fab_targeted(model, X2, y, 0.5, steps=20, n_targets=10)).argmax(1).item() == 10


def test_fab_with_a_mask_moves_only_the_masked_pixels_and_clips_into_the_masked_ball():
    """Masking pixel 2 (weight -2) out leaves w = (1, 0, 0.5, 0): the least distance grows to |f| / 1.5."""
    model = _linear(W2, B2)
    y = torch.tensor([0])
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64).view(1, 1, 1, D)
    adv = fab_targeted(model, X2, y, 0.5, steps=100, n_targets=1, mask=mask)
    assert adv[0, 0, 0, 1] == X2[0, 0, 0, 1]  # bit-identical under mask 0
    assert adv[0, 0, 0, 3] == X2[0, 0, 0, 3]  # w = 0 there: FAB has no reason to move it
    least = abs(F2) / 1.5
    assert least <= _linf(adv, X2) <= least * 1.01
    assert model(adv).argmax(1).item() == 1
    # the unmasked distance (0.157) is within 0.2 but the masked one (0.367) is not: x comes back
    assert torch.equal(fab_targeted(model, X2, y, 0.2, steps=100, n_targets=1, mask=mask), X2)
    # a fractional mask shrinks the per-pixel radius: 0.5 * 0.5 on pixel 3 cannot carry the point over
    half = torch.tensor([1.0, 0.0, 0.5, 1.0], dtype=torch.float64).view(1, 1, 1, D)
    clipped = fab_targeted(model, X2, y, 0.4, steps=100, n_targets=1, mask=half)
    assert torch.equal(clipped, X2)


def test_fab_projection_pushes_to_the_edges_when_the_box_cannot_close_the_gap_and_ignores_w_zero():
    t = torch.tensor([[0.2, 0.7, 0.5, 0.9]], dtype=torch.float64)
    w = torch.tensor([[1.0, -1.0, 0.0, 2.0]], dtype=torch.float64)
    far = project_linf_hyperplane(t, w, torch.tensor([10.0], dtype=torch.float64))
    assert torch.allclose(t + far, torch.tensor([[1.0, 0.0, 0.5, 1.0]], dtype=torch.float64), atol=0, rtol=0)
    low = project_linf_hyperplane(t, w, torch.tensor([-10.0], dtype=torch.float64))
    assert torch.allclose(t + low, torch.tensor([[0.0, 1.0, 0.5, 0.0]], dtype=torch.float64), atol=0, rtol=0)
    # feasible, one edge binding: pixel 4 has room 0.1 upwards; the rest share lam
    b = float((w * t).sum()) + 1.0
    d = project_linf_hyperplane(t, w, torch.tensor([b], dtype=torch.float64))
    # gain = 1 lam + 1 lam + 2 min(lam, 0.1) = 1 -> lam = 0.4
    assert torch.allclose(d, torch.tensor([[0.4, -0.4, 0.0, 0.1]], dtype=torch.float64), atol=1e-12, rtol=0)
    on = project_linf_hyperplane(t, w, (w * t).sum(1))  # already on the plane: no step
    assert torch.equal(on.abs(), torch.zeros_like(on))


def test_a_long_step_back_is_capped_by_alpha_max():
    """With beta 0.5 the point steps back far from the boundary, so |d_k| / (|d_k| + |d_0|) > 0.1 and the
    cap alpha_max = 0.1 decides the mix (with beta 0.9 it never binds on this model)."""
    model = _linear(W2, B2)
    adv = fab_targeted(model, X2, torch.tensor([0]), 1.0, steps=6, n_targets=1, beta=0.5)
    ref, _ = _reference(model, X2, 0, 1, 6, beta=0.5)
    assert torch.allclose(adv, ref, atol=1e-10, rtol=0)
    uncapped = fab_targeted(model, X2, torch.tensor([0]), 1.0, steps=6, n_targets=1, beta=0.5, alpha_max=1.0)
    assert not torch.allclose(uncapped, ref, atol=1e-6, rtol=0)


def test_fab_near_the_box_edges_stays_in_the_box():
    """Sample 0 (class 0) needs pixel 1 up, and it is 0.03 from 1; sample 1 (class 1) needs it down, 0.03
    from 0: the overshoot by eta would pass the edge, and the clip holds it there."""
    model = _linear(W2, B2)
    x = torch.cat((_img(0.97, 0.6, 0.5, 0.5), _img(0.03, 0.03, 1.0, 0.5)))
    y = torch.tensor([0, 1])
    assert model(x).argmax(1).tolist() == [0, 1]
    for steps in (1, 10):
        adv = fab_targeted(model, x, y, 1.0, steps=steps, n_targets=1)
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
        assert adv[0, 0, 0, 0] == 1.0 and adv[1, 0, 0, 0] == 0.0  # at the edges, not past them
        assert model(adv).argmax(1).tolist() == [1, 0]


def test_a_batch_gives_each_sample_what_it_gets_alone():
    """Different labels, radii and outcomes in one batch: per-sample reductions (argmax over classes, the
    hyperplane offset per sample) must not mix the rows."""
    model = _linear(W4, B4)
    x = torch.cat((X4, _img(1.0, 0.5, 0.5, 0.5), X4, X4))  # sample 1: class 1 (pixel 1 at 1.0)
    y = torch.tensor([0, 1, 0, 2])  # sample 3 is wrong: not attacked
    eps = torch.tensor([0.3, 0.3, 0.045, 0.3], dtype=torch.float64)
    batch = fab_targeted(model, x, y, eps, steps=20, n_targets=3)
    alone = torch.cat(
        [fab_targeted(model, x[i : i + 1], y[i : i + 1], eps[i : i + 1], 20, n_targets=3) for i in range(4)]
    )
    assert torch.allclose(batch, alone, atol=1e-12, rtol=0)
    assert model(batch).argmax(1).tolist()[:3] == [1, 2, 3] and torch.equal(batch[3], x[3])
    mask = torch.ones(4, 1, 1, D, dtype=torch.float64)
    masked = fab_targeted(model, x, y, eps, steps=20, n_targets=3, mask=mask)
    masked_alone = torch.cat(
        [
            fab_targeted(model, x[i : i + 1], y[i : i + 1], eps[i : i + 1], 20, n_targets=3, mask=mask[i : i + 1])
            for i in range(4)
        ]
    )
    assert torch.allclose(masked, masked_alone, atol=1e-12, rtol=0)


def test_fab_refuses_zero_steps_or_targets():
    model = _linear(W2, B2)
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1; got 0$"):
        fab_targeted(model, X2, torch.tensor([0]), 0.1, steps=0)
    with pytest.raises(ValueError, match=r"^n_targets must be an integer >= 1; got 0$"):
        fab_targeted(model, X2, torch.tensor([0]), 0.1, n_targets=0)


@pytest.mark.parametrize(
    ("gap", "step"),
    [
        (0.1, [0.025, -0.025, 0.025]),  # lam 0.025 below every room: the first segment (k = 0)
        (1.0, [0.4, -0.4, 0.1]),  # pixel 3 stops at its edge (room 0.1): lam = (1 - 0.2) / 2
        (1.65, [0.75, -0.7, 0.1]),  # pixel 2 at its edge too (room 0.7): the last segment, lam = 0.75
    ],
)
def test_fab_projection_on_each_segment_of_the_piecewise_linear_gain(gap, step):
    t = torch.tensor([[0.2, 0.7, 0.9]], dtype=torch.float64)
    w = torch.tensor([[1.0, -1.0, 2.0]], dtype=torch.float64)
    d = project_linf_hyperplane(t, w, (w * t).sum(1) + gap)
    assert torch.allclose(d, torch.tensor([step], dtype=torch.float64), atol=1e-12, rtol=0)
