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

# --- Sparse (CSR) x dense and int8 kernels (csrc/python/bind-kernels.cc) ---

class KernelInfo(TypedDict):
    name: str
    isa: str
    supported: bool

class CsrMatrix:
    """A validated, owned m x k CSR matrix (f32 values or u8 codes into a table).

    The arrays (scipy.sparse.csr_matrix layout) are checked once and copied:
    indptr[0] == 0, non-decreasing, indptr[-1] == len(indices),
    0 <= indices < k, 0 <= codes < len(table) <= 256. Raises ValueError otherwise.
    """

    def __init__(
        self,
        indptr: npt.ArrayLike,
        indices: npt.ArrayLike,
        values: npt.ArrayLike,
        shape: tuple[int, int],
    ) -> None: ...
    @staticmethod
    def with_codebook(
        indptr: npt.ArrayLike,
        indices: npt.ArrayLike,
        codes: npt.ArrayLike,
        table: npt.ArrayLike,
        shape: tuple[int, int],
    ) -> CsrMatrix: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def nnz(self) -> int: ...
    @property
    def codebook(self) -> bool: ...
    def matmul(
        self,
        x: npt.ArrayLike,
        bias: npt.ArrayLike | None = None,
        kernel: str | None = None,
        out: npt.NDArray[np.float32] | None = None,
        rows: tuple[int, int] | None = None,
    ) -> npt.NDArray[np.float32]:
        """``self @ x`` (+ ``bias[:, None]``); x is (k,) or (k, n), the result (m,) or (m, n).

        ``kernel``: a name from :func:`spmm_kernels` (or :func:`spmm_codebook_kernels`
        for a codebook matrix), None for the best supported. ``out``: float32
        C-contiguous array of the result's shape to write into. ``rows=(begin, end)``:
        compute only those rows; the others are left untouched.

        Raises:
            ValueError: bad shapes, bad ``out``/``rows``, unknown kernel name.
            NotImplementedError: a kernel the running CPU cannot execute.
        """

def spmm(
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    values: npt.ArrayLike,
    x: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    kernel: str | None = None,
    out: npt.NDArray[np.float32] | None = None,
    rows: tuple[int, int] | None = None,
) -> npt.NDArray[np.float32]:
    """Sparse CSR (m x k, f32 values, k = x.shape[0]) times dense x: ``CsrMatrix(...).matmul(x)``."""

def spmm_codebook(
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    codes: npt.ArrayLike,
    table: npt.ArrayLike,
    x: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    kernel: str | None = None,
    out: npt.NDArray[np.float32] | None = None,
    rows: tuple[int, int] | None = None,
) -> npt.NDArray[np.float32]:
    """:func:`spmm` with values ``table[codes]`` (u8 codes, at most 256 table entries)."""

def spmm_kernels() -> list[KernelInfo]:
    """All compiled-in f32 spmm kernels, slowest first."""

def spmm_codebook_kernels() -> list[KernelInfo]:
    """All compiled-in codebook spmm kernels, slowest first."""

def best_spmm_kernel() -> str:
    """Name of the kernel :func:`spmm` uses when ``kernel`` is None."""

def best_spmm_codebook_kernel() -> str:
    """Name of the kernel :func:`spmm_codebook` uses when ``kernel`` is None."""

def quantize_s8(x: npt.ArrayLike) -> tuple[npt.NDArray[np.int8], float]:
    """Symmetric int8 quantization: ``(q, scale)``, scale = max|x| / 127 (0 for all-zero x),
    q = x / scale rounded to nearest (halves away from zero), in [-127, 127]."""

def qs8_gemm(
    a_q: npt.NDArray[np.int8],
    a_scale: npt.ArrayLike,
    x: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    kernel: str | None = None,
    out: npt.NDArray[np.float32] | None = None,
    rows: tuple[int, int] | None = None,
) -> npt.NDArray[np.float32]:
    """int8 GEMM with dynamic activation quantization.

    a_q: int8 (m, k) weights, a_scale: (m,) per-row scales, x: float (k,) or (k, n).
    x is quantized with :func:`quantize_s8`, then
    ``y[i] = bias[i] + a_scale[i] * x_scale * sum_p a_q[i, p] * x_q[p]`` with int32 sums.
    ``kernel``/``out``/``rows`` as in :meth:`CsrMatrix.matmul`.

    Raises:
        ValueError: a_q not int8, bad shapes, k > 131071, bad ``out``/``rows``, unknown kernel.
        NotImplementedError: a kernel the running CPU cannot execute.
    """

def qs8_gemm_kernels() -> list[KernelInfo]:
    """All compiled-in int8 GEMM kernels, slowest first."""

def best_qs8_gemm_kernel() -> str:
    """Name of the kernel :func:`qs8_gemm` uses when ``kernel`` is None."""
