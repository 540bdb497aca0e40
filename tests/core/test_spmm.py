"""Sparse (CSR) x dense kernels of pakd._core, f32 and u8-codebook values.

Every kernel (the lists come from the library: spmm_kernels(),
spmm_codebook_kernels()) is checked against scipy.sparse in float64 and against
the reference kernel, on edge-case shapes. Kernels the running CPU cannot
execute are reported as skipped.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from pakd import _core

F32_KERNELS = [k["name"] for k in _core.spmm_kernels()]
CB_KERNELS = [k["name"] for k in _core.spmm_codebook_kernels()]
SUPPORTED = {
    "f32": {k["name"]: k["supported"] for k in _core.spmm_kernels()},
    "codebook": {k["name"]: k["supported"] for k in _core.spmm_codebook_kernels()},
}
ALL = [("f32", k) for k in F32_KERNELS] + [("codebook", k) for k in CB_KERNELS]
ALL_IDS = [f"{family}-{kernel}" for family, kernel in ALL]

# (m, k, n, density). Register tiles in use: 16 columns (scalar, NEON), 32/8
# plus a masked tail (AVX2), 16 nonzeros per n == 1 step (AVX2), so these cover
# single elements, vectors (n = 1), every kind of column remainder, rows with
# fewer and more nonzeros than a step, all-zero and fully dense matrices.
SHAPES = [
    (1, 1, 1, 1.0),
    (1, 1, 5, 1.0),
    (3, 1, 1, 0.5),
    (1, 300, 1, 0.3),
    (17, 40, 1, 0.5),
    (64, 200, 1, 0.1),
    (9, 33, 3, 0.3),
    (7, 19, 7, 0.5),
    (5, 50, 9, 0.2),
    (12, 30, 16, 0.4),
    (6, 25, 17, 0.3),
    (8, 64, 33, 0.1),
    (16, 150, 40, 0.3),
    (20, 100, 71, 0.05),
    (4, 30, 64, 0.0),
    (10, 12, 24, 1.0),
]


def _tolerance(nnz_per_row: int) -> float:
    """Absolute tolerance for values and x in [-1, 1).

    Each output is a sum of at most nnz_per_row products in float32 (plus the
    bias); kernels sum in different orders. 1e-6 * (nnz + 1) is several times
    the worst-case float32 rounding of such sums and far below any indexing
    error (those are O(1)).
    """
    return 1e-6 * (nnz_per_row + 1)


def _matrix(m: int, k: int, density: float, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.uniform(-1.0, 1.0, size=(m, k)).astype(np.float32)
    dense[rng.random((m, k)) >= density] = 0.0
    if m > 2:
        dense[1] = 0.0  # always an empty row
    return sp.csr_matrix(dense)


def _codebook(nnz: int, entries: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    table = rng.uniform(-1.0, 1.0, size=entries).astype(np.float32)
    codes = rng.integers(0, entries, size=nnz).astype(np.uint8)
    return codes, table


def _x(k: int, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=(k, n)).astype(np.float32)


def _run(family: str, w: sp.csr_matrix, x, kernel=None, bias=None, codebook=None, **kw):
    if family == "f32":
        return _core.spmm(w.indptr, w.indices, w.data, x, bias=bias, kernel=kernel, **kw)
    codes, table = codebook
    return _core.spmm_codebook(w.indptr, w.indices, codes, table, x, bias=bias, kernel=kernel, **kw)


def _expected(family: str, w: sp.csr_matrix, x, bias=None, codebook=None) -> np.ndarray:
    w64 = w.astype(np.float64)
    if family == "codebook":
        codes, table = codebook
        w64 = sp.csr_matrix((table[codes].astype(np.float64), w.indices, w.indptr), shape=w.shape)
    y = w64 @ np.asarray(x, np.float64)
    if bias is not None:
        y = y + (bias[:, None] if y.ndim == 2 else bias)
    return y


def _skip_unsupported(family: str, kernel: str) -> None:
    if not SUPPORTED[family][kernel]:
        pytest.skip(f"{family} spmm kernel {kernel!r} is not supported on this CPU")


def _max_row_nnz(w: sp.csr_matrix) -> int:
    return int(np.diff(w.indptr).max()) if w.shape[0] else 0


@pytest.mark.parametrize("with_bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("family, kernel", ALL, ids=ALL_IDS)
def test_kernel_matches_scipy(family, kernel, shape, with_bias) -> None:
    _skip_unsupported(family, kernel)
    m, k, n, density = shape
    w = _matrix(m, k, density)
    x = _x(k, n)
    bias = np.linspace(-1, 1, m, dtype=np.float32) if with_bias else None
    cb = _codebook(w.nnz) if family == "codebook" else None
    y = _run(family, w, x, kernel=kernel, bias=bias, codebook=cb)
    assert y.shape == (m, n) and y.dtype == np.float32
    np.testing.assert_allclose(y, _expected(family, w, x, bias, cb), rtol=0, atol=_tolerance(_max_row_nnz(w)))


@pytest.mark.parametrize("n", [1, 5, 8, 31, 32, 45, 100])
@pytest.mark.parametrize("family, kernel", ALL, ids=ALL_IDS)
def test_kernel_agrees_with_reference(family, kernel, n) -> None:
    """The reference kernel is the oracle: optimized kernels match it."""
    _skip_unsupported(family, kernel)
    w = _matrix(37, 300, 0.2, seed=2)
    x = _x(300, n, seed=3)
    bias = np.random.default_rng(4).uniform(-1, 1, 37).astype(np.float32)
    cb = _codebook(w.nnz, entries=256, seed=5) if family == "codebook" else None
    ref = _run(family, w, x, kernel="reference", bias=bias, codebook=cb)
    y = _run(family, w, x, kernel=kernel, bias=bias, codebook=cb)
    np.testing.assert_allclose(y, ref, rtol=0, atol=_tolerance(_max_row_nnz(w)))


@pytest.mark.parametrize("n", [1, 20])
@pytest.mark.parametrize("family, kernel", ALL, ids=ALL_IDS)
def test_row_range_leaves_other_rows_untouched(family, kernel, n) -> None:
    _skip_unsupported(family, kernel)
    w = _matrix(9, 40, 0.3)
    x = _x(40, n)
    cb = _codebook(w.nnz) if family == "codebook" else None
    out = np.full((9, n), 123.0, np.float32)
    y = _run(family, w, x, kernel=kernel, codebook=cb, out=out, rows=(2, 6))
    assert y is out
    np.testing.assert_array_equal(out[:2], 123.0)
    np.testing.assert_array_equal(out[6:], 123.0)
    np.testing.assert_allclose(out[2:6], _expected(family, w, x, codebook=cb)[2:6], rtol=0, atol=_tolerance(40))


@pytest.mark.parametrize("family", ["f32", "codebook"])
def test_vector_x_gives_vector_y(family) -> None:
    w = _matrix(10, 30, 0.3)
    x = _x(30, 1)[:, 0]
    cb = _codebook(w.nnz) if family == "codebook" else None
    y = _run(family, w, x, codebook=cb)
    assert y.shape == (10,)
    np.testing.assert_allclose(y, _expected(family, w, x, codebook=cb), rtol=0, atol=_tolerance(30))


def test_empty_dimensions() -> None:
    w = sp.csr_matrix((0, 5), dtype=np.float32)
    assert _core.spmm(w.indptr, w.indices, w.data, _x(5, 3)).shape == (0, 3)
    w = _matrix(4, 5, 0.5)
    assert _core.spmm(w.indptr, w.indices, w.data, _x(5, 0)).shape == (4, 0)
    w = sp.csr_matrix((3, 0), dtype=np.float32)
    np.testing.assert_array_equal(
        _core.spmm(w.indptr, w.indices, w.data, np.zeros((0, 2), np.float32), bias=np.ones(3)),
        np.ones((3, 2), np.float32),
    )


def test_csr_matrix_is_validated_once_and_owns_its_data() -> None:
    w = _matrix(8, 20, 0.4)
    indices = w.indices.copy()
    values = w.data.copy()
    a = _core.CsrMatrix(w.indptr, indices, values, (8, 20))
    assert a.shape == (8, 20) and a.nnz == w.nnz and not a.codebook
    x = _x(20, 3)
    before = a.matmul(x)
    indices[:] = 10**6  # would be out of range if the matrix still read it
    values[:] = 0.0
    np.testing.assert_array_equal(a.matmul(x), before)


def test_default_kernels_are_the_best_supported() -> None:
    for kernels, best in [
        (_core.spmm_kernels(), _core.best_spmm_kernel()),
        (_core.spmm_codebook_kernels(), _core.best_spmm_codebook_kernel()),
    ]:
        supported = [k["name"] for k in kernels if k["supported"]]
        assert best == supported[-1]
        assert kernels[0]["name"] == "reference" and kernels[0]["supported"]
    w = _matrix(9, 17, 0.5)
    x = _x(17, 5)
    np.testing.assert_array_equal(
        _core.spmm(w.indptr, w.indices, w.data, x),
        _core.spmm(w.indptr, w.indices, w.data, x, kernel=_core.best_spmm_kernel()),
    )


def test_kernel_list_entries() -> None:
    for kernels in (_core.spmm_kernels(), _core.spmm_codebook_kernels()):
        for info in kernels:
            assert set(info) == {"name", "isa", "supported"}
            assert isinstance(info["supported"], bool)
        names = [k["name"] for k in kernels]
        assert len(names) == len(set(names))


def test_unknown_kernel_raises_value_error() -> None:
    w = _matrix(2, 3, 1.0)
    with pytest.raises(ValueError, match=r"unknown spmm kernel 'nope'.*reference"):
        _core.spmm(w.indptr, w.indices, w.data, _x(3, 1), kernel="nope")
    with pytest.raises(ValueError, match=r"unknown spmm_codebook kernel 'nope'"):
        _core.spmm_codebook(w.indptr, w.indices, np.zeros(w.nnz, np.uint8), np.ones(1), _x(3, 1), kernel="nope")


UNSUPPORTED = [(f, k) for f, k in ALL if not SUPPORTED[f][k]]


@pytest.mark.skipif(not UNSUPPORTED, reason="every compiled-in spmm kernel is supported on this CPU")
def test_unsupported_kernel_raises_not_implemented() -> None:
    w = _matrix(2, 3, 1.0)
    for family, kernel in UNSUPPORTED:
        with pytest.raises(NotImplementedError, match=kernel):
            _run(family, w, _x(3, 1), kernel=kernel, codebook=_codebook(w.nnz))


# Each case: keyword arguments of spmm_codebook (valid defaults below) and the
# message expected in the ValueError.
_VALID = dict(indptr=[0, 2, 3], indices=[0, 2, 1], codes=[0, 1, 1], table=[0.5, -1.0], x=np.ones((3, 2), np.float32))
BAD_INPUTS = {
    "indptr-2d": (dict(indptr=[[0, 2, 3]]), "indptr must be 1-D"),
    "indptr-empty": (dict(indptr=[]), "at least one entry"),
    "indptr-float": (dict(indptr=[0.0, 2.0, 3.0]), "integer dtype"),
    "indptr-start": (dict(indptr=[1, 2, 3]), r"indptr\[0\] must be 0"),
    "indptr-decreasing": (dict(indptr=[0, 3, 2], indices=[0, 2, 1]), "non-decreasing"),
    "indptr-end": (dict(indptr=[0, 2, 2]), r"indptr\[-1\] = 2 must equal len\(indices\) = 3"),
    "index-too-large": (dict(indices=[0, 3, 1]), r"indices\[1\] = 3 is out of range for 3 columns"),
    "index-negative": (dict(indices=[0, -1, 1]), r"indices\[1\] = -1 is out of range"),
    "index-float": (dict(indices=[0.0, 2.0, 1.0]), "integer dtype"),
    "codes-length": (dict(codes=[0, 1]), r"codes must have shape \(3,\)"),
    "code-too-large": (dict(codes=[0, 2, 1]), r"codes\[1\] = 2 is out of range for a table of 2"),
    "code-negative": (dict(codes=[0, -1, 1]), r"codes\[1\] = -1 is out of range"),
    "table-too-long": (dict(table=np.zeros(257)), "at most 256 entries"),
    "table-2d": (dict(table=[[0.5, -1.0]]), "table must be 1-D"),
    "x-3d": (dict(x=np.ones((3, 2, 1))), r"x must be 1-D \(k,\) or 2-D"),
    "x-strings": (dict(x=np.array(["a", "b", "c"])), "real numeric array"),
    "bias-shape": (dict(bias=np.ones(3)), r"bias must have shape \(2,\)"),
    "rows-reversed": (dict(rows=(2, 1)), r"rows=\(2, 1\) is not a range within \[0, 2\]"),
    "rows-past-end": (dict(rows=(0, 3)), "is not a range"),
    "out-dtype": (dict(out=np.zeros((2, 2))), "out must have dtype float32"),
    "out-shape": (dict(out=np.zeros((2, 3), np.float32)), "out has shape"),
    "out-not-contiguous": (dict(out=np.zeros((2, 4), np.float32)[:, ::2]), "C-contiguous"),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_codebook_inputs_raise_value_error(case) -> None:
    changes, message = case
    with pytest.raises(ValueError, match=message):
        _core.spmm_codebook(**(_VALID | changes))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(values=[1.0, 2.0]), r"values must have shape \(3,\)"),
        (dict(x=np.ones((2, 2), np.float32)), r"indices\[1\] = 2 is out of range for 2 columns"),
        (dict(indices=[0, 5, 1]), r"indices\[1\] = 5 is out of range for 3 columns"),
    ],
    ids=["values-length", "x-rows", "index-too-large"],
)
def test_bad_f32_inputs_raise_value_error(changes, message) -> None:
    args = dict(indptr=[0, 2, 3], indices=[0, 2, 1], values=[1.0, 2.0, 3.0], x=np.ones((3, 2), np.float32)) | changes
    with pytest.raises(ValueError, match=message):
        _core.spmm(**args)


def test_csr_matrix_checks_x_against_its_columns() -> None:
    a = _core.CsrMatrix([0, 1], [4], [1.0], (1, 5))
    with pytest.raises(ValueError, match=r"x has shape \(4, 2\) but the sparse matrix has 5 columns"):
        a.matmul(np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"indptr must have shape \(3,\)"):
        _core.CsrMatrix([0, 1], [4], [1.0], (2, 5))
