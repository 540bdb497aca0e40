"""The phone-scale zoo models (resnet18, mobilenetv2, mobilenetv3-small): the published
architectures at 3x224x224 and 1000 classes, a CIFAR-style stem for small inputs, torchvision's
state-dict keys, and plain modules that torch.fx traces."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from torch import nn

from pakd.metrics import model_stats
from pakd.models import build_model, zoo

PHONE = ("resnet18", "mobilenetv2", "mobilenetv3-small")

# Published parameter counts (millions) at 1000 classes: ResNet-18 (He et al. 2016) 11.69M,
# MobileNetV2 1.0 (Sandler et al. 2018, table 4) 3.4M in the paper / 3.50M as released (with the
# 1280-wide last conv), MobileNetV3-small 1.0 (Howard et al. 2019, table 3) 2.5M / 2.54M released.
PUBLISHED_PARAMS = {"resnet18": 11.69e6, "mobilenetv2": 3.50e6, "mobilenetv3-small": 2.54e6}
# Published multiply-adds at 224x224: 1.8G (He et al., table 1), 300M (Sandler et al., table 4),
# 56M (Howard et al., table 3).
PUBLISHED_MACS = {"resnet18": 1.8e9, "mobilenetv2": 300e6, "mobilenetv3-small": 56e6}


def imagenet(name: str) -> nn.Module:
    return build_model(name, in_channels=3, num_classes=1000, input_size=224).eval()


def test_they_are_in_the_zoo():
    assert set(PHONE) <= set(zoo())


@pytest.mark.parametrize("name", PHONE)
def test_parameters_and_macs_match_the_published_networks(name):
    stats = model_stats(imagenet(name), (3, 224, 224))
    assert abs(stats.params / PUBLISHED_PARAMS[name] - 1) < 0.01, stats.params
    assert abs(stats.macs / PUBLISHED_MACS[name] - 1) < 0.02, stats.macs


@pytest.mark.slow
@pytest.mark.parametrize("name", PHONE)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 224, 224)])
def test_forward_at_small_and_imagenet_sizes(name, shape):
    model = build_model(name, in_channels=shape[0], num_classes=7, input_size=shape[1]).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    traced = fx.symbolic_trace(model)  # plain modules: the pruner and the lowering trace them
    with torch.no_grad():
        assert torch.allclose(traced(x), out, atol=1e-5)


@pytest.mark.parametrize("name", PHONE)
def test_the_input_size_picks_the_stem(name):
    """ImageNet stem: total stride 32 (224 -> 7); CIFAR-style below 112: total stride 8 (32 -> 4)."""

    def last_map(model: nn.Module, side: int) -> int:
        seen: list[int] = []
        # the head's global pool is the last one (mobilenetv3-small's SE blocks have their own)
        pool = [m for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)][-1]
        handle = pool.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].shape[-1]))
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, side, side))
        handle.remove()
        return seen[-1]

    assert last_map(build_model(name, in_channels=3, input_size=224), 224) == 7
    assert last_map(build_model(name, in_channels=3, input_size=32), 32) == 4
    small, big = model_stats(build_model(name, input_size=28)), model_stats(build_model(name, input_size=224))
    assert small.macs > big.macs  # same 28x28 image: the CIFAR stem keeps 8x the resolution


def test_mobilenetv3_small_has_the_papers_blocks():
    model = imagenet("mobilenetv3-small")
    blocks = list(model.features)[1:-1]
    assert len(blocks) == 11  # table 2's bneck rows
    with_se = [i for i, b in enumerate(blocks) if any(type(m).__name__ == "SqueezeExcite" for m in b.modules())]
    assert with_se == [0, 3, 4, 5, 6, 7, 8, 9, 10]
    kernels = [next(m for m in b.modules() if isinstance(m, nn.Conv2d) and m.groups > 1).kernel_size[0] for b in blocks]
    assert kernels == [3, 3, 3] + [5] * 8
    assert any(isinstance(m, nn.Hardswish) for m in model.modules())
    assert any(isinstance(m, nn.Hardsigmoid) for m in model.modules())
    se = model.features[1].block[1]
    assert (se.fc1.in_channels, se.fc1.out_channels) == (16, 8)  # squeeze = make_divisible(16 / 4, 8)


def test_torchvision_state_dict_keys():
    """torchvision checkpoints (state dicts) load into these without renaming."""
    r18 = imagenet("resnet18").state_dict()
    assert tuple(r18["conv1.weight"].shape) == (64, 3, 7, 7)
    assert tuple(r18["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert tuple(r18["fc.weight"].shape) == (1000, 512)
    v3 = imagenet("mobilenetv3-small").state_dict()
    assert tuple(v3["features.0.0.weight"].shape) == (16, 3, 3, 3)
    assert tuple(v3["features.1.block.1.fc1.weight"].shape) == (8, 16, 1, 1)
    assert tuple(v3["features.5.block.2.fc2.bias"].shape) == (240,)
    assert tuple(v3["features.12.0.weight"].shape) == (576, 96, 1, 1)
    assert tuple(v3["classifier.3.weight"].shape) == (1000, 1024)
