"""`evaluate`'s bookkeeping pinned to exact values: the table and JSON it reports, its refusals, the progress it
announces, the columns of the ensemble and the per-batch counting. Added for the mutants `make mutate` left alive
in `sipat/evaluation.py` (docs/testing.md); the attacks themselves are tested in test_attacks*.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sipat.attacks import AttackBudget
from sipat.evaluation import EvalResult, _columns, evaluate, format_table


def test_format_table_is_exact_in_255ths_and_plain_eps_with_warnings_below():
    res = EvalResult(
        n=4,
        clean_acc=0.75,
        robust_acc={
            "pgd": {0.0: 0.75, 1 / 255: 0.75, 8 / 255: 0.5, 0.05: 0.5, 0.5: 0.25},
            "fgsm": {0.0: 0.75, 1 / 255: 0.75, 8 / 255: 0.5, 0.05: 0.5, 0.5: 0.5},
        },
        warnings=["w1", "w2"],
    )
    assert format_table(res) == "\n".join(
        [
            "clean accuracy 0.7500 on 4 images",
            "",
            "| attack | eps 0 | eps 1/255 | eps 8/255 | eps 0.05 | eps 0.5 |",
            "|---|---|---|---|---|---|",
            "| pgd | 0.7500 | 0.7500 | 0.5000 | 0.5000 | 0.2500 |",
            "| fgsm | 0.7500 | 0.7500 | 0.5000 | 0.5000 | 0.5000 |",
            "",
            "warning: w1",
            "warning: w2",
        ]
    )
    # each eps by the vocabulary's one label: whole grey levels in 255ths, the rest plainly; no warnings: no blank tail
    edge = EvalResult(n=1, clean_acc=1.0, robust_acc={"pgd": {33 / 255: 1.0, 33.5 / 255: 0.0}})
    assert format_table(edge).splitlines()[2] == f"| attack | eps 33/255 | eps {33.5 / 255:g} |"
    assert not format_table(edge).endswith("\n") and format_table(edge).splitlines()[-1] == "| pgd | 1.0000 | 0.0000 |"


def test_to_dict_writes_eps_keys_with_six_significant_digits():
    res = EvalResult(n=2, clean_acc=0.5, robust_acc={"pgd": {1 / 255: 0.5}}, warnings=["w"])
    d = res.to_dict()
    assert d == {"n": 2, "clean_acc": 0.5, "robust_acc": {"pgd": {"0.00392157": 0.5}}, "warnings": ["w"]}
    d["warnings"].append("x")
    assert res.warnings == ["w"]  # a copy, not the result's own list


def test_the_ensemble_columns_follow_the_stages_and_every_sample_adds_each_attack_alone():
    stages = ["apgd-ce", "apgd-t", "fab-t", "square"]
    b = AttackBudget()
    assert _columns(["pgd", "autoattack"], b, False) == ["pgd", "autoattack", *(f"autoattack/+{s}" for s in stages)]
    assert _columns(["autoattack", "fgsm"], b, True) == [
        "autoattack",
        *(f"autoattack/+{s}" for s in stages),
        *(f"autoattack/{s}" for s in stages),
        "fgsm",
    ]


class Threshold(nn.Module):
    """Four classes decided by pixel (0, 0) alone: class 0 above 0.5, class 1 below, classes 2 and 3 never. FGSM and
    PGD at eps e flip a class-0 sample exactly when its pixel is below 0.5 + e, so every count is known."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[10.0, 0, 0, 0], [-10.0, 0, 0, 0], [0.0, 0, 0, 0], [0.0, 0, 0, 0]]))
            self.lin.bias.copy_(torch.tensor([-5.0, 5.0, -20.0, -30.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1))


def _set(pixels: list[float], labels: list[int], salience: float = 0.0) -> TensorDataset:
    x = torch.full((len(pixels), 1, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor(pixels)
    return TensorDataset(x, torch.tensor(labels), torch.full_like(x, salience))


#: class 0 at 0.6, 0.9, 0.7 (0.6 and 0.7 fall at eps 0.3, 0.9 holds), class 1 at 0.1 (holds), 0.8 labelled 1 (wrong)
PIXELS, LABELS = [0.6, 0.9, 0.1, 0.8, 0.7], [0, 0, 1, 1, 0]


def test_robust_accuracy_counts_each_batch_and_eps_exactly_and_reports_progress():
    calls: list[tuple[float, str]] = []
    model = Threshold().train()
    res = evaluate(
        model,
        _set(PIXELS, LABELS),
        eps_grid=[0.3, 0.0, 0.05, 0.05],
        attacks=["fgsm", "pgd"],
        batch_size=2,
        progress=lambda f, msg: calls.append((f, msg)),
    )
    assert model.training  # eval mode only for the evaluation
    assert (res.n, res.clean_acc, res.warnings) == (5, 0.8, [])
    # at 0.05 all four correct samples hold; at 0.3 the 0.6 and 0.7 fall, 0.9 and 0.1 (class 1) hold
    for attack in ("fgsm", "pgd"):
        assert res.robust_acc[attack] == {0.0: 0.8, 0.05: 0.8, 0.3: 0.4}
    assert calls == [(1 / 3, "evaluated 2 images"), (2 / 3, "evaluated 4 images"), (1.0, "evaluated 5 images")]
    again = evaluate(model, DataLoader(_set(PIXELS, LABELS), batch_size=5), eps_grid=[0.3], attacks=["fgsm"])
    assert again.robust_acc == {"fgsm": {0.3: 0.4}}


def test_masked_evaluation_spares_pixels_salient_at_the_threshold_and_attacks_images_without_a_map():
    kw = {"eps_grid": [0.3], "attacks": ["fgsm", "pgd"], "masked": True}
    spared = evaluate(Threshold(), _set(PIXELS, LABELS, salience=0.6), threshold=0.5, **kw)
    assert spared.robust_acc == {"fgsm": {0.3: 0.8}, "pgd": {0.3: 0.8}}  # 0.6 >= 0.5: salient, untouched
    attacked = evaluate(Threshold(), _set(PIXELS, LABELS, salience=0.6), threshold=0.7, **kw)
    assert attacked.robust_acc == {"fgsm": {0.3: 0.4}, "pgd": {0.3: 0.4}}  # 0.6 < 0.7: not salient
    no_map = evaluate(Threshold(), _set(PIXELS, LABELS, salience=float("nan")), **kw)
    assert no_map.robust_acc == attacked.robust_acc


def test_a_batch_with_nothing_correct_counts_zero_and_eps_zero_fills_every_ensemble_column():
    wrong = evaluate(Threshold(), _set([0.6, 0.2], [1, 0]), eps_grid=[0.0, 0.1], attacks=["pgd", "autoattack"])
    assert wrong.clean_acc == 0.0 and all(v == 0.0 for per in wrong.robust_acc.values() for v in per.values())
    res = evaluate(
        Threshold(), _set(PIXELS, LABELS), eps_grid=[0.0], attacks=["autoattack", "fgsm"], autoattack_every_sample=True
    )
    assert len(res.robust_acc) == 10 and all(per == {0.0: 0.8} for per in res.robust_acc.values())


def test_the_ensemble_counts_its_worst_case_each_stage_and_each_attack_alone_over_every_batch():
    one_query = AttackBudget(pgd_steps=1, apgd_steps=1, n_targets=1, fab_steps=1, square_queries=1)
    kw = {"eps_grid": [0.3], "attacks": ["autoattack"], "autoattack_every_sample": True, "checks": False}
    res = evaluate(Threshold(), _set(PIXELS * 3, LABELS * 3), batch_size=2, budget=one_query, **kw)
    assert res.clean_acc == 0.8 and res.robust_acc["autoattack"] == {0.3: 0.4}  # summed over 8 batches
    for stage in ("apgd-ce", "apgd-t", "fab-t", "square"):
        assert res.robust_acc[f"autoattack/+{stage}"] == {0.3: 0.4}  # APGD-CE already finds every flip
    for stage in ("apgd-ce", "apgd-t", "fab-t"):
        assert res.robust_acc[f"autoattack/{stage}"] == {0.3: 0.4}
    # alone, a one-query Square misses flips that 100 queries find: the budget reaches the ensemble
    assert res.robust_acc["autoattack/square"][0.3] > 0.45
    more = AttackBudget(pgd_steps=1, apgd_steps=1, n_targets=1, fab_steps=1, square_queries=100)
    full = evaluate(Threshold(), _set(PIXELS * 3, LABELS * 3), batch_size=2, budget=more, **kw)
    assert full.robust_acc["autoattack/square"] == {0.3: 0.4}
    masked = evaluate(Threshold(), _set(PIXELS, LABELS, salience=0.9), masked=True, budget=one_query, **kw)
    assert all(per == {0.3: 0.8} for per in masked.robust_acc.values())  # the decisive pixel is salient


def test_the_attacks_draw_from_the_seeded_generator_and_leave_the_global_one_alone():
    """Only the evaluation's generator feeds the random starts: the global generator ends in the same state
    whether the ensemble ran or not (the DataLoader's own draw is the same in both runs)."""
    states = []
    budget = AttackBudget(pgd_steps=2, apgd_steps=2, n_targets=1, fab_steps=2, square_queries=5)
    for grid in ([0.0], [0.3]):
        torch.manual_seed(0)
        evaluate(
            Threshold(), _set(PIXELS, LABELS), eps_grid=grid, attacks=["autoattack", "pgd"], budget=budget, checks=False
        )
        states.append(torch.rand(3))
    assert torch.equal(states[0], states[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"attacks": ["pgd", "cw"]},
            "unknown attacks ['cw']; choose from pgd, apgd, fgsm, apgd-t, fab-t, square, autoattack",
        ),
        ({"eps_grid": [0.1, -0.1]}, "eps values must be >= 0"),
    ],
)
def test_bad_arguments_are_refused_with_what_to_fix(kwargs, message):
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]") + "$"):
        evaluate(Threshold(), _set(PIXELS, LABELS), **kwargs)


def test_an_empty_set_is_refused():
    with pytest.raises(ValueError, match=r"^the evaluation set is empty$"):
        evaluate(Threshold(), _set([], []), eps_grid=[0.0])


class Counting(Threshold):
    """Threshold that counts its forward passes: the number of steps an attack took, without knowing its
    internals (each PGD/APGD step is one forward pass more)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(x)


def _calls(**kwargs) -> int:
    model = Counting()
    evaluate(model, _set(PIXELS, LABELS), eps_grid=[0.3], checks=False, **kwargs)
    return model.calls


def test_the_defaults_are_pgd_20_and_apgd_100_steps_and_the_step_counts_reach_the_budget():
    for attack, name, default in (("pgd", "pgd_steps", 20), ("apgd", "apgd_steps", 100)):
        implicit = _calls(attacks=[attack])
        assert implicit == _calls(attacks=[attack], **{name: default})
        assert implicit != _calls(attacks=[attack], **{name: default + 1})
        # without a budget the step counts given to evaluate are the ones the attacks run
        assert _calls(attacks=[attack], **{name: 7}) == _calls(attacks=[attack], budget=AttackBudget(**{name: 7}))
        assert _calls(attacks=[attack], **{name: 7}) != _calls(attacks=[attack], **{name: 8})


def test_by_default_evaluation_is_unmasked_seeded_at_0_in_batches_of_128_checked_and_without_each_attack_alone():
    salient = _set(PIXELS, LABELS, salience=0.9)  # masked, the decisive pixel would be spared
    assert evaluate(Threshold(), salient, eps_grid=[0.3], attacks=["fgsm"]).robust_acc == {"fgsm": {0.3: 0.4}}
    columns = evaluate(Threshold(), salient, eps_grid=[0.0], attacks=["autoattack"]).robust_acc
    assert "autoattack/square" not in columns and "autoattack/+square" in columns
    calls: list[float] = []
    evaluate(Threshold(), _set([0.9] * 129, [0] * 129), eps_grid=[0.0], progress=lambda f, _m: calls.append(f))
    assert calls == [0.5, 1.0]  # two batches: 128 images, then 1
    probabilities = nn.Sequential(Threshold(), nn.Softmax(dim=1))
    warned = evaluate(probabilities, _set(PIXELS, LABELS), eps_grid=[0.0], attacks=["fgsm"]).warnings
    assert len(warned) == 1 and "probabilities" in warned[0]
    # PGD with no step is its random start alone: 200 samples at 0.6 each fall with chance 1/3 at eps 0.3
    start_only = AttackBudget(pgd_steps=0)
    kw = {"eps_grid": [0.3], "attacks": ["pgd"], "budget": start_only, "checks": False}
    data = _set([0.6] * 200, [0] * 200)
    seeded = [evaluate(Threshold(), data, **kw).robust_acc["pgd"][0.3]]
    seeded += [evaluate(Threshold(), data, seed=s, **kw).robust_acc["pgd"][0.3] for s in (0, 1)]
    assert seeded[0] == seeded[1] != seeded[2]
    assert 0.5 < seeded[0] < 0.85  # about 2/3 hold: the start is drawn in the ball, not fixed


def test_the_first_batch_alone_is_checked_only_when_asked_and_later_warnings_add_to_it():
    probabilities = nn.Sequential(Threshold(), nn.Softmax(dim=1))
    kw = {"eps_grid": [0.0], "attacks": ["fgsm"]}
    one_batch = evaluate(probabilities, _set(PIXELS, LABELS), **kw).warnings
    three_batches = evaluate(probabilities, _set(PIXELS, LABELS), batch_size=2, **kw).warnings
    assert len(one_batch) == 1 and three_batches == one_batch  # the first batch, once
    assert evaluate(probabilities, _set(PIXELS, LABELS), checks=False, **kw).warnings == []


class Step(nn.Module):
    """Threshold's decision with no gradient (a sign of the pixel): the white-box attacks see nothing,
    Square breaks what the ball allows, and the checks say so with sample counts."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sign(x[:, 0, 0, 0] - 0.5)
        return torch.stack((s, -s, torch.full_like(s, -20.0), torch.full_like(s, -30.0)), dim=1)


def test_masked_gradients_are_reported_with_the_first_batch_warnings_and_the_count_of_samples_square_broke():
    budget = AttackBudget(apgd_steps=2, n_targets=1, fab_steps=2, square_queries=40)
    res = evaluate(Step(), _set(PIXELS, LABELS), eps_grid=[0.3], attacks=["autoattack"], budget=budget)
    square = [w for w in res.warnings if w.startswith("Square broke")]
    # 40 queries (seed 0) break one of the two breakable samples: a drop of 0.2 is 1 of the n = 5 samples
    assert len(square) == 1 and square[0].startswith("Square broke 0.2000 (1 of 5 samples) at eps 0.3")
    assert len(res.warnings) > 1  # the first batch's zero-gradient warning is kept next to it


def test_every_nonzero_eps_is_attacked_even_eps_1_and_eps_0_fills_each_column_once():
    res = evaluate(Threshold(), _set(PIXELS, LABELS), eps_grid=[1.0], attacks=["fgsm"])
    assert res.robust_acc == {"fgsm": {1.0: 0.0}}  # at eps 1 every pixel can cross 0.5
    one = AttackBudget(pgd_steps=1, apgd_steps=1, n_targets=1, fab_steps=1, square_queries=1)
    both = evaluate(Threshold(), _set(PIXELS, LABELS), eps_grid=[0.05, 0.3], attacks=["autoattack"], budget=one)
    assert both.robust_acc["autoattack"] == {0.05: 0.8, 0.3: 0.4}
    zero = evaluate(Threshold(), _set(PIXELS, LABELS), eps_grid=[0.0], attacks=["pgd", "fgsm", "autoattack"])
    assert all(per == {0.0: 0.8} for per in zero.robust_acc.values())
