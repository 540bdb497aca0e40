"""The built-in architectures. Every model takes 1x28x28 images by default
(``in_channels`` and ``num_classes`` are configurable) and returns logits.

References:
- LeNet-300-100 and LeNet-5 as in Deep Compression (Han et al. 2016, Table 2/3): 267K and 431K
  weights. LeNet-5 is Caffe's: conv 20 (5x5) -> max-pool -> conv 50 (5x5) -> max-pool -> fc 500 ->
  fc 10. We put a ReLU after each conv (Caffe's has none); weight and MAC counts are unchanged.
- ResNet-20/56: He et al. 2016, CIFAR variant (3 stages of 16/32/64 channels, 6n+2 layers).
  Shortcuts that change shape use a 1x1 conv + BN projection (option B), so every tensor a
  pruner touches is a real layer.
- MobileNetV2: Sandler et al. 2018 (table 2) with a width multiplier.
- ResNet-18: He et al. 2016 (table 1, 18-layer column), torchvision's layout and state-dict keys.
- MobileNetV3-small: Howard et al. 2019 (table 2), torchvision's layout and state-dict keys:
  squeeze-excite (ReLU, hardsigmoid gate), hardswish, depthwise convs, inverted residuals.

Input size and stems: ``resnet18``, ``mobilenetv2`` and ``mobilenetv3-small`` take ``input_size``
(the side of the square input, default 28). At ``input_size >= 112`` they are the published
ImageNet networks (stride-2 stem, ResNet-18's 7x7 conv + max-pool, total stride 32); below it
they take a CIFAR-style stem (stride-1 3x3 stem, no max-pool, the first stride-2 stage at stride
1: total stride 8), so a 28x28 or 32x32 image still reaches a 4x4 map before the pooling. Every
one ends in a global average pool, so any input size runs; ``input_size`` only picks the stem.
"""

from __future__ import annotations

import torch
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


IMAGENET_MIN_SIZE = 112  # input_size from which the ImageNet stems are used (see the module docstring)


class MobileNetV2(nn.Module):
    # Sandler et al. 2018, table 2: (expansion t, channels c, repeats n, stride s), ImageNet strides
    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width_mult: float = 1.0, input_size: int = 28
    ) -> None:
        super().__init__()
        imagenet = input_size >= IMAGENET_MIN_SIZE
        cin = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, cin, 3, 2 if imagenet else 1, 1, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU6(inplace=True),
        ]
        for k, (t, c, n, s) in enumerate(self.SETTINGS):
            cout = _make_divisible(c * width_mult)
            if not imagenet and k == 1:  # small inputs: 28 -> 28 -> 14 -> 7 -> 4 (total stride 8)
                s = 1
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
    "MobileNetV2 (Sandler et al.) with width multiplier: inverted residuals, depthwise convs (3.50M at 1000 classes)",
    epochs=30,
    optimizer="sgd",
    lr=0.05,
    weight_decay=4e-5,
    augment="crop+flip",
    label_smoothing=0.0,
)
def mobilenetv2(
    in_channels: int = 1, num_classes: int = 10, width_mult: float = 1.0, input_size: int = 28
) -> nn.Module:
    return MobileNetV2(in_channels, num_classes, width_mult, input_size)


class ResNetBlock(nn.Module):
    """ResNet's basic block with torchvision's names (conv1/bn1/conv2/bn2/downsample), so a
    torchvision ResNet-18 state dict loads as it is."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:  # projection shortcut (option B)
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016, table 1): 4 stages of 2 basic blocks, 64-128-256-512 channels.

    ``input_size >= 112``: the ImageNet stem (7x7/2 conv + 3x3/2 max-pool); below it a 3x3/1 conv
    and no max-pool (the usual CIFAR ResNet-18)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> None:
        super().__init__()
        imagenet = input_size >= IMAGENET_MIN_SIZE
        if imagenet:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module | None = nn.MaxPool2d(3, 2, 1) if imagenet else None
        cin = 64
        stages = []
        for i, cout in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(ResNetBlock(cin, cout, stride), ResNetBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model(
    "resnet18",
    "ResNet-18 (He et al.): 4x2 basic blocks 64-512, ImageNet stem at input_size>=112 (11.69M at 1000 classes)",
    **_RESNET_TRAIN,
)
def resnet18(in_channels: int = 1, num_classes: int = 10, input_size: int = 28) -> nn.Module:
    return ResNet18(in_channels, num_classes, input_size)


# MobileNetV3 (Howard et al. 2019), with torchvision's module layout and state-dict keys.
_BN_V3 = dict(eps=0.001, momentum=0.01)  # the paper's / torchvision's batch-norm settings


def _conv_norm_act(
    cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: type[nn.Module] | None = None
) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (no bias) -> BN -> optional activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, **_BN_V3),  # type: ignore[arg-type]
    ]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.Hardswish) else act())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) as in MobileNetV3: global average pool, 1x1 conv
    down to ``squeeze`` channels, ReLU, 1x1 conv back, hardsigmoid gate, per-channel scale."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class InvertedResidualV3(nn.Module):
    """MobileNetV3's bneck: [1x1 expand] -> kxk depthwise -> [squeeze-excite] -> 1x1 linear project."""

    def __init__(
        self, cin: int, kernel: int, expanded: int, cout: int, se: bool, act: type[nn.Module], stride: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(_conv_norm_act(cin, expanded, 1, act=act))
        layers.append(_conv_norm_act(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if se:
            layers.append(SqueezeExcite(expanded, _make_divisible(expanded // 4, 8)))
        layers.append(_conv_norm_act(expanded, cout, 1))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV3Small(nn.Module):
    """MobileNetV3-small (Howard et al. 2019, table 2; the 1x1 576 conv without SE, as in
    torchvision, whose 2.54M parameters at 1000 classes it has)."""

    # (kernel, expanded, out, SE, activation, stride): table 2's bneck rows
    SETTINGS: tuple[tuple[int, int, int, bool, str, int], ...] = (
        (3, 16, 16, True, "RE", 2),
        (3, 72, 24, False, "RE", 2),
        (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2),
        (5, 240, 40, True, "HS", 1),
        (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1),
        (5, 144, 48, True, "HS", 1),
        (5, 288, 96, True, "HS", 2),
        (5, 576, 96, True, "HS", 1),
        (5, 576, 96, True, "HS", 1),
    )

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width_mult: float = 1.0, input_size: int = 28
    ) -> None:
        super().__init__()
        imagenet = input_size >= IMAGENET_MIN_SIZE
        acts: dict[str, type[nn.Module]] = {"RE": nn.ReLU, "HS": nn.Hardswish}
        cin = _make_divisible(16 * width_mult)
        layers: list[nn.Module] = [_conv_norm_act(in_channels, cin, 3, 2 if imagenet else 1, act=nn.Hardswish)]
        for k, (kernel, exp, out, se, act, stride) in enumerate(self.SETTINGS):
            if not imagenet and k == 0:  # small inputs: 28 -> 28 -> 14 -> 7 -> 4 (total stride 8)
                stride = 1
            cout = _make_divisible(out * width_mult)
            layers.append(
                InvertedResidualV3(cin, kernel, _make_divisible(exp * width_mult), cout, se, acts[act], stride)
            )
            cin = cout
        last_conv = 6 * cin
        layers.append(_conv_norm_act(cin, last_conv, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        last = _make_divisible(1024 * width_mult)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, last), nn.Hardswish(inplace=True), nn.Dropout(0.2), nn.Linear(last, num_classes)
        )
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


@register_model(
    "mobilenetv3-small",
    "MobileNetV3-small (Howard et al.): squeeze-excite + hardsigmoid, hardswish, depthwise (2.54M at 1000 classes)",
    epochs=30,
    optimizer="sgd",
    lr=0.05,
    weight_decay=4e-5,
    augment="crop+flip",
    label_smoothing=0.0,
)
def mobilenetv3_small(
    in_channels: int = 1, num_classes: int = 10, width_mult: float = 1.0, input_size: int = 28
) -> nn.Module:
    return MobileNetV3Small(in_channels, num_classes, width_mult, input_size)
