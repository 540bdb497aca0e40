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
    neon_dot: bool
    i8mm: bool

def gemm(a: npt.ArrayLike, b: npt.ArrayLike, kernel: str | None = None) -> npt.NDArray[np.float32]:
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

# --- Convolution and batch-1 sparse kernels, for tests and benchmarks (bind-kernels.cc) ---

def conv2d_direct(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    ph: int = 0,
    pw: int = 0,
    kernel: str = "4x24-scalar",
    stride: int = 1,
    scale: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    residual: npt.ArrayLike | None = None,
    relu: bool = False,
    pad_kernel: str | None = None,
    out_kernel: str | None = None,
) -> npt.NDArray[np.float32]:
    """Convolution of x (Cin, H, W) by w (Cout, Cin, kh, kw) through one direct kernel.

    ``kernel``: a name from ``kernels("f32-dconv-wide")`` (stride 1, wide rows, e.g. '4x24-avx2'),
    ``kernels("f32-dconv-oc")`` (any stride, e.g. '6x16-avx2') or ``kernels("f32-sdconv")``
    (zeros of w skipped, e.g. '8x8-avx2'; 'sparse-' + name accepted). Weights and input are
    packed by the session's own packing functions. The 4x24 kernels run with the session's input
    and output passes, ``pad_kernel`` / ``out_kernel`` from ``kernels("f32-dconv-pad")`` /
    ``kernels("f32-dconv-out")`` (None: those of the kernel's ISA); their output is
    ``relu(y * scale + bias + residual)``, each part optional: scale and bias (Cout,), residual
    (Cout, Ho, Wo).

    Raises:
        ValueError: bad shapes or an unknown kernel name.
        NotImplementedError: a kernel the running CPU cannot execute.
    """

def conv2d_winograd(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    ph: int = 1,
    pw: int = 1,
    relu: bool = False,
    kernel: str = "wino4x4-6x16-scalar",
    parts: int = 1,
    residual: npt.ArrayLike | None = None,
    pack_kernel: str | None = None,
) -> npt.NDArray[np.float32]:
    """Stride-1 3x3 convolution of x (Cin, H, W) by w (Cout, Cin, 3, 3) (+ bias, + residual
    (Cout, Ho, Wo), ReLU) through Winograd F(4x4, 3x3): ``kernel`` from ``kernels("f32-wino4x4")``
    ('wino4x4-' + name accepted), ``pack_kernel`` from ``kernels("f32-wino4x4-pack")`` (None: the
    one of the kernel's ISA), the tiles split into ``parts`` calls."""

def spmv_blocked(w: npt.ArrayLike, x: npt.ArrayLike, kernel: str | None = "8x8-scalar") -> npt.NDArray[np.float32]:
    """``w @ x`` for a dense w (m, k) whose nonzeros go through the blocked batch-1 sparse kernel
    (a name from ``kernels("f32-spmv")``, None: the best), packed as a session packs a sparse
    linear layer."""

def dwconv2d(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    stride: int = 1,
    padding: int = 0,
    bias: npt.ArrayLike | None = None,
    lo: float = ...,
    hi: float = ...,
    kernel: str | None = None,
) -> npt.NDArray[np.float32]:
    """Depthwise convolution of x (N, C, H, W) or (C, H, W) with w (C, kh, kw), zero ``padding``
    on every side, ``min(max(conv + bias, lo), hi)`` (lo, hi: -inf, +inf by default), through one
    ``kernels("f32-dwconv")`` kernel (None: the best)."""

def epilogue(
    y: npt.ArrayLike,
    scale: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    residual: npt.ArrayLike | None = None,
    relu: bool = False,
    kernel: str | None = None,
    channels: tuple[int, int] | None = None,
    positions: tuple[int, int] | None = None,
) -> npt.NDArray[np.float32]:
    """``relu(y * scale + bias + residual)`` of y (C, S) over ``channels`` x ``positions`` (None:
    all; the rest of y copied unchanged) through one ``kernels("f32-epilogue")`` kernel (None: the
    best), on a copy of y."""

# --- Kernel families: one list each (csrc/src/kernels/<family>-list.inc), bind-kernels.cc ---

def kernel_families() -> list[str]:
    """Names of the kernel families, e.g. 'f32-gemm', 'f32-dconv-wide', 'f32-spmm'."""

def kernels(family: str) -> list[KernelInfo]:
    """The compiled-in kernels of ``family``, slowest first; the first is the family's reference.

    Raises:
        ValueError: an unknown family name.
    """

def best_kernel(family: str) -> str:
    """Name of the kernel a session uses for ``family`` on this CPU (the last supported one)."""

# --- The runtime (csrc/python/bind-session.cc) ---

class Session:
    """A .pakd model loaded by the native runtime.

    ``source`` is a path or the file's bytes. Every offset and shape in the file is checked: a
    malformed file raises ValueError with the reason. Memory is planned once for ``max_batch``
    samples; :meth:`run` never allocates inside the runtime. ``sparse_max_density``: weights with
    at most this fraction of nonzeros run on the sparse kernels (< 0: always dense);
    ``reference``: every op through its naive reference kernel (the oracle; slow);
    ``codebook_kernel`` and ``winograd``: 0 = auto, 1 = always, -1 = never.
    """

    def __init__(
        self,
        source: str | bytes,
        num_threads: int = 1,
        max_batch: int = 1,
        sparse_max_density: float = 0.35,
        reference: bool = False,
        gemm_kernel: str | None = None,
        codebook_kernel: int = 0,
        winograd: int = 0,
    ) -> None: ...
    def run(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """One sample (C, H, W) or a batch (N, C, H, W) of float32 -> the outputs (batches larger
        than max_batch run in chunks). Releases the GIL."""
    def profile(self, x: npt.ArrayLike, repeats: int = 100) -> list[tuple[str, float]]:
        """Per-op mean wall time: ``[(description, microseconds)]`` over ``repeats`` runs of x."""
    @property
    def input_shape(self) -> list[int]: ...
    @property
    def output_shape(self) -> list[int]: ...
    @property
    def metadata(self) -> dict[str, object]: ...
    @property
    def num_ops(self) -> int: ...
    @property
    def weight_bytes(self) -> int: ...
    @property
    def arena_bytes(self) -> int: ...
    @property
    def num_threads(self) -> int: ...
    @property
    def max_batch(self) -> int: ...
