"""The training recipe's knobs in a train job's params: defaults are `RECIPE`'s (as `sipat train --recipe`),
each bad value a 422 (`InvalidInputError`) that names the field."""

from __future__ import annotations

import pytest

from backend.services.errors import InvalidInputError
from backend.services.job_params import RECIPE as WEB_RECIPE
from backend.services.job_params import TrainParams, validate_job_params
from sipat.train_config import RECIPE, TrainConfig


def test_defaults_are_the_recipe() -> None:
    assert WEB_RECIPE == RECIPE  # the web's vocabulary twin holds the same recipe as sipat's
    params = validate_job_params("train", {"dataset_id": 1})
    assert {k: params[k] for k in RECIPE} == RECIPE
    assert RECIPE == {  # the values that train every baseline on `shapes` (docs: sipat/train_config.py)
        "eps_ramp_epochs": 10,
        "warmup_epochs": 5,
        "grad_clip": 10.0,
        "weight_decay": 5e-4,
        "augment": True,
        "crop_padding": 4,
        "flip": True,
    }
    # Validation and early stopping are not part of RECIPE: off, as in TrainConfig and `sipat train --recipe`.
    off = TrainConfig()
    assert (params["val_share"], params["val_steps"], params["patience"]) == (
        off.val_share,
        off.val_steps,
        off.patience,
    )


def test_every_recipe_knob_reaches_the_train_config() -> None:
    """Each knob of TrainParams is a TrainConfig field of the same name (the worker passes them on)."""
    knobs = set(RECIPE) | {"val_share", "val_steps", "patience"}
    assert knobs <= set(TrainParams.model_fields)
    assert knobs <= set(TrainConfig.__dataclass_fields__)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("eps_ramp_epochs", -1),
        ("eps_ramp_epochs", 1.5),
        ("warmup_epochs", -2),
        ("grad_clip", 0),
        ("grad_clip", -1.0),
        ("weight_decay", -1e-4),
        ("weight_decay", 2),
        ("augment", "sometimes"),
        ("flip", "sometimes"),
        ("crop_padding", -1),
        ("val_share", 1.0),
        ("val_share", -0.1),
        ("val_steps", -1),
        ("patience", 0),
    ],
)
def test_a_bad_knob_is_a_422_naming_it(field: str, value: object) -> None:
    with pytest.raises(InvalidInputError, match=rf"invalid train parameters: {field}: ") as caught:
        validate_job_params("train", {"dataset_id": 1, field: value})
    assert caught.value.status_code == 422


def test_patience_needs_a_validation_split() -> None:
    with pytest.raises(InvalidInputError, match=r"patience .*needs a validation split: set val_share > 0"):
        validate_job_params("train", {"dataset_id": 1, "patience": 3})
    ok = validate_job_params("train", {"dataset_id": 1, "patience": 3, "val_share": 0.2})
    assert (ok["patience"], ok["val_share"]) == (3, 0.2)


def test_the_recipe_can_be_switched_off_knob_by_knob() -> None:
    off = {"eps_ramp_epochs": 0, "warmup_epochs": 0, "grad_clip": None, "weight_decay": 0, "augment": False}
    params = validate_job_params("train", {"dataset_id": 1, **off})
    assert {k: params[k] for k in off} == off


def test_a_default_job_trains_its_second_half_at_the_full_eps() -> None:
    """The default epochs outlast the default ramp: at 10 epochs (the ramp's length) eps came in the last batch."""
    params = validate_job_params("train", {"dataset_id": 1, "method": "pgd_at"})
    cfg = TrainConfig(**{k: v for k, v in params.items() if k in TrainConfig.__dataclass_fields__})
    assert (cfg.epochs, cfg.eps_ramp_epochs) == (20, RECIPE["eps_ramp_epochs"])
    assert cfg.eps_ramp_problem() is None
    assert cfg.eps_at(cfg.epochs / 2) == cfg.eps and cfg.eps_at(cfg.epochs / 2 - 1) < cfg.eps
