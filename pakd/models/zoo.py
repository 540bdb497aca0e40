"""The built-in architectures. Every model takes 1x28x28 images by default
(``in_channels`` and ``num_classes`` are configurable) and returns logits.

References:
- LeNet-300-100 and LeNet-5 as in Deep Compression (Han et al. 2016, Table 2/3): 267K and 431K
  weights. LeNet-5 is Caffe's: conv 20 (5x5) -> max-pool -> conv 50 (5x5) -> max-pool -> fc 500 ->
  fc 10. We put a ReLU after each conv (Caffe's has none); weight and MAC counts are unchanged.
- ResNet-20/56: He et al. 2016, CIFAR variant (3 stages of 16/32/64 channels, 6n+2 layers).
  Shortcuts that change shape use a 1x1 conv + BN projection (option B), so every tensor a
  pruner touches is a real layer.
- MobileNetV2: Sandler et al. 2018 with a width multiplier, strides adapted to 28x28 inputs.
"""

from __future__ import annotations

from torch import nn

from .registry import register_model


def _mlp_in_features(in_channels: int, input_size: int) -> int:
    return in_channels * input_size * input_size


@register_model(
    "lenet-300-100",
    "MLP 784-300-100-10 (Deep Compression's LeNet-300-100, 267K weights)",
    epochs=30,
    optimizer="adamw",
    lr=1e-3,
    weight_decay=1e-4,
    augment="flip",
    label_smoothing=0.0,
)
def lenet_300_100(in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(_mlp_in_features(in_channels, input_size), 300),
        nn.ReLU(inplace=True),
        nn.Linear(300, 100),
        nn.ReLU(inplace=True),
        nn.Linear(100, num_classes),
    )


class LeNet5(nn.Module):
    """Caffe LeNet-5 as used by Deep Compression (431K weights, 2.3M MACs at 28x28)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(20, 50, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = ((input_size - 4) // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(50 * side * side, 500),
            nn.ReLU(inplace=True),
            nn.Linear(500, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model(
    "lenet5",
    "LeNet-5 (Caffe/Deep Compression: conv20-conv50-fc500-fc10, 431K weights)",
    epochs=30,
    optimizer="sgd",
    lr=0.05,
    weight_decay=5e-4,
    augment="crop+flip",
    label_smoothing=0.0,
)
def lenet5(in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> nn.Module:
    return LeNet5(in_channels, num_classes, input_size)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class VGG(nn.Module):
    """VGG-style: stacks of 3x3 conv+BN+ReLU separated by max-pools, then two FC layers."""

    def __init__(
        self,
        cfg=(64, 64, "M", 128, 128, "M", 256, 256, "M"),
        in_channels: int = 1,
        num_classes: int = 10,
        hidden: int = 256,
        input_size: int = 28,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, side = in_channels, input_size
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                side //= 2
            else:
                layers += _conv_bn_relu(cin, int(v))
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model(
    "vgg-small",
    "VGG-style: 3x(2 conv3x3+BN+ReLU, max-pool) 64-128-256, fc 256, fc 10",
    epochs=30,
    optimizer="sgd",
    lr=0.05,
    weight_decay=5e-4,
    augment="crop+flip",
    label_smoothing=0.0,
)
def vgg_small(in_channels: int = 1, num_classes: int = 10, width: float = 1.0, input_size: int = 28) -> nn.Module:
    base: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, "M")
    cfg = tuple(v if isinstance(v, str) else max(1, int(round(v * width))) for v in base)
    return VGG(cfg, in_channels, num_classes, hidden=max(1, int(round(256 * width))), input_size=input_size)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for small images (He et al. 2016, section 4.2): depth = 6n + 2."""

    def __init__(self, depth: int, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, width))
        stages, cin = [], width
        for i, cout in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each residual branch
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


_RESNET_TRAIN = dict(epochs=20, optimizer="sgd", lr=0.1, weight_decay=5e-4, augment="crop+flip", label_smoothing=0.0)


@register_model("resnet20", "CIFAR-style ResNet-20 (3 stages 16-32-64, 0.27M weights)", **_RESNET_TRAIN)
def resnet20(in_channels: int = 1, num_classes: int = 10, width: int = 16) -> nn.Module:
    return CifarResNet(20, in_channels, num_classes, width)


@register_model("resnet56", "CIFAR-style ResNet-56 (3 stages 16-32-64, 0.86M weights)", **_RESNET_TRAIN)
def resnet56(in_channels: int = 1, num_classes: int = 10, width: int = 16) -> nn.Module:
    return CifarResNet(56, in_channels, num_classes, width)


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),  # depthwise
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False),  # linear bottleneck
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    # (expansion t, channels c, repeats n, stride s); strides adapted to 28x28 (28 -> 14 -> 7 -> 4)
    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 1),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width_mult: float = 1.0) -> None:
        super().__init__()
        cin = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, cin, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU6(inplace=True),
        ]
        for t, c, n, s in self.SETTINGS:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers += [nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        return self.classifier(self.flatten(self.pool(self.features(x))))


@register_model(
    "mobilenetv2",
    "MobileNetV2 with width multiplier (inverted residuals, depthwise convs)",
    epochs=30,
    optimizer="sgd",
    lr=0.05,
    weight_decay=4e-5,
    augment="crop+flip",
    label_smoothing=0.0,
)
def mobilenetv2(in_channels: int = 1, num_classes: int = 10, width_mult: float = 1.0) -> nn.Module:
    return MobileNetV2(in_channels, num_classes, width_mult)
