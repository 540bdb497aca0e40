"""The depthwise convolution kernels (csrc/src/kernels/f32-dwconv-*.cc, list f32-dwconv-list.inc).

Every supported kernel against the family's reference (the first kernel of the list) and against
``torch.nn.functional.conv2d(groups=C)`` on awkward sizes: 1x1..9x9 images, 3x3 and 5x5 filters,
stride 1 and 2, padding 0..2, odd widths past the 4- and 8-wide vectors, 1..37 channels, batch 1
and 2; then the fused bias + clamp (ReLU, ReLU6) and a session running a depthwise layer.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pakd import _core
from pakd._core import Session
from pakd.lower.native import export_pakd

KERNELS = [k["name"] for k in _core.kernels("f32-dwconv")]
REFERENCE = KERNELS[0]

# (channels, batch) pairs and (size, kernel, stride, padding) grid, only shapes with an output
_CHANNELS = [(1, 1), (2, 2), (5, 1), (8, 2), (13, 1), (37, 2)]
_GEOMETRY = [
    (size, k, stride, pad)
    for size, k, stride, pad in itertools.product(range(1, 10), (3, 5), (1, 2), (0, 1, 2))
    if size + 2 * pad >= k
]


def _supported(kernel: str) -> bool:
    return next(k["supported"] for k in _core.kernels("f32-dwconv") if k["name"] == kernel)


def _torch(x, w, stride, pad, bias=None):
    with torch.no_grad():
        y = F.conv2d(
            torch.from_numpy(x).double(),
            torch.from_numpy(w).double().unsqueeze(1),
            None if bias is None else torch.from_numpy(bias).double(),
            stride=stride,
            padding=pad,
            groups=w.shape[0],
        )
    return y.numpy()


def test_the_family_is_listed_with_a_scalar_reference():
    assert "f32-dwconv" in _core.kernel_families()
    assert _core.kernels("f32-dwconv")[0]["isa"] == "scalar"
    assert _core.best_kernel("f32-dwconv") in KERNELS


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_matches_reference_and_torch(kernel):
    if not _supported(kernel):
        pytest.skip(f"f32-dwconv kernel {kernel} is not supported by this CPU")
    rng = np.random.default_rng(3)
    for i, (size, k, stride, pad) in enumerate(_GEOMETRY):
        c, n = _CHANNELS[i % len(_CHANNELS)]
        # odd widths: the height and width differ by 0..2
        h, w = size, size + (i % 3)
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((c, k, k)).astype(np.float32)
        got = _core.dwconv2d(x, wt, stride, pad, kernel=kernel)
        want = _core.dwconv2d(x, wt, stride, pad, kernel=REFERENCE)
        expect = _torch(x, wt, stride, pad)
        what = f"kernel={kernel} n={n} c={c} {h}x{w} k={k} s={stride} p={pad}"
        assert got.shape == expect.shape, what
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=what)
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-5, err_msg=what)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("lo", "hi"), [(0.0, float("inf")), (0.0, 6.0)])
def test_fused_bias_and_clamp(kernel, lo, hi):
    if not _supported(kernel):
        pytest.skip(f"f32-dwconv kernel {kernel} is not supported by this CPU")
    rng = np.random.default_rng(5)
    for c, size, k, stride, pad in [(37, 23, 3, 1, 1), (19, 28, 3, 2, 1), (11, 14, 5, 2, 2), (6, 15, 5, 1, 2)]:
        x = 3 * rng.standard_normal((2, c, size, size + 1)).astype(np.float32)
        wt = rng.standard_normal((c, k, k)).astype(np.float32)
        bias = rng.standard_normal(c).astype(np.float32)
        got = _core.dwconv2d(x, wt, stride, pad, bias=bias, lo=lo, hi=hi, kernel=kernel)
        expect = np.clip(_torch(x, wt, stride, pad, bias), lo, hi)
        assert got.min() >= lo and got.max() <= hi
        np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_value_errors():
    x = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="one filter per channel"):
        _core.dwconv2d(x, np.zeros((3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        _core.dwconv2d(x, np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="stride"):
        _core.dwconv2d(x, np.zeros((2, 3, 3), np.float32), stride=0)


class _Residual(nn.Module):
    """A depthwise layer whose output an add reads (fused: the kernel, then the epilogue pass)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, 1, 1, groups=c)

    def forward(self, x):
        return torch.relu(self.dw(x) + x)


def _session_models():
    c = 13
    bn = nn.BatchNorm2d(c)
    g = torch.Generator().manual_seed(1)
    bn.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
    bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return {
        "3x3-s1-relu6": nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=c), nn.ReLU6()),
        "3x3-s2-bn-relu": nn.Sequential(nn.Conv2d(c, c, 3, 2, 1, groups=c, bias=False), bn, nn.ReLU()),
        "5x5-s2-hardswish": nn.Sequential(nn.Conv2d(c, c, 5, 2, 2, groups=c), nn.Hardswish()),
        "5x5-s1-none": nn.Sequential(nn.Conv2d(c, c, 5, 1, 2, groups=c)),
        "3x3-dilated": nn.Sequential(nn.Conv2d(c, c, 3, 1, 2, dilation=2, groups=c), nn.ReLU()),
        "3x3-residual": _Residual(c),
    }


@pytest.mark.parametrize("name", list(_session_models()))
@pytest.mark.parametrize("threads", [1, 2])
def test_sessions_with_depthwise_layers_match_torch(name, threads, tmp_path):
    model = _session_models()[name].eval()
    path = tmp_path / "m.pakd"
    export_pakd(model, path, input_shape=(13, 17, 19))
    s = Session(str(path), max_batch=2, num_threads=threads)
    assert any("depthwise" in d for d, _ in s.profile(np.zeros((1, 13, 17, 19), np.float32), 1))
    rng = np.random.default_rng(0)
    for b in (1, 2):
        x = rng.standard_normal((b, 13, 17, 19), dtype=np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        got = np.asarray(s.run(x)).reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))
