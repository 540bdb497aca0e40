"""f32 GEMM speed: every supported pakd kernel vs numpy, one group per shape.

Run:  python -m pytest benchmarks/test_bench_gemm.py -q
Each shape is one benchmark group, so pytest-benchmark's table shows the
kernels side by side, with each column's ratio to the fastest in parentheses.
numpy (OpenBLAS) is pinned to ONE thread, like the pakd kernels; its speed
also depends on the kernel OpenBLAS picks for this CPU (OPENBLAS_CORETYPE, if
set in the environment, overrides that choice; we leave it as it is).
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pakd import _core

# (m, n, k): C(m x n) = A(m x k) @ B(k x n)
SHAPES = [
    (64, 64, 64),
    (256, 256, 256),
    (1, 800, 500),  # batch-1 fully-connected layer: 500 inputs -> 800 outputs
    (512, 512, 512),
]
# The naive reference kernel is an oracle, not a contender: it is timed only
# where it finishes in well under a second per call.
REFERENCE_MAX_MACS = 256**3

IMPLEMENTATIONS = [k["name"] for k in _core.gemm_kernels()] + ["numpy"]
SUPPORTED = {k["name"]: k["supported"] for k in _core.gemm_kernels()} | {"numpy": True}


@pytest.fixture(scope="module", autouse=True)
def single_threaded_blas():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gemm(benchmark, shape, impl):
    m, n, k = shape
    if not SUPPORTED[impl]:
        pytest.skip(f"{impl} is not supported on this CPU")
    if impl == "reference" and m * n * k > REFERENCE_MAX_MACS:
        pytest.skip("reference kernel too slow for this shape")
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, size=(m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, size=(k, n)).astype(np.float32)

    benchmark.group = f"gemm {m}x{n}x{k} (m x n x k)"
    benchmark.extra_info["gflops_per_call"] = 2 * m * n * k / 1e9
    if impl == "numpy":
        c = benchmark(np.matmul, a, b)
    else:
        c = benchmark(_core.gemm, a, b, impl)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-5 * (k + 1))
