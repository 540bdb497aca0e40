"""3x3 stride-1 convolution speed in the native runtime: Winograd F(4x4, 3x3) vs the direct
kernels, one group per layer shape (ResNet-20's three stages, its 1-channel stem, a wider layer).

Run:  python -m pytest benchmarks/test_bench_conv.py -q
Each row times pakd._core.Session.run on a one-convolution model (+ bias + ReLU), batch 1, one
thread: "winograd" forces Session(winograd=1), "direct" Session(winograd=-1) (the 4x24/6x16
direct kernels, whichever the session prepares), "auto" the default choice, and "torch" PyTorch
eager on one thread for scale. pytest-benchmark's table shows each row's ratio to the fastest.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pakd._core import Session
from pakd.lower.native import export_pakd

# (cin, cout, h, w)
SHAPES = [(1, 16, 28, 28), (16, 16, 28, 28), (32, 32, 14, 14), (64, 64, 7, 7), (64, 64, 28, 28)]
WINOGRAD = {"winograd": 1, "auto": 0, "direct": -1}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("impl", ["winograd", "auto", "direct", "torch"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "{}x{}-{}x{}".format(*s))
def test_conv3x3(benchmark, shape, impl):
    cin, cout, h, w = shape
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()).eval()
    x = np.random.default_rng(0).standard_normal((1, cin, h, w)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    benchmark.group = f"conv3x3 {cin}->{cout} {h}x{w}"
    benchmark.extra_info["mmacs_direct"] = cout * cin * 9 * h * w / 1e6
    if impl == "torch":
        xt = torch.from_numpy(x)
        with torch.no_grad():
            y = benchmark(lambda: model(xt)).numpy()
    else:
        session = Session(export_pakd(model, input_shape=(cin, h, w)), winograd=WINOGRAD[impl])
        y = benchmark(session.run, x)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
