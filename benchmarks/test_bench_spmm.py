"""Sparse and int8 kernels vs OUR dense f32 GEMM, one group per layer shape.

Run:  python -m pytest benchmarks/test_bench_spmm.py -q
      (-k "fc and 90%" for one sparsity, -k conv for the convolutions)

Each group is one layer at one sparsity, so pytest-benchmark's table shows the
contenders side by side with each one's ratio to the fastest, all from one run:

  fc ...    batch-1 fully-connected layer y = W x, W m x k (n = 1):
            dense   pakd._core.gemm(x as 1 x k, W^T pre-transposed k x m), the
                    way the runtime runs a batch-1 FC layer;
            spmm    CSR W with f32 values (CsrMatrix: validated once, as a
                    runtime does at load time);
            spmm-cb CSR W with u8 codes into a 16-entry table (4-bit weight
                    sharing, Deep Compression's FC setting) - the codes are
                    stored as bytes;
  fc-int8   the same layers with int8 weights (per-row scales), activations
            quantized on every call (included in the time), vs dense f32;
  conv ...  a convolution lowered to W[Cout, Cin*kh*kw] x im2col[Cin*kh*kw, H*W]:
            dense gemm vs spmm / spmm-cb with n = H*W.
  fc-session ...  one batch-1 linear layer (+ bias + ReLU) in a pakd._core.Session:
            "dense" (sparse_max_density=-1), "csr" (CSR SpMM: a session made
            for batch 2 run at batch 1) and "auto" (a batch-1 session: the
            blocked kernel f32-spmv-8x8 where it is cheaper than CSR;
            extra_info["form"] says which).
  direct-conv ...  one stride-1 convolution (+ bias + ReLU) as the runtime runs
            it: a one-layer model in a pakd._core.Session, "dense" forced onto
            the dense direct kernels (sparse_max_density=-1), "auto" the
            session's own choice (the sparse direct kernel f32-sdconv-8x8 when
            its nonzero-tap work is cheaper; extra_info["form"] says which).
            Shapes of LeNet-5 (teacher and the lenet5-fast student) and
            ResNet-20; pruned at random to the given density.

Shapes: Deep Compression's Table 8 (AlexNet fc6/fc7/fc8) and the FC layers of
the zoo's lenet-300-100 and lenet5 (pakd/models/zoo.py). Sparsity is random
(each weight zero with the given probability). Everything is single-threaded
(the kernels are; the runtime splits rows across threads).
"""

import functools

import numpy as np
import pytest

from pakd import _core

# name, (m, k): y(m) = W(m x k) x(k)
FC_LAYERS = [
    ("alexnet-fc6", (4096, 9216)),
    ("alexnet-fc7", (4096, 4096)),
    ("alexnet-fc8", (1000, 4096)),
    ("lenet300-fc1", (300, 784)),
    ("lenet300-fc2", (100, 300)),
    ("lenet5-fc1", (500, 800)),
    ("lenet5-fc2", (10, 500)),
    ("lenet5-fast-fc1", (231, 336)),
]
FC_SPARSITY = [0.5, 0.7, 0.9, 0.95]

# name, (m, k, n): Cout, Cin*kh*kw, H*W
CONV_LAYERS = [
    ("conv-16x6x5x5-28x28", (16, 150, 784)),
    ("conv-32x32x3x3-28x28", (32, 288, 784)),
    ("conv-64x64x3x3-24x24", (64, 576, 576)),
]
CONV_SPARSITY = [0.7, 0.9]

SPARSE_IMPLS = ["dense", "spmm", "spmm-cb"]

FC_SESSION_LAYERS = ["lenet5-fast-fc1", "lenet300-fc1", "lenet5-fc1"]
FC_SESSION_SPARSITY = [0.7, 0.84, 0.9, 0.95]

# name, (Cin, Cout, H, W, k, pad)
DIRECT_CONV_LAYERS = [
    ("lenet5-fast-conv1", (1, 10, 28, 28, 5, 0)),
    ("lenet5-fast-conv2", (10, 21, 12, 12, 5, 0)),
    ("lenet5-conv2", (20, 50, 12, 12, 5, 0)),
    ("resnet20-16x16-32x32", (16, 16, 32, 32, 3, 1)),
    ("resnet20-64x64-8x8", (64, 64, 8, 8, 3, 1)),
]
DIRECT_CONV_DENSITY = [1.0, 0.86, 0.55, 0.3]


@functools.lru_cache(maxsize=1)
def _dense(m: int, k: int):
    """W (m x k), W^T (k x m, contiguous) and the int8 copy with per-row scales."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((m, k), dtype=np.float32)
    w_scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    w_q = np.round(w / w_scale[:, None]).astype(np.int8)
    return w, np.ascontiguousarray(w.T), w_q, w_scale


@functools.lru_cache(maxsize=2)
def _sparse(m: int, k: int, sparsity: float):
    """The pruned W as dense (for the dense baseline and the check) and as CSR matrices."""
    w = _dense(m, k)[0].copy()
    rng = np.random.default_rng(1)
    w[rng.random((m, k)) < sparsity] = 0.0
    rows, cols = np.nonzero(w)
    indptr = np.zeros(m + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=m), out=indptr[1:])
    table = np.linspace(-2, 2, 16, dtype=np.float32)
    codes = np.abs(table[None, :] - w[rows, cols][:, None]).argmin(axis=1).astype(np.uint8)
    csr = _core.CsrMatrix(indptr, cols, w[rows, cols], (m, k))
    csr_cb = _core.CsrMatrix.with_codebook(indptr, cols, codes, table, (m, k))
    w_cb = np.zeros_like(w)
    w_cb[rows, cols] = table[codes]
    return w, np.ascontiguousarray(w.T), csr, csr_cb, w_cb


def _check(y, w, x) -> None:
    expected = w.astype(np.float64) @ x.astype(np.float64)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4 * np.sqrt(w.shape[1]))


@pytest.mark.parametrize("impl", SPARSE_IMPLS)
@pytest.mark.parametrize("sparsity", FC_SPARSITY, ids=lambda s: f"{round(s * 100)}%")
@pytest.mark.parametrize("layer", FC_LAYERS, ids=lambda layer: layer[0])
def test_fc(benchmark, layer, sparsity, impl):
    name, (m, k) = layer
    w, w_t, csr, csr_cb, w_cb = _sparse(m, k, sparsity)
    x = np.random.default_rng(2).standard_normal(k, dtype=np.float32)
    benchmark.group = f"fc {name} {m}x{k} {round(sparsity * 100)}% sparse (n=1)"
    benchmark.extra_info["nnz"] = csr.nnz
    if impl == "dense":
        x_row = x[None, :]
        y = benchmark(_core.gemm, x_row, w_t)[0]
        _check(y, w, x)
    elif impl == "spmm":
        _check(benchmark(csr.matmul, x), w, x)
    else:
        _check(benchmark(csr_cb.matmul, x), w_cb, x)


@pytest.mark.parametrize("impl", ["dense", "qs8"])
@pytest.mark.parametrize("layer", FC_LAYERS, ids=lambda layer: layer[0])
def test_fc_int8(benchmark, layer, impl):
    name, (m, k) = layer
    w, w_t, w_q, w_scale = _dense(m, k)
    x = np.random.default_rng(2).standard_normal(k, dtype=np.float32)
    benchmark.group = f"fc-int8 {name} {m}x{k} (n=1)"
    if impl == "dense":
        y = benchmark(_core.gemm, x[None, :], w_t)[0]
        _check(y, w, x)
    else:
        y = benchmark(_core.qs8_gemm, w_q, w_scale, x)
        exact = w.astype(np.float64) @ x
        assert np.linalg.norm(y - exact) / np.linalg.norm(exact) < 0.02  # quantization error


@pytest.mark.parametrize("impl", SPARSE_IMPLS)
@pytest.mark.parametrize("sparsity", CONV_SPARSITY, ids=lambda s: f"{round(s * 100)}%")
@pytest.mark.parametrize("layer", CONV_LAYERS, ids=lambda layer: layer[0])
def test_conv(benchmark, layer, sparsity, impl):
    name, (m, k, n) = layer
    w, _, csr, csr_cb, w_cb = _sparse(m, k, sparsity)
    cols = np.random.default_rng(3).standard_normal((k, n), dtype=np.float32)
    benchmark.group = f"conv {name} {m}x{k}x{n} {round(sparsity * 100)}% sparse"
    if impl == "dense":
        _check(benchmark(_core.gemm, w, cols), w, cols)
    elif impl == "spmm":
        _check(benchmark(csr.matmul, cols), w, cols)
    else:
        _check(benchmark(csr_cb.matmul, cols), w_cb, cols)


@functools.lru_cache(maxsize=1)
def _direct_conv_model(cin: int, cout: int, h: int, w: int, k: int, pad: int, density: float) -> bytes:
    """A one-layer .pakd (conv + bias + ReLU) with weights pruned at random to `density`."""
    import torch

    from pakd.lower.native import export_pakd

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, k, padding=pad), torch.nn.ReLU()).eval()
    with torch.no_grad():
        weight = net[0].weight
        weight[torch.rand(weight.shape, generator=torch.Generator().manual_seed(1)) >= density] = 0.0
    return export_pakd(net, input_shape=(cin, h, w), huffman=False)


@pytest.mark.parametrize("impl", ["dense", "auto"])
@pytest.mark.parametrize("density", DIRECT_CONV_DENSITY, ids=lambda d: f"{round(d * 100)}%")
@pytest.mark.parametrize("layer", DIRECT_CONV_LAYERS, ids=lambda layer: layer[0])
def test_direct_conv(benchmark, layer, density, impl):
    name, (cin, cout, h, w, k, pad) = layer
    model = _direct_conv_model(cin, cout, h, w, k, pad, density)
    session = _core.Session(model, num_threads=1, sparse_max_density=-1.0 if impl == "dense" else 0.35)
    reference = _core.Session(model, num_threads=1, reference=True)
    x = np.random.default_rng(4).standard_normal((1, cin, h, w), dtype=np.float32)
    benchmark.group = f"direct-conv {name} {round(density * 100)}% nonzeros"
    benchmark.extra_info["form"] = session.profile(x, 1)[0][0]
    y = benchmark(session.run, x)
    np.testing.assert_allclose(y, reference.run(x), rtol=1e-4, atol=1e-4 * np.sqrt(cin * k * k))


@functools.lru_cache(maxsize=1)
def _linear_model(m: int, k: int, sparsity: float) -> bytes:
    """A one-layer .pakd (linear + bias + ReLU) with weights pruned at random to `sparsity`."""
    import torch

    from pakd.lower.native import export_pakd

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(k, m), torch.nn.ReLU()).eval()
    with torch.no_grad():
        weight = net[1].weight
        weight[torch.rand(weight.shape, generator=torch.Generator().manual_seed(1)) < sparsity] = 0.0
    return export_pakd(net, input_shape=(1, 1, k), huffman=False)


@pytest.mark.parametrize("impl", ["dense", "csr", "auto"])
@pytest.mark.parametrize("sparsity", FC_SESSION_SPARSITY, ids=lambda s: f"{round(s * 100)}%")
@pytest.mark.parametrize("layer", FC_SESSION_LAYERS)
def test_fc_session(benchmark, layer, sparsity, impl):
    m, k = dict(FC_LAYERS)[layer]
    model = _linear_model(m, k, sparsity)
    options = {"dense": {"sparse_max_density": -1.0}, "csr": {"max_batch": 2}, "auto": {}}[impl]
    session = _core.Session(model, num_threads=1, **options)
    x = np.random.default_rng(4).standard_normal((1, 1, 1, k), dtype=np.float32)
    benchmark.group = f"fc-session {layer} {m}x{k} {round(sparsity * 100)}% sparse (batch 1)"
    benchmark.extra_info["form"] = session.profile(x, 1)[1][0]
    y = benchmark(session.run, x)
    np.testing.assert_allclose(y, _core.Session(model, reference=True).run(x), rtol=1e-4, atol=1e-4 * np.sqrt(k))
