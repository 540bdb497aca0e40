"""Type stubs for the compiled module ``pakd._core`` (csrc/python/module.cc)."""

from typing import TypedDict

import numpy as np
import numpy.typing as npt

__version__: str

class GemmKernelInfo(TypedDict):
    name: str
    isa: str
    supported: bool

class CpuFeatures(TypedDict):
    arch: str
    sse2: bool
    avx: bool
    avx2: bool
    fma: bool
    avx512f: bool
    neon: bool

def gemm(
    a: npt.ArrayLike, b: npt.ArrayLike, kernel: str | None = None
) -> npt.NDArray[np.float32]:
    """Matrix product ``a @ b`` of 2-D float32 arrays, shapes (m, k) and (k, n).

    Inputs are converted to C-contiguous float32 if needed. ``kernel`` is a name
    from :func:`gemm_kernels`, or None for :func:`best_gemm_kernel`.

    Raises:
        ValueError: bad shapes or an unknown kernel name.
        NotImplementedError: a kernel the running CPU cannot execute.
    """

def gemm_kernels() -> list[GemmKernelInfo]:
    """All compiled-in f32 GEMM kernels, slowest first."""

def best_gemm_kernel() -> str:
    """Name of the kernel :func:`gemm` uses when ``kernel`` is None."""

def cpu_features() -> CpuFeatures:
    """Instruction-set features of the running CPU."""
