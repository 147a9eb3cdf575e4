"""The salience predictor (issue 20): it learns, it beats the centre prior, it trains seeded and resumes."""

from __future__ import annotations

import pytest
import torch

from sipat.data import load_builtin
from sipat.predictor import (
    PredictorConfig,
    SaliencyNet,
    centre_prior,
    compare,
    human_mean,
    load_predictor,
    mc_dropout,
    predict_maps,
    train_predictor,
)
from sipat.predictor.train import masked_loss


@pytest.fixture(scope="module")
def shapes_small():
    return load_builtin("shapes", split="train", n_train=200), load_builtin("shapes", split="test", n_test=100)


def test_overfits_a_handful_of_maps_exactly(shapes_small):
    train, _ = shapes_small
    x, s = train.images[:4], train.salience[:4]
    cfg = PredictorConfig(epochs=150, batch_size=4, lr=1e-2, weight_decay=0, dropout=0.0, flip=False)
    result = train_predictor(x, s, cfg, device="cpu")
    p = predict_maps(result.model, x)
    assert torch.equal(p >= 0.5, s >= 0.5)  # every pixel on the right side of the mask threshold
    assert (p - s).abs().max() < 0.1
    assert result.history[-1]["loss"] < 0.01 < result.history[0]["loss"]


def test_held_out_cc_beats_the_centre_prior_on_shapes(shapes_small):
    train, test = shapes_small
    h_train = human_mean(train.salience, seed=0)
    h_test = human_mean(test.salience, seed=1)  # other annotators' paintings of other images
    model = train_predictor(train.images, h_train, PredictorConfig(epochs=4, width=8), device="cpu").model
    n, _, hh, ww = h_test.shape
    res = compare(h_test, {"predicted": predict_maps(model, test.images), "centre": centre_prior(n, hh, ww)})
    assert res["predicted"]["cc"] > res["centre"]["cc"] + 0.1
    assert res["predicted"]["auc"] > res["centre"]["auc"]


def test_loss_ignores_images_without_a_map():
    logits = torch.randn(3, 1, 8, 8)
    maps = torch.rand(3, 1, 8, 8)
    maps[1] = float("nan")
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[[0, 2]], maps[[0, 2]])
    assert torch.allclose(masked_loss(logits, maps), expected)
    none = torch.full_like(maps, float("nan"))
    assert masked_loss(logits, none).item() == 0.0


def test_unpainted_images_do_not_change_training(shapes_small):
    train, _ = shapes_small
    x, s = train.images[:12], train.salience[:12].clone()
    cfg = PredictorConfig(epochs=1, batch_size=4, width=8)
    only = train_predictor(x[:6], s[:6], cfg, device="cpu").model
    s[6:] = float("nan")
    mixed = train_predictor(x, s, cfg, device="cpu")
    assert mixed.trained_on == 6
    for a, b in zip(only.state_dict().values(), mixed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="no image carries"):
        train_predictor(x[6:], s[6:], cfg, device="cpu")


class _Stop(Exception):
    pass


def test_seeded_and_resumes_to_the_same_weights(shapes_small, tmp_path):
    train, _ = shapes_small
    x, s = train.images[:16], train.salience[:16]
    cfg = PredictorConfig(epochs=2, batch_size=8, width=8)
    seen = []
    full = train_predictor(x, s, cfg, device="cpu", progress=seen.append).model
    assert [(p.epoch, p.step) for p in seen] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert seen[-1].fraction == 1.0

    def stop_in_second_epoch(p):
        if p.epoch == 1:
            raise _Stop

    ckpt = tmp_path / "pred.pt"
    with pytest.raises(_Stop):
        train_predictor(x, s, cfg, device="cpu", progress=stop_in_second_epoch, checkpoint=ckpt)
    resumed = train_predictor(x, s, cfg, device="cpu", checkpoint=ckpt)
    assert len(resumed.history) == 2
    for a, b in zip(full.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    loaded = load_predictor(ckpt)
    assert torch.equal(predict_maps(loaded, x), predict_maps(full, x))
    with pytest.raises(ValueError, match="another config"):
        train_predictor(x, s, PredictorConfig(epochs=3, batch_size=8, width=8), device="cpu", checkpoint=ckpt)


def test_mc_dropout_is_seeded_and_leaves_state_alone():
    torch.manual_seed(0)
    model = SaliencyNet(3, width=8, dropout=0.3).train()
    x = torch.rand(5, 3, 16, 16)
    before = torch.get_rng_state()
    m1, s1 = mc_dropout(model, x, samples=4, seed=3)
    m2, s2 = mc_dropout(model, x, samples=4, seed=3)
    _, s3 = mc_dropout(model, x, samples=4, seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(m1, m2) and torch.equal(s1, s2) and not torch.equal(s1, s3)
    assert s1.shape == (5, 1, 16, 16) and (s1 > 0).any() and ((m1 >= 0) & (m1 <= 1)).all()
    wrapped = torch.nn.Sequential(model)  # the generic path, which re-runs the encoder for every sample
    mg, sg = mc_dropout(wrapped, x, samples=4, seed=3)
    assert torch.allclose(mg, m1, atol=1e-6) and torch.allclose(sg, s1, atol=1e-6)
    with pytest.raises(ValueError, match="no active dropout"):
        mc_dropout(SaliencyNet(3, width=8, dropout=0.0), x)


def test_prediction_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    model = SaliencyNet(3, width=8)
    x = torch.rand(6, 3, 16, 16)
    assert torch.allclose(predict_maps(model, x)[2:4], predict_maps(model, x[2:4]), atol=1e-6)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.rand(1, 3, 18, 18))
