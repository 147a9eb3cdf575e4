"""`sipat train`'s recipe flags: `--recipe` gives the recipe's values, each flag overrides it, none gives the
TrainConfig defaults (the old behaviour)."""

from sipat.cli.commands import recipe_knobs
from sipat.cli.main import build_parser
from sipat.train_config import RECIPE, TrainConfig


def _knobs(*flags: str) -> dict:
    return recipe_knobs(build_parser().parse_args(["train", "--dataset", "mnist5k", "--out", "x", *flags]))


def test_no_recipe_flags_change_nothing():
    assert _knobs() == {}


def test_recipe_gives_the_recipe_and_flags_override_it():
    assert _knobs("--recipe") == RECIPE
    knobs = _knobs("--recipe", "--eps-ramp-epochs", "3", "--no-augment", "--val-share", "0.1", "--patience", "2")
    assert knobs == {**RECIPE, "eps_ramp_epochs": 3, "augment": False, "val_share": 0.1, "patience": 2}
    cfg = TrainConfig(method="pgd_at", **knobs)  # what cmd_train builds: the values reach the config
    assert (cfg.eps_ramp_epochs, cfg.warmup_epochs, cfg.augment, cfg.patience) == (3, RECIPE["warmup_epochs"], False, 2)


def test_crop_without_flip_from_the_cli():
    knobs = _knobs("--recipe", "--no-flip", "--crop-padding", "2")
    assert knobs == {**RECIPE, "flip": False, "crop_padding": 2}
    cfg = TrainConfig(method="pgd_at", **knobs)
    assert (cfg.augment, cfg.flip, cfg.crop_padding) == (True, False, 2)
    assert _knobs("--augment", "--no-flip") == {"augment": True, "flip": False}


def test_single_flags_without_the_recipe():
    assert _knobs("--warmup-epochs", "5", "--grad-clip", "1.5", "--weight-decay", "5e-4") == {
        "warmup_epochs": 5,
        "grad_clip": 1.5,
        "weight_decay": 5e-4,
    }
