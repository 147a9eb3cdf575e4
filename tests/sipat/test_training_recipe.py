"""The recipe knobs of TrainConfig each do what they say: eps ramp, lr warm-up, gradient clipping, joint
augmentation, validation split with best-epoch selection, early stopping, and the per-epoch log."""

from __future__ import annotations

import csv
import math
import re
import warnings

import pytest
import torch
from torch.utils.data import TensorDataset

from sipat.train_config import RECIPE, EpsRampWarning
from sipat.training import TrainConfig, read_checkpoint, split_validation, train, validate
from tests.sipat.conftest import TinyCNN

# powers of two, so that the ramp's and the warm-up's scaled values are exact in floating point
ONE_BATCH = {"epochs": 1, "batch_size": 64, "lr": 0.0625, "eps": 0.125, "alpha": 0.0625, "steps": 2}


def _data(digits, n: int = 64, labels: torch.Tensor | None = None) -> TensorDataset:
    x, y = digits
    x = x[:n]
    y = y[:n] if labels is None else labels[:n]
    return TensorDataset(x, y, (x > 0.3).float())


def _model(seed: int = 0) -> TinyCNN:
    torch.manual_seed(seed)
    return TinyCNN()


def _trained(digits, **cfg) -> TinyCNN:
    model = _model()
    train(model, _data(digits), TrainConfig(method="pgd_at", **cfg))
    return model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_eps_ramp_trains_the_first_batch_at_the_ramped_radius(digits):
    # one batch of a 2-epoch ramp = half the radius with half the step: the same run as eps/2, alpha/2
    with pytest.warns(EpsRampWarning):  # a 1-epoch run of a 2-epoch ramp, on purpose
        ramped = _trained(digits, **ONE_BATCH, eps_ramp_epochs=2)
    half = _trained(digits, **{**ONE_BATCH, "eps": 0.0625, "alpha": 0.03125})
    full = _trained(digits, **ONE_BATCH)
    assert _same(ramped, half) and not _same(ramped, full)


def test_eps_ramp_is_linear_per_batch_and_reaches_eps():
    cfg = TrainConfig(eps=0.1, eps_ramp_epochs=4)
    assert [cfg.eps_at(e) for e in (0.0, 1.0, 2.0, 4.0, 9.0)] == pytest.approx([0.0, 0.025, 0.05, 0.1, 0.1])
    assert TrainConfig(eps=0.1).eps_at(0.01) == 0.1


def test_warm_up_scales_the_first_steps_and_leaves_the_schedule_alone(digits):
    warm = _model()
    result = train(warm, _data(digits), TrainConfig(method="pgd_at", **ONE_BATCH, warmup_epochs=2))
    cold = _trained(digits, **{**ONE_BATCH, "lr": 0.03125})
    assert _same(warm, cold) and result.history[0]["lr"] == 0.03125
    # three epochs of one batch, warm-up 2: lr/2, then the full rate; StepLR(1, 0.5) still halves it each epoch
    steps = {**ONE_BATCH, "epochs": 3, "lr_step": 1, "lr_gamma": 0.5}
    result = train(_model(), _data(digits), TrainConfig(method="pgd_at", **steps, warmup_epochs=2))
    assert [h["lr"] for h in result.history] == [0.0625 / 2, 0.0625 / 2, 0.0625 / 4]


def test_gradient_clipping_bounds_the_first_update(digits):
    clip, lr = 1e-3, 0.0625
    no_decay = {**ONE_BATCH, "weight_decay": 0.0}
    before = _model()
    clipped = _trained(digits, **no_decay, grad_clip=clip)
    free = _trained(digits, **no_decay)

    def step_norm(after: torch.nn.Module) -> float:
        deltas = [(a - b).detach().flatten() for a, b in zip(after.parameters(), before.parameters(), strict=True)]
        return float(torch.cat(deltas).norm())

    # the first SGD step (momentum buffer = gradient) moves the weights by lr * the clipped gradient
    assert step_norm(clipped) == pytest.approx(lr * clip, rel=1e-4)
    assert step_norm(free) > 100 * lr * clip


def test_augmentation_changes_training_and_stays_seeded(digits):
    plain = _trained(digits, **ONE_BATCH)
    a = _trained(digits, **ONE_BATCH, augment=True, crop_padding=2)
    b = _trained(digits, **ONE_BATCH, augment=True, crop_padding=2)
    assert _same(a, b) and not _same(a, plain)


def test_flip_off_reaches_training(digits):
    # without padding the crop is the whole image, so the flip is all that augments: off, training is plain
    plain = _trained(digits, **ONE_BATCH)
    flipped = _trained(digits, **ONE_BATCH, augment=True, crop_padding=0)
    unflipped = _trained(digits, **ONE_BATCH, augment=True, crop_padding=0, flip=False)
    assert _same(unflipped, plain) and not _same(flipped, plain)
    assert not _same(_trained(digits, **ONE_BATCH, augment=True, crop_padding=2, flip=False), plain)  # crop alone


def test_validation_split_is_seeded_disjoint_and_complete(digits):
    data = _data(digits, n=100)
    cfg = TrainConfig(val_share=0.2, seed=3)
    fit, val = split_validation(data, cfg)
    assert val is not None and len(val) == 20 and len(fit) == 80
    assert sorted(fit.indices + val.indices) == list(range(100))
    assert split_validation(data, cfg)[1].indices == val.indices
    assert split_validation(data, TrainConfig(val_share=0.2, seed=4))[1].indices != val.indices
    assert split_validation(data, TrainConfig())[1] is None


def _noisy(digits) -> TensorDataset:
    """Shuffled labels: validation accuracy wanders, so the best epoch is not the last one."""
    y = digits[1][:256]
    return _data(digits, n=256, labels=y[torch.randperm(256, generator=torch.Generator().manual_seed(1))])


NOISY = {"method": "standard", "epochs": 6, "batch_size": 32, "lr": 0.1, "eps": 0.0, "val_share": 0.25}


def test_the_best_validation_epoch_is_kept_not_the_last(digits):
    model = _model()
    cfg = TrainConfig(**NOISY)
    result = train(model, _noisy(digits), cfg)
    scores = [(h["val_robust"], h["val_clean"]) for h in result.history]
    best = max(range(len(scores)), key=lambda i: scores[i]) + 1
    assert result.best_epoch == best and best < len(scores)  # else this test would not tell them apart
    _fit, val = split_validation(_noisy(digits), cfg)
    assert validate(model, val, cfg, torch.device("cpu")) == (scores[best - 1][1], scores[best - 1][0])


def test_early_stopping_after_patience_epochs_without_a_better_score(digits):
    full = train(_model(), _noisy(digits), TrainConfig(**NOISY))
    result = train(_model(), _noisy(digits), TrainConfig(**NOISY, patience=2))
    assert result.stopped_early and len(result.history) == full.best_epoch + 2
    untimed = [{k: v for k, v in h.items() if k != "seconds"} for h in (*result.history, *full.history)]
    assert untimed[: len(result.history)] == untimed[len(result.history) : 2 * len(result.history)]
    with pytest.raises(ValueError, match="val_share"):
        TrainConfig(patience=2)


def test_robust_validation_uses_the_full_radius(digits):
    model = _trained(digits, **{**ONE_BATCH, "epochs": 3})
    clean_cfg, robust_cfg = TrainConfig(eps=0.0), TrainConfig(eps=0.3, val_steps=5)
    data = _data(digits, n=200)
    clean, same = validate(model, data, clean_cfg, torch.device("cpu"))
    assert clean == same
    assert validate(model, data, robust_cfg, torch.device("cpu"))[1] < clean


def test_csv_log_beside_the_checkpoint_and_tensorboard(digits, tmp_path):
    ckpt = tmp_path / "run.pt"
    cfg = TrainConfig(method="pgd_at", **{**ONE_BATCH, "epochs": 2}, val_share=0.25)
    result = train(_model(), _data(digits), cfg, checkpoint=ckpt, tensorboard=tmp_path / "tb")
    with open(tmp_path / "run.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [float(r["val_robust"]) for r in rows] == [h["val_robust"] for h in result.history]
    assert read_checkpoint(ckpt)["resume"]["best"]["epoch"] == result.best_epoch
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_the_recipe_knobs_default_off_and_check_their_input():
    cfg = TrainConfig()
    assert (cfg.eps_ramp_epochs, cfg.warmup_epochs, cfg.grad_clip, cfg.augment, cfg.val_share) == (0, 0, None, False, 0)
    recipe = cfg.with_recipe(warmup_epochs=3)
    assert recipe.weight_decay == 5e-4 and recipe.eps_ramp_epochs == RECIPE["eps_ramp_epochs"]
    assert recipe.warmup_epochs == 3
    assert cfg.flip is True and recipe.flip is RECIPE["flip"] is True  # flip on: the behaviour before the knob
    for bad in ({"grad_clip": 0.0}, {"val_share": 1.0}, {"eps_ramp_epochs": -1}, {"weight_decay": -1e-4}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)
    assert math.isclose(TrainConfig.from_dict(recipe.to_dict()).weight_decay, 5e-4)
    with pytest.raises(ValueError, match="flip must be true or false; got 'false'"):
        TrainConfig(augment=True, flip="false")  # type: ignore[arg-type]
    # a config stored before the knob (no "flip") reads back with the flip it trained with
    old = {k: v for k, v in recipe.to_dict().items() if k != "flip"}
    assert TrainConfig.from_dict(old) == recipe


def test_an_interrupted_recipe_run_resumes_to_the_uninterrupted_result(digits, tmp_path):
    # every knob on: the ramp, warm-up and augmentation state, the best epoch and the patience all resume
    cfg = TrainConfig(**NOISY, patience=3).with_recipe(eps_ramp_epochs=3, warmup_epochs=2, crop_padding=1)
    straight = _model()
    expected = train(straight, _noisy(digits), cfg)

    class Stop(Exception):
        pass

    def stop_in_third_epoch(p):
        if p.epoch == 2:
            raise Stop

    ckpt = tmp_path / "run.pt"
    with pytest.raises(Stop):
        train(_model(), _noisy(digits), cfg, checkpoint=ckpt, progress=stop_in_third_epoch)
    resumed = _model(seed=123)  # the weights come from the checkpoint
    result = train(resumed, _noisy(digits), cfg, checkpoint=ckpt)
    untimed = [[{k: v for k, v in h.items() if k != "seconds"} for h in r.history] for r in (expected, result)]
    assert untimed[0] == untimed[1]
    assert (result.best_epoch, result.stopped_early) == (expected.best_epoch, expected.stopped_early)
    assert _same(straight, resumed)
    with open(tmp_path / "run.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(result.history)


@pytest.mark.parametrize(
    ("epochs", "ramp", "says"),
    [(8, 10, "never reaches eps 0.1 \\(it ends at 0.08\\)"), (10, 10, "reaches eps 0.1 only in the last batch")],
)
def test_a_ramp_as_long_as_the_run_is_named_with_the_radius_reached(epochs, ramp, says):
    problem = TrainConfig(method="pgd_at", eps=0.1, epochs=epochs, eps_ramp_epochs=ramp).eps_ramp_problem()
    assert problem is not None
    assert re.search(f"eps_ramp_epochs \\({ramp}\\) >= epochs \\({epochs}\\): the training radius {says}", problem)


def test_a_ramp_shorter_than_the_run_or_without_a_radius_is_no_problem():
    assert TrainConfig(method="pgd_at", eps=0.1, epochs=11, eps_ramp_epochs=10).eps_ramp_problem() is None
    assert TrainConfig(method="pgd_at", eps=0.1, epochs=1, eps_ramp_epochs=0).eps_ramp_problem() is None
    # no radius to reach: standard training (a short Grad-CAM reference model), or eps 0
    assert TrainConfig(method="standard", eps=0.1, epochs=2, eps_ramp_epochs=10).eps_ramp_problem() is None
    assert TrainConfig(method="pgd_at", eps=0.0, epochs=2, eps_ramp_epochs=10).eps_ramp_problem() is None


def test_train_warns_when_the_ramp_outlasts_the_run(digits):
    with pytest.warns(EpsRampWarning, match="eps_ramp_epochs \\(2\\) >= epochs \\(1\\)"):
        _trained(digits, **ONE_BATCH, eps_ramp_epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EpsRampWarning)
        _trained(digits, **{**ONE_BATCH, "epochs": 2}, eps_ramp_epochs=1)  # full eps in the second epoch
