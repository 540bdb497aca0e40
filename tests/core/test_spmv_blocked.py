"""The blocked batch-1 sparse kernels (kernels/f32-spmv-8x8-*.cc, format kernels/f32-spmv-pack.cc)
against a float64 product, over shapes on and off multiples of 8 and densities 0 to 1."""

from __future__ import annotations

import numpy as np
import pytest

from pakd import _core

KERNELS = [k["name"] for k in _core.kernels("f32-spmv")]


def _supported(kernel: str) -> bool:
    return next(k["supported"] for k in _core.kernels("f32-spmv") if k["name"] == kernel)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("density", [0.0, 0.02, 0.16, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("m, k", [(1, 1), (8, 8), (231, 336), (10, 7), (77, 333), (500, 800), (3, 2048), (65, 9)])
def test_blocked_spmv_matches_float64(kernel, density, m, k):
    if not _supported(kernel):
        pytest.skip(f"{kernel} needs a CPU feature this machine lacks")
    rng = np.random.default_rng(m * 7 + k)
    w = rng.standard_normal((m, k)).astype(np.float32)
    w[rng.random((m, k)) >= density] = 0
    x = rng.standard_normal(k).astype(np.float32)
    y = _core.spmv_blocked(w, x, kernel)
    expected = w.astype(np.float64) @ x.astype(np.float64)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize("kernel", KERNELS)
def test_clustered_rows_and_empty_panels(kernel):
    """Rows whose nonzeros all sit in one panel (long steps) next to empty rows and panels."""
    if not _supported(kernel):
        pytest.skip(f"{kernel} needs a CPU feature this machine lacks")
    w = np.zeros((19, 40), np.float32)
    w[3, 8:16] = np.arange(1, 9)
    w[4, :] = 0.5
    w[18, 39] = -2.0
    x = np.linspace(-1, 1, 40, dtype=np.float32)
    np.testing.assert_allclose(_core.spmv_blocked(w, x, kernel), w.astype(np.float64) @ x, rtol=1e-6, atol=1e-6)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown blocked spmv kernel 'x'"):
        _core.spmv_blocked(np.zeros((2, 3), np.float32), np.zeros(3, np.float32), "x")
    with pytest.raises(ValueError, match="expects w"):
        _core.spmv_blocked(np.zeros((2, 3), np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="above the format's 2048 columns"):
        _core.spmv_blocked(np.ones((2, 2049), np.float32), np.zeros(2049, np.float32))
