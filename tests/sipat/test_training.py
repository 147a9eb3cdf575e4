"""The training loop: every method, exact equivalences between methods, seeds, progress, resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import TensorDataset

from sipat.training import METHODS, TrainConfig, read_checkpoint, save_checkpoint, train
from tests.sipat.conftest import TinyCNN

FAST = {"epochs": 1, "batch_size": 64, "lr": 0.05, "eps": 0.1, "alpha": 0.04, "steps": 3}


def _data(digits, n: int = 256, salience: str = "half") -> TensorDataset:
    x, y = digits
    x, y = x[:n], y[:n]
    s = (x > 0.3).float()  # the strokes are salient
    if salience == "none":
        s = torch.full_like(s, math.nan)
    elif salience == "all":
        s = torch.ones_like(s)
    elif salience == "half":
        s[::2] = math.nan
    return TensorDataset(x, y, s)


def _model(seed: int = 0) -> TinyCNN:
    torch.manual_seed(seed)
    return TinyCNN()


def _weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def _same(a, b) -> bool:
    return all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_reports(method, digits):
    model = _model()
    before = _weights(model)
    seen = []
    result = train(model, _data(digits), TrainConfig(method=method, **FAST), progress=seen.append)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["loss"])
    assert not _same(before, _weights(model))
    assert [p.step for p in seen] == [1, 2, 3, 4] and seen[-1].fraction == 1.0
    assert not model.training


def test_same_seed_same_weights_and_the_global_rng_is_left_alone(digits):
    state = torch.get_rng_state()
    a, b = _model(), _model()
    cfg = TrainConfig(method="sip_at", **FAST)
    torch.set_rng_state(state)
    train(a, _data(digits), cfg)
    assert torch.equal(torch.get_rng_state(), state)
    train(b, _data(digits), cfg)
    assert _same(_weights(a), _weights(b))
    c = _model()
    train(c, _data(digits), TrainConfig(method="sip_at", **{**FAST, "seed": 1}))
    assert not _same(_weights(a), _weights(c))


def test_sip_at_without_salience_is_pgd_at(digits):
    a, b = _model(), _model()
    train(a, _data(digits, salience="none"), TrainConfig(method="sip_at", **FAST))
    train(b, _data(digits, salience="none"), TrainConfig(method="pgd_at", **FAST))
    assert _same(_weights(a), _weights(b))


def test_sip_at_with_everything_salient_is_standard_training(digits):
    a, b = _model(), _model()
    train(a, _data(digits, salience="all"), TrainConfig(method="sip_at", **FAST))
    train(b, _data(digits, salience="all"), TrainConfig(method="standard", **FAST))
    assert _same(_weights(a), _weights(b))


def test_sip_at_differs_from_pgd_at_when_maps_exist(digits):
    a, b = _model(), _model()
    train(a, _data(digits), TrainConfig(method="sip_at", **FAST))
    train(b, _data(digits), TrainConfig(method="pgd_at", **FAST))
    assert not _same(_weights(a), _weights(b))


def test_raising_from_progress_stops_and_resume_gives_the_uninterrupted_weights(digits, tmp_path):
    cfg = TrainConfig(method="sip_at", **{**FAST, "epochs": 2})
    straight = _model()
    train(straight, _data(digits), cfg)

    class Stop(Exception):
        pass

    def stop_in_second_epoch(p):
        if p.epoch == 1:
            raise Stop

    ckpt = tmp_path / "run.pt"
    with pytest.raises(Stop):
        train(_model(), _data(digits), cfg, checkpoint=ckpt, progress=stop_in_second_epoch)
    assert read_checkpoint(ckpt)["resume"]["epoch"] == 1
    resumed = _model(seed=123)  # the weights come from the checkpoint
    result = train(resumed, _data(digits), cfg, checkpoint=ckpt)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert _same(_weights(straight), _weights(resumed))


def test_resume_refuses_another_config(digits, tmp_path):
    ckpt = tmp_path / "run.pt"
    train(_model(), _data(digits, n=64), TrainConfig(method="standard", **FAST), checkpoint=ckpt)
    with pytest.raises(ValueError, match="another config"):
        train(_model(), _data(digits, n=64), TrainConfig(method="pgd_at", **FAST), checkpoint=ckpt)


def test_checkpoint_records_the_config_and_meta(tmp_path):
    model = _model()
    cfg = TrainConfig(method="sip_trades", threshold=None)
    path = save_checkpoint(tmp_path / "m.pt", model, cfg, meta={"arch": "tiny", "classes": ["a", "b"]})
    ckpt = read_checkpoint(path)
    assert TrainConfig.from_dict(ckpt["train_config"]) == cfg
    assert ckpt["meta"] == {"arch": "tiny", "classes": ["a", "b"]}
    assert _same(list(ckpt["state_dict"].values()), _weights(model))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable sipat checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "madry"}, "method must be one of"),
        ({"amp": "fp8"}, "amp must be"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"threshold": 1.5}, "threshold must be"),
    ],
)
def test_bad_configs_say_what_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_bf16_autocast_trains_on_the_cpu(digits):
    model = _model()
    result = train(model, _data(digits, n=128), TrainConfig(method="sip_at", amp="bf16", channels_last=True, **FAST))
    assert math.isfinite(result.history[0]["loss"])
