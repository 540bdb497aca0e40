"""The ops of real mobile networks (format 1.1) in the native runtime against PyTorch: element-wise
mul/add/sub/div with broadcasting and with a scalar, means over H and W, reshape-only indexing,
hardsigmoid / SiLU / GELU / ReLU6 / clamp / hardtanh in module, functional and method forms, zero
padding, nearest upsampling, channel shuffle (module and view-transpose-view), identity and dropout,
and a MobileNetV3-small-like network at 3x224x224. Each model runs on the optimized and the
reference kernels, batch 1 and 2, and must match PyTorch within 1e-4 (relative to the output scale
when it exceeds 1)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pakd._core import Session
from pakd.lower.native import export_pakd, lower

ATOL = 1e-4


def _randomize_bn(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
    return model.eval()


def _max_err(model: nn.Module, shape: tuple[int, ...], tmp_path, batches=(1, 2)) -> float:
    """Largest |native - torch| over the optimized and reference sessions, relative to the output scale."""
    path = tmp_path / "m.pakd"
    export_pakd(model, path, input_shape=shape)
    rng = np.random.default_rng(0)
    worst = 0.0
    for reference in (False, True):
        s = Session(str(path), max_batch=max(batches), reference=reference)
        for b in batches:
            x = rng.standard_normal((b, *shape), dtype=np.float32)
            with torch.no_grad():
                want = model(torch.from_numpy(x)).numpy().reshape(b, -1)
            got = np.asarray(s.run(x)).reshape(b, -1)
            scale = max(1.0, float(np.abs(want).max()))
            worst = max(worst, float(np.abs(got - want).max()) / scale)
    return worst


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, r: int = 4, gate: nn.Module | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.fc2 = nn.Conv2d(c // r, c, 1)
        self.gate = gate or nn.Hardsigmoid()

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = self.gate(self.fc2(F.relu(self.fc1(s))))
        return x * s


class SeLinear(nn.Module):
    """The torchvision-style SE with linear layers and [:, :, None, None] indexing."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(c, c // 2)
        self.fc2 = nn.Linear(c // 2, c)

    def forward(self, x):
        s = x.mean(dim=(-1, -2))
        s = torch.sigmoid(self.fc2(F.silu(self.fc1(s))))
        return s[:, :, None, None] * x


class Elementwise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.conv3 = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        y = self.conv(x)
        a = y * 0.5 + 1.0  # scalar constants
        b = 2.0 - y / 3.0  # constants first: c - x, and x / c
        c = torch.div(a, (b * b).add(1.0))  # two tensors, same shape
        p = F.avg_pool2d(y, (1, 7))  # (N, C, H, 1): broadcast over W
        q = y.mean((2, 3)).unsqueeze(-1).unsqueeze(-1)  # (N, C, 1, 1)
        r = (c - p) * q + torch.sub(y, q) - p / (q * q + 2)
        r = r + self.conv3(y)  # (N, 1, H, W): broadcast over C
        return self.conv2(r).flatten(1)


class Activations(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.ModuleList(nn.Conv2d(4, 4, 3, padding=1) for _ in range(12))
        self.acts = nn.ModuleList(
            [
                nn.Hardsigmoid(),
                nn.SiLU(inplace=True),
                nn.GELU(),
                nn.GELU(approximate="tanh"),
                nn.ReLU6(inplace=True),
                nn.Hardtanh(-2.0, 1.5),
                nn.Hardswish(inplace=True),
            ]
        )

    def forward(self, x):
        outs = [act(self.c[i](x)) for i, act in enumerate(self.acts)]
        outs.append(F.hardsigmoid(self.c[7](x), inplace=True))
        outs.append(torch.clamp(self.c[8](x), -0.5, 0.5))
        outs.append(self.c[9](x).clamp(min=0.0, max=6.0).sigmoid())
        outs.append(F.gelu(self.c[10](x), approximate="tanh") + F.hardtanh(x))
        outs.append(F.hardswish(self.c[11](x)).clamp_(max=0.3) * x.sigmoid() + F.silu(x) * F.relu6(x))
        return torch.cat(outs, 1)


class PadUpShuffle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))  # asymmetric: a pad op
        self.conv_s2 = nn.Conv2d(8, 8, 3, stride=2)
        self.conv = nn.Conv2d(8, 8, 3)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.shuffle = nn.ChannelShuffle(2)
        self.drop = nn.Dropout(0.3)
        self.idt = nn.Identity()
        self.g = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)

    def forward(self, x):
        y = self.conv_s2(self.pad(x))  # (8, 8, 8)
        y = self.conv(F.pad(y, (1, 1, 1, 1)))  # symmetric: folded into the convolution
        y = self.up(self.idt(y))  # (8, 16, 16)
        z = self.g(self.drop(y))
        n, c, h, w = z.shape
        z = z.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)  # the idiom
        z = self.shuffle(self.dw(z)) + F.dropout(y, 0.5, training=False)
        return F.interpolate(F.pad(z, (2, 0, 0, 1)), scale_factor=(2, 1))


def _mbv3_block(cin: int, exp: int, cout: int, k: int, stride: int, se: bool, hs: bool) -> nn.Module:
    return InvertedResidual(cin, exp, cout, k, stride, se, hs)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, exp: int, cout: int, k: int, stride: int, se: bool, hs: bool) -> None:
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        layers: list[nn.Module] = []
        if exp != cin:
            layers += [nn.Conv2d(cin, exp, 1, bias=False), nn.BatchNorm2d(exp), act(inplace=True)]
        layers += [
            nn.Conv2d(exp, exp, k, stride, k // 2, groups=exp, bias=False),
            nn.BatchNorm2d(exp),
            act(inplace=True),
        ]
        if se:
            layers.append(SqueezeExcite(exp, 4))
        layers += [nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3SmallLike(nn.Module):
    """MobileNetV3-small's layer table (Howard et al. 2019, table 2) at width 1.0."""

    CFG = [  # k, exp, out, se, hs, stride
        (3, 16, 16, True, False, 2),
        (3, 72, 24, False, False, 2),
        (3, 88, 24, False, False, 1),
        (5, 96, 40, True, True, 2),
        (5, 240, 40, True, True, 1),
        (5, 240, 40, True, True, 1),
        (5, 120, 48, True, True, 1),
        (5, 144, 48, True, True, 1),
        (5, 288, 96, True, True, 2),
        (5, 576, 96, True, True, 1),
        (5, 576, 96, True, True, 1),
    ]

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish()]
        c = 16
        for k, exp, out, se, hs, s in self.CFG:
            layers.append(InvertedResidual(c, exp, out, k, s, se, hs))
            c = out
        layers += [nn.Conv2d(c, 576, 1, bias=False), nn.BatchNorm2d(576), nn.Hardswish()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(576, 1024), nn.Hardswish(inplace=True), nn.Dropout(0.2), nn.Linear(1024, num_classes)
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


CASES = {
    "squeeze-excite": (
        lambda: nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Hardswish(), SqueezeExcite(16)),
        (3, 12, 12),
    ),
    "se-linear": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), SeLinear(8)), (3, 10, 10)),
    "elementwise": (Elementwise, (3, 9, 7)),
    "activations": (Activations, (4, 6, 6)),
    "pad-upsample-shuffle": (PadUpShuffle, (8, 16, 16)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_mobile_ops_match_torch(name, tmp_path):
    factory, shape = CASES[name]
    torch.manual_seed(0)
    model = _randomize_bn(factory())
    err = _max_err(model, shape, tmp_path)
    print(f"{name}: max error {err:.2e}")
    assert err < ATOL


def test_fusions(tmp_path):
    """SE's hardsigmoid fuses into its 1x1 conv, a symmetric pad into the next conv, activations
    into binary ops; identity and dropout disappear."""
    torch.manual_seed(0)
    ops = lower(_randomize_bn(PadUpShuffle()), (8, 16, 16)).describe()
    kinds = [o.split()[0] for o in ops]
    assert kinds.count("pad") == 2  # the two asymmetric ones
    assert kinds.count("channel-shuffle") == 2
    se = lower(_randomize_bn(nn.Sequential(nn.Conv2d(3, 16, 3), SqueezeExcite(16))), (3, 8, 8)).describe()
    kinds = [o.split()[0] for o in se]
    # the SE's 1x1 convolutions of a (C, 1, 1) value run as linear layers between free reshapes
    assert kinds == [
        "conv2d",
        "global-avgpool",
        "reshape",
        "linear+relu",
        "reshape",
        "reshape",
        "linear+hardsigmoid",
        "reshape",
        "binary-mul",
    ]
    el = lower(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Hardswish()), (3, 4, 4)).describe()
    assert [o.split()[0] for o in el] == ["conv2d+hardswish"]


def test_mobilenetv3_small_like_224(tmp_path):
    torch.manual_seed(0)
    model = _randomize_bn(MobileNetV3SmallLike())
    shape = (3, 224, 224)
    err = _max_err(model, shape, tmp_path, batches=(1,))
    print(f"mobilenetv3-small-like 224: max error {err:.2e}")
    assert err < ATOL
    # one quick latency measurement (printed, not asserted: the machine is shared)
    s = Session(str(tmp_path / "m.pakd"), num_threads=1)
    x = np.random.default_rng(1).standard_normal((1, *shape), dtype=np.float32)
    s.run(x)
    t0 = time.perf_counter()
    for _ in range(5):
        s.run(x)
    native_ms = (time.perf_counter() - t0) / 5 * 1e3
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            xt = torch.from_numpy(x)
            model(xt)
            t0 = time.perf_counter()
            for _ in range(5):
                model(xt)
            torch_ms = (time.perf_counter() - t0) / 5 * 1e3
    finally:
        torch.set_num_threads(threads)
    print(f"mobilenetv3-small-like 224, 1 thread, quick: native {native_ms:.2f} ms, torch eager {torch_ms:.2f} ms")


@pytest.mark.parametrize("name", ["mobilenetv3-small", "mobilenetv2", pytest.param("resnet18", marks=pytest.mark.slow)])
def test_zoo_phone_models_at_224(name, tmp_path):
    """The zoo's phone-scale networks themselves (not look-alikes) at 3x224x224 with the ImageNet
    stems: lowered whole (no TVM fallback), run natively on both kernel sets, within 1e-4."""
    from pakd.models import build_model

    torch.manual_seed(0)
    model = _randomize_bn(build_model(name, in_channels=3, num_classes=1000, input_size=224))
    kinds = {o.split()[0] for o in lower(model, (3, 224, 224)).describe()}
    if name == "mobilenetv3-small":
        assert {"binary-mul", "linear+hardsigmoid"} <= kinds  # its squeeze-excite blocks
        assert any("hardswish" in k for k in kinds)
    err = _max_err(model, (3, 224, 224), tmp_path, batches=(1,))
    print(f"{name} 224: max error {err:.2e}")
    assert err < ATOL


# ----------------------------------------------------------------------------------------------
# The loader validates the new ops' attributes and shapes (hand-altered graphs)
# ----------------------------------------------------------------------------------------------


class _AllNew(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        y = y * y.mean((2, 3), keepdim=True)  # binary, two inputs
        y = torch.clamp(y * 0.5, -1.0, 1.0)  # binary with a constant, clamp
        y = F.interpolate(F.pad(y, (0, 1, 0, 1)), scale_factor=2)  # pad, upsample
        return F.channel_shuffle(y, 2)


def _altered(alter) -> bytes:
    from pakd.lower.format import write_pakd

    low = lower(_AllNew().eval(), (4, 6, 6))
    by_type = {op.type: op for op in low.ops}
    alter(low, by_type)
    return write_pakd(low.tensors, {}, graph=low.graph_bytes())


def _binary_with_two(low):
    from pakd.lower.native import OP_BINARY

    return next(o for o in low.ops if o.type == OP_BINARY and len(o.inputs) == 2)


@pytest.mark.parametrize(
    ("alter", "message"),
    [
        (lambda low, t: t[12].attrs.__setitem__(0, 7), r"binary\): unknown kind 7"),
        (lambda low, t: t[12].attrs.__setitem__(2, 0x7F800000), r"constant is not finite"),
        (lambda low, t: t[13].attrs.__setitem__(0, 0x40000000), r"clamp\): bad bounds"),  # min 2 > max 1
        (lambda low, t: t[14].attrs.__setitem__(0, -1), r"pad\): bad padding"),
        (lambda low, t: t[15].attrs.__setitem__(0, 3), r"upsample\): output shape"),
        (lambda low, t: t[16].attrs.__setitem__(0, 3), r"channel-shuffle\): channels not divisible"),
        (lambda low, t: t[12].attrs.__setitem__(1, 2), r"bad constant side"),
        (lambda low, t: t[12].__setattr__("act", 9), r"unknown activation 9"),
    ],
)
def test_loader_refuses_bad_new_ops(alter, message):
    with pytest.raises(ValueError, match=message):
        Session(_altered(alter))


def test_loader_refuses_shapes_that_do_not_broadcast():
    def alter(low, t):
        op = _binary_with_two(low)
        low.shapes[op.inputs[1]] = (3, 1, 1)  # the mean's value: 3 channels against 4

    with pytest.raises(ValueError, match=r"do not broadcast|output shape"):
        Session(_altered(alter))
