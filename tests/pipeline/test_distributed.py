"""``pakd compress --nproc 2``: one data-parallel run of two gloo processes on a real subset
(scikit-learn's digits, LeNet-5, channel pruning + unstructured + k-means), against the one-process
run with the same global batch; a kill -9 of one process, then --resume with two or one."""

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

from pakd._core import Session
from pakd.modelio import load_model
from pakd.pipeline import CompressJob, compress
from pakd.train import TeacherJob, TrainConfig, train_teacher
from tests.conftest import QuietProgress

pytestmark = pytest.mark.slow  # several processes, each starting torch

RECIPE = """
[recipe]
name = "tiny"
batch_size = 64
huffman = true
[[stage]]
name = "channels"
epochs = {epochs}
lr = 0.02
augment = "crop"
[stage.prune]
method = "channel"
criterion = "l1"
schedule = "oneshot"
amount = 0.5
[stage.distill]
teachers = ["teacher"]
alpha = 0.5
temperature = 2.0
[[stage]]
name = "prune"
epochs = 1
lr = 0.01
augment = "none"
[stage.prune]
method = "unstructured"
amount = 0.7
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
teachers = ["teacher"]
"""
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("teacher") / "teacher"
    job = TeacherJob(
        model="lenet5", data="digits", train=TrainConfig(epochs=3, batch_size=64, augment="none", threads=1)
    )
    train_teacher(job, folder)
    return folder


def _recipe(tmp_path: Path, epochs: int = 1) -> Path:
    path = tmp_path / f"tiny-{epochs}.toml"
    path.write_text(RECIPE.format(epochs=epochs))
    return path


def _compress(*args: str, nproc: int = 2) -> list[str]:
    return [sys.executable, "-m", "pakd", "compress", "--threads", "1", "--quiet", "--nproc", str(nproc), *args]


def test_two_processes_decide_alike_and_match_the_one_process_run(tmp_path, teacher):
    recipe = _recipe(tmp_path)
    one = compress(
        CompressJob(recipe_path=recipe, teacher_dir=teacher, run_dir=tmp_path / "one", threads=1), QuietProgress
    )[1]
    two = subprocess.run(
        _compress("--teacher", str(teacher), "--recipe", str(recipe), "--runs-dir", str(tmp_path), "--name", "two"),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr
    run = tmp_path / "two"
    rows = json.loads((run / "ledger.json").read_text())["rows"]
    info = json.loads((run / "run.json").read_text())
    assert (info["world_size"], info["global_batch"], info["batch_per_process"], info["backend"]) == (2, 64, 32, "gloo")
    assert [r.get("processes") for r in rows] == [None, 2, 2, 2]
    assert [r["stage"] for r in rows] == [r["stage"] for r in one]

    for k in (1, 2, 3):
        spec = json.loads((run / f"stage-{k}" / "spec.json").read_text())
        digests = spec["parallel"]["state_digests"]  # each rank's masks, channels and codebooks
        assert len(digests) == 2 and digests[0] == digests[1]
        one_spec = json.loads((tmp_path / "one" / f"stage-{k}" / "spec.json").read_text())
        assert spec["structure"] == one_spec["structure"]  # the same channels kept
    for a, b in zip(one[1:], rows[1:], strict=True):
        assert b["test_top1"] == pytest.approx(a["test_top1"], abs=0.03)  # 9 of the 300 test digits
        assert b["weight_sparsity"] == pytest.approx(a["weight_sparsity"], abs=1e-3)
        assert b["bytes_huffman"] == pytest.approx(a["bytes_huffman"], rel=0.02)

    # rank 0's file is the model, and the native runtime runs it
    stage = run / "stage-3"
    model, _ = load_model(stage)
    from pakd.data import load_digits

    x = load_digits().test.images[:32]
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    y = Session((stage / "model.pakd").read_bytes(), max_batch=32).run(x.numpy())
    np.testing.assert_allclose(y, expected, rtol=1e-3, atol=1e-3)


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(e[5:]) for e in env if e.startswith(b"RANK=")]
    return ranks[0] if ranks else None


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.parametrize("resume_nproc", [2, 1], ids=["resume-2", "resume-1"])
def test_kill_9_of_one_process_ends_the_run_clearly_and_resume_finishes_it(tmp_path, teacher, resume_nproc):
    epochs = 12
    recipe = _recipe(tmp_path, epochs=epochs)
    run = tmp_path / "tiny"
    proc = subprocess.Popen(
        _compress("--teacher", str(teacher), "--recipe", str(recipe), "--runs-dir", str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    ckpt = run / "stage-1" / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            if ckpt.exists() and torch.load(ckpt, weights_only=True)["epoch"] >= 2:
                break
        except (RuntimeError, EOFError):  # between rank 0's write and its rename
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    victim = [p for p in _children(proc.pid) if _rank_of(p) == 1]
    assert len(victim) == 1
    os.kill(victim[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "process 1 of 2 was killed by SIGKILL" in err
    assert f"continue with pakd compress --resume {run}" in err
    assert "Traceback" not in err
    killed_at = torch.load(ckpt, weights_only=True)["epoch"]
    assert 2 <= killed_at < epochs
    assert not (run / "stage-1" / "spec.json").exists()

    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pakd",
            "compress",
            "--resume",
            str(run),
            "--threads",
            "1",
            "--nproc",
            str(resume_nproc),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {killed_at}/{epochs}" in resumed.stdout
    rows = json.loads((run / "ledger.json").read_text())["rows"]
    assert [r["stage"] for r in rows] == ["teacher", "channels", "prune", "quantize"]
    assert [r["processes"] for r in rows[1:]] == [resume_nproc] * 3
    assert json.loads((run / "run.json").read_text())["world_size"] == resume_nproc
    assert rows[-1]["test_top1"] > 0.8  # the digits, after a resumed run, are still learned
