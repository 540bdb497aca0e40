"""Batch-1 latency at phone scale: MobileNetV2, MobileNetV3-small and ResNet-18 at 3x224x224 with
random weights, on every dense engine of this machine at ONE thread (one benchmark group per model).

Run:  .venv/bin/python -m pytest benchmarks/test_bench_mobile224.py -q
      .venv/bin/python benchmarks/mobile224.py          # the same as one table with ratios, and
                                                        # the rpi4 instruction counts under qemu

This shows whether PaKD's kernels scale past 28x28 layers: pytest-benchmark's table puts PyTorch
eager, ONNX Runtime, ExecuTorch + XNNPACK and PaKD's native runtime side by side. Random weights
time the same as trained ones for a dense network (no weight is zero). Engines that cannot run a
model are skipped with the reason (e.g. an op PaKD's runtime lacks).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pakd.bench import ModelRef, get_engine
from pakd.modelio import save_model
from pakd.models import build_model

MODELS = ["mobilenetv3-small", "mobilenetv2", "resnet18"]
ENGINES = ["torch", "onnxruntime", "executorch", "pakd"]
SHAPE = (3, 224, 224)
THREADS = 1


def model_folder(root, name: str):
    """A model folder (model.safetensors + spec.json) of zoo model ``name`` at SHAPE, 1000 classes,
    random weights (seed 0), as `pakd bench FOLDER` takes it."""
    torch.manual_seed(0)
    args = {"in_channels": SHAPE[0], "num_classes": 1000, "input_size": SHAPE[1]}
    net = build_model(name, **args).eval()
    folder = root / name
    spec = {
        "model": {"name": name, "args": args},
        "data": {"name": "random", "kind": "random", "input_shape": list(SHAPE), "num_classes": 1000},
        "weights": "random (torch.manual_seed(0)): a latency-only model",
    }
    save_model(folder, net, spec)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mobile224")
    return {name: ModelRef.from_path(model_folder(root, name)) for name in MODELS}


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).standard_normal((1, *SHAPE), dtype=np.float32)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", MODELS)
def test_latency_224(benchmark, folders, image, model, engine):
    eng = get_engine(engine)
    reason = eng.availability()
    if reason:
        pytest.skip(f"{engine}: {reason}")
    try:
        runner = eng.open(folders[model], THREADS)
    except Exception as exc:  # EngineUnavailable: e.g. an op the engine cannot run
        pytest.skip(f"{engine}: {exc}")
    benchmark.group = f"{model} 3x224x224, batch 1, {THREADS} thread"
    benchmark.extra_info.update({"weights": "random", "threads": THREADS, **runner.info})
    out = benchmark.pedantic(runner, args=(image,), rounds=15, warmup_rounds=2)
    assert out.shape == (1, 1000)
