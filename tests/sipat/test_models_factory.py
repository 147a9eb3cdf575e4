"""sipat.models.new_model (seeded, any torchvision classifier, timm) and sipat.checkpoints (export round trip,
.safetensors weights, atomic writes)."""

from __future__ import annotations

import json

import pytest
import torch

from sipat.checkpoints import (
    atomic_write,
    atomic_write_text,
    export_model,
    load_exported,
    load_model,
    model_meta,
    save_checkpoint,
)
from sipat.models import NormalizedModel, build_model, gradcam_layer, new_model, torchvision_classifiers
from sipat.training import TrainConfig


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [v.clone() for v in model.state_dict().values()]


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_new_model_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a = new_model("cnn32", 4, 3, 32, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = new_model("cnn32", 4, 3, 32, seed=5)
    c = new_model("cnn32", 4, 3, 32, seed=6)
    assert _equal(_weights(a), _weights(b)) and not _equal(_weights(a), _weights(c))
    torch.manual_seed(5)
    assert _equal(_weights(a), _weights(build_model("cnn32", num_classes=4, in_channels=3, image_size=32)))


@pytest.mark.parametrize(("arch", "channels", "size"), [("mobilenet_v3_small", 3, 64), ("squeezenet1_1", 1, 64)])
def test_any_torchvision_classifier_by_name(arch, channels, size):
    assert arch in torchvision_classifiers()
    model = new_model(arch, 5, channels, size, seed=0).eval()
    assert isinstance(model, NormalizedModel) and model.arch == arch
    assert isinstance(gradcam_layer(model), torch.nn.Conv2d)
    x = torch.rand(2, channels, size, size, requires_grad=True)
    logits = model(x)
    logits.sum().backward()
    assert logits.shape == (2, 5) and x.grad is not None and x.grad.abs().sum() > 0


def test_inception_v3_at_299_px_returns_plain_logits_in_training_mode():
    model = new_model("inception_v3", 3, 3, 299, seed=0)
    assert model.training
    with torch.no_grad():
        out = model(torch.rand(2, 3, 299, 299))  # aux head off: a tensor, not InceptionOutputs
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)


def test_timm_models_by_prefix():
    pytest.importorskip("timm")
    model = new_model("timm:resnet18", 4, 1, 32, seed=0).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 32, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match="timm has no model"):
        new_model("timm:no_such_net", 4, 3, 32)


def test_export_and_load_round_trip(tmp_path):
    model = new_model("cnn32", 4, 3, 32, seed=1)
    with torch.no_grad():  # non-default BatchNorm statistics must travel too
        model(torch.rand(8, 3, 32, 32))
    model.eval()
    meta = model_meta(model, num_classes=4, in_channels=3, image_size=32, classes=["a", "b", "c", "d"])
    cfg = TrainConfig(method="pgd_at").with_recipe()
    out = export_model(tmp_path / "export", model, meta, cfg)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == ["a", "b", "c", "d"] and config["train_config"]["weight_decay"] == 5e-4
    loaded, loaded_config = load_exported(out)
    assert loaded_config["arch"] == "cnn32" and not loaded.training
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # the same file is a weights_path for build_model, as the .pt state dicts are
    again = build_model("cnn32", num_classes=4, in_channels=3, image_size=32, weights_path=out / "model.safetensors")
    assert _equal(_weights(again.net), _weights(model.net))


def test_checkpoint_round_trip_through_new_model(tmp_path):
    model = new_model("small_cnn", 10, 1, 28, seed=2).eval()
    meta = model_meta(model, num_classes=10, in_channels=1, image_size=28, classes=[str(i) for i in range(10)])
    path = save_checkpoint(tmp_path / "m.pt", model, TrainConfig(), meta=meta)
    loaded, ckpt = load_model(path)
    assert ckpt["meta"] == meta and _equal(_weights(loaded), _weights(model))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left behind


def test_load_exported_refuses_an_incomplete_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_exported(tmp_path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_simultaneous_writers_of_one_file_never_collide(tmp_path):
    """Two experiment processes started at once into one out dir (the documented way to use both cores) both
    write config.json; with one fixed temporary name, one renamed the other's file away (FileNotFoundError)."""
    import threading

    target, errors, start = tmp_path / "config.json", [], threading.Barrier(4)

    def writer(i: int) -> None:
        start.wait()
        for _ in range(200):
            try:
                atomic_write_text(target, f"writer {i}\n" * 100)
            except OSError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and [p.name for p in tmp_path.iterdir()] == ["config.json"]
    assert target.read_text() in {f"writer {i}\n" * 100 for i in range(4)}
