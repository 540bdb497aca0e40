"""Lowering of the ops of mobile networks (format 1.1): what each form becomes, what is refused and
how the refusal names the node and its source line, and `pakd build --backend auto` falling back
to TVM for a model the native runtime cannot run (and saying so)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pakd.lower.format import VERSION, read_pakd
from pakd.lower.native import LoweringError, export_pakd, lower


class _Lambda(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.conv(x))


def _kinds(fn, shape=(4, 6, 6)) -> list[str]:
    return [d.split()[0] for d in lower(_Lambda(fn).eval(), shape).describe()]


@pytest.mark.parametrize(
    ("fn", "kinds"),
    [
        (lambda y: F.hardsigmoid(y), ["conv2d+hardsigmoid"]),
        (lambda y: F.hardsigmoid(y, inplace=True), ["conv2d+hardsigmoid"]),
        (lambda y: F.silu(y), ["conv2d+silu"]),
        (lambda y: F.gelu(y), ["conv2d+gelu"]),
        (lambda y: F.gelu(y, approximate="tanh"), ["conv2d+gelu-tanh"]),
        (lambda y: torch.clamp(y, 0, 6), ["conv2d+relu6"]),
        (lambda y: y.clamp(min=0), ["conv2d+relu"]),
        (lambda y: F.hardtanh(y, 0.0, 6.0), ["conv2d+relu6"]),
        (lambda y: F.hardtanh(y), ["conv2d", "clamp"]),
        (lambda y: y.clamp_(-1.0, 2.0), ["conv2d", "clamp"]),
        (lambda y: y.sigmoid_(), ["conv2d+sigmoid"]),
        (lambda y: F.relu(y, inplace=True), ["conv2d+relu"]),
        (lambda y: y * 2.0, ["conv2d", "binary-mul"]),
        (lambda y: 1.0 - y, ["conv2d", "binary-sub"]),
        (lambda y: y / 6, ["conv2d", "binary-div"]),
        (lambda y: F.relu(y + y), ["conv2d", "add+relu"]),  # same shapes: the add convolutions absorb
        (lambda y: F.hardswish(y * y.mean((2, 3), keepdim=True)), ["conv2d", "global-avgpool", "binary-mul+hardswish"]),
        (lambda y: y.mean((-1, -2)), ["conv2d", "global-avgpool"]),
        (lambda y: torch.mean(y, dim=[3, 2]), ["conv2d", "global-avgpool"]),
        (lambda y: y.mean((2, 3))[:, :, None, None] + y, ["conv2d", "global-avgpool", "reshape", "binary-add"]),
        (lambda y: F.dropout(y, 0.5, training=False).flatten(1), ["conv2d", "reshape"]),
        (lambda y: F.pad(y, (1, 1, 2, 2)), ["conv2d", "pad"]),
        (lambda y: F.interpolate(y, scale_factor=2), ["conv2d", "upsample"]),
        (lambda y: F.channel_shuffle(y, 2), ["conv2d", "channel-shuffle"]),
    ],
)
def test_forms_lower_to_runtime_ops(fn, kinds):
    assert _kinds(fn) == kinds


def test_symmetric_pad_folds_into_the_convolution():
    m = nn.Sequential(nn.ZeroPad2d(2), nn.Conv2d(4, 4, 3)).eval()
    low = lower(m, (4, 6, 6))
    assert [o.attrs[2:4] for o in low.ops] == [[2, 2]] and low.shapes[low.output] == (4, 8, 8)


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda y: y[:, :2], r"indexing with .* slices the tensor"),
        (lambda y: y.abs(), r"tensor method \.abs\(\) has no native op"),
        (lambda y: torch.tanh(y), r"function tanh has no native op"),
        (lambda y: y.permute(0, 2, 3, 1), r"permute with dims \(0, 2, 3, 1\)"),
        (lambda y: y.squeeze(), r"squeeze\(\) without dims"),
        (lambda y: F.pad(y, (1, 1, 1, 1), mode="reflect"), r"only zero padding"),
        (lambda y: F.interpolate(y, scale_factor=2, mode="bilinear"), r"mode='bilinear' is not supported"),
        (lambda y: y.mean(1), r"mean over dims \(1,\)"),
        (lambda y: F.dropout(y, 0.5), r"training=True"),
        (lambda y: y * y.mean((2, 3)), r"broadcasting needs equal ranks"),
    ],
)
def test_refusals_name_the_node_and_its_source_line(fn, message):
    with pytest.raises(LoweringError, match=message) as info:
        _kinds(fn, (4, 6, 4))
    text = str(info.value)
    assert text.startswith("node ")
    assert "test_mobile_lowering.py" in text  # the source line of the lambda in this file


def test_a_parameter_operand_is_refused_by_name():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(1, 4, 1, 1))
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.conv(x) * self.gamma

    with pytest.raises(LoweringError, match=r"node mul .*a parameter or buffer as an operand.*self\.gamma"):
        lower(Scaled().eval(), (4, 4, 4))


def test_an_in_place_method_whose_input_is_read_again_is_refused():
    class InPlace(nn.Module):
        def forward(self, x):
            x.mul_(2.0)  # fx keeps the return on the unmodified x
            return x + 1.0

    with pytest.raises(LoweringError, match=r"node mul_ .*in-place \.mul_\(\) on a tensor that is read again"):
        lower(_Lambda(InPlace()).eval(), (4, 4, 4))
    assert _kinds(lambda y: y.mul_(2.0).add_(1.0)) == ["conv2d", "binary-mul", "binary-add"]


def test_view_transpose_view_channel_shuffle():
    class Shuffle(nn.Module):
        def forward(self, x):
            n, c, h, w = x.size()
            return x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)

    low = lower(_Lambda(Shuffle()).eval(), (4, 6, 6))
    assert [d.split()[0] for d in low.describe()] == ["conv2d", "reshape", "channel-shuffle", "reshape"]


def test_files_are_format_1_1():
    blob = export_pakd(_Lambda(F.silu).eval(), input_shape=(4, 6, 6))
    assert VERSION == (1, 1)
    assert int.from_bytes(blob[4:6], "little") == 1 and int.from_bytes(blob[6:8], "little") == 1
    assert read_pakd(blob)[0]["input_shape"] == [4, 6, 6]


USER_MODULE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        y = torch.tanh(self.conv(x))  # no native op
        return self.fc(y.mean((2, 3)))


def factory():
    return Net()
"""


@pytest.mark.slow  # a TVM build
def test_auto_backend_falls_back_to_tvm_and_says_so(tmp_path, monkeypatch):
    from pakd.modelio import save_model
    from pakd.models import build_model

    (tmp_path / "ops14_user_net.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.manual_seed(0)
    name = "ops14_user_net:factory"
    folder = save_model(
        tmp_path / "model",
        build_model(name),
        {"model": {"name": name, "args": {}}, "data": {"name": "synthetic", "input_shape": [1, 28, 28]}},
    )
    out = tmp_path / "bundle"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}

    def pakd(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "pakd.cli", "build", str(folder), "--target", "host", "--out", str(out), *args]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)

    native = pakd("--backend", "native")
    assert native.returncode == 2, native.stderr
    line = native.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "node tanh" in line and "function tanh has no native op" in line
    assert 'ops14_user_net.py", line 13, in forward: y = torch.tanh(self.conv(x))' in line.replace("\n", "")
    r = pakd("--backend", "auto")
    assert r.returncode == 0, r.stderr
    assert "--backend auto: the native runtime lacks an op of this model, falling back to TVM" in r.stdout
    assert "tanh" in r.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"] == "tvm"
    assert "falling back to TVM" in manifest["auto_choice"]["fallback"]
