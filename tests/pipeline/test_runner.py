"""The stage runner end to end on small real runs, including a kill -9 in the middle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pakd.lower.format import read_pakd
from pakd.modelio import load_model
from pakd.pipeline import CompressJob, compress
from pakd.train import TeacherJob, TrainConfig, train_teacher
from tests.conftest import QuietProgress

pytestmark = pytest.mark.slow  # compress runs with training on real data

RECIPE = """
[recipe]
name = "tiny"
batch_size = 100
[[stage]]
name = "prune"
epochs = {epochs}
lr = 0.02
augment = "none"
[stage.prune]
method = "unstructured"
amount = 0.8
[stage.distill]
teachers = ["teacher"]
[[stage]]
name = "quantize"
epochs = 1
lr = 0.002
augment = "none"
[stage.quantize]
method = "kmeans"
bits = {{ conv = 6, linear = 4 }}
[stage.distill]
teachers = ["teacher", "previous"]
"""


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("teacher") / "teacher"
    job = TeacherJob(
        model="lenet5",
        data="synthetic",
        train=TrainConfig(epochs=2, batch_size=100, augment="none", lr=0.02, threads=1),
    )
    train_teacher(job, folder)
    return folder


def _recipe(tmp_path: Path, epochs: int = 1) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE.format(epochs=epochs))
    return path


def test_compress_writes_stages_ledger_and_a_file_that_is_the_model(tmp_path, teacher):
    job = CompressJob(recipe_path=_recipe(tmp_path), teacher_dir=teacher, run_dir=tmp_path / "run", threads=1)
    recipe, rows = compress(job, QuietProgress)
    assert [r["stage"] for r in rows] == ["teacher", "prune", "quantize"]
    assert rows[1]["weight_sparsity"] == pytest.approx(0.8, abs=0.01)
    assert rows[2]["bytes_huffman"] <= rows[2]["bytes"] < rows[1]["bytes"] < rows[0]["bytes"]
    assert rows[2]["size_ratio"] == pytest.approx(4 * rows[0]["params"] / rows[2]["bytes_huffman"])
    ledger = json.loads((tmp_path / "run" / "ledger.json").read_text())
    assert ledger["rows"] == json.loads(json.dumps(rows))

    stage = tmp_path / "run" / "stage-2"
    blob = (stage / "model.pakd").read_bytes()
    assert len(blob) == rows[2]["bytes_huffman"]  # the accountant's figure is this file's size
    _, tensors = read_pakd(blob)
    model, _ = load_model(stage)
    for name, t in model.state_dict().items():
        if t.is_floating_point():
            np.testing.assert_array_equal(tensors[name], t.numpy())
    fc = model.classifier[1].weight
    assert fc[fc != 0].unique().numel() <= 16  # 4-bit codebook

    again = compress(job, QuietProgress)[1]  # finished stages are reused, not redone
    assert [r["test_top1"] for r in again] == [r["test_top1"] for r in rows]


def test_a_run_refuses_another_recipe(tmp_path, teacher):
    job = CompressJob(recipe_path=_recipe(tmp_path), teacher_dir=teacher, run_dir=tmp_path / "run", threads=1)
    compress(job, QuietProgress)
    other = tmp_path / "other.toml"
    other.write_text(RECIPE.format(epochs=2))
    from pakd.errors import RunError

    with pytest.raises(RunError, match="another recipe"):
        compress(
            CompressJob(recipe_path=other, teacher_dir=teacher, run_dir=tmp_path / "run", threads=1), QuietProgress
        )


def test_missing_teacher_is_clear(tmp_path):
    from pakd.errors import RunError

    job = CompressJob(recipe_path=_recipe(tmp_path), teacher_dir=tmp_path / "nope", run_dir=tmp_path / "run")
    with pytest.raises(RunError, match="teacher not found"):
        compress(job, QuietProgress)
    assert not (tmp_path / "run").exists()


def test_kill_9_mid_stage_then_resume_gives_the_uninterrupted_result(tmp_path, teacher):
    recipe = _recipe(tmp_path, epochs=8)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = [
        sys.executable,
        "-m",
        "pakd",
        "compress",
        "--teacher",
        str(teacher),
        "--recipe",
        str(recipe),
        "--threads",
        "1",
        "--quiet",
        "--runs-dir",
    ]

    straight = subprocess.run(base + [str(tmp_path / "a")], capture_output=True, text=True, env=env, timeout=600)
    assert straight.returncode == 0, straight.stderr

    proc = subprocess.Popen(base + [str(tmp_path / "b")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ckpt = tmp_path / "b" / "tiny" / "stage-1" / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=True)["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ckpt, weights_only=True)["epoch"]
    assert 2 <= killed_at < 8
    assert not (tmp_path / "b" / "tiny" / "stage-1" / "spec.json").exists()

    resumed = subprocess.run(
        [sys.executable, "-m", "pakd", "compress", "--resume", str(tmp_path / "b" / "tiny"), "--threads", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {killed_at}/8" in resumed.stdout
    for stage in ("stage-1", "stage-2"):
        a = load_file(str(tmp_path / "a" / "tiny" / stage / "model.safetensors"))
        b = load_file(str(tmp_path / "b" / "tiny" / stage / "model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), stage


def test_int8_stage_stores_int8_weights_and_calibrated_activation_scales(tmp_path, teacher):
    recipe = tmp_path / "int8.toml"
    recipe.write_text("""
[[stage]]
name = "int8"
epochs = 1
lr = 0.001
augment = "none"
[stage.quantize]
method = "int8"
""")
    job = CompressJob(recipe_path=recipe, teacher_dir=teacher, run_dir=tmp_path / "run", threads=1)
    _, rows = compress(job, QuietProgress)
    meta, tensors = read_pakd((tmp_path / "run" / "stage-1" / "model.pakd").read_bytes())
    assert set(meta["activation_scales"]) == {"features.0", "features.3", "classifier.1", "classifier.3"}
    assert all(s > 0 for s in meta["activation_scales"].values())
    model, _ = load_model(tmp_path / "run" / "stage-1")
    np.testing.assert_allclose(
        tensors["classifier.1.weight"], model.classifier[1].weight.detach().numpy(), rtol=0, atol=1e-6
    )
    assert rows[1]["size_ratio"] > 3.5  # int8 weights, f32 biases: about 4x
