"""`ExperimentConfig` holds a `TrainConfig` (no copy of its fields), reads flat or nested training settings, and
parses every radius with `sipat.vocabulary.parse_eps` (negatives refused)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sipat.cli import main
from sipat.experiment import PER_RUN_FIELDS, TRAIN_FIELDS, ExperimentConfig, RunSpec, Variant, run_settings
from sipat.training import TrainConfig


def test_the_training_settings_are_a_trainconfig_read_flat_or_nested():
    flat = ExperimentConfig(eps="8/255", epochs=3, lr="0.05", threshold=None)
    nested = ExperimentConfig.from_dict({"train": {"eps": "8/255", "epochs": 3, "lr": 0.05, "threshold": None}})
    assert isinstance(flat.train, TrainConfig) and flat == nested
    assert flat.train.eps == pytest.approx(8 / 255) and flat.eps == flat.train.eps and flat.epochs == 3
    assert flat.train.threshold is None and flat.train.steps == 10  # the experiment's budget, not TrainConfig's 32
    assert "eps" not in {f.name for f in dataclasses.fields(ExperimentConfig)}  # held, not copied
    assert set(TRAIN_FIELDS) == {f.name for f in dataclasses.fields(TrainConfig)} - set(PER_RUN_FIELDS)
    both = ExperimentConfig.from_dict({"train": {"epochs": 3, "lr": 0.5}, "epochs": 5})
    assert both.epochs == 5 and both.lr == 0.5  # a flat key wins over the nested one


def test_to_dict_is_flat_and_reads_back_to_the_same_config():
    cfg = ExperimentConfig(dataset="shapes", eps="4/255", alpha="1/255", steps=7, amp="bf16", seeds=[3, 1])
    data = cfg.to_dict()
    assert "train" not in data and data["eps"] == pytest.approx(4 / 255) and data["amp"] == "bf16"
    assert ExperimentConfig.from_dict(json.loads(json.dumps(data))) == cfg


def test_alpha_is_derived_until_given_and_follows_eps_and_steps():
    cfg = ExperimentConfig(eps=0.2, steps=5)
    assert cfg.alpha is None and cfg.train.alpha == pytest.approx(2.5 * 0.2 / 5) == cfg.train_alpha
    assert cfg.replace(eps=0.1).train_alpha == pytest.approx(2.5 * 0.1 / 5)  # re-derived, not carried over
    fixed = cfg.replace(alpha="1/255")
    assert fixed.train_alpha == pytest.approx(1 / 255) and fixed.replace(eps=0.1).train_alpha == pytest.approx(1 / 255)
    assert ExperimentConfig(eps=0.1, steps=0).train_alpha == pytest.approx(0.25)  # max(steps, 1)


def test_train_config_sets_the_run_and_keeps_the_shared_settings():
    cfg = ExperimentConfig(eps=0.2, steps=5, epochs=2, lr=0.05, trades_beta=3.0, amp="bf16")
    run = cfg.train_config("pgd_at", 4, clean_share=0.25)
    assert (run.method, run.seed, run.clean_share) == ("pgd_at", 4, 0.25)
    assert {k: getattr(run, k) for k in TRAIN_FIELDS} == {k: getattr(cfg.train, k) for k in TRAIN_FIELDS}
    assert cfg.train_config("standard", 0, epochs=1, amp="none").epochs == 1
    with pytest.raises(ValueError, match="method must be one of"):
        cfg.train_config("clean_mix", 0)  # an experiment control, trained as pgd_at by the runner
    with pytest.raises(ValueError, match="clean_share applies to pgd_at and sip_at only"):
        cfg.train_config("trades", 0, clean_share=0.5)  # TrainConfig's own check, not a copy of it


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"eps": "-8/255"}, "eps must be a radius >= 0"),
        ({"eps": -0.1}, "eps must be a radius >= 0"),
        ({"eps": 2}, "eps is in \\[0, 1\\] pixel units"),
        ({"eps": "eight"}, "eps must be a number or a fraction"),
        ({"alpha": "-1/255"}, "alpha must be a radius >= 0"),
        ({"eval_eps": [0, "-4/255"]}, "eval_eps must be a radius >= 0"),
        ({"eval_eps": []}, "give at least one eval_eps"),
        ({"lr": "fast"}, "lr must be a number"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"steps": -1}, "steps must be >= 0"),
        ({"amp": "fp8"}, "amp must be"),
        ({"train": {"epoch": 3}}, "unknown training settings \\['epoch'\\] under train"),
    ],
)
def test_bad_settings_are_refused_with_what_to_fix(settings, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig.from_dict(settings)


def test_unknown_settings_are_refused_and_per_run_fields_are_not_settings():
    with pytest.raises(ValueError, match="unknown experiment settings \\['seed'\\]"):
        ExperimentConfig.from_dict({"seed": 3})  # an experiment has seeds; each run's seed is set per run
    with pytest.raises(TypeError, match="unknown settings \\['method'\\]"):
        ExperimentConfig(method="sip_at")


def test_run_settings_read_the_training_settings_as_before():
    cfg = ExperimentConfig(eps="8/255", steps=4, epochs=2, seeds=[0])
    settings = run_settings(cfg, RunSpec("sip_at", Variant.parse("human"), 0))
    assert settings["eps"] == pytest.approx(8 / 255) and settings["epochs"] == 2 and settings["steps"] == 4
    assert settings["alpha"] == pytest.approx(2.5 * (8 / 255) / 4) and settings["threshold"] == 0.5


def test_the_cli_refuses_a_negative_eps_and_one_above_the_pixel_range(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "--eps=-8/255", "--plan"])
    assert "eps must be >= 0, got -8/255" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--dataset", "mnist5k", "--checkpoint", "x.pt", "--eps", "0", "3"])
    assert "[0, 1] pixel units" in capsys.readouterr().err
