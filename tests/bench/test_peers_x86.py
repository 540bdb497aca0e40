"""The executorch engine of `pakd bench` (ExecuTorch + XNNPACK through its Python runtime) against
the model itself, and its place among the teacher's engines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pakd.bench import EngineUnavailable, ModelRef, engine_names, get_engine
from pakd.bench import engines as engines_mod
from pakd.bench.local import BenchCase, BenchConfig, run_local
from pakd.modelio import load_model

TOL = 1e-4


def _expected(folder, x):
    net, _ = load_model(folder)
    with torch.inference_mode():
        return net(torch.from_numpy(x)).numpy()


def test_executorch_is_a_teacher_engine():
    assert "executorch" in engine_names()


@pytest.mark.slow  # lowering through torch.export + XNNPACK takes a few seconds
def test_executorch_engine_matches_the_model(lenet5_folder, test_image):
    runner = get_engine("executorch").open(ModelRef.from_path(lenet5_folder), 1)
    assert runner.engine == "executorch" and runner.threads == 1
    assert runner.info["executorch"] == "1.5.1" and runner.info["undelegated_ops"] == []
    out = runner(test_image)
    assert out.shape == (1, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, _expected(lenet5_folder, test_image), rtol=0, atol=TOL)
    np.testing.assert_array_equal(runner(test_image), out)  # a second call, same answer


@pytest.mark.slow
def test_executorch_row_beside_the_others(lenet5_folder, test_image):
    case = BenchCase("model", ModelRef.from_path(lenet5_folder), ("torch", "executorch"))
    config = BenchConfig(repeats=3, warmup=1, min_time_s=0, isolate=False)
    rows = {r.engine: r for r in run_local([case], config, test_image)}
    assert rows["executorch"].timing is not None and rows["executorch"].max_abs_diff < TOL
    assert sum(r.baseline for r in rows.values()) == 1  # the fastest of the two is the baseline


def test_missing_executorch_is_a_reason_not_a_crash(monkeypatch, lenet5_folder):
    monkeypatch.setattr(engines_mod, "_missing_modules", lambda *names: [names[0]])
    engine = get_engine("executorch")
    assert engine.availability() == "executorch.runtime not installed (pip install executorch==1.5.1)"
    with pytest.raises(EngineUnavailable, match="executorch.runtime not installed"):
        engine.open(ModelRef.from_path(lenet5_folder), 1)
