"""Winograd F(4x4, 3x3) convolution kernels (kernels/f32-wino4x4-*.cc) against PyTorch's conv2d.

Tolerance: F(4x4, 3x3) transforms with the points 0, +-1, +-2 amplify rounding by up to ~10x
over a direct f32 sum; the kernels must match a float64 PyTorch convolution within
2e-6 x sqrt(9 Cin) x the largest |output| (measured: about 4e-6 of the largest output at
Cin = 64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pakd import _core

KERNELS = [k["name"] for k in _core.kernels("f32-wino4x4")]


def _supported(kernel: str) -> bool:
    return next(k["supported"] for k in _core.kernels("f32-wino4x4") if k["name"] == kernel)


def _reference(x, w, b, pad, relu):
    y = torch.nn.functional.conv2d(
        torch.from_numpy(x)[None].double(),
        torch.from_numpy(w).double(),
        None if b is None else torch.from_numpy(b).double(),
        padding=pad,
    )[0]
    return (y.clamp(min=0) if relu else y).numpy()


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    "cin, cout, h, w, pad",
    [
        (16, 16, 28, 28, 1),
        (32, 32, 14, 14, 1),
        (64, 64, 7, 7, 1),  # ResNet-20's three stages
        (1, 1, 5, 5, 1),
        (3, 5, 7, 9, 1),
        (8, 33, 7, 7, 1),
        (13, 7, 11, 6, 1),
        (9, 17, 3, 3, 0),
        (5, 3, 1, 1, 1),
        (2, 4, 6, 13, 2),
        (24, 40, 10, 10, 0),
        (17, 16, 4, 4, 1),
    ],
)
@pytest.mark.parametrize("relu", [False, True])
def test_winograd_matches_torch(kernel, cin, cout, h, w, pad, relu):
    if not _supported(kernel):
        pytest.skip(f"{kernel} needs a CPU feature this machine lacks")
    rng = np.random.default_rng(cin * 100 + cout + h)
    x = rng.standard_normal((cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    ref = _reference(x, wt, b, pad, relu)
    tol = 2e-6 * np.sqrt(9 * cin) * max(1.0, float(np.abs(ref).max()))
    for parts in (1, 3):  # the tiles in one call, and split as threads would split them
        y = _core.conv2d_winograd(x, wt, b, pad, pad, relu, kernel, parts=parts)
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("kernel", KERNELS)
def test_winograd_without_bias(kernel):
    if not _supported(kernel):
        pytest.skip(f"{kernel} needs a CPU feature this machine lacks")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 9, 9)).astype(np.float32)
    wt = rng.standard_normal((10, 6, 3, 3)).astype(np.float32)
    ref = _reference(x, wt, None, 1, False)
    np.testing.assert_allclose(
        _core.conv2d_winograd(x, wt, None, 1, 1, False, kernel),
        ref,
        rtol=0,
        atol=2e-6 * np.sqrt(54) * np.abs(ref).max(),
    )


def test_bad_winograd_arguments_are_value_errors():
    x = np.zeros((2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="unknown Winograd kernel 'x'"):
        _core.conv2d_winograd(x, np.zeros((1, 2, 3, 3), np.float32), kernel="x")
    with pytest.raises(ValueError, match=r"expects x \(Cin, H, W\) and w \(Cout, Cin, 3, 3\)"):
        _core.conv2d_winograd(x, np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="kernel larger than the padded input"):
        _core.conv2d_winograd(np.zeros((2, 1, 1), np.float32), np.zeros((1, 2, 3, 3), np.float32), ph=0, pw=0)
    with pytest.raises(ValueError, match="bias must have shape"):
        _core.conv2d_winograd(x, np.zeros((1, 2, 3, 3), np.float32), np.zeros(3, np.float32))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(
    "cin, cout, h, w, pad",
    [(16, 16, 28, 28, 1), (10, 11, 14, 14, 1), (13, 7, 11, 6, 1), (9, 17, 3, 3, 0), (3, 5, 7, 9, 1)],
)
@pytest.mark.parametrize("relu", [False, True])
def test_winograd_with_a_residual_matches_torch(kernel, cin, cout, h, w, pad, relu):
    """A fused residual add: relu?(conv + bias + residual), edge tiles included."""
    if not _supported(kernel):
        pytest.skip(f"{kernel} needs a CPU feature this machine lacks")
    rng = np.random.default_rng(cin * 10 + cout + w)
    x = rng.standard_normal((cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    ref = _reference(x, wt, b, pad, False)
    r = (rng.standard_normal(ref.shape) * 4).astype(np.float32)
    ref = ref + r
    if relu:
        ref = np.maximum(ref, 0)
    tol = 2e-6 * np.sqrt(9 * cin) * max(1.0, float(np.abs(ref).max()))
    for parts in (1, 3):
        y = _core.conv2d_winograd(x, wt, b, pad, pad, relu, kernel, parts=parts, residual=r)
        np.testing.assert_allclose(y, ref, rtol=0, atol=tol)
    with pytest.raises(ValueError, match="residual"):
        _core.conv2d_winograd(x, wt, b, pad, pad, relu, kernel, residual=r[:-1])
