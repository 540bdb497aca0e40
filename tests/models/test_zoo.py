"""Every zoo model: forward shape, configurable channels/classes, and its MAC count checked
against an independent count from forward hooks (and against LeNet-5's published 2.3M)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pakd.metrics import model_stats
from pakd.models import build_model, zoo

SLOW = {
    "mobilenetv2",
    "resnet56",
    "resnet18",
    "mobilenetv3-small",
}  # seconds per test here: slow (left out by make test-fast)
ZOO = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(zoo())]


def hook_macs(model: nn.Module, input_shape=(1, 28, 28)) -> int:
    """Independent MAC count: output elements x (in_channels/groups x kernel area) per conv,
    out x in features per linear."""
    total = 0

    def conv_hook(m, _inp, out):
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, _inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", ZOO)
def test_forward_shape(name):
    model = build_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ZOO)
def test_channels_and_classes_are_configurable(name):
    model = build_model(name, in_channels=3, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 28, 28)).shape == (1, 7)


@pytest.mark.parametrize("name", ZOO)
def test_mac_count_matches_independent_count(name):
    model = build_model(name)
    stats = model_stats(model)
    assert stats.macs == hook_macs(model) > 0
    assert sum(layer.macs for layer in stats.layers) == stats.macs


def test_lenet5_is_deep_compressions():
    stats = model_stats(build_model("lenet5"))
    weights = sum(p.numel() for n, p in build_model("lenet5").named_parameters() if n.endswith("weight"))
    assert weights == 20 * 25 + 50 * 20 * 25 + 800 * 500 + 500 * 10 == 430_500  # "431K weights"
    # conv1 24x24x20x25 + conv2 8x8x50x500 + fc 800x500 + fc 500x10 = 2.29M ("2.3M MACs")
    assert stats.macs == 24 * 24 * 20 * 25 + 8 * 8 * 50 * 500 + 800 * 500 + 500 * 10
    assert round(stats.macs / 1e6, 1) == 2.3


def test_lenet_300_100_is_deep_compressions():
    weights = sum(p.numel() for n, p in build_model("lenet-300-100").named_parameters() if n.endswith("weight"))
    assert weights == 784 * 300 + 300 * 100 + 100 * 10  # 266,200: "267K weights"


def test_resnet_depths():
    convs = lambda m: sum(isinstance(x, nn.Conv2d) and x.kernel_size == (3, 3) for x in m.modules())  # noqa: E731
    assert convs(build_model("resnet20")) + 1 == 20  # 19 3x3 convs + the fc layer
    assert convs(build_model("resnet56")) + 1 == 56


def test_mobilenetv2_width_multiplier_shrinks_it():
    full, half = model_stats(build_model("mobilenetv2")), model_stats(build_model("mobilenetv2", width_mult=0.5))
    assert half.params < full.params and half.macs < 0.5 * full.macs
    assert any(m.groups > 1 for m in build_model("mobilenetv2").modules() if isinstance(m, nn.Conv2d))


def test_every_zoo_model_has_a_description_and_training_defaults():
    for entry in zoo().values():
        assert entry.description and entry.train_defaults.get("epochs", 0) > 0
