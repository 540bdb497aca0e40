"""Every kernel of every family (csrc/src/kernels/<family>-list.inc) against its family's reference.

The lists come from the module (``kernel_families()`` x ``kernels(family)``), so a kernel added to a
list is tested here without a new test. Each supported kernel runs on random inputs of awkward sizes
(tails past every tile and vector width) and is compared with the first kernel of its list, the
family's reference, within the tolerance stated per family: summation order differs between
kernels, so sums of products get a relative tolerance of 1e-5 (1e-4 for Winograd, whose
transforms round differently); data movement (padding, packing) must match exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from pakd import _core

# (x shape, w shape, padding) of the direct convolutions: odd channel counts, widths past 24 / 8.
_CONV_SHAPES = [((3, 11, 13), (5, 3, 3, 3), 1), ((2, 9, 29), (19, 2, 5, 3), 2), ((1, 6, 7), (17, 1, 1, 2), 0)]


def _conv_inputs(rng, sparse: bool = False):
    for xs, ws, pad in _CONV_SHAPES:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        if sparse:
            w[rng.random(ws) < 0.6] = 0
        yield x, w, pad


def _gemm(kernel, rng):
    for m, n, k in [(7, 29, 13), (1, 33, 65), (37, 17, 3), (6, 16, 1)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        yield _core.gemm(a, b, kernel)


def _dconv_wide(kernel, rng):
    for x, w, pad in _conv_inputs(rng):
        yield _core.conv2d_direct(x, w, pad, pad, kernel)


def _dconv_oc(kernel, rng):
    for x, w, pad in _conv_inputs(rng):
        for stride in (1, 2):
            yield _core.conv2d_direct(x, w, pad, pad, kernel, stride=stride)


def _dconv_pad(kernel, rng):
    wide = _core.kernels("f32-dconv-wide")[0]["name"]
    for x, w, pad in _conv_inputs(rng):
        yield _core.conv2d_direct(x, w, pad, pad + 1, wide, pad_kernel=kernel)


def _dconv_out(kernel, rng):
    wide = _core.kernels("f32-dconv-wide")[0]["name"]
    for x, w, pad in _conv_inputs(rng):
        cout = w.shape[0]
        ho, wo = x.shape[1] + 2 * pad - w.shape[2] + 1, x.shape[2] + 2 * pad - w.shape[3] + 1
        scale, bias = rng.standard_normal(cout).astype(np.float32), rng.standard_normal(cout).astype(np.float32)
        res = rng.standard_normal((cout, ho, wo)).astype(np.float32)
        for relu in (False, True):
            yield _core.conv2d_direct(x, w, pad, pad, wide, scale=scale, bias=bias, residual=res, relu=relu,
                                      out_kernel=kernel)  # fmt: skip
            yield _core.conv2d_direct(x, w, pad, pad, wide, bias=bias, relu=relu, out_kernel=kernel)


def _epilogue(kernel, rng):
    for c, s in [(5, 37), (17, 9), (1, 1)]:
        y = rng.standard_normal((c, s)).astype(np.float32)
        scale, bias = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
        res = rng.standard_normal((c, s)).astype(np.float32)
        for relu in (False, True):
            yield _core.epilogue(y, scale, bias, res, relu, kernel)
            yield _core.epilogue(y, None, bias, None, relu, kernel, channels=(c // 2, c), positions=(1, s))
            yield _core.epilogue(y, scale, None, None, relu, kernel, positions=(0, s - 1 if s > 1 else 1))


def _dwconv(kernel, rng):
    for c, h, w, k, stride, pad in [
        (5, 9, 13, 3, 1, 1),
        (7, 11, 17, 3, 2, 1),
        (3, 14, 19, 5, 2, 2),
        (2, 6, 5, 5, 1, 2),
    ]:
        x = rng.standard_normal((c, h, w)).astype(np.float32)
        wt = rng.standard_normal((c, k, k)).astype(np.float32)
        bias = rng.standard_normal(c).astype(np.float32)
        yield _core.dwconv2d(x, wt, stride, pad, kernel=kernel)
        yield _core.dwconv2d(x, wt, stride, pad, bias=bias, lo=0.0, hi=6.0, kernel=kernel)


def _winograd(kernel, rng, pack_kernel=None):
    for cin, cout, h, w, pad in [(3, 5, 9, 11, 1), (9, 17, 6, 13, 0), (1, 1, 3, 3, 1)]:
        x = rng.standard_normal((cin, h, w)).astype(np.float32)
        wt = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32)
        for relu in (False, True):
            yield _core.conv2d_winograd(x, wt, b, pad, pad, relu, kernel, parts=2, pack_kernel=pack_kernel)


def _wino4x4(kernel, rng):
    yield from _winograd(kernel, rng)


def _wino4x4_pack(kernel, rng):
    yield from _winograd(_core.kernels("f32-wino4x4")[0]["name"], rng, pack_kernel=kernel)


def _sdconv(kernel, rng):
    for x, w, pad in _conv_inputs(rng, sparse=True):
        yield _core.conv2d_direct(x, w, pad, pad, kernel)


def _sparse_matrix(rng, m, k, density):
    w = rng.standard_normal((m, k)).astype(np.float32)
    w[rng.random((m, k)) >= density] = 0
    rows, cols = np.nonzero(w)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=m))])
    return w, indptr, cols, w[rows, cols]


def _spmv(kernel, rng):
    for m, k, density in [(13, 29, 0.3), (40, 9, 0.9), (8, 300, 0.05)]:
        w, *_ = _sparse_matrix(rng, m, k, density)
        yield _core.spmv_blocked(w, rng.standard_normal(k).astype(np.float32), kernel)


def _spmm(kernel, rng):
    for m, k, n, density in [(13, 29, 1, 0.3), (7, 40, 37, 0.5), (33, 5, 70, 0.9)]:
        _, indptr, indices, values = _sparse_matrix(rng, m, k, density)
        x = rng.standard_normal((k, n)).astype(np.float32)
        bias = rng.standard_normal(m).astype(np.float32)
        yield _core.spmm(indptr, indices, values, x, bias, kernel)


def _cbspmm(kernel, rng):
    for m, k, n, density in [(13, 29, 1, 0.3), (7, 40, 37, 0.5), (33, 5, 70, 0.9)]:
        _, indptr, indices, _ = _sparse_matrix(rng, m, k, density)
        table = rng.standard_normal(17).astype(np.float32)
        codes = rng.integers(0, 17, len(indices))
        x = rng.standard_normal((k, n)).astype(np.float32)
        yield _core.spmm_codebook(indptr, indices, codes, table, x, None, kernel)


def _qs8_gemm(kernel, rng):
    for m, k, n in [(7, 29, 13), (1, 65, 1), (37, 3, 33)]:
        a = rng.integers(-127, 128, (m, k)).astype(np.int8)
        scale = rng.random(m).astype(np.float32) + 0.5
        x = rng.standard_normal((k, n)).astype(np.float32)
        yield _core.qs8_gemm(a, scale, x, rng.standard_normal(m).astype(np.float32), kernel)


# family -> (runner, (rtol, atol)); atol relative to outputs of magnitude ~1..10.
RUNNERS = {
    "f32-gemm": (_gemm, (1e-5, 1e-5)),
    "f32-dconv-wide": (_dconv_wide, (1e-5, 1e-5)),
    "f32-dconv-oc": (_dconv_oc, (1e-5, 1e-5)),
    "f32-dconv-pad": (_dconv_pad, (0, 0)),
    "f32-dconv-out": (_dconv_out, (1e-6, 1e-6)),
    "f32-epilogue": (_epilogue, (1e-6, 1e-6)),
    "f32-wino4x4-pack": (_wino4x4_pack, (0, 0)),
    "f32-wino4x4": (_wino4x4, (1e-4, 1e-4)),
    "f32-dwconv": (_dwconv, (1e-5, 1e-5)),
    "f32-sdconv": (_sdconv, (1e-5, 1e-5)),
    "f32-spmv": (_spmv, (1e-5, 1e-5)),
    "f32-spmm": (_spmm, (1e-5, 1e-5)),
    "f32-cbspmm": (_cbspmm, (1e-5, 1e-5)),
    "qs8-gemm": (_qs8_gemm, (1e-6, 1e-6)),
}

CASES = [(family, k["name"]) for family in _core.kernel_families() for k in _core.kernels(family)]


def test_every_family_has_a_runner_here():
    assert set(_core.kernel_families()) == set(RUNNERS)


@pytest.mark.parametrize("family", _core.kernel_families())
def test_each_list_starts_with_a_reference_and_its_best_is_supported(family):
    kernels = _core.kernels(family)
    assert kernels[0]["supported"] and kernels[0]["isa"] == "scalar"
    assert len({k["name"] for k in kernels}) == len(kernels)
    best = _core.best_kernel(family)
    assert best == [k["name"] for k in kernels if k["supported"]][-1]


@pytest.mark.parametrize(("family", "kernel"), CASES)
def test_kernel_matches_its_family_reference(family, kernel):
    info = next(k for k in _core.kernels(family) if k["name"] == kernel)
    if not info["supported"]:
        pytest.skip(f"{family} kernel {kernel} needs {info['isa']}, which this CPU lacks")
    runner, (rtol, atol) = RUNNERS[family]
    reference = _core.kernels(family)[0]["name"]
    got = list(runner(kernel, np.random.default_rng(7)))
    want = list(runner(reference, np.random.default_rng(7)))
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        if rtol == 0 and atol == 0:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * max(1.0, float(np.abs(w).max(initial=0))))


def test_unknown_family():
    with pytest.raises(ValueError, match="unknown kernel family 'x'"):
        _core.kernels("x")
