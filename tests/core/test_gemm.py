"""Every f32 GEMM kernel of pakd._core against numpy in float64.

The kernel list comes from the library itself (gemm_kernels()), so a new
kernel is tested without touching this file. Kernels the running CPU cannot
execute are reported as skipped.
"""

import numpy as np
import pytest

from pakd import _core

KERNELS = [k["name"] for k in _core.gemm_kernels()]
SUPPORTED = {k["name"]: k["supported"] for k in _core.gemm_kernels()}

# (m, n, k): C(m x n) = A(m x k) @ B(k x n). Tiles in use are 4x8 and 6x16
# (KC = 256, MC = 128/168), so these cover: single elements, k = 0, vectors
# (m = 1 / n = 1), exact tiles, every kind of remainder, several K blocks
# (k > 256), several M blocks (m > 168) and the thin-A path (m <= 3).
SHAPES = [
    (1, 1, 1),
    (1, 1, 0),
    (5, 7, 0),
    (7, 13, 5),
    (1, 800, 500),
    (2, 33, 17),
    (3, 1024, 9),
    (1, 17, 300),
    (4, 8, 16),
    (6, 16, 256),
    (12, 32, 257),
    (5, 15, 3),
    (13, 1, 40),
    (64, 64, 64),
    (65, 33, 129),
    (100, 3, 700),
    (170, 50, 260),
    (256, 256, 256),
]


def _tolerance(k: int) -> float:
    """Absolute tolerance for inputs in [-1, 1).

    Each output is a sum of k products; float32 rounding error grows at most
    ~k * 2^-24 per unit of |a||b|, usually ~sqrt(k) * 2^-24. 1e-5 * (k + 1)
    is a generous bound that still catches any real indexing bug (those are
    O(1)).
    """
    return 1e-5 * (k + 1)


def _operands(m: int, n: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.0, 1.0, size=(m, k)).astype(np.float32)
    b = rng.uniform(-1.0, 1.0, size=(k, n)).astype(np.float32)
    return a, b


def _skip_unsupported(kernel: str) -> None:
    if not SUPPORTED[kernel]:
        pytest.skip(f"kernel {kernel!r} is not supported on this CPU")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_matches_numpy(kernel: str, shape: tuple[int, int, int]) -> None:
    _skip_unsupported(kernel)
    m, n, k = shape
    a, b = _operands(m, n, k)
    c = _core.gemm(a, b, kernel=kernel)
    assert c.shape == (m, n)
    assert c.dtype == np.float32
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, expected, rtol=1e-4, atol=_tolerance(k))


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_agrees_with_reference(kernel: str) -> None:
    """The reference kernel is the oracle: optimized kernels match it."""
    _skip_unsupported(kernel)
    a, b = _operands(37, 70, 300, seed=1)
    ref = _core.gemm(a, b, kernel="reference")
    np.testing.assert_allclose(_core.gemm(a, b, kernel=kernel), ref, rtol=1e-4, atol=_tolerance(300))


def test_default_kernel_is_the_best_supported() -> None:
    best = _core.best_gemm_kernel()
    assert best in KERNELS
    assert SUPPORTED[best]
    a, b = _operands(9, 17, 33)
    np.testing.assert_array_equal(_core.gemm(a, b), _core.gemm(a, b, kernel=best))


def test_reference_kernel_is_listed_and_supported() -> None:
    assert SUPPORTED.get("reference") is True


def test_kernel_list_entries() -> None:
    for info in _core.gemm_kernels():
        assert set(info) == {"name", "isa", "supported"}
        assert isinstance(info["name"], str) and info["name"]
        assert isinstance(info["isa"], str) and info["isa"]
        assert isinstance(info["supported"], bool)
    assert len(KERNELS) == len(set(KERNELS))


def test_cpu_features_match_supported_kernels() -> None:
    features = _core.cpu_features()
    assert isinstance(features["arch"], str)
    if "6x16-avx2" in SUPPORTED:
        assert SUPPORTED["6x16-avx2"] == (features["avx2"] and features["fma"])


def test_version_is_the_package_version() -> None:
    import pakd

    assert isinstance(_core.__version__, str) and _core.__version__[0].isdigit()
    if pakd.__version__ != "0.0.0+unknown":
        assert _core.__version__ == pakd.__version__


def test_inputs_are_converted() -> None:
    """float64 and non-contiguous inputs are cast/copied (forcecast)."""
    a64 = np.arange(12, dtype=np.float64).reshape(3, 4)
    b_t = np.arange(20, dtype=np.float32).reshape(5, 4).T  # F-contiguous view
    c = _core.gemm(a64, b_t)
    assert c.dtype == np.float32
    np.testing.assert_allclose(c, a64 @ b_t.astype(np.float64), rtol=1e-6)


def test_empty_dimensions() -> None:
    assert _core.gemm(np.zeros((0, 3), np.float32), np.zeros((3, 4), np.float32)).shape == (0, 4)
    assert _core.gemm(np.zeros((2, 3), np.float32), np.zeros((3, 0), np.float32)).shape == (2, 0)
    c = _core.gemm(np.zeros((2, 0), np.float32), np.zeros((0, 3), np.float32))
    np.testing.assert_array_equal(c, np.zeros((2, 3), np.float32))


def test_shape_mismatch_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"shape mismatch.*\(2, 3\).*\(4, 5\)"):
        _core.gemm(np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32))


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((3,), (3, 2)), ((2, 3), (3,)), ((1, 2, 3), (3, 2))],
    ids=["1d-a", "1d-b", "3d-a"],
)
def test_non_2d_input_raises_value_error(a_shape, b_shape) -> None:
    with pytest.raises(ValueError, match="2-D"):
        _core.gemm(np.zeros(a_shape, np.float32), np.zeros(b_shape, np.float32))


def test_unknown_kernel_raises_value_error() -> None:
    a, b = _operands(2, 2, 2)
    with pytest.raises(ValueError, match=r"unknown GEMM kernel 'no-such-kernel'.*reference"):
        _core.gemm(a, b, kernel="no-such-kernel")


UNSUPPORTED = [k for k in KERNELS if not SUPPORTED[k]]


@pytest.mark.skipif(not UNSUPPORTED, reason="every compiled-in kernel is supported on this CPU")
def test_unsupported_kernel_raises_not_implemented() -> None:
    a, b = _operands(2, 2, 2)
    for kernel in UNSUPPORTED:
        with pytest.raises(NotImplementedError, match=kernel):
            _core.gemm(a, b, kernel=kernel)
