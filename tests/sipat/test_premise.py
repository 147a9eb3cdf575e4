"""sipat.premise: the predictive fragile cue sits on the object, the background carries no class information,
the masks are exact, and a seed fixes the set."""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from sipat.premise import KINDS, PremiseParams, load_premise, run_pilot


def _oriented_energy(images: torch.Tensor, region: torch.Tensor, num_classes: int, period: float) -> np.ndarray:
    """Phase-invariant energy of each class orientation inside `region` (N, 1, H, W) {0, 1}: for orientation k,
    |sum over the region of (g - mean_region g) * exp(i 2 pi / period * (x cos th_k + y sin th_k))|^2, g = grey.
    Log of it, (N, num_classes): the features a linear probe of "which texture is here" needs."""
    grey = images.mean(1, keepdim=True).double()
    r = region.double()
    centred = (grey - (grey * r).sum((2, 3), keepdim=True) / r.sum((2, 3), keepdim=True).clamp_min(1)) * r
    size = images.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(size).double(), torch.arange(size).double(), indexing="ij")
    feats = []
    for k in range(num_classes):
        th = math.pi * k / num_classes
        arg = 2 * math.pi / period * (xx * math.cos(th) + yy * math.sin(th))
        re, im = (centred * torch.cos(arg)).sum((1, 2, 3)), (centred * torch.sin(arg)).sum((1, 2, 3))
        feats.append(torch.log(re**2 + im**2 + 1e-9))
    return torch.stack(feats, 1).numpy()


def _probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    clf = LogisticRegression(max_iter=2000).fit(train_x, train_y)
    return float((clf.predict(test_x) == test_y).mean())


@pytest.fixture(scope="module")
def sets() -> tuple:
    params = {"n_train": 500, "n_test": 600}
    return load_premise("train", 0, **params), load_premise("test", 0, **params)


def test_texture_on_the_object_predicts_the_class(sets: tuple) -> None:
    train, test = sets
    p = PremiseParams()
    fx = _oriented_energy(train.images, train.salience, p.num_classes, p.texture_period)
    gx = _oriented_energy(test.images, test.salience, p.num_classes, p.texture_period)
    acc = _probe(fx, train.labels.numpy(), gx, test.labels.numpy())
    assert acc > 0.9, f"a linear probe of the object's texture should read the class; got {acc:.3f} (chance 0.25)"


def test_background_carries_no_class_information(sets: tuple) -> None:
    train, test = sets
    p = PremiseParams()
    y, ty = train.labels.numpy(), test.labels.numpy()
    bg, tbg = 1 - train.salience, 1 - test.salience
    texture = _probe(
        _oriented_energy(train.images, bg, p.num_classes, p.texture_period), y,
        _oriented_energy(test.images, tbg, p.num_classes, p.texture_period), ty,
    )  # fmt: skip
    colour = _probe(
        ((train.images * bg).sum((2, 3)) / bg.sum((2, 3))).numpy(), y,
        ((test.images * tbg).sum((2, 3)) / tbg.sum((2, 3))).numpy(), ty,
    )  # fmt: skip
    # chance is 0.25; 600 test images give a standard error of 0.018, so 0.32 is ~4 standard errors above it
    assert texture < 0.32, f"background texture predicts the class: {texture:.3f}"
    assert colour < 0.32, f"background colour predicts the class: {colour:.3f}"
    # the object texture is the label (texture_correlation 1.0 by default)
    assert abs(float((train.texture_classes == train.labels).float().mean()) - 1.0) < 1e-9


def test_shape_is_the_imperfect_robust_cue(sets: tuple) -> None:
    train, _ = sets
    agree = float((train.shape_classes == train.labels).float().mean())
    assert abs(agree - PremiseParams().shape_correlation) < 0.06  # 500 draws: standard error 0.02


def test_masks_are_exact_and_texture_lives_only_on_the_object() -> None:
    plain = {"n_train": 40, "clutter": 0, "noise_std": 0.0}
    flat = load_premise("train", 5, **plain, texture_amplitude=0.0)
    textured = load_premise("train", 5, **plain)
    m = flat.salience.bool().expand_as(flat.images)
    lo, hi = PremiseParams().coverage
    cov = flat.salience.mean((1, 2, 3))
    assert bool(((cov >= lo) & (cov <= hi)).all())
    for i in range(len(flat)):  # exact masks: one colour inside, one outside
        inside, outside = flat.images[i][m[i]].view(3, -1), flat.images[i][~m[i]].view(3, -1)
        assert torch.allclose(inside, inside[:, :1]) and torch.allclose(outside, outside[:, :1])
    diff = textured.images - flat.images
    assert float(diff[~m].abs().max()) == 0.0
    amplitude = PremiseParams().texture_amplitude
    assert amplitude - 1e-3 < float(diff[m].abs().max()) <= amplitude + 1e-6
    assert amplitude < 8 / 255  # fragile: the customary radius can erase it


def test_seeded_and_splits_independent() -> None:
    a, b = load_premise("train", 1, n_train=20), load_premise("train", 1, n_train=20)
    c, t = load_premise("train", 2, n_train=20), load_premise("test", 1, n_test=20)
    assert torch.equal(a.images, b.images) and torch.equal(a.salience, b.salience)
    assert not torch.equal(a.images, c.images) and not torch.equal(a.images, t.images)
    assert a.images.shape == (20, 3, 32, 32) and a.num_classes == 4 and len(a.classes) == 4
    assert float(a.images.min()) >= 0 and float(a.images.max()) <= 1


def test_kinds_choose_the_class_shapes() -> None:
    """``kinds`` names the shape of each class: a ring's bounding-box centre is a hole, a cross's is filled."""
    ds = load_premise(
        "train", 0, n_train=40, num_classes=2, kinds=["ring", "cross"], shape_correlation=1.0, clutter=0,
        noise_std=0.0, texture_amplitude=0.0,
    )  # fmt: skip
    assert ds.classes == ["ring/0deg", "cross/90deg"]
    assert PremiseParams().shapes == KINDS[:4]  # the default is unchanged
    for mask, label in zip(ds.salience[:, 0].bool(), ds.labels.tolist(), strict=True):
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        centre = mask[(rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2]
        assert bool(centre) == (label == 1), f"class {label} should be a {'cross' if label else 'ring'}"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"coverage": [0.3, 0.1]}, "coverage"),
        ({"num_classes": len(KINDS) + 1}, "num_classes"),
        ({"shape_correlation": 1.5}, "probability"),
        ({"texture": 1}, "does not take"),
        ({"kinds": ["circle", "circle", "square", "ring"]}, "kinds"),
        ({"kinds": ["cross", "triangle", "ring", "blob"]}, "kinds"),
        ({"kinds": ["cross", "triangle"]}, "kinds"),
    ],
)
def test_bad_parameters_are_refused(params: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        load_premise("train", 0, **params)


@pytest.mark.parametrize("method", ["standard", "pgd_at"])
def test_pilot_runs_and_reports(method: str) -> None:
    config = {"dataset_params": {"n_train": 64, "n_test": 32}, "arch": "cnn32", "epochs": 1, "batch_size": 32}
    out = run_pilot(config, seed=0, method=method)
    again = run_pilot(config, seed=0, method=method)
    assert {k: v for k, v in out.items() if k != "train_seconds"} == {
        k: v for k, v in again.items() if k != "train_seconds"
    }  # seeded: initial weights, data and attacks
    assert out["method"] == method
    for key in ("clean_accuracy", "accuracy_without_texture", "follows_texture_where_cues_disagree"):
        assert 0.0 <= out[key] <= 1.0
    assert out["shape_correlation"] == 0.7 and out["train_seconds"] >= 0 and 0.0 <= out["pgd_accuracy"] <= 1.0


@pytest.mark.parametrize(
    "name", ["premise.json", "premise-pilot.json", "premise-cpu8.json", "premise-long8.json", "premise-full8.json"]
)
def test_configs_parameters_are_the_generators(name: str) -> None:
    """The configs' dataset_params are exactly PremiseParams (no key silently ignored, none missing)."""
    config = json.loads((Path(__file__).parents[2] / "configs" / name).read_text())
    assert config["dataset"] == "premise"
    params = PremiseParams.from_dict(config["dataset_params"])
    assert set(config["dataset_params"]) == {f.name for f in dataclasses.fields(PremiseParams)}
    assert params.texture_amplitude < float(Fraction(config["eps"]))  # the texture is fragile at the training eps
    if name == "premise.json":  # the decisive run: >= 8 seeds, >= 2000 fixed test images
        assert len(config["seeds"]) >= 8 and config["eval_limit"] >= 2000 and params.n_test >= 2000
