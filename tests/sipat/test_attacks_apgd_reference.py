"""APGD against a transcription of the reference (fra31/auto-attack, autoattack/autopgd_base.py, L-inf).

The transcription keeps the reference's own bookkeeping (counter3, k, the loss_steps table with its zero
last row), so a drift in our checkpoint schedule or oscillation count shows up as different iterates.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sipat.attacks.apgd import _apgd_run, checkpoints
from tests.sipat.conftest import TinyCNN


def _reference_checkpoints(n_iter: int) -> list[int]:
    """`init_hyperparam` + the `counter3 == k` test of `attack_single_run`, transcribed."""
    n_iter_2 = max(int(0.22 * n_iter), 1)
    n_iter_min = max(int(0.06 * n_iter), 1)
    size_decr = max(int(0.03 * n_iter), 1)
    k, counter3, out = n_iter_2, 0, []
    for i in range(n_iter):
        counter3 += 1
        if counter3 == k:
            out.append(i + 1)
            k = max(k - size_decr, n_iter_min)
            counter3 = 0
    return out


@pytest.mark.parametrize("steps", [20, 25, 100, 1, 5, 7, 50, 1000])
def test_checkpoints_equal_the_reference(steps):
    assert checkpoints(steps) == _reference_checkpoints(steps)


def test_checkpoints_at_100_steps_are_the_integer_schedule_not_the_float_formula():
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]  # the paper's ceil(p_j * 100) gives 58, not 57
    assert checkpoints(20) == [4, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    assert checkpoints(25) == [5, 9, 12, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]


def _reference_run(model, x, y, eps, n_iter, t, rho=0.75):
    """`attack_single_run` for norm='Linf', loss='ce', eot_iter=1, with the random draw t given."""
    n_iter_2 = max(int(0.22 * n_iter), 1)
    n_iter_min = max(int(0.06 * n_iter), 1)
    size_decr = max(int(0.03 * n_iter), 1)

    def grad_at(xa):
        xa = xa.clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xa)
            li = F.cross_entropy(logits, y, reduction="none")
            (g,) = torch.autograd.grad(li.sum(), xa)
        return logits.detach(), li.detach(), g

    tn = t / (t.abs().view(len(x), -1).max(1)[0].view(-1, 1, 1, 1) + 1e-12)
    x_adv = (x + eps * tn).clamp(0.0, 1.0)
    x_best, x_best_adv = x_adv.clone(), x_adv.clone()
    loss_steps = torch.zeros(n_iter, len(x), dtype=x.dtype)
    logits, loss_indiv, grad = grad_at(x_adv)
    grad_best = grad.clone()
    acc = logits.argmax(1) == y
    loss_best = loss_indiv.clone()
    step_size = 2.0 * eps * torch.ones(len(x), 1, 1, 1, dtype=x.dtype)
    x_adv_old = x_adv.clone()
    k, counter3 = n_iter_2, 0
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones_like(loss_best)
    for i in range(n_iter):
        grad2 = x_adv - x_adv_old
        x_adv_old = x_adv.clone()
        a = 0.75 if i > 0 else 1.0
        x1 = torch.clamp(torch.min(torch.max(x_adv + step_size * torch.sign(grad), x - eps), x + eps), 0.0, 1.0)
        x1 = torch.clamp(torch.min(torch.max(x_adv + (x1 - x_adv) * a + grad2 * (1 - a), x - eps), x + eps), 0.0, 1.0)
        x_adv = x1 + 0.0
        logits, loss_indiv, grad = grad_at(x_adv)
        pred = logits.argmax(1) == y
        acc = torch.min(acc, pred)
        x_best_adv[~pred] = x_adv[~pred] + 0.0
        y1 = loss_indiv.clone()
        loss_steps[i] = y1
        ind = y1 > loss_best
        x_best[ind], grad_best[ind], loss_best[ind] = x_adv[ind].clone(), grad[ind].clone(), y1[ind]
        counter3 += 1
        if counter3 == k:
            t_osc = torch.zeros(len(x), dtype=x.dtype)
            for c5 in range(k):
                t_osc += (loss_steps[i - c5] > loss_steps[i - c5 - 1]).to(x.dtype)
            fl_osc = (t_osc <= k * rho).to(x.dtype)
            fl_no_impr = (1.0 - reduced_last_check) * (loss_best_last_check >= loss_best).to(x.dtype)
            fl_osc = torch.max(fl_osc, fl_no_impr)
            reduced_last_check = fl_osc.clone()
            loss_best_last_check = loss_best.clone()
            ind = fl_osc > 0
            step_size[ind] /= 2.0
            x_adv[ind] = x_best[ind].clone()
            grad[ind] = grad_best[ind].clone()
            k = max(k - size_decr, n_iter_min)
            counter3 = 0
    return x_best, acc, loss_best, x_best_adv


@pytest.mark.parametrize("steps", [20, 25, 100])
def test_apgd_run_equals_the_reference_iterate_for_iterate(steps, trained_digits_model, digits):
    model = TinyCNN().double().eval()
    model.load_state_dict(trained_digits_model.state_dict())
    x, y = digits
    x, y = x[:48].double(), y[:48]
    eps = 0.06
    t = 2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype) - 1
    x_best, acc, loss_best, x_best_adv = _reference_run(model, x, y, eps, steps, t)
    e = torch.full((len(x), 1, 1, 1), eps, dtype=x.dtype)

    def ce64(z: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:  # sipat's ce_loss runs in float32
        return F.cross_entropy(z, yy, reduction="none")

    with torch.no_grad():
        ours, fooled, loss = _apgd_run(model, x, y, e, None, steps, ce64, 0.75, torch.Generator().manual_seed(3))
    assert 0 < fooled.sum() < len(x)  # both outcomes occur: the comparison covers both branches
    torch.testing.assert_close(fooled, ~acc)
    torch.testing.assert_close(ours, torch.where(fooled.view(-1, 1, 1, 1), x_best_adv, x_best))
    torch.testing.assert_close(loss[~fooled], loss_best[~fooled])
