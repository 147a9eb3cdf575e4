"""The two small CNNs of the `sipat.models` registry (`small_cnn` for 28 px grey digits, `cnn32` for 32 px
colour images), sized for CPU budgets.

Their own module because they are the one place where network layers are written by hand; the registry, the
normaliser and the torchvision nets stay in `sipat.models`.
"""

from __future__ import annotations

from torch import Tensor, nn


class SmallCNN(nn.Module):
    """Two 3x3 conv layers (16, 32 channels, each ReLU + 2x2 max-pool), then FC 128, FC num_classes.

    Made for 28x28 MNIST-like digits; about 0.21 M parameters, ~1.2 M multiply-adds per 28x28 image, so
    10-step PGD training on a few thousand images takes seconds on a CPU. An adaptive average pool to 7x7
    before the FC layers accepts any input of at least 4x4 pixels.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)))


class CNN32(nn.Module):
    """Three conv blocks (3x3 conv, BatchNorm, ReLU, 2x2 max-pool) of 16, 32, 64 channels, then FC 128, FC out.

    Made for 32x32 colour images and CPU budgets (about 0.16 M parameters, ~3 M multiply-adds per image: a
    10-step PGD epoch over 2000 images takes ~8 s on 2 cores). BatchNorm sits on
    the conv layers only, so a training batch of one still works. An adaptive average pool to 4x4 accepts
    other input sizes (at least 8x8).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in = in_channels
        for width in (16, 32, 64):
            layers += [
                nn.Conv2d(width_in, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            width_in = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)))
