"""APGD-T, Square, the attack registry and AutoAttack's ensemble: masks kept, worst case, schedules, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sipat.attacks import (
    ATTACKS,
    AttackBudget,
    apgd,
    apgd_targeted,
    autoattack,
    fab_targeted,
    pgd_step_size,
    run_attack,
    square,
)
from sipat.attacks.apgd_t import dlr_targeted_loss
from sipat.attacks.autoattack import run_ensemble
from sipat.attacks.square import square_fraction
from sipat.vocabulary import EVAL_ATTACKS
from tests.sipat.conftest import TinyCNN

SMALL = AttackBudget(pgd_steps=5, apgd_steps=10, n_targets=3, fab_steps=10, square_queries=60)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def batch(digits):
    x, y = digits
    return x[:64], y[:64]


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("mask_kind", ["binary", "soft"])
def test_every_registered_attack_keeps_the_mask(name, mask_kind, trained_digits_model, batch):
    x, y = batch
    g = _gen(5)
    mask = (torch.rand(len(x), 1, 8, 8, generator=g) > 0.5).float()
    if mask_kind == "soft":
        mask = mask * torch.rand(len(x), 1, 8, 8, generator=g)
    eps = 0.2
    x_adv = run_attack(name, trained_digits_model, x, y, eps, mask=mask, generator=_gen(), budget=SMALL)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    delta = (x_adv - x).abs()
    assert (delta <= eps * mask + 1e-6).all()
    untouchable = (mask == 0).expand_as(x)
    assert torch.equal(x_adv[untouchable], x[untouchable])  # bit-identical, not merely close
    if name != "fgsm":  # the attack did something where it was allowed to
        assert delta[~untouchable].max() > 0


def test_registry_names_are_the_shared_vocabulary():
    assert tuple(ATTACKS) == EVAL_ATTACKS


def test_registry_pgd_uses_the_one_step_size(trained_digits_model, batch):
    x, y = batch
    eps = 0.1
    assert pgd_step_size(eps, 20) == pytest.approx(2.5 * 0.1 / 20)
    assert pgd_step_size(eps, 0) == pytest.approx(0.25)
    from sipat.attacks import pgd

    ours = run_attack("pgd", trained_digits_model, x, y, eps, generator=_gen(), budget=SMALL)
    direct = pgd(trained_digits_model, x, y, eps, 2.5 * eps / 5, 5, generator=_gen())
    assert torch.equal(ours, direct)


def test_unknown_attack_and_bad_budget_say_what_to_fix(batch):
    x, y = batch
    with pytest.raises(ValueError, match="choose from pgd, apgd"):
        run_attack("cw", TinyCNN(), x, y, 0.1)
    with pytest.raises(ValueError, match="apgd_steps must be an integer >= 1"):
        AttackBudget(apgd_steps=0)
    with pytest.raises(ValueError, match="queries must be"):
        square(TinyCNN(), x, y, 0.1, 0)
    model4 = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(ValueError, match="at least 4 classes"):
        apgd_targeted(model4, x, y % 3, 0.1, 5)


def test_targeted_dlr_loss_by_hand():
    z = torch.tensor([[5.0, 1.0, 3.0, 2.0, 0.0]])
    # y = 0, target 2: -(5 - 3) / (5 - (2 + 1) / 2) = -2 / 3.5
    got = dlr_targeted_loss(z, torch.tensor([0]), torch.tensor([2]))
    torch.testing.assert_close(got, torch.tensor([-2 / 3.5]))
    # a zero scale (top, third and fourth logits equal): the 1e-12 keeps the sign of -(z_y - z_t)
    flat = dlr_targeted_loss(torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]]), torch.tensor([0]), torch.tensor([4]))
    torch.testing.assert_close(flat, torch.tensor([-1e12]))


def test_square_fraction_is_the_reference_schedule():
    assert square_fraction(0.8, 0, 10000) == 0.8
    assert square_fraction(0.8, 10, 10000) == 0.8  # halved only after it passes 10
    assert square_fraction(0.8, 11, 10000) == 0.4
    assert square_fraction(0.8, 501, 10000) == 0.8 / 16
    assert square_fraction(0.8, 9000, 10000) == 0.8 / 512
    assert square_fraction(0.8, 2501, 5000) == 0.8 / 128  # rescaled to 10,000: 5002 lies in (4000, 6000]
    assert square_fraction(0.8, 50995, 10_000_000) == 0.4  # int(50.995) = 50: not past 50, on the 10,000 scale


def test_square_is_a_real_attack_and_repeats_under_a_seed(trained_digits_model, batch):
    x, y = batch
    model = trained_digits_model
    a = square(model, x, y, 0.15, 300, generator=_gen(1))
    b = square(model, x, y, 0.15, 300, generator=_gen(1))
    assert torch.equal(a, b)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean()
        robust = (model(a).argmax(1) == y).float().mean()
    assert robust < clean - 0.2


def test_apgd_t_only_adds_to_what_it_breaks_and_beats_no_attack(trained_digits_model, batch):
    x, y = batch
    model = trained_digits_model
    x_adv = apgd_targeted(model, x, y, 0.08, 10, n_targets=3, generator=_gen())
    with torch.no_grad():
        clean_ok = model(x).argmax(1) == y
        held = model(x_adv).argmax(1) == y
    assert held.sum() < clean_ok.sum()
    assert torch.equal(x_adv[held], x[held])  # nothing found: the clean point comes back


def test_ensemble_worst_case_is_never_above_any_single_attack(trained_digits_model, batch):
    x, y = batch
    res = autoattack(trained_digits_model, x, y, 0.06, generator=_gen(), budget=SMALL, every_sample=True)
    assert res.skipped == ()
    assert set(res.own) == {"apgd-ce", "apgd-t", "fab-t", "square"}
    worst = res.robust.float().mean()
    for own in res.own.values():
        assert worst <= own.float().mean()
        assert not (res.robust & ~own).any()  # per sample: robust in the worst case => robust to each attack
    assert torch.equal(res.robust, torch.stack(list(res.own.values())).all(0))


def test_ensemble_runs_on_the_survivors_in_autoattacks_order(trained_digits_model, batch):
    x, y = batch
    model = trained_digits_model
    res = autoattack(model, x, y, 0.06, generator=_gen(), budget=SMALL)
    assert list(res.stages) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    accs = [s.float().mean().item() for s in res.stages.values()]
    assert accs == sorted(accs, reverse=True)
    assert torch.equal(res.stages["square"], res.robust)
    # the first stage is APGD-CE on the clean-correct samples with the same generator
    with torch.no_grad():
        ok = model(x).argmax(1) == y
        alone = apgd(model, x[ok], y[ok], 0.06, SMALL.apgd_steps, generator=_gen())
        held = torch.zeros_like(ok)
        held[ok] = model(alone).argmax(1) == y[ok]
        assert torch.equal(res.stages["apgd-ce"], held)
        broken_by_ensemble = ~res.robust & ok
        assert (model(res.x_adv[broken_by_ensemble]).argmax(1) != y[broken_by_ensemble]).all()
    assert torch.equal(res.x_adv[res.robust], x[res.robust])


# --- FAB-T ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_fab_projection_is_the_least_linf_step_an_lp_finds(seed):
    """min ||d||_inf s.t. w . (t + d) = b, 0 <= t + d <= 1, solved independently by scipy's LP."""
    from scipy.optimize import linprog

    g = torch.Generator().manual_seed(seed)
    n, dim = 4, 12
    t = torch.rand(n, dim, generator=g, dtype=torch.float64)
    w = torch.randn(n, dim, generator=g, dtype=torch.float64)
    w[:, :2] = 0  # coordinates the hyperplane ignores stay put
    b = (w * t).sum(1) + torch.randn(n, generator=g, dtype=torch.float64) * 0.5
    from sipat.attacks.fab import project_linf_hyperplane

    d = project_linf_hyperplane(t, w, b)
    for i in range(n):
        # variables (d_1..d_D, s): minimise s; -s <= d_j <= s; w . d = b - w . t; -t <= d <= 1 - t
        cost = [0.0] * dim + [1.0]
        a_ub, b_ub = [], []
        for j in range(dim):
            row = [0.0] * (dim + 1)
            row[j], row[-1] = 1.0, -1.0
            a_ub.append(row)
            row = [0.0] * (dim + 1)
            row[j], row[-1] = -1.0, -1.0
            a_ub.append(row)
            b_ub += [0.0, 0.0]
        a_eq = [[*w[i].tolist(), 0.0]]
        b_eq = [float(b[i] - (w[i] * t[i]).sum())]
        bounds = [(-float(t[i, j]), 1 - float(t[i, j])) for j in range(dim)] + [(0, None)]
        lp = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=bounds)
        if lp.status == 0:  # feasible: same optimum, and d meets the constraints
            assert float(d[i].abs().max()) == pytest.approx(lp.fun, abs=1e-9)
            assert float((w[i] * (t[i] + d[i])).sum()) == pytest.approx(float(b[i]), abs=1e-9)
        else:  # infeasible: every coordinate is pushed to its box edge in the helpful direction
            assert lp.status == 2
        assert ((t[i] + d[i]) >= -1e-12).all() and ((t[i] + d[i]) <= 1 + 1e-12).all()
        assert (d[i, :2] == 0).all()


def test_fab_t_finds_points_near_the_boundary_and_only_within_eps(trained_digits_model, batch):
    x, y = batch
    model = trained_digits_model
    small = fab_targeted(model, x, y, 0.03, 20, n_targets=3)
    large = fab_targeted(model, x, y, 0.1, 20, n_targets=3)
    with torch.no_grad():
        fooled_small = model(small).argmax(1) != y
        fooled_large = model(large).argmax(1) != y
        clean_wrong = model(x).argmax(1) != y
    assert (fooled_small & ~clean_wrong).any() and (fooled_large.sum() > fooled_small.sum())
    assert ((small - x).abs().flatten(1).amax(1) <= 0.03 + 1e-6).all()
    assert torch.equal(large[~fooled_large], x[~fooled_large])
    assert torch.equal(fab_targeted(model, x, y, 0.1, 20, n_targets=3), large)  # deterministic


@pytest.mark.parametrize("name", ["apgd", "apgd-t", "fab-t", "square", "autoattack"])
def test_samples_wrong_on_x_are_not_attacked(name, trained_digits_model, batch):
    """As AutoAttack: a random start could make a misclassified sample right and count it robust."""
    x, y = batch
    y = y.clone()
    y[:8] = (y[:8] + 1) % 10  # wrong labels: the model is now wrong on these
    x_adv = run_attack(name, trained_digits_model, x, y, 0.2, generator=_gen(), budget=SMALL)
    assert torch.equal(x_adv[:8], x[:8])
    assert not torch.equal(x_adv[8:], x[8:])


# --- the ensemble's bookkeeping on hand-made stages -----------------------------------------------------


class _FirstTwo(nn.Module):
    """Logits are the first two pixels: a stage that swaps them flips the prediction, nothing else does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :2] * 1.0


def _ids(x: torch.Tensor) -> list[int]:
    return [round(float(v) * 10) for v in x.flatten(1)[:, 2]]


def _stage(name, breaks, calls):
    """A stage that records what it was given and flips the samples with ids in `breaks`, marking them."""

    def run(model, x, y, eps, mask, generator):
        ids = _ids(x)
        m = None if mask is None else mask.flatten(1)[:, 0].tolist()
        calls.append((name, ids, eps.tolist(), m, generator, y.tolist()))
        out = x.clone()
        hit = torch.tensor([i in breaks for i in ids], dtype=torch.bool)
        out[hit, 0, 0, 0], out[hit, 0, 0, 1] = x[hit, 0, 0, 1], x[hit, 0, 0, 0]
        out[hit, 0, 0, 3] = {"a": 0.25, "c": 0.5, "d": 0.75}.get(name, 1.0)
        return out

    return run


def _hand_batch():
    """Six samples, ids 0..5 in pixel 2; class 1 is predicted for sample 4, class 0 for the others;
    sample 5 has the wrong label."""
    n = 6
    x = torch.zeros(n, 1, 1, 4)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = 0.9, 0.1
    x[4, 0, 0, 0], x[4, 0, 0, 1] = 0.1, 0.9
    x[:, 0, 0, 2] = torch.arange(n) / 10
    y = torch.tensor([0, 0, 0, 0, 1, 1])
    eps = torch.arange(n, dtype=torch.float32) / 100
    mask = (torch.arange(n, dtype=torch.float32) / 10).view(n, 1, 1, 1).expand(n, 1, 1, 4).contiguous()
    return x, y, eps, mask


def test_ensemble_attacks_only_the_survivors_and_keeps_the_first_adversarial_point():
    x, y, eps, mask = _hand_batch()
    x0 = x.clone()
    calls: list = []
    g = _gen()
    stages = [
        ("a", _stage("a", {0, 1}, calls)),
        ("b", None),
        ("c", _stage("c", {1, 2, 5}, calls)),
        ("d", _stage("d", {3, 4}, calls)),
        ("e", _stage("e", {0, 1, 2, 3, 4}, calls)),
        ("f", _stage("f", {0}, calls)),
    ]
    res = run_ensemble(_FirstTwo(), x, y, eps, stages, mask=mask, generator=g)
    assert torch.equal(x, x0)  # the input is not written
    assert [c[:2] for c in calls] == [("a", [0, 1, 2, 3, 4]), ("c", [2, 3, 4]), ("d", [3, 4])]  # "e": no one left
    for _, ids, e, m, gen, labels in calls:  # each stage sees its samples' own labels, radius and mask
        assert labels == [y[i] for i in ids]
        assert e == pytest.approx([i / 100 for i in ids]) and m == pytest.approx([i / 10 for i in ids])
        assert gen is g  # and the one generator
    assert res.skipped == ("b",)
    assert list(res.stages) == ["a", "c", "d", "e", "f"]
    want = {"a": [0, 0, 1, 1, 1, 0], "c": [0, 0, 0, 1, 1, 0], "d": [0] * 6, "e": [0] * 6, "f": [0] * 6}
    assert {k: v.int().tolist() for k, v in res.stages.items()} == want
    assert res.robust.int().tolist() == [0] * 6 and res.own == {}
    assert res.x_adv[:, 0, 0, 3].tolist() == [0.25, 0.25, 0.5, 0.75, 0.75, 0.0]  # the first stage that broke it
    assert torch.equal(res.x_adv[5], x[5])  # wrong on x: not attacked, x comes back
    assert res.x_adv[:5, 0, 0, 0].tolist() == pytest.approx([0.1] * 4 + [0.9])  # the swapped logits


def test_ensemble_every_sample_gives_each_attack_its_own_result_and_the_and_as_worst_case():
    x, y, eps, _ = _hand_batch()
    calls: list = []
    stages = [("a", _stage("a", {0, 1}, calls)), ("c", _stage("c", {1, 2, 5}, calls))]
    res = run_ensemble(_FirstTwo(), x, y, eps, stages, generator=None, every_sample=True)
    assert [c[:2] for c in calls] == [("a", [0, 1, 2, 3, 4]), ("c", [0, 1, 2, 3, 4])]
    assert all(c[3] is None and c[4] is None for c in calls)
    assert {k: v.int().tolist() for k, v in res.own.items()} == {"a": [0, 0, 1, 1, 1, 0], "c": [1, 0, 0, 1, 1, 0]}
    assert res.robust.int().tolist() == [0, 0, 0, 1, 1, 0]
    assert {k: v.int().tolist() for k, v in res.stages.items()} == {"a": [0, 0, 1, 1, 1, 0], "c": [0, 0, 0, 1, 1, 0]}
    assert res.x_adv[:, 0, 0, 3].tolist() == [0.25, 0.25, 0.5, 0.0, 0.0, 0.0]  # sample 1 keeps stage a's point
    assert torch.equal(res.robust, torch.stack(list(res.own.values())).all(0))


def test_ensemble_puts_the_model_in_eval_mode_and_restores_it():
    x, y, eps, _ = _hand_batch()
    model = _FirstTwo().train()
    seen: list = []

    def stage(mo, xx, yy, e, m, g):
        seen.append(mo.training)
        return xx

    run_ensemble(model, x, y, eps, [("s", stage)])
    assert seen == [False] and model.training


# --- APGD-T's targets ------------------------------------------------------------------------------------


class _Ladder(nn.Module):
    """Classes on a 4x4 image, p = x - 0.5, u and v the means of p over the top and the bottom half:
    z = (1, c_1 .. c_n (constants from 0.9 down to 0.7), 0.4 + 10 u, 0.2 + 10 v, -1 - 50 mean(p)).
    At x = 0.5 they rank in this order; the constants cannot be raised, the next class only by raising
    the top half, the next by raising the bottom half, the last only by lowering the whole image."""

    def __init__(self, n_const: int = 3) -> None:
        super().__init__()
        self.consts = torch.linspace(0.9, 0.7, n_const).tolist()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x.flatten(1) - 0.5
        u, v = p[:, :8].mean(1), p[:, 8:].mean(1)
        one = torch.ones_like(u)
        fixed = [c * one for c in [1.0, *self.consts]]
        return torch.stack([*fixed, 0.4 + 10 * u, 0.2 + 10 * v, -1 - 50 * p.mean(1)], dim=1)


def test_apgd_t_tries_the_next_highest_classes_in_turn():
    x, y = torch.full((3, 1, 4, 4), 0.5), torch.zeros(3, dtype=torch.long)
    mask = torch.ones(3, 1, 4, 4)
    mask[1, :, :2] = 0  # sample 1 cannot move the top half
    mask[2] = 0.5  # sample 2 moves every pixel by at most eps / 2: only the last class is within reach
    model = _Ladder()

    def preds(n_targets: int, eps: float = 0.1) -> list[int]:
        adv = apgd_targeted(model, x, y, eps, 10, n_targets=n_targets, mask=mask, generator=_gen())
        return model(adv).argmax(1).tolist()

    assert preds(3) == [0, 0, 0]  # the second to fourth classes are out of reach
    assert preds(4) == [4, 0, 0]  # the fifth (4) through the top half, which sample 1 may not move
    assert preds(5) == [4, 5, 0]  # the sixth (5) through the bottom half; sample 0 was done after its success
    assert preds(6) == [4, 5, 6]  # the last (6): K - 1 = 6 targets in all
    assert preds(9) == [4, 5, 6]  # capped at K - 1
    assert preds(9, eps=0.03) == [0, 0, 0]  # no class within reach: x comes back


def test_apgd_t_defaults_to_nine_targets():
    model = _Ladder(n_const=9)  # 13 classes: the tenth target is the first one within reach
    x, y = torch.full((1, 1, 4, 4), 0.5), torch.zeros(1, dtype=torch.long)
    assert model(apgd_targeted(model, x, y, 0.1, 10, generator=_gen())).argmax(1).tolist() == [0]
    assert model(apgd_targeted(model, x, y, 0.1, 10, n_targets=10, generator=_gen())).argmax(1).tolist() == [10]
    # once every sample is broken the remaining targets are not run, and the points found come back
    assert model(apgd_targeted(model, x, y, 0.1, 10, n_targets=12, generator=_gen())).argmax(1).tolist() == [10]


def test_apgd_t_defaults_to_autoattacks_100_steps():
    g = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(10, 16, generator=g))
        model[1].bias.copy_(torch.randn(10, generator=g) * 0.1)
    x = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)
    default = apgd_targeted(model, x, y, 0.05, n_targets=1, generator=_gen())
    assert torch.equal(default, apgd_targeted(model, x, y, 0.05, 100, n_targets=1, generator=_gen()))
    assert not torch.equal(default, apgd_targeted(model, x, y, 0.05, 101, n_targets=1, generator=_gen()))


def test_apgd_t_later_targets_only_add_to_what_the_first_broke():
    g = torch.Generator().manual_seed(1)
    w, b = torch.randn(10, 16, generator=g), torch.randn(10, generator=g) * 0.1
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    with torch.no_grad():
        model[1].weight.copy_(w)
        model[1].bias.copy_(b)
    x = torch.rand(40, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        clean = model(x)
    y = clean.argmax(1)
    one = apgd_targeted(model, x, y, 0.05, 10, n_targets=1, generator=_gen())
    three = apgd_targeted(model, x, y, 0.05, 10, n_targets=3, generator=_gen())
    with torch.no_grad():
        p1, p3 = model(one).argmax(1), model(three).argmax(1)
    f1 = p1 != y
    assert 0 < f1.sum() < len(y)
    assert torch.equal(p1[f1], clean.argsort(1)[f1, -2])  # the first target is the second-highest clean class
    assert torch.equal(one[f1], three[f1])  # a sample broken by the first target is not attacked again
    assert torch.equal(one[~f1], x[~f1])
    assert (p3 != y).sum() >= f1.sum()


def test_apgd_t_needs_four_classes():
    x, y = torch.rand(2, 1, 2, 2), torch.zeros(2, dtype=torch.long)
    with pytest.raises(
        ValueError, match=r"^APGD-T's targeted DLR loss needs at least 4 classes; use apgd\(\.\.\., loss='ce'\)$"
    ):
        apgd_targeted(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), x, y, 0.1, 5)
    assert apgd_targeted(nn.Sequential(nn.Flatten(), nn.Linear(4, 4)), x, y, 0.1, 5).shape == x.shape
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1; got 0$"):
        apgd_targeted(nn.Sequential(nn.Flatten(), nn.Linear(4, 4)), x, y, 0.1, 0)
    with pytest.raises(ValueError, match=r"^n_targets must be an integer >= 1; got 0$"):
        apgd_targeted(nn.Sequential(nn.Flatten(), nn.Linear(4, 4)), x, y, 0.1, 5, n_targets=0)


# --- Square's budget, start and margin ------------------------------------------------------------------


class _Counting(nn.Module):
    """Logits (a, 0, 0) with a = 1 + sum(x) * scale: unbreakable for scale 0; counts the rows it is given."""

    def __init__(self, scale: float = 0.0) -> None:
        super().__init__()
        self.scale, self.rows = scale, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        a = 0.5 + (x.flatten(1).sum(1) - x[0].numel() / 2) * self.scale
        z = torch.zeros(x.shape[0], 3, dtype=x.dtype)
        z[:, 0] = a
        z[:, 1] = 0.25
        return z


def test_square_spends_exactly_its_query_budget_on_each_unbroken_sample():
    x, y = torch.full((3, 1, 4, 4), 0.5), torch.tensor([0, 0, 2])  # sample 2 is wrong on x
    for queries in (1, 2, 7):
        model = _Counting()
        square(model, x, y, 0.1, queries, generator=_gen())
        assert model.rows == 3 + 3 + 2 * (queries - 1)  # the clean pass, the start, then one per robust sample
    model = _Counting(scale=1.0)  # any lowering of the image's sum breaks it: done after the start
    adv = square(model, x, y, 0.1, 50, generator=_gen())
    assert model(adv).argmax(1).tolist()[:2] == [1, 1] and model.rows < 3 + 3 + 2 * 49


def test_square_starts_from_vertical_stripes_at_the_radius():
    x, y = torch.full((4, 2, 5, 6), 0.5), torch.tensor([0, 0, 0, 1])
    adv = square(_Counting(), x, y, 0.1, 1, generator=_gen())  # one query: the start itself
    d = adv - x
    assert torch.equal(d[3], torch.zeros_like(d[3]))  # wrong on x: not attacked
    torch.testing.assert_close(d[:3].abs(), torch.full_like(d[:3], 0.1))
    assert torch.equal(d[:3], d[:3, :, :1].expand_as(d[:3]))  # one sign per (channel, column)
    assert (d[:3] > 0).any() and (d[:3] < 0).any()
    half = torch.ones(4, 1, 5, 6)
    half[:, :, :, :3] = 0.5
    d = square(_Counting(), x, y, 0.1, 1, mask=half, generator=_gen()) - x
    torch.testing.assert_close(d[:3].abs(), (0.1 * half[:3]).expand_as(d[:3]))


def test_square_margin_and_argument_checks():
    from sipat.attacks.square import _margin

    z = torch.tensor([[3.0, 1.0, 2.5], [0.0, 4.0, -1.0]])
    torch.testing.assert_close(_margin(z, torch.tensor([0, 2])), torch.tensor([0.5, -5.0]))
    x, y = torch.full((1, 1, 4, 4), 0.5), torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError, match=r"^queries must be an integer >= 1; got 0$"):
        square(_Counting(), x, y, 0.1, 0)
    for p in (0.0, 1.5):
        with pytest.raises(ValueError, match=rf"^p_init must lie in \(0, 1\]; got {p}$"):
            square(_Counting(), x, y, 0.1, 5, p_init=p)
    assert square(_Counting(), x, y, 0.1, 2, p_init=1.0, generator=_gen()).shape == x.shape


class _Recording(nn.Module):
    """Constant logits (1, 0, 0) whatever the input (Square can never lower the margin); keeps every input.
    From call `give_in` on, class 1 wins: the attack succeeds and stops."""

    def __init__(self, give_in: int = 0) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.give_in = give_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        z = torch.zeros(x.shape[0], 3, dtype=x.dtype)
        z[:, 1 if len(self.seen) == self.give_in else 0] = 1.0
        return z


@pytest.mark.parametrize(("h", "w"), [(2, 2), (1, 6)])
def test_square_windows_stay_below_the_image_height(h, w):
    """At 1,000 queries the first proposal covers p_init = 0.8 of the pixels; the side is capped at H - 1
    (1 for H = 1, where H - 1 is 0), so the window never covers a whole column."""
    x, y = torch.full((1, 16, h, w), 0.5), torch.zeros(1, dtype=torch.long)
    model = _Recording(give_in=3)
    square(model, x, y, 0.1, 1000, generator=_gen())
    assert len(model.seen) == 3  # clean, start, one proposal (which wins)
    diff = (model.seen[2][0] != model.seen[1][0]).any(0)
    assert diff.any(1).sum() == 1 and diff.any(0).sum() == 1


def test_square_proposes_one_square_window_of_the_scheduled_side_at_a_time():
    """Each proposal differs from the kept point (here always the start) only inside a side x side square,
    side = round(sqrt(p_i H W)) within [1, H - 1], placed anywhere in the image (the reference's window)."""
    n, c, h, w, queries = 2, 16, 6, 5, 300  # 16 channels: a window column equal to the start in all is rare
    x, y = torch.full((n, c, h, w), 0.5), torch.zeros(n, dtype=torch.long)
    model = _Recording()
    adv = square(model, x, y, 0.1, queries, generator=_gen(4))
    start = model.seen[1]
    assert torch.equal(adv, start)  # no proposal lowered the margin: the start is kept
    tops, bottoms, lefts, rights, sides = set(), set(), set(), set(), set()
    for i, proposal in enumerate(model.seen[2:], start=1):
        side = min(max(round((square_fraction(0.8, i, queries) * h * w) ** 0.5), 1), h - 1)
        sides.add(side)
        for j in range(n):
            diff = (proposal[j] != start[j]).any(0)  # (h, w)
            if not diff.any():
                continue  # every sign drawn equalled the stripe's: no change to see
            r_idx, c_idx = diff.any(1).nonzero().squeeze(1), diff.any(0).nonzero().squeeze(1)
            assert r_idx.tolist() == list(range(int(r_idx[0]), int(r_idx[0]) + side)), (i, side)
            assert c_idx.tolist() == list(range(int(c_idx[0]), int(c_idx[0]) + side)), (i, side)
            tops.add(int(r_idx[0]))
            bottoms.add(int(r_idx[-1]))
            lefts.add(int(c_idx[0]))
            rights.add(int(c_idx[-1]))
            d = proposal[j] - x[j]
            torch.testing.assert_close(d.abs(), torch.full_like(d, 0.1))  # every pixel at the radius
    assert sides == {1, 2, 3} and 0 in tops and h - 1 in bottoms and 0 in lefts and w - 1 in rights


def test_square_draws_only_from_its_generator():
    x, y = torch.rand(3, 2, 4, 4, generator=_gen(9)), torch.zeros(3, dtype=torch.long)
    torch.manual_seed(123)
    a = square(_Recording(), x, y, 0.1, 40, generator=_gen(1))
    after = torch.rand(1)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(1))  # the global generator was not drawn from
    model = _Recording()
    assert torch.equal(square(model, x, y, 0.1, 40, generator=_gen(1)), a)
    assert not torch.equal(square(_Recording(), x, y, 0.1, 40, generator=_gen(2)), a)
    # the start: x + r * s with s = 2 * bits - 1 drawn per (sample, channel, column) from the generator
    bits = torch.randint(0, 2, (3, 2, 1, 4), generator=_gen(1))
    torch.testing.assert_close(model.seen[1], (x + 0.1 * (2 * bits - 1)).clamp(0, 1))


def test_square_attacks_the_samples_right_on_x_whatever_their_class():
    x = torch.zeros(3, 1, 1, 4)
    x[:, 0, 0, :2] = torch.tensor([[0.6, 0.4], [0.4, 0.6], [0.6, 0.4]])
    y = torch.tensor([0, 1, 1])  # right, right (class 1), wrong
    adv = square(_FirstTwo(), x, y, 0.15, 20, generator=_gen())
    assert _FirstTwo()(adv).argmax(1).tolist() == [1, 0, 0]
    assert torch.equal(adv[2], x[2])


class _Tie(nn.Module):
    """All logits 0: class 0 is predicted (the first maximum) with a margin of exactly 0; counts the rows."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(x.shape[0])
        return torch.zeros(x.shape[0], 3)


def test_square_stops_at_a_margin_of_zero_and_works_on_one_row_images():
    x, y = torch.full((2, 1, 1, 6), 0.5), torch.zeros(2, dtype=torch.long)
    model = _Tie()
    square(model, x, y, 0.1, 10, generator=_gen())
    assert model.rows == [2, 2]  # right on x with margin 0: the start only, no further query
    adv = square(_Recording(), x, y, 0.1, 10, generator=_gen())  # H = 1: windows of side 1
    torch.testing.assert_close((adv - x).abs(), torch.full_like(x, 0.1))


@pytest.mark.parametrize(
    ("field", "least"),
    [("pgd_steps", 0), ("apgd_steps", 1), ("n_targets", 1), ("fab_steps", 1), ("square_queries", 1)],
)
def test_every_budget_field_has_its_floor(field, least):
    """PGD may take 0 steps (the clean point); every other count needs at least one."""
    assert getattr(AttackBudget(**{field: least}), field) == least
    with pytest.raises(ValueError, match=rf"^{field} must be an integer >= {least}; got {least - 1}$"):
        AttackBudget(**{field: least - 1})
    with pytest.raises(ValueError, match=rf"^{field} must be an integer >= {least}; got 2.0$"):
        AttackBudget(**{field: 2.0})


def _linear10() -> nn.Module:
    g = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(10, 16, generator=g))
        model[1].bias.copy_(torch.randn(10, generator=g) * 0.1)
    return model


@pytest.mark.parametrize("name", [*ATTACKS, "autoattack-every-sample"])
def test_registered_attacks_draw_only_from_the_given_generator(name):
    model = _linear10()
    x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)
    torch.manual_seed(7)
    if name == "autoattack-every-sample":
        res = autoattack(model, x, y, 0.05, generator=_gen(), budget=SMALL, every_sample=True)
        assert set(res.own) == {"apgd-ce", "apgd-t", "fab-t", "square"}
        first = res.x_adv
    else:
        first = run_attack(name, model, x, y, 0.05, generator=_gen(), budget=SMALL)
    drawn = torch.rand(1)
    torch.manual_seed(7)
    assert torch.equal(drawn, torch.rand(1))  # the global generator was not drawn from
    if name == "autoattack":
        assert torch.equal(first, autoattack(model, x, y, 0.05, generator=_gen(), budget=SMALL).x_adv)


def test_autoattack_runs_the_standard_stages_under_the_given_budget():
    from sipat.attacks.registry import _stages

    torch.manual_seed(0)
    model = TinyCNN().eval()  # untrained, but not linear: the budget changes the points found at eps 0.3
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)
    e = torch.full((16,), 0.3)
    b = AttackBudget(apgd_steps=7, n_targets=2, fab_steps=3, square_queries=5, square_p_init=0.3)
    direct = {
        "apgd-ce": lambda mo, x, y, e, m, g: apgd(mo, x, y, e, 7, mask=m, generator=g),
        "apgd-t": lambda mo, x, y, e, m, g: apgd_targeted(mo, x, y, e, 7, n_targets=2, mask=m, generator=g),
        "fab-t": lambda mo, x, y, e, m, g: fab_targeted(mo, x, y, e, 3, n_targets=2, mask=m),
        "square": lambda mo, x, y, e, m, g: square(mo, x, y, e, 5, p_init=0.3, mask=m, generator=g),
    }
    stages = _stages(b)
    assert [name for name, _ in stages] == list(direct)
    for name, stage in stages:
        assert stage is not None
        torch.testing.assert_close(stage(model, x, y, e, None, _gen()), direct[name](model, x, y, e, None, _gen()))
    res = autoattack(model, x, y, 0.3, generator=_gen(), budget=b)
    want = run_ensemble(model, x, y, e, list(direct.items()), generator=_gen())
    assert res.own == {} and torch.equal(res.x_adv, want.x_adv) and torch.equal(res.robust, want.robust)
