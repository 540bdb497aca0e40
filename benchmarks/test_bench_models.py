"""Batch-1 latency of the zoo teachers on the peer engines, one group per model.

Run:  python -m pytest benchmarks/test_bench_models.py -q
      PAKD_RUNS_DIR=/path/to/runs python -m pytest benchmarks/test_bench_models.py -q

Each model is one benchmark group, so pytest-benchmark's table shows PyTorch eager, ONNX Runtime
and the native runtime side by side at ONE thread, on one real Fashion-MNIST test image. The
trained teacher runs/<model>-fashion-mnist/teacher is used when present (under PAKD_RUNS_DIR,
default ./runs); otherwise the zoo model with random weights, which times the same for a dense
net. `pakd bench` is the command that reports these with the compressed students.
"""

import os
from pathlib import Path

import pytest

from pakd.bench import ModelRef, get_engine
from pakd.data import load_fashion_mnist
from pakd.modelio import SPEC_FILE, save_model
from pakd.models import build_model

MODELS = ["lenet5", "resnet20"]
ENGINES = ["torch", "onnxruntime", "pakd"]
THREADS = 1


@pytest.fixture(scope="module")
def image():
    return load_fashion_mnist().test.images[:1].numpy().copy()


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    runs = Path(os.environ.get("PAKD_RUNS_DIR", "runs"))
    out = {}
    for name in MODELS:
        trained = runs / f"{name}-fashion-mnist" / "teacher"
        if (trained / SPEC_FILE).is_file():
            out[name] = (ModelRef.from_path(trained), "trained")
        else:
            folder = tmp_path_factory.mktemp(name)
            save_model(
                folder,
                build_model(name),
                {"model": {"name": name, "args": {}}, "data": {"name": "fashion-mnist", "input_shape": [1, 28, 28]}},
            )
            out[name] = (ModelRef.from_path(folder), "random weights")
    return out


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", MODELS)
def test_teacher_latency(benchmark, teachers, image, model, engine):
    eng = get_engine(engine)
    reason = eng.availability()
    if reason:
        pytest.skip(f"{engine}: {reason}")
    ref, weights = teachers[model]
    try:
        runner = eng.open(ref, THREADS)
    except Exception as exc:  # EngineUnavailable: e.g. the teacher cannot be lowered to .pakd yet
        pytest.skip(f"{engine}: {exc}")
    benchmark.group = f"{model} teacher, batch 1, {THREADS} thread"
    benchmark.extra_info.update({"weights": weights, "threads": THREADS, **runner.info})
    out = benchmark(runner, image)
    assert out.shape == (1, 10)
