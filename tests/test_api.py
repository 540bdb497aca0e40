"""The curated public API and the compiled module."""

import numpy as np


def test_public_api_names_resolve():
    import pakd

    for name in pakd.__all__:
        assert getattr(pakd, name) is not None


def test_core_module_imports_and_multiplies():
    import pakd._core as core

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((3, 2), dtype=np.float32)
    np.testing.assert_allclose(core.gemm(a, b), a @ b)
    assert core.best_gemm_kernel() in {k["name"] for k in core.gemm_kernels() if k["supported"]}
