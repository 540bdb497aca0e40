"""Direct stride-1 convolution kernels (kernels/f32-dconv-*.cc, f32-sdconv-*.cc) against PyTorch's conv2d."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pakd import _core

DIRECT = ("f32-dconv-wide", "f32-dconv-oc", "f32-sdconv")  # the kernel lists conv2d_direct looks names up in


def _names(family: str) -> list[str]:
    return [k["name"] for k in _core.kernels(family)]


def _supported(kernel: str, family: str) -> bool:
    return next(k["supported"] for k in _core.kernels(family) if k["name"] == kernel)


def _family(kernel: str) -> str:
    return next(f for f in DIRECT if kernel in _names(f))


@pytest.mark.parametrize("kernel", [name for family in DIRECT for name in _names(family)])
@pytest.mark.parametrize(
    "cin, cout, h, w, k, pad",
    [
        (1, 1, 5, 5, 3, 1),
        (3, 5, 7, 9, 3, 1),
        (16, 16, 28, 28, 3, 1),
        (8, 33, 7, 7, 3, 1),
        (2, 4, 6, 6, 5, 0),
        (20, 50, 12, 12, 5, 0),
        (4, 6, 3, 3, 3, 2),
        (1, 9, 28, 28, 1, 0),
        (3, 4, 10, 10, 2, 0),
        (64, 64, 7, 7, 3, 1),
        (11, 29, 12, 12, 5, 0),
        (5, 17, 1, 1, 1, 0),
    ],
)
def test_direct_conv_matches_torch(kernel, cin, cout, h, w, k, pad):
    if not _supported(kernel, _family(kernel)):
        pytest.skip(f"{kernel} direct convolution needs a CPU feature this machine lacks")
    rng = np.random.default_rng(cin * 100 + cout)
    x = rng.standard_normal((cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
    if _family(kernel) == "f32-sdconv":
        wt[rng.random(wt.shape) < 0.6] = 0  # the sparse kernel skips zeros
    y = _core.conv2d_direct(x, wt, pad, pad, kernel)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None], torch.from_numpy(wt), padding=pad)[0].numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4 * np.sqrt(cin * k * k))


def test_unknown_direct_conv_kernel():
    with pytest.raises(ValueError, match="unknown direct convolution kernel 'x'"):
        _core.conv2d_direct(np.zeros((1, 3, 3), np.float32), np.zeros((1, 1, 3, 3), np.float32), 0, 0, "x")


@pytest.mark.parametrize("kernel", _names("f32-sdconv"))
@pytest.mark.parametrize("density", [0.0, 0.1, 0.55, 1.0])
@pytest.mark.parametrize(
    "cin, cout, h, w, k, pad",
    [
        (10, 21, 12, 12, 5, 0),
        (1, 10, 28, 28, 5, 0),
        (2, 3, 6, 20, 11, 5),
        (3, 4, 5, 5, 3, 9),
        (4, 5, 17, 23, 3, 1),
    ],
)
def test_sparse_direct_conv_tiles_and_densities(kernel, density, cin, cout, h, w, k, pad):
    """2-D output tiles: rows and columns past multiples of 8, pads wider than a tile, kernels wider than 9."""
    if not _supported(kernel, "f32-sdconv"):
        pytest.skip(f"{kernel} direct convolution needs a CPU feature this machine lacks")
    rng = np.random.default_rng(cin * 1000 + cout * 10 + k)
    x = rng.standard_normal((cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
    wt[rng.random(wt.shape) >= density] = 0
    y = _core.conv2d_direct(x, wt, pad, pad, kernel)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None], torch.from_numpy(wt), padding=pad)[0].numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4 * np.sqrt(cin * k * k))


@pytest.mark.parametrize("kernel", _names("f32-dconv-oc"))
@pytest.mark.parametrize(
    "cin, cout, h, w, k, pad, stride",
    [
        (16, 32, 28, 28, 3, 1, 2),
        (32, 64, 14, 14, 3, 1, 2),
        (16, 32, 28, 28, 1, 0, 2),  # ResNet-20's
        (3, 5, 9, 7, 3, 1, 2),
        (5, 17, 11, 10, 3, 0, 3),
        (7, 9, 8, 8, 1, 0, 2),
        (4, 6, 13, 13, 5, 2, 2),
    ],
)
def test_strided_direct_conv_matches_torch(kernel, cin, cout, h, w, k, pad, stride):
    if not _supported(kernel, "f32-dconv-oc"):
        pytest.skip(f"{kernel} direct convolution needs a CPU feature this machine lacks")
    rng = np.random.default_rng(cin * 10 + stride)
    x = rng.standard_normal((cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
    y = _core.conv2d_direct(x, wt, pad, pad, kernel, stride=stride)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None], torch.from_numpy(wt), padding=pad, stride=stride)[
        0
    ].numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4 * np.sqrt(cin * k * k))


def test_stride_only_for_the_6x16_kernels():
    with pytest.raises(ValueError, match="stride must be >= 1"):
        _core.conv2d_direct(
            np.zeros((1, 5, 5), np.float32), np.zeros((1, 1, 3, 3), np.float32), 0, 0, "4x24-scalar", stride=2
        )


class _Depthwise(torch.nn.Module):
    def __init__(self, c: int, k: int, stride: int, pad: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(c, c, k, stride=stride, padding=pad, groups=c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


@pytest.mark.parametrize(
    "c, h, w, k, stride, pad",
    [
        (8, 12, 12, 3, 1, 1),  # the 3x3 path: interior rows and columns without bounds checks
        (8, 12, 12, 3, 2, 1),
        (5, 9, 11, 3, 2, 1),  # odd sizes: a last column / row at the border
        (3, 7, 6, 3, 1, 0),  # no padding: every position is interior
        (4, 3, 3, 3, 1, 2),  # padding 2: one interior position
        (4, 2, 2, 3, 1, 1),  # no interior at all
        (6, 2, 9, 3, 2, 1),  # one interior row at most
        (4, 10, 10, 5, 1, 2),  # 5x5: the general loop only
        (4, 10, 10, 3, 3, 1),  # stride 3: the general loop only
    ],
)
def test_depthwise_conv_matches_the_reference(tmp_path, c, h, w, k, stride, pad):
    from pakd.lower.native import export_pakd

    torch.manual_seed(0)
    model = _Depthwise(c, k, stride, pad).eval()
    path = tmp_path / "dw.pakd"
    export_pakd(model, path, input_shape=(c, h, w))
    x = torch.randn(c, h, w)
    got = np.asarray(_core.Session(str(path)).run(x.numpy()))
    oracle = np.asarray(_core.Session(str(path), reference=True).run(x.numpy()))
    with torch.no_grad():
        want = model(x[None])[0].numpy()
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, oracle, rtol=1e-5, atol=1e-6)
