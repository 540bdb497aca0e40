"""Lowering PyTorch models to the runtime's op graph (pakd/lower/native.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pakd.lower.accountant import serialize
from pakd.lower.format import read_pakd
from pakd.lower.native import LoweringError, export_pakd, lower
from pakd.models import build_model


def test_lenet5_lowers_to_fused_ops():
    ops = lower(build_model("lenet5").eval(), (1, 28, 28)).describe()
    assert [o.split()[0] for o in ops] == [
        "conv2d+relu",
        "maxpool",
        "conv2d+relu",
        "maxpool",
        "reshape",
        "linear+relu",
        "linear",
    ]


def test_batch_norm_is_folded_and_activations_fused_in_resnet20():
    lowered = lower(build_model("resnet20").eval(), (1, 28, 28))
    kinds = [o.split()[0] for o in lowered.describe()]
    assert not any(k.startswith(("affine", "act")) for k in kinds)  # every BN folded, every ReLU fused
    assert kinds.count("add+relu") == 9 and kinds[-1] == "linear"
    assert kinds.count("conv2d") + kinds.count("conv2d+relu") == 21  # 19 3x3 + 2 projection shortcuts


def test_mobilenetv2_depthwise_and_relu6():
    kinds = [o.split()[0] for o in lower(build_model("mobilenetv2", width_mult=0.5).eval(), (1, 28, 28)).describe()]
    assert "conv2d+relu6" in kinds and "global-avgpool" in kinds


class _Sine(nn.Module):
    def forward(self, x):
        return torch.sin(x).flatten(1)


def test_unsupported_op_names_it():
    with pytest.raises(LoweringError, match="function sin has no native op"):
        lower(_Sine(), (1, 4, 4))


def test_unloweable_model_still_gets_a_weights_only_file():
    model = nn.Sequential(nn.Linear(16, 4), nn.GELU())
    blob = serialize(model, {"input_shape": [16]})
    _, tensors = read_pakd(blob)
    assert set(tensors) == {"0.weight", "0.bias"}


def test_export_from_a_model_folder(tmp_path):
    from pakd.modelio import save_model

    model = build_model("lenet-300-100")
    save_model(
        tmp_path / "m", model, {"model": {"name": "lenet-300-100", "args": {}}, "data": {"input_shape": [1, 28, 28]}}
    )
    blob = export_pakd(tmp_path / "m", tmp_path / "m.pakd")
    assert (tmp_path / "m.pakd").read_bytes() == blob
    meta, _ = read_pakd(blob)
    assert meta["input_shape"] == [1, 28, 28] and meta["model"]["name"] == "lenet-300-100"
