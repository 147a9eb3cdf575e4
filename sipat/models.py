"""Architectures for SIP-AT: small CNNs and torchvision nets, each behind its own input normaliser.

Every model that `build_model` returns takes images in [0, 1], shape (N, C, H, W), and returns logits
(N, num_classes). The normalisation lives *inside* the model (as in the paper) so that attack budgets such as
eps = 8/255 are measured in pixel units, and clamping to [0, 1] in the attacks is the valid image range.

`new_model` is the one factory (seeded, the caller's RNG untouched). Besides the `ARCHITECTURES` registry it
builds any torchvision classifier by name (``inception_v3`` at 299 px, as the authors use) and ``timm:<name>``
models when timm is installed. ImageNet weights can only come from a local file (`weights_path`, a ``.pt`` state
dict or ``.safetensors``, read by `sipat.weights`); nothing is ever downloaded. The two hand-written small
CNNs live in `sipat.small_cnns`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from sipat.small_cnns import CNN32, SmallCNN
from sipat.weights import load_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

# torchvision nets get the CIFAR-style stem (3x3 stride-1 first conv, no max-pool) at or below this size, so
# that 28-64 px inputs keep enough spatial resolution (DenseNet's transitions would otherwise shrink a 28 px
# image to nothing).
SMALL_INPUT_MAX = 64


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with mean/std as buffers (they move with ``.to(device)``).

    ``mean``/``std`` have one value per channel, or a single value used for every channel.
    Input (N, C, H, W) in [0, 1]; output the same shape.
    """

    mean: Tensor  # buffers, registered in __init__
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or len(mean) == 0:
            raise ValueError(f"mean and std need the same non-zero length, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std values must be positive, got {tuple(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        channels = self.mean.shape[1]
        if x.dim() != 4 or (channels != 1 and x.shape[1] != channels):
            raise ValueError(
                f"Normalize expects (N, {channels}, H, W) images, got shape {tuple(x.shape)}; "
                "build the model with the dataset's in_channels"
            )
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class NormalizedModel(nn.Module):
    """The normaliser, then the network: ``net(normalize(x))``. Inputs in [0, 1].

    ``net`` is the bare network (its state dict is what `weights_path` files hold); ``arch`` records
    which `ARCHITECTURES` entry built it (or None when wrapped by hand).
    """

    def __init__(self, normalize: Normalize, net: nn.Module, *, arch: str | None = None) -> None:
        super().__init__()
        self.normalize = normalize
        self.net = net
        self.arch = arch

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))


def _stats_for(mean: Sequence[float], std: Sequence[float], in_channels: int) -> tuple[list[float], list[float]]:
    """Adapt per-channel stats to ``in_channels``: same length as-is, one value repeated, else the average."""
    if len(mean) == in_channels:
        return list(mean), list(std)
    if len(mean) == 1:
        return list(mean) * in_channels, list(std) * in_channels
    m, s = sum(mean) / len(mean), sum(std) / len(std)
    return [m] * in_channels, [s] * in_channels


# ----------------------------------------------------------------------------------------------------------
# torchvision nets


def _small_stem(image_size: int | None) -> bool:
    return image_size is not None and image_size <= SMALL_INPUT_MAX


def _resnet(factory: Callable[..., nn.Module]) -> Callable[[int, int, int | None], nn.Module]:
    def build(in_channels: int, num_classes: int, image_size: int | None) -> nn.Module:
        net = factory(weights=None, num_classes=num_classes)
        if _small_stem(image_size):
            net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        return net

    return build


def _densenet121(in_channels: int, num_classes: int, image_size: int | None) -> nn.Module:
    net = torchvision.models.densenet121(weights=None, num_classes=num_classes)
    if _small_stem(image_size):
        net.features.conv0 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.features.pool0 = nn.Identity()
    elif in_channels != 3:
        net.features.conv0 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    return net


@dataclass(frozen=True)
class Architecture:
    """One registry entry.

    ``build(in_channels, num_classes, image_size)`` makes the bare network; ``mean``/``std`` are its
    normalisation stats; ``head``/``stem`` are state-dict key prefixes of the classifier and of the first
    conv (the only layers a `weights_path` file may disagree with, e.g. another class count);
    ``gradcam`` picks the Grad-CAM layer of the bare network.
    """

    build: Callable[[int, int, int | None], nn.Module]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    head: tuple[str, ...]
    stem: tuple[str, ...]
    gradcam: Callable[[nn.Module], nn.Module]
    description: str


ARCHITECTURES: dict[str, Architecture] = {
    "small_cnn": Architecture(
        build=lambda c, k, _s: SmallCNN(c, k),
        mean=MNIST_MEAN,
        std=MNIST_STD,
        head=("classifier.3.",),
        stem=("features.0.",),
        gradcam=lambda net: net.get_submodule("features.3"),
        description="2 conv + 2 FC, for 28x28 grey digits (MNIST stats)",
    ),
    "cnn32": Architecture(
        build=lambda c, k, _s: CNN32(c, k),
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        head=("classifier.3.",),
        stem=("features.0.",),
        gradcam=lambda net: net.get_submodule("features.8"),
        description="3 conv (BatchNorm) + 2 FC, for 32x32 colour images (CIFAR stats)",
    ),
    "resnet18": Architecture(
        build=_resnet(torchvision.models.resnet18),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        head=("fc.",),
        stem=("conv1.",),
        gradcam=lambda net: net.get_submodule("layer4"),
        description="torchvision ResNet-18 (ImageNet stats)",
    ),
    "resnet50": Architecture(
        build=_resnet(torchvision.models.resnet50),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        head=("fc.",),
        stem=("conv1.",),
        gradcam=lambda net: net.get_submodule("layer4"),
        description="torchvision ResNet-50 (ImageNet stats)",
    ),
    "densenet121": Architecture(
        build=_densenet121,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        head=("classifier.",),
        stem=("features.conv0.",),
        gradcam=lambda net: net.get_submodule("features.denseblock4"),
        description="torchvision DenseNet-121 (ImageNet stats)",
    ),
}


def _head_stem(net: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """State-dict prefixes of the last Linear (the classifier) and the first Conv2d (the stem) of ``net``."""
    linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    return tuple(f"{n}." for n in linears[-1:]), tuple(f"{n}." for n in convs[:1])


def _repeat_grey(net: nn.Module) -> nn.Module:
    """Feed 1-channel input to an RGB network by repeating it to 3 channels (a forward pre-hook, so the
    state-dict keys stay those of the RGB network and ImageNet weight files still load)."""
    net.register_forward_pre_hook(lambda _m, args: (args[0].expand(-1, 3, -1, -1), *args[1:]))
    return net


# torchvision nets whose auxiliary heads would make the training forward return a tuple: switched off.
_TORCHVISION_KWARGS: dict[str, dict[str, object]] = {
    "inception_v3": {"aux_logits": False, "init_weights": True},
    "googlenet": {"aux_logits": False, "init_weights": True},
}


def torchvision_classifiers() -> list[str]:
    """Every classification model name `torchvision.models.get_model` knows (``inception_v3`` wants 299 px)."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def _generic(arch: str, in_channels: int, num_classes: int) -> tuple[nn.Module, Sequence[float], Sequence[float]]:
    """A torchvision classifier by name, or ``timm:<name>`` when timm is installed; random weights."""
    if arch.startswith("timm:"):
        try:
            import timm
        except ImportError as exc:
            raise ValueError(f"{arch!r} needs timm: pip install 'sipat[timm]'") from exc
        name = arch[len("timm:") :]
        if name not in timm.list_models():
            raise ValueError(f"timm has no model {name!r}; see timm.list_models()")
        net = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
        cfg = getattr(net, "pretrained_cfg", {}) or {}
        return net, tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    if arch not in torchvision_classifiers():
        raise ValueError(
            f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}, a torchvision classifier "
            "(sipat.models.torchvision_classifiers()) or timm:<name>"
        )
    if in_channels not in (1, 3):
        raise ValueError(f"torchvision classifiers take 1 (repeated to RGB) or 3 channels; got {in_channels}")
    net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **_TORCHVISION_KWARGS.get(arch, {}))
    return (_repeat_grey(net) if in_channels == 1 else net), IMAGENET_MEAN, IMAGENET_STD


def build_model(
    arch: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int | None = None,
    weights_path: str | Path | None = None,
) -> NormalizedModel:
    """Build ``arch`` with random weights from the global RNG (or those of a local file), normaliser included.

    Prefer `new_model`, which draws the weights from a seed without touching the caller's RNG.

    Args:
        arch: a key of `ARCHITECTURES`; any other torchvision classifier by name (`torchvision_classifiers`,
            built by ``torchvision.models.get_model`` with its ImageNet stem whatever the size; grey input is
            repeated to RGB); or ``timm:<name>`` when timm is installed.
        num_classes: logits per image.
        in_channels: 1 (grey) or 3 (RGB) usually; the normaliser's stats are adapted (repeated or averaged).
        image_size: side of the (square) inputs in pixels, when known. For the `ARCHITECTURES` torchvision nets
            a size of at most `SMALL_INPUT_MAX` (64) swaps in the CIFAR-style stem (3x3 stride-1 conv, no
            max-pool); None or larger keeps the ImageNet stem. The small CNNs accept any size and ignore it.
        weights_path: a local ``.pt`` state dict or ``.safetensors`` file of the bare network (see
            `load_weights`). Never downloads.

    Returns:
        a `NormalizedModel` mapping (N, in_channels, H, W) in [0, 1] to (N, num_classes) logits, in train mode.
    """
    if num_classes < 1 or in_channels < 1:
        raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes} and {in_channels}")
    mean0: Sequence[float]
    std0: Sequence[float]
    if arch in ARCHITECTURES:
        spec = ARCHITECTURES[arch]
        net = spec.build(in_channels, num_classes, image_size)
        head, stem, mean0, std0 = spec.head, spec.stem, spec.mean, spec.std
    else:
        net, mean0, std0 = _generic(arch, in_channels, num_classes)
        head, stem = _head_stem(net)
    if weights_path is not None:
        load_weights(net, weights_path, head=head, stem=stem)
    mean, std = _stats_for(mean0, std0, in_channels)
    return NormalizedModel(Normalize(mean, std), net, arch=arch)


def new_model(
    arch: str,
    num_classes: int,
    in_channels: int,
    image_size: int | None = None,
    seed: int | None = None,
    *,
    weights_path: str | Path | None = None,
) -> NormalizedModel:
    """The one model factory: `build_model` with its random weights drawn from ``seed``.

    The global CPU RNG is forked, not reseeded, so the caller's random state is left as it was and the same
    seed gives the same initial weights wherever it is called (CLI, experiment runner, worker). ``seed`` None
    draws from the caller's RNG (advancing it). Arguments as in `build_model`.
    """
    if seed is None:
        return build_model(
            arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size, weights_path=weights_path
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(
            arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size, weights_path=weights_path
        )


def default_arch_for(image_size: int, in_channels: int) -> str:
    """A reasonable architecture for CPU-sized experiments: `small_cnn` for small grey images (<= 28 px),
    `cnn32` up to 64 px, `resnet18` above."""
    if in_channels == 1 and image_size <= 28:
        return "small_cnn"
    if image_size <= SMALL_INPUT_MAX:
        return "cnn32"
    return "resnet18"


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations Grad-CAM should use: the last convolutional feature map of ``model``.

    ResNets: ``layer4`` (output of the last residual block); DenseNet-121: ``features.denseblock4`` (its
    concatenated 1024-channel output; ``features`` itself ends in a BatchNorm whose output torchvision ReLUs
    in place); small CNNs: their last ``Conv2d``. Accepts a `NormalizedModel` or a bare network.
    """
    if isinstance(model, NormalizedModel):
        net = model.net
        if model.arch in ARCHITECTURES:
            return ARCHITECTURES[model.arch].gradcam(net)
    else:
        net = model
    if isinstance(net, torchvision.models.ResNet):
        return net.layer4
    if isinstance(net, torchvision.models.DenseNet):
        return net.features.denseblock4
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(net).__name__} has no Conv2d layer; Grad-CAM needs a convolutional model")
    return convs[-1]
