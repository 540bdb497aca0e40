"""The native runtime (pakd._core.Session) against PyTorch: every zoo model, dense teachers and
compressed students (unstructured-sparse, weight-shared, int8, channel-pruned), several thread
counts and batch sizes, the reference kernels, and the whole real Fashion-MNIST test set.

Tolerance: f32 weights and codebook weights (whose values are the f32 centroids PyTorch also
uses) and int8 weights (run dequantized, the exact values the file stores) must match PyTorch
within 1e-4 on logits, absolute for logits of order 1 (trained models) and relative to the largest
logit for random deep models whose logits reach 1e4; top-1 must be identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pakd._core import Session
from pakd.lower.accountant import serialize
from pakd.lower.native import export_pakd
from pakd.models import build_model
from pakd.quant import KMeansConfig, WeightSharing

ATOL = 1e-4
ZOO = {
    "lenet-300-100": {},
    "lenet5": {},
    "vgg-small": {"width": 0.5},
    "resnet20": {},
    "resnet56": {},
    "mobilenetv2": {"width_mult": 0.5},
}
SLOW = {"resnet56", "mobilenetv2"}  # seconds each: in `make test`, not in `make test-fast`


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Trained-looking batch-norm statistics, so folding them is really exercised."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
    return model.eval()


def _zoo_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return _randomize_bn(build_model(name, **ZOO[name]))


def assert_close(actual: np.ndarray, desired: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(desired).max()))
    np.testing.assert_allclose(actual, desired, rtol=0, atol=ATOL * scale)


def _torch(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _inputs(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 1, 28, 28)).astype(np.float32)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ZOO])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_threads": 2, "max_batch": 4},
        {"reference": True},
        {"winograd": 1, "num_threads": 2, "max_batch": 4},
        {"winograd": -1},
    ],
    ids=["1-thread", "2-threads-batch4", "reference", "winograd-always", "winograd-never"],
)
def test_zoo_model_matches_pytorch(name, options):
    model = _zoo_model(name)
    x = _inputs()
    session = Session(export_pakd(model), **options)
    y = session.run(x)
    ref = _torch(model, x)
    assert_close(y, ref)
    assert (y.argmax(1) == ref.argmax(1)).all()


def test_one_sample_without_batch_dimension():
    model = _zoo_model("lenet5")
    x = _inputs(1)
    session = Session(export_pakd(model))
    assert session.input_shape == [1, 28, 28] and session.output_shape == [10]
    assert_close(session.run(x[0]), _torch(model, x)[0])


def _pruned_shared_lenet5(bits: dict[str, int] | None) -> tuple[nn.Module, WeightSharing | None]:
    torch.manual_seed(0)
    model = build_model("lenet5").eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p[p.abs() < p.abs().flatten().quantile(0.92)] = 0
    if bits is None:
        return model, None
    ws = WeightSharing(KMeansConfig(bits=bits))
    ws.setup(model)
    return model, ws


@pytest.mark.parametrize("bits", [None, {"conv": 8, "linear": 5}], ids=["f32-sparse", "codebook-sparse"])
@pytest.mark.parametrize(
    "density, codebook", [(0.35, 0), (0.35, 1), (-1.0, 0)], ids=["sparse-kernels", "codebook-kernel", "forced-dense"]
)
def test_compressed_student_matches_pytorch(bits, density, codebook):
    model, ws = _pruned_shared_lenet5(bits)
    blob = serialize(model, {"model": "lenet5", "input_shape": [1, 28, 28]}, ws)
    x = _inputs(3)
    session = Session(blob, sparse_max_density=density, max_batch=3, num_threads=2, codebook_kernel=codebook)
    assert_close(session.run(x), _torch(model, x))


def test_sparse_weights_take_less_memory_than_dense():
    model, ws = _pruned_shared_lenet5({"conv": 8, "linear": 5})
    blob = serialize(model, {"input_shape": [1, 28, 28]}, ws)
    sparse, dense = Session(blob), Session(blob, sparse_max_density=-1)
    codes = Session(blob, codebook_kernel=1)
    assert sparse.weight_bytes < dense.weight_bytes / 3
    assert codes.weight_bytes < sparse.weight_bytes * 0.7  # u8 codes instead of f32 values


def test_int8_student_matches_pytorch():
    from pakd.quant.int8 import Int8Quantizer

    model = _zoo_model("resnet20")
    quant = Int8Quantizer()
    quant.setup(model)  # snaps the weights to their int8 values, as the compress stage does
    blob = serialize(model, {"input_shape": [1, 28, 28]}, quant)
    x = _inputs(2)
    assert_close(Session(blob, max_batch=2).run(x), _torch(model, x))


def test_channel_pruned_student_matches_pytorch():
    from pakd.prune.depgraph import build_graph

    model = _zoo_model("resnet20")
    example = torch.zeros(1, 1, 28, 28)
    groups = build_graph(model, example).groups
    plan = {g.name: list(range(0, g.size, 3)) for g in groups}  # drop a third of every group
    small = _randomize_bn(build_graph(model, example).prune(plan))
    assert sum(p.numel() for p in small.parameters()) < 0.6 * sum(p.numel() for p in model.parameters())
    x = _inputs(2)
    assert_close(Session(export_pakd(small), max_batch=2).run(x), _torch(small, x))


def test_top1_identical_on_the_whole_fashion_mnist_test_set(fmnist):
    """A briefly trained LeNet-300-100 and its magnitude-pruned, weight-shared student: the native
    runtime's predictions equal PyTorch's on all 10,000 real test images."""
    torch.manual_seed(0)
    model = build_model("lenet-300-100")
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    images, labels = fmnist.train.images, fmnist.train.labels
    for i in range(0, 20000, 200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(images[i : i + 200]), labels[i : i + 200]).backward()
        opt.step()
    model.eval()
    x = fmnist.test.images.numpy()
    for stage in ("dense", "student"):
        if stage == "student":
            with torch.no_grad():
                for p in model.parameters():
                    if p.dim() > 1:
                        p[p.abs() < p.abs().flatten().quantile(0.9)] = 0
            ws = WeightSharing(KMeansConfig(bits={"linear": 5}))
            ws.setup(model)
            blob = serialize(model, {"input_shape": [1, 28, 28]}, ws)
        else:
            blob = export_pakd(model)
        native = Session(blob, max_batch=500).run(x)
        ref = _torch(model, x)
        assert_close(native, ref)
        assert (native.argmax(1) == ref.argmax(1)).all()
        if stage == "dense":
            assert (ref.argmax(1) == fmnist.test.labels.numpy()).mean() > 0.8  # a real, trained model


def test_batches_larger_than_max_batch_run_in_chunks():
    model = _zoo_model("lenet5")
    x = _inputs(7)
    assert_close(Session(export_pakd(model), max_batch=3).run(x), _torch(model, x))


def test_memory_is_planned_and_reused():
    """resnet20's 33 activations fit in the arena of three 16x28x28 maps (a residual block needs its
    input, its intermediate and its output alive at once); reference mode has no im2col scratch."""
    model = _zoo_model("resnet20")
    session = Session(export_pakd(model), reference=True)
    assert session.num_ops == 33
    assert session.arena_bytes <= 3 * 4 * 16 * 28 * 28


def test_metadata_round_trip():
    blob = export_pakd(_zoo_model("lenet5"), meta={"classes": ["a", "b"]})
    meta = Session(blob).metadata
    assert meta["classes"] == ["a", "b"] and meta["input_shape"] == [1, 28, 28]


def test_wrong_input_shape_is_a_value_error():
    session = Session(export_pakd(_zoo_model("lenet5")))
    with pytest.raises(ValueError, match=r"does not match the model's \(N, 1, 28, 28\)"):
        session.run(np.zeros((2, 3, 28, 28), np.float32))


def test_unknown_gemm_kernel_and_bad_options():
    blob = export_pakd(_zoo_model("lenet-300-100"))
    with pytest.raises(ValueError, match="unknown GEMM kernel 'nope'"):
        Session(blob, gemm_kernel="nope")
    with pytest.raises(ValueError, match="num_threads"):
        Session(blob, num_threads=0)


@pytest.mark.parametrize("kernel", ["reference", "4x8-scalar"])
def test_every_gemm_kernel_runs_the_model(kernel):
    model = _zoo_model("lenet5")
    x = _inputs(1)
    assert_close(Session(export_pakd(model), gemm_kernel=kernel).run(x), _torch(model, x))


def test_profile_lists_every_op_with_its_kernel():
    model = _zoo_model("lenet5")
    session = Session(export_pakd(model))
    rows = session.profile(_inputs(1)[0], repeats=3)
    assert [d.split()[0] for d, _ in rows] == [
        "conv2d+relu",
        "maxpool",
        "conv2d+relu",
        "maxpool",
        "reshape",
        "linear+relu",
        "linear",
    ]
    assert rows[0][0] == "conv2d+relu dense 20x24x24"
    assert all(us >= 0 for _, us in rows) and sum(us for _, us in rows) > 0


def test_a_layer_with_no_nonzero_weight_runs():
    """An all-zero convolution (a fully pruned layer; found by the fuzzer) gives bias-only output."""
    model = _zoo_model("lenet5")
    with torch.no_grad():
        model.features[3].weight.zero_()
    x = _inputs(2)
    for density in (0.35, -1.0):
        assert_close(Session(export_pakd(model), max_batch=2, sparse_max_density=density).run(x), _torch(model, x))


@pytest.mark.parametrize("density", [0.02, 0.16, 0.3])
@pytest.mark.parametrize("threads", [1, 2])
def test_batch1_sparse_linear_matches_pytorch(density, threads):
    """Batch-1 sessions run a sparse linear layer on the blocked kernel where it is cheaper than CSR
    (AVX2 CPUs), on CSR otherwise; shapes off multiples of 8 on both sides."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(333, 77), nn.ReLU(), nn.Linear(77, 10)).eval()
    with torch.no_grad():
        weight = model[1].weight
        weight[torch.rand(weight.shape, generator=torch.Generator().manual_seed(1)) >= density] = 0
    session = Session(export_pakd(model, input_shape=(1, 9, 37)), num_threads=threads)
    x = torch.randn(4, 1, 9, 37, generator=torch.Generator().manual_seed(2)).numpy()
    for sample in x:
        assert_close(session.run(sample[None]), _torch(model, sample[None]))
    form = session.profile(x[:1], repeats=1)[1][0]
    if density == 0.3 and _core_avx2():
        assert form == "linear+relu csr-blocked 77"
    elif density == 0.02:
        assert form == "linear+relu csr 77"  # one nonzero per step or so: CSR is cheaper


def _core_avx2() -> bool:
    from pakd import _core

    return bool(_core.cpu_features()["avx2"] and _core.cpu_features()["fma"])


def _odd_conv_net() -> nn.Module:
    """3x3 stride-1 convolutions with channel counts off the kernels' blocks, odd image sizes,
    padding 0 and 1, with and without batch norm and ReLU."""
    torch.manual_seed(3)
    return _randomize_bn(
        nn.Sequential(
            nn.Conv2d(5, 13, 3, padding=1),
            nn.BatchNorm2d(13),
            nn.ReLU(),
            nn.Conv2d(13, 20, 3, padding=0, bias=False),
            nn.BatchNorm2d(20),
            nn.Conv2d(20, 9, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(9 * 9 * 7, 10),
        )
    )


@pytest.mark.parametrize("winograd", [1, 0, -1], ids=["always", "auto", "never"])
@pytest.mark.parametrize("options", [{}, {"num_threads": 2, "max_batch": 3}], ids=["1-thread", "2-threads-batch3"])
def test_winograd_convolutions_match_pytorch(winograd, options):
    model = _odd_conv_net()
    x = np.random.default_rng(4).standard_normal((3, 5, 11, 9)).astype(np.float32)
    session = Session(export_pakd(model, input_shape=(5, 11, 9)), winograd=winograd, **options)
    assert_close(session.run(x), _torch(model, x))


def test_winograd_option_picks_the_kernel():
    """Auto runs ResNet-20's 3x3 stride-1 convolutions through Winograd, never the 1-channel stem
    (its padded channels would cost more than the direct kernel); -1 forces the direct kernels."""
    model = _zoo_model("resnet20")
    blob = export_pakd(model)
    eligible = [
        m
        for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (1, 1) and m.in_channels > 1
    ]
    x = _inputs(1)[0]
    auto = [d for d, _ in Session(blob).profile(x, repeats=1) if d.startswith("conv2d")]
    assert auto[0] == "conv2d+relu dense 16x28x28"
    assert sum("winograd" in d for d in auto) == len(eligible) == 16
    always = [d for d, _ in Session(blob, winograd=1).profile(x, repeats=1) if d.startswith("conv2d")]
    assert always[0] == "conv2d+relu winograd 16x28x28"
    never = [d for d, _ in Session(blob, winograd=-1).profile(x, repeats=1)]
    assert not any("winograd" in d for d in never)


def _residual_net() -> nn.Module:
    """Residual blocks off the kernels' channel blocks (a channel-pruned student's shapes): an
    identity shortcut, a 1x1 stride-2 shortcut convolution run after the block's second 3x3
    convolution, and an add without ReLU whose convolution output is also read elsewhere."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5), nn.ReLU())
            self.a1 = nn.Sequential(nn.Conv2d(5, 7, 3, padding=1, bias=False), nn.BatchNorm2d(7), nn.ReLU())
            self.a2 = nn.Sequential(nn.Conv2d(7, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5))
            self.b1 = nn.Sequential(nn.Conv2d(5, 11, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(11), nn.ReLU())
            self.b2 = nn.Sequential(nn.Conv2d(11, 10, 3, padding=1, bias=False), nn.BatchNorm2d(10))
            self.short = nn.Sequential(nn.Conv2d(5, 10, 1, stride=2, bias=False), nn.BatchNorm2d(10))
            self.c1 = nn.Conv2d(10, 10, 3, padding=1)
            self.head = nn.Linear(2 * 10 * 14 * 14, 10)

        def forward(self, x):
            x = self.stem(x)
            x = torch.relu(self.a2(self.a1(x)) + x)
            x = torch.relu(self.b2(self.b1(x)) + self.short(x))
            c = self.c1(x)
            y = c + x  # no ReLU; c is read again below, so this add stays
            return self.head(torch.cat([y, c], 1).flatten(1))

    torch.manual_seed(5)
    return _randomize_bn(Net())


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_threads": 2, "max_batch": 3},
        {"winograd": 1},
        {"winograd": -1, "num_threads": 2, "max_batch": 3},
        {"sparse_max_density": 1.0, "max_batch": 3},
    ],
    ids=["1-thread", "2-threads-batch3", "winograd-always", "winograd-never", "sparse"],
)
def test_residual_adds_fuse_into_convolutions(options):
    """Each residual add (+ ReLU) runs in the epilogue of the convolution producing one of its
    inputs (Winograd, both direct layouts, sparse, GEMM): the profile shows no add op, only
    conv2d+add ops, and the outputs still match PyTorch."""
    model = _zoo_model("resnet20")
    x = _inputs(3)
    session = Session(export_pakd(model), **options)
    names = [d for d, _ in session.profile(x[:1], repeats=1)]
    assert not any(d.startswith("add") for d in names)
    assert sum(d.startswith("conv2d+add+relu ") for d in names) == 9
    assert_close(
        session.run(x if options.get("max_batch") else x[:1]), _torch(model, x if options.get("max_batch") else x[:1])
    )

    net = _residual_net()
    session = Session(export_pakd(net), **options)
    names = [d for d, _ in session.profile(x[:1], repeats=1)]
    assert [d.split()[0] for d in names if "add" in d.split()[0]] == ["conv2d+add+relu", "conv2d+add+relu", "add"]
    assert names[5].startswith("conv2d+add+relu ") and names[5].endswith(" 10x14x14")  # the 1x1 shortcut
    xs = x if options.get("max_batch") else x[:1]
    assert_close(session.run(xs), _torch(net, xs))
    if "sparse_max_density" in options:
        assert any("sparse-direct" in d or " csr" in d for d in names)


def test_fused_residual_add_matches_the_reference_session():
    """The unfused oracle (reference=True runs the graph as it is, one op per node) and the fused
    session agree on a channel-pruned-like residual net."""
    net = _residual_net()
    x = _inputs(2)
    blob = export_pakd(net)
    ref = Session(blob, reference=True, max_batch=2)
    assert sum(d.startswith("add") for d, _ in ref.profile(x[:1], repeats=1)) == 3
    assert_close(Session(blob, max_batch=2).run(x), ref.run(x))
