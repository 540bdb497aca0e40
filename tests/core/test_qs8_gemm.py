"""int8 GEMM with dynamic activation quantization (pakd._core.qs8_gemm).

The int32 sums are exact, so every kernel (list from qs8_gemm_kernels()) must
agree with numpy's int64 product of the same int8 operands up to the float32
rounding of the final scale-and-bias step. Kernels the running CPU cannot
execute are reported as skipped.
"""

import numpy as np
import pytest

from pakd import _core

KERNELS = [k["name"] for k in _core.qs8_gemm_kernels()]
SUPPORTED = {k["name"]: k["supported"] for k in _core.qs8_gemm_kernels()}

# (m, k, n). AVX2 uses 4 x 16 tiles over k pairs, 64-row blocks and a 4-row
# n == 1 path over 16-element steps; NEON 4 x 8 tiles. These cover single
# elements, k odd, k < and > one step, vectors (n = 1), every kind of row and
# column remainder and several row blocks.
SHAPES = [
    (1, 1, 1),
    (1, 7, 1),
    (5, 33, 1),
    (8, 16, 1),
    (13, 300, 1),
    (2, 1, 5),
    (3, 3, 2),
    (4, 16, 16),
    (5, 17, 17),
    (7, 31, 9),
    (9, 64, 33),
    (20, 150, 49),
    (70, 40, 20),
    (16, 100, 100),
]

# Final step y = bias + (a_scale * x_scale) * float32(acc): a few float32
# roundings of the result (and float32(acc) itself when |acc| > 2^24).
RTOL = 1e-6


def _operands(m: int, k: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, size=(m, k), dtype=np.int8)  # -128 too: the kernels take any int8
    a_scale = rng.uniform(0.001, 0.01, size=m).astype(np.float32)
    x = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.uniform(-1, 1, size=m).astype(np.float32)
    return a, a_scale, x, bias


def _expected(a, a_scale, x, bias=None) -> np.ndarray:
    xq, x_scale = _core.quantize_s8(x)
    acc = a.astype(np.int64) @ xq.astype(np.int64).reshape(x.shape[0], -1)
    y = (a_scale.astype(np.float64) * np.float64(np.float32(x_scale)))[:, None] * acc
    if bias is not None:
        y = y + bias[:, None]
    return y.reshape((a.shape[0],) + x.shape[1:])


def _atol(expected: np.ndarray) -> float:
    return RTOL * float(np.abs(expected).max(initial=0.0)) + 1e-7


def _skip_unsupported(kernel: str) -> None:
    if not SUPPORTED[kernel]:
        pytest.skip(f"qs8 GEMM kernel {kernel!r} is not supported on this CPU")


@pytest.mark.parametrize("with_bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_matches_numpy_int64(kernel, shape, with_bias) -> None:
    _skip_unsupported(kernel)
    a, a_scale, x, bias = _operands(*shape)
    bias = bias if with_bias else None
    y = _core.qs8_gemm(a, a_scale, x, bias=bias, kernel=kernel)
    assert y.shape == (shape[0], shape[2]) and y.dtype == np.float32
    expected = _expected(a, a_scale, x, bias)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=_atol(expected))


@pytest.mark.parametrize("n", [1, 2, 16, 45, 200])
@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_agrees_with_reference(kernel, n) -> None:
    _skip_unsupported(kernel)
    a, a_scale, x, bias = _operands(67, 301, n, seed=1)
    ref = _core.qs8_gemm(a, a_scale, x, bias=bias, kernel="reference")
    np.testing.assert_allclose(_core.qs8_gemm(a, a_scale, x, bias=bias, kernel=kernel), ref, rtol=RTOL, atol=_atol(ref))


@pytest.mark.parametrize("kernel", KERNELS)
def test_extreme_values_are_exact(kernel) -> None:
    """All -128 weights times all -127 activations: the largest products."""
    _skip_unsupported(kernel)
    k = 1000
    a = np.full((5, k), -128, np.int8)
    x = np.full((k, 3), -1.0, np.float32)  # quantizes to -127, scale 1/127
    y = _core.qs8_gemm(a, np.ones(5, np.float32), x, kernel=kernel)
    np.testing.assert_allclose(y, np.full((5, 3), 128 * 127 * k / 127.0), rtol=RTOL)


@pytest.mark.parametrize("n", [1, 20])
@pytest.mark.parametrize("kernel", KERNELS)
def test_row_range_leaves_other_rows_untouched(kernel, n) -> None:
    _skip_unsupported(kernel)
    a, a_scale, x, bias = _operands(11, 40, n)
    out = np.full((11, n), 123.0, np.float32)
    y = _core.qs8_gemm(a, a_scale, x, bias=bias, kernel=kernel, out=out, rows=(3, 9))
    assert y is out
    np.testing.assert_array_equal(out[:3], 123.0)
    np.testing.assert_array_equal(out[9:], 123.0)
    expected = _expected(a, a_scale, x, bias)[3:9]
    np.testing.assert_allclose(out[3:9], expected, rtol=RTOL, atol=_atol(expected))


def test_vector_x_and_empty_dimensions() -> None:
    a, a_scale, x, bias = _operands(6, 10, 1)
    y = _core.qs8_gemm(a, a_scale, x[:, 0], bias=bias)
    assert y.shape == (6,)
    np.testing.assert_allclose(y, _expected(a, a_scale, x, bias)[:, 0], rtol=RTOL, atol=1e-6)
    assert _core.qs8_gemm(np.zeros((0, 4), np.int8), np.zeros(0), np.ones((4, 2))).shape == (0, 2)
    assert _core.qs8_gemm(a, a_scale, np.ones((10, 0))).shape == (6, 0)
    np.testing.assert_array_equal(  # k = 0: the bias alone
        _core.qs8_gemm(np.zeros((3, 0), np.int8), np.ones(3), np.zeros((0, 2)), bias=[1, 2, 3]),
        np.array([[1, 1], [2, 2], [3, 3]], np.float32),
    )


def test_quantized_product_is_close_to_float() -> None:
    """Per-row weight scales + one activation scale: ~1% error on random data."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((64, 512)).astype(np.float32)
    x = rng.standard_normal((512, 8)).astype(np.float32)
    w_scale = np.abs(w).max(axis=1) / 127
    w_q = np.round(w / w_scale[:, None]).astype(np.int8)
    y = _core.qs8_gemm(w_q, w_scale.astype(np.float32), x)
    exact = w.astype(np.float64) @ x
    assert np.linalg.norm(y - exact) / np.linalg.norm(exact) < 0.02


def test_quantize_s8() -> None:
    x = np.array([0.0, 1.0, -2.0, 0.5, 1.99, -0.004], np.float32)
    q, scale = _core.quantize_s8(x)
    assert q.dtype == np.int8 and q.shape == x.shape
    assert scale == pytest.approx(2.0 / 127)
    np.testing.assert_array_equal(q, [0, 64, -127, 32, 126, 0])  # halves round away from 0
    assert np.all(np.abs(q * scale - x) <= scale / 2 + 1e-7)


def test_quantize_s8_long_input_matches_numpy() -> None:
    """The vectorized body and the scalar tail agree with numpy."""
    x = np.random.default_rng(5).standard_normal(1000 + 13).astype(np.float32)
    q, scale = _core.quantize_s8(x)
    r = x / np.float32(scale)
    expected = np.clip(np.trunc(r + np.copysign(np.float32(0.5), r)), -127, 127)
    assert np.abs(q.astype(np.int32) - expected).max() <= 1  # x * (127 / max) vs x / scale
    assert np.abs(q).max() == 127


def test_quantize_s8_zero_and_non_finite_inputs() -> None:
    q, scale = _core.quantize_s8(np.zeros(20, np.float32))
    assert scale == 0.0 and not q.any()
    q, scale = _core.quantize_s8(np.zeros(0, np.float32))
    assert scale == 0.0 and q.shape == (0,)
    for bad in (np.nan, np.inf, -np.inf):
        x = np.full(37, 0.25, np.float32)
        x[[3, 30]] = bad
        q, _ = _core.quantize_s8(x)  # codes unspecified, but in range and no crash
        assert q.dtype == np.int8 and np.all(np.abs(q.astype(np.int32)) <= 127)


def test_default_kernel_is_the_best_supported() -> None:
    supported = [k["name"] for k in _core.qs8_gemm_kernels() if k["supported"]]
    assert _core.best_qs8_gemm_kernel() == supported[-1]
    assert KERNELS[0] == "reference" and SUPPORTED["reference"]


def test_unknown_kernel_raises_value_error() -> None:
    a, a_scale, x, _ = _operands(2, 3, 1)
    with pytest.raises(ValueError, match=r"unknown qs8_gemm kernel 'nope'.*reference"):
        _core.qs8_gemm(a, a_scale, x, kernel="nope")


UNSUPPORTED = [k for k in KERNELS if not SUPPORTED[k]]


@pytest.mark.skipif(not UNSUPPORTED, reason="every compiled-in qs8 kernel is supported on this CPU")
def test_unsupported_kernel_raises_not_implemented() -> None:
    a, a_scale, x, _ = _operands(2, 3, 1)
    for kernel in UNSUPPORTED:
        with pytest.raises(NotImplementedError, match=kernel):
            _core.qs8_gemm(a, a_scale, x, kernel=kernel)


_A, _S, _X, _B = _operands(2, 3, 4)
BAD_INPUTS = {
    "a-not-int8": (dict(a_q=_A.astype(np.int32)), r"a_q must be an int8 array \(got dtype int32\)"),
    "a-1d": (dict(a_q=_A[0]), r"a_q must be 2-D"),
    "scale-shape": (dict(a_scale=np.ones(3)), r"a_scale must have shape \(2,\)"),
    "x-rows": (dict(x=np.ones((4, 4))), r"shape mismatch.*\(2, 3\).*\(4, 4\)"),
    "x-3d": (dict(x=np.ones((3, 4, 1))), "x must be 1-D"),
    "bias-shape": (dict(bias=np.ones(4)), r"bias must have shape \(2,\)"),
    "rows": (dict(rows=(1, 3)), r"rows=\(1, 3\) is not a range"),
    "out-dtype": (dict(out=np.zeros((2, 4), np.float64)), "out must have dtype float32"),
    "out-shape": (dict(out=np.zeros((4, 2), np.float32)), "out has shape"),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs_raise_value_error(case) -> None:
    changes, message = case
    args = dict(a_q=_A, a_scale=_S, x=_X, bias=_B) | changes
    with pytest.raises(ValueError, match=message):
        _core.qs8_gemm(**args)
