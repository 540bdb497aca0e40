"""The peer engines against the model itself (PyTorch, float32, one real test image)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from pakd.bench import BenchError, EngineUnavailable, ModelRef, engine_names, get_engine, load_module
from pakd.bench import engines as engines_mod
from pakd.modelio import load_model
from pakd.models import build_model
from pakd.prune.depgraph import apply_channel_config, channel_config

TOL = 1e-4


def _expected(folder, x):
    net, _ = load_model(folder)
    with torch.inference_mode():
        return net(torch.from_numpy(x)).numpy()


def test_registry_lists_the_peer_engines():
    assert {"torch", "onnxruntime", "pakd"} <= set(engine_names())


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(BenchError, match=r"unknown engine 'tvm2'; choose one of: torch, onnxruntime, executorch, pakd"):
        get_engine("tvm2")


def test_an_engine_name_registers_once():
    with pytest.raises(ValueError, match="registered twice"):
        engines_mod.register_engine("torch")(type("Again", (engines_mod.Engine,), {}))


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
@pytest.mark.parametrize("threads", [1, 2])
def test_dense_engine_matches_the_model(engine, threads, lenet5_folder, test_image):
    runner = get_engine(engine).open(ModelRef.from_path(lenet5_folder), threads)
    assert runner.engine == engine and runner.threads == threads
    out = runner(test_image)
    assert out.shape == (1, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, _expected(lenet5_folder, test_image), rtol=0, atol=TOL)


def test_torch_engine_sets_its_thread_count(lenet5_folder, test_image):
    runner = get_engine("torch").open(ModelRef.from_path(lenet5_folder), 1)
    torch.set_num_threads(2)  # as another engine might
    runner(test_image)
    assert torch.get_num_threads() == 1


def test_onnxruntime_reports_the_exporter_and_version(lenet5_folder):
    import onnxruntime

    info = get_engine("onnxruntime").open(ModelRef.from_path(lenet5_folder), 1).info
    assert info["onnxruntime"] == onnxruntime.__version__ and "torch.export" in info["exporter"]


def test_structurally_pruned_folder_is_rebuilt_with_its_channels(tmp_path, test_image, zoo_folder):
    config = channel_config(build_model("lenet5"))
    config["layers"]["features.0"]["out"] = 7
    config["layers"]["features.3"]["in"] = 7
    torch.manual_seed(1)
    pruned = apply_channel_config(build_model("lenet5"), torch.zeros(1, 1, 28, 28), config)
    folder = zoo_folder(tmp_path / "stage-1", "lenet5", pruned.eval(), structure=config)
    net = load_module(ModelRef.from_path(folder))
    assert net.features[0].out_channels == 7
    with torch.inference_mode():
        expected = pruned(torch.from_numpy(test_image)).numpy()
    for engine in ("torch", "onnxruntime"):
        out = get_engine(engine).open(ModelRef.from_path(folder), 1)(test_image)
        np.testing.assert_allclose(out, expected, rtol=0, atol=TOL)


def test_threads_below_one_are_refused(lenet5_folder):
    with pytest.raises(BenchError, match="threads must be >= 1"):
        get_engine("torch").open(ModelRef.from_path(lenet5_folder), 0)


def test_model_ref_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(BenchError, match="neither a model folder"):
        ModelRef.from_path(tmp_path)


def test_dense_engines_cannot_run_a_bare_pakd_file(tmp_path):
    pakd_file = tmp_path / "model.pakd"
    pakd_file.write_bytes(b"PAKD")
    with pytest.raises(EngineUnavailable, match="bare .pakd file"):
        get_engine("torch").open(ModelRef.from_path(pakd_file), 1)


def test_missing_onnxruntime_is_a_reason_not_a_crash(monkeypatch, lenet5_folder):
    monkeypatch.setattr(engines_mod, "_missing_modules", lambda *names: ["onnxruntime"])
    engine = get_engine("onnxruntime")
    assert "onnxruntime not installed" in engine.availability()
    with pytest.raises(EngineUnavailable, match="onnxruntime not installed"):
        engine.open(ModelRef.from_path(lenet5_folder), 1)


# --- the native runtime: pakd._core.Session(path_or_bytes, num_threads) with .run(x) ---------------


def test_pakd_without_a_native_session_says_so(monkeypatch, lenet5_folder):
    monkeypatch.setattr(engines_mod, "native_session_class", lambda: None)
    engine = get_engine("pakd")
    assert "no Session" in engine.availability()
    with pytest.raises(EngineUnavailable, match="no Session"):
        engine.open(ModelRef.from_path(lenet5_folder), 1)


def test_pakd_opens_the_stage_file_with_the_thread_count(tmp_path, lenet5_folder, test_image):
    from pakd.lower.native import export_pakd

    stage = tmp_path / "stage-1"
    shutil.copytree(lenet5_folder, stage)
    export_pakd(stage, stage / "model.pakd")
    runner = get_engine("pakd").open(ModelRef.from_path(stage), 2)
    assert runner.threads == 2 and runner.info["lowered_here"] is False
    np.testing.assert_allclose(runner(test_image), _expected(lenet5_folder, test_image), rtol=0, atol=TOL)


@pytest.mark.slow
def test_pakd_lowers_a_weights_only_stage_file(tmp_path, lenet5_folder, test_image):
    """A model.pakd written before the runtime existed has no op graph: the folder is lowered."""
    from pakd.lower.accountant import tensor_plans
    from pakd.lower.format import write_pakd
    from pakd.modelio import load_model

    stage = tmp_path / "stage-1"
    shutil.copytree(lenet5_folder, stage)
    (stage / "model.pakd").write_bytes(write_pakd(tensor_plans(load_model(stage)[0]), {}))
    runner = get_engine("pakd").open(ModelRef.from_path(stage), 1)
    assert runner.info["lowered_here"] is True
    np.testing.assert_allclose(runner(test_image), _expected(lenet5_folder, test_image), rtol=0, atol=TOL)


def test_native_runtime_matches_the_model_when_lowered(tmp_path, lenet5_folder, test_image):
    out = get_engine("pakd").open(ModelRef.from_path(lenet5_folder), 1)(test_image)
    np.testing.assert_allclose(out, _expected(lenet5_folder, test_image), rtol=0, atol=TOL)
