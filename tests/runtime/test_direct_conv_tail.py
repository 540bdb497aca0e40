"""The dense wide-row direct convolution (kernels/f32-dconv-4x24-*.cc) on output-channel counts
off its 4-channel blocks: every tail of 1..3 channels, alone and after whole blocks, through the
kernels themselves with their input and output passes (kernels/f32-dconv-io-*.cc) and through the
session (padded input, bias, fused residual add, ReLU, output channels split across 2 threads),
against PyTorch and the reference session.

Tolerance: f32 sums of at most 8 x 3 x 3 products of order 1 in a different order, 1e-4 absolute
on outputs of order 1, as in test_session.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pakd import _core
from pakd._core import Session
from pakd.lower.native import export_pakd

ATOL = 1e-4
COUTS = list(range(1, 10))  # 1..3 alone, 4, then 4 + 1..3, 8, 8 + 1


def _names(family: str) -> list[str]:
    return [k["name"] for k in _core.kernels(family)]


def _unsupported(kernel: str, family: str) -> bool:
    return not next(k["supported"] for k in _core.kernels(family) if k["name"] == kernel)


@pytest.mark.parametrize("kernel", _names("f32-dconv-wide"))
@pytest.mark.parametrize("cout", COUTS)
@pytest.mark.parametrize(
    "cin, h, w, k, pad",
    [(3, 11, 9, 3, 1), (5, 7, 13, 3, 0), (2, 9, 10, 5, 2), (3, 3, 3, 3, 1), (4, 8, 12, 3, 1), (1, 28, 28, 3, 1)],
)
def test_dconv_kernel_output_channel_tails(kernel, cout, cin, h, w, k, pad):
    """The kernel runs over the real channel count (no padded rows): each tail size writes exactly
    its channels (the binding's output buffer holds cout rows only). Wide-row counts n of 24, 72,
    120, 144 and 840: odd and even numbers of 24-position tiles (the 1-row tail runs pairs)."""
    if _unsupported(kernel, "f32-dconv-wide"):
        pytest.skip(f"{kernel} needs a CPU feature this machine lacks")
    rng = np.random.default_rng(cout * 100 + cin)
    x = rng.standard_normal((cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
    y = _core.conv2d_direct(x, wt, pad, pad, kernel)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None], torch.from_numpy(wt), padding=pad)[0].numpy()
    np.testing.assert_allclose(y, ref, rtol=0, atol=ATOL * np.sqrt(cin * k * k))


@pytest.mark.parametrize("kernel", _names("f32-dconv-wide"))
@pytest.mark.parametrize("cout", COUTS)
@pytest.mark.parametrize("cin, h, w, pad", [(3, 5, 5, 1), (2, 9, 7, 1), (4, 11, 17, 1), (3, 12, 26, 2), (2, 6, 9, 0)])
def test_dconv_input_and_output_passes(kernel, cout, cin, h, w, pad):
    """The session's padding pass and its wide-row output pass (scale, bias, residual, ReLU) of the
    same ISA around the 4x24 kernel: outputs narrower than 8 (scalar rows), 8..16 with a partial
    last vector, several vectors, padding 0..2."""
    if _unsupported(kernel, "f32-dconv-wide"):
        pytest.skip(f"{kernel} needs a CPU feature this machine lacks")
    rng = np.random.default_rng(cout * 10 + h)
    x = rng.standard_normal((cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    scale = rng.random(cout).astype(np.float32) + 0.5
    bias = rng.standard_normal(cout).astype(np.float32)
    conv = torch.nn.functional.conv2d(torch.from_numpy(x)[None], torch.from_numpy(wt), padding=pad)[0].numpy()
    residual = rng.standard_normal(conv.shape).astype(np.float32)
    tol = ATOL * np.sqrt(cin * 9)
    for args, expected in [
        ({}, conv),
        ({"bias": bias}, conv + bias[:, None, None]),
        ({"bias": bias, "relu": True}, np.maximum(conv + bias[:, None, None], 0)),
        (
            {"scale": scale, "bias": bias, "residual": residual},
            conv * scale[:, None, None] + bias[:, None, None] + residual,
        ),
        ({"scale": scale, "residual": residual, "relu": True}, np.maximum(conv * scale[:, None, None] + residual, 0)),
        ({"residual": residual, "relu": True}, np.maximum(conv + residual, 0)),
    ]:
        y = _core.conv2d_direct(x, wt, pad, pad, kernel, **args)
        np.testing.assert_allclose(y, expected, rtol=0, atol=tol, err_msg=str(sorted(args)))


def test_epilogue_arguments_only_for_the_wide_row_kernels():
    with pytest.raises(ValueError, match="4x24 kernels only"):
        _core.conv2d_direct(
            np.zeros((1, 5, 5), np.float32), np.zeros((2, 1, 3, 3), np.float32), 1, 1, "6x16-scalar", relu=True
        )


class _TailNet(nn.Module):
    """Two 3x3 convolutions of cout channels, the second one's output + the first one's (fused into
    the second convolution's epilogue) when residual, then ReLU when relu."""

    def __init__(self, cin: int, cout: int, pad: int, relu: bool, residual: bool):
        super().__init__()
        self.a = nn.Conv2d(cin, cout, 3, padding=pad)
        self.b = nn.Conv2d(cout, cout, 3, padding=1)
        self.relu, self.residual = relu, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        z = self.b(y)
        if self.residual:
            z = z + y
        return torch.relu(z) if self.relu else z


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("cout", COUTS)
def test_session_dense_direct_output_channel_tails(cout, residual, relu, threads):
    """Winograd and the sparse kernel off, so the dense direct kernels run every layer; 8 input
    channels on 31 x 29 (odd sizes, padding 1 then 0) give enough work for 2 threads to split the
    output channels in blocks of 4 from cout = 5 on (the second thread gets the tail)."""
    torch.manual_seed(cout)
    net = _TailNet(8, cout, 1, relu, residual).eval()
    blob = export_pakd(net, input_shape=(8, 31, 29))
    x = np.random.default_rng(cout).standard_normal((2, 8, 31, 29)).astype(np.float32)
    session = Session(blob, num_threads=threads, max_batch=2, winograd=-1, sparse_max_density=-1)
    names = [d for d, _ in session.profile(x[:1], repeats=1)]
    assert all(" dense " in d for d in names)
    assert names[-1].startswith("conv2d+add" if residual else "conv2d")
    y = session.run(x)
    reference = Session(blob, reference=True, max_batch=2).run(x)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, reference, rtol=0, atol=ATOL)
    np.testing.assert_allclose(y, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("cout", COUTS)
def test_session_dense_direct_tails_unpadded_odd_input(cout):
    """Padding 0 on an odd 15 x 17 input (wide rows of 17 columns for 15 outputs), one sample."""
    torch.manual_seed(10 + cout)
    net = _TailNet(3, cout, 0, True, True).eval()
    blob = export_pakd(net, input_shape=(3, 15, 17))
    x = np.random.default_rng(10 + cout).standard_normal((1, 3, 15, 17)).astype(np.float32)
    y = Session(blob, winograd=-1, sparse_max_density=-1).run(x)
    reference = Session(blob, reference=True).run(x)
    np.testing.assert_allclose(y, reference, rtol=0, atol=ATOL)


@pytest.mark.parametrize("kernel", _names("f32-dconv-oc"))
@pytest.mark.parametrize("cout", [1, 5, 8, 9, 11, 16, 17, 29])
@pytest.mark.parametrize(
    "h, w, k, pad, stride", [(13, 11, 3, 1, 2), (14, 14, 1, 0, 2), (7, 7, 3, 1, 1), (5, 4, 3, 0, 1)]
)
def test_dconv_oc_kernel_channel_and_position_tails(kernel, cout, h, w, k, pad, stride):
    """The 6x16 kernel's stores: whole 6-position tiles (transposed in registers on AVX2) and a last
    partial tile, 1..16 channels of a 16-channel block, the 1x1 stride-2 shortcut's shape."""
    if _unsupported(kernel, "f32-dconv-oc"):
        pytest.skip(f"{kernel} needs a CPU feature this machine lacks")
    rng = np.random.default_rng(cout * 7 + h)
    x = rng.standard_normal((4, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, 4, k, k)).astype(np.float32)
    y = _core.conv2d_direct(x, wt, pad, pad, kernel, stride=stride)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None], torch.from_numpy(wt), padding=pad, stride=stride)[
        0
    ].numpy()
    np.testing.assert_allclose(y, ref, rtol=0, atol=ATOL * np.sqrt(4 * k * k))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cout", [5, 11, 13, 16, 17])
def test_session_strided_direct_conv_split_positions(cout, threads):
    """Stride-2 3x3 and 1x1 convolutions (the 6x16 kernel, positions split across threads in
    multiples of 6) with a fused residual add and ReLU, against the reference session."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(8, cout, 3, stride=2, padding=1)
            self.short = nn.Conv2d(8, cout, 1, stride=2)

        def forward(self, x):
            return torch.relu(self.a(x) + self.short(x))

    torch.manual_seed(cout)
    net = Net().eval()
    blob = export_pakd(net, input_shape=(8, 41, 37))
    x = np.random.default_rng(cout).standard_normal((2, 8, 41, 37)).astype(np.float32)
    session = Session(blob, num_threads=threads, max_batch=2, winograd=-1, sparse_max_density=-1)
    assert all(" dense " in d for d, _ in session.profile(x[:1], repeats=1))
    y = session.run(x)
    np.testing.assert_allclose(y, Session(blob, reference=True, max_batch=2).run(x), rtol=0, atol=ATOL)
    with torch.no_grad():
        np.testing.assert_allclose(y, net(torch.from_numpy(x)).numpy(), rtol=0, atol=ATOL)
