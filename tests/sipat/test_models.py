"""sipat.models: every architecture, the normaliser, local weights, and the Grad-CAM layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sipat.models import (
    ARCHITECTURES,
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    NormalizedModel,
    build_model,
    default_arch_for,
    gradcam_layer,
)

# (in_channels, input size, image_size given to build_model): grey 28 px with the small-input stem of the
# torchvision nets, forward only; RGB 32 px with their ImageNet stem (cheap on CPU) and an input gradient.
CASES = [(arch, *case) for arch in ARCHITECTURES for case in ((1, 28, 28), (3, 32, None))]


@pytest.mark.parametrize(("arch", "in_channels", "size", "stem_size"), CASES)
def test_every_architecture_maps_unit_images_to_logits(arch, in_channels, size, stem_size):
    torch.manual_seed(0)
    model = build_model(arch, num_classes=7, in_channels=in_channels, image_size=stem_size).eval()
    assert isinstance(model, NormalizedModel) and model.arch == arch
    layer = gradcam_layer(model)
    assert any(layer is m for m in model.modules())
    seen = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    x = torch.rand(2, in_channels, size, size, requires_grad=in_channels == 3)
    with torch.set_grad_enabled(x.requires_grad):
        logits = model(x)
    handle.remove()
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert len(seen) == 1 and len(seen[0]) == 4 and seen[0][0] == 2  # Grad-CAM's layer: an (N, C, h, w) map
    if x.requires_grad:  # the attacks need input gradients (checked once per architecture)
        (grad,) = torch.autograd.grad(logits.sum(), x)
        assert grad.shape == x.shape and grad.abs().sum() > 0


def test_small_cnn_takes_other_sizes():
    model = build_model("small_cnn", num_classes=10, in_channels=1).eval()
    assert model(torch.rand(3, 1, 20, 20)).shape == (3, 10)
    assert sum(p.numel() for p in model.parameters()) < 300_000  # kept small for CPU adversarial training


def test_torchvision_stem_follows_image_size():
    small = build_model("resnet18", num_classes=3, in_channels=3, image_size=32)
    large = build_model("resnet18", num_classes=3, in_channels=1, image_size=None)
    assert small.net.conv1.kernel_size == (3, 3) and isinstance(small.net.maxpool, nn.Identity)
    assert large.net.conv1.kernel_size == (7, 7) and large.net.conv1.in_channels == 1
    assert large.eval()(torch.rand(1, 1, 64, 64)).shape == (1, 3)


def test_normalize_matches_hand_computed_values():
    x = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1, 1).expand(3, 3, 2, 2)
    model = build_model("resnet18", num_classes=2, in_channels=3, image_size=32)
    out = model.normalize(x)
    for ch in range(3):
        for i, v in enumerate((0.0, 0.5, 1.0)):
            expected = (v - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch]
            assert out[i, ch, 1, 1].item() == pytest.approx(expected, rel=1e-6)
    assert out[1, 0, 0, 0].item() == pytest.approx((0.5 - 0.485) / 0.229)

    mnist = build_model("small_cnn", num_classes=10, in_channels=1)
    assert mnist.normalize(torch.full((1, 1, 2, 2), 0.1307)).abs().max() < 1e-6
    assert mnist.normalize(torch.ones(1, 1, 1, 1)).item() == pytest.approx((1 - 0.1307) / 0.3081)

    cifar = build_model("cnn32", num_classes=10, in_channels=3)
    assert cifar.normalize.mean.flatten().tolist() == pytest.approx(CIFAR_MEAN)
    assert cifar.normalize.std.flatten().tolist() == pytest.approx(CIFAR_STD)
    grey_cifar = build_model("cnn32", num_classes=10, in_channels=1)  # 1 channel: the averaged stats
    assert grey_cifar.normalize.mean.item() == pytest.approx(sum(CIFAR_MEAN) / 3)


def test_normalized_model_is_network_after_normaliser():
    net = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.constant_(net.weight, 2.0)
    model = NormalizedModel(Normalize([0.5], [0.25]), net)
    x = torch.tensor([[[[0.0, 0.5, 1.0]]]])
    torch.testing.assert_close(model(x), torch.tensor([[[[-4.0, 0.0, 4.0]]]]))  # 2 * (x - 0.5) / 0.25
    assert {"normalize.mean", "normalize.std"} <= set(model.state_dict())
    assert model.to(torch.float64).normalize.mean.dtype == torch.float64  # buffers move with the model
    with pytest.raises(ValueError, match="in_channels"):
        NormalizedModel(Normalize([0.1, 0.2, 0.3], [1, 1, 1]), nn.Identity())(torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match="positive"):
        Normalize([0.5], [0.0])


def test_unknown_arch_lists_the_choices():
    # vgg16 is a torchvision classifier and builds now; a name neither registry nor torchvision knows does not
    with pytest.raises(ValueError, match=r"vgg99.*densenet121.*resnet18.*torchvision"):
        build_model("vgg99", num_classes=2, in_channels=3)


def _params_equal(a: nn.Module, b: nn.Module, skip: str = "") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not (skip and k.startswith(skip)))


def test_weights_from_a_local_state_dict(tmp_path):
    torch.manual_seed(1)
    source = build_model("resnet18", num_classes=10, in_channels=3)
    path = tmp_path / "r18.pt"
    torch.save(source.net.state_dict(), path)
    torch.manual_seed(2)
    loaded = build_model("resnet18", num_classes=10, in_channels=3, weights_path=path)
    assert _params_equal(source.net, loaded.net)

    # a checkpoint dict, and the state dict of a whole NormalizedModel, work too
    torch.save({"epoch": 3, "state_dict": source.state_dict()}, tmp_path / "ckpt.pt")
    again = build_model("resnet18", num_classes=10, in_channels=3, weights_path=tmp_path / "ckpt.pt")
    assert _params_equal(source.net, again.net)


def test_weights_with_another_head_load_all_but_the_head(tmp_path):
    torch.manual_seed(1)
    source = build_model("densenet121", num_classes=1000, in_channels=3)
    path = tmp_path / "dn.pt"
    torch.save(source.net.state_dict(), path)
    with pytest.warns(UserWarning, match=r"classifier.*random init"):
        model = build_model("densenet121", num_classes=5, in_channels=3, weights_path=path)
    assert model.net.classifier.out_features == 5
    assert _params_equal(source.net, model.net, skip="classifier.")


def test_weights_for_grey_inputs_sum_the_rgb_stem(tmp_path):
    torch.manual_seed(1)
    source = build_model("resnet18", num_classes=4, in_channels=3)
    torch.save(source.net.state_dict(), tmp_path / "r.pt")
    with pytest.warns(UserWarning, match="summed"):
        grey = build_model("resnet18", num_classes=4, in_channels=1, weights_path=tmp_path / "r.pt")
    torch.testing.assert_close(grey.net.conv1.weight, source.net.conv1.weight.sum(dim=1, keepdim=True))
    with pytest.warns(UserWarning, match="first conv"):  # the 3x3 small-input stem cannot take a 7x7 kernel
        build_model("resnet18", num_classes=4, in_channels=3, image_size=32, weights_path=tmp_path / "r.pt")


def test_missing_or_foreign_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.pt"):
        build_model("resnet18", num_classes=2, in_channels=3, weights_path=tmp_path / "absent.pt")
    torch.save(build_model("small_cnn", num_classes=2, in_channels=1).net.state_dict(), tmp_path / "s.pt")
    with pytest.raises(ValueError, match="same architecture"):
        build_model("resnet18", num_classes=2, in_channels=3, weights_path=tmp_path / "s.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"junk\.pt"):
        build_model("small_cnn", num_classes=2, in_channels=1, weights_path=tmp_path / "junk.pt")


def test_gradcam_layer_of_bare_networks():
    r = build_model("resnet50", num_classes=2, in_channels=3, image_size=32)
    d = build_model("densenet121", num_classes=2, in_channels=3, image_size=32)
    s = build_model("small_cnn", num_classes=2, in_channels=1)
    assert gradcam_layer(r.net) is r.net.layer4 is gradcam_layer(r)
    assert gradcam_layer(d.net) is d.net.features.denseblock4
    assert gradcam_layer(s.net) is s.net.features[3] and isinstance(gradcam_layer(s), nn.Conv2d)
    with pytest.raises(ValueError, match="Conv2d"):
        gradcam_layer(nn.Linear(2, 2))


def test_default_arch_for():
    assert default_arch_for(28, 1) == "small_cnn"
    assert default_arch_for(32, 3) == "cnn32"
    assert default_arch_for(224, 3) == "resnet18"
    for size, ch in ((28, 1), (32, 3), (224, 3)):
        assert default_arch_for(size, ch) in ARCHITECTURES
