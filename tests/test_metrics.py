"""Parameters, nonzeros, MACs and dense bytes."""

import torch
from torch import nn

from pakd.metrics import model_stats
from pakd.models import build_model


def test_nonzeros_follow_pruning():
    model = build_model("lenet-300-100")
    with torch.no_grad():
        model[1].weight[:, :392] = 0  # half of the first layer
    stats = model_stats(model)
    assert stats.params == 266_610
    assert stats.nonzeros == 266_610 - 300 * 392
    first = next(layer for layer in stats.layers if layer.name == "1")
    assert first.params == 784 * 300 + 300 and first.nonzeros == first.params - 300 * 392


def test_dense_bytes_are_four_per_parameter():
    stats = model_stats(build_model("lenet5"))
    assert stats.dense_fp32_bytes == 4 * stats.params


def test_depthwise_macs_count_one_input_channel_per_group():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False))
    assert model_stats(model, (8, 10, 10)).macs == 8 * 10 * 10 * 9


def test_shared_parameters_are_counted_once():
    lin = nn.Linear(4, 4)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert model_stats(model, (4,)).params == 20
