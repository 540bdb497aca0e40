"""The `pakd` command as a user runs it (subprocesses), including its error handling."""

from __future__ import annotations

import json
import os

import pytest

from pakd.modelio import load_model
from tests.conftest import run_cli


def test_help_lists_commands():
    res = run_cli("--help")
    assert res.returncode == 0
    for cmd in ("models", "train", "eval", "stats"):
        assert cmd in res.stdout


def test_train_help():
    res = run_cli("train", "--help")
    assert res.returncode == 0 and "--model" in res.stdout and "--epochs" in res.stdout


def test_help_keeps_bracketed_defaults():
    """A "[default: ...]" written in a help text reaches the user (rich markup used to swallow it,
    leaving "at least ." in `pakd bench --help`)."""
    res = run_cli("bench", "--help", env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "[default: bundles 100, models 200]" in text and "[default: ./devices.toml]" in text


@pytest.mark.slow
def test_models_lists_the_zoo_with_macs():
    res = run_cli("models")
    assert res.returncode == 0
    for name in ("lenet-300-100", "lenet5", "vgg-small", "resnet20", "resnet56", "mobilenetv2"):
        assert name in res.stdout
    assert "2.29M" in res.stdout  # LeNet-5's MACs


@pytest.mark.slow
def test_train_writes_a_teacher_reuses_it_and_eval_agrees(tmp_path):
    args = (
        "train",
        "--model",
        "lenet-300-100",
        "--data",
        "digits",
        "--epochs",
        "2",
        "--runs-dir",
        str(tmp_path),
        "--name",
        "t",
        "--quiet",
    )
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "t" / "teacher"
    spec = json.loads((folder / "spec.json").read_text())
    assert spec["model"]["name"] == "lenet-300-100" and spec["data"]["name"] == "digits"
    assert spec["seed"] == 0 and spec["versions"]["torch"].startswith("2.13")
    assert spec["metrics"]["params"] == 266_610 and len(spec["history"]) == 2
    assert not (folder / "checkpoint.pt").exists()

    again = run_cli(*args)
    assert again.returncode == 0 and "reused" in again.stdout

    model, _ = load_model(folder)
    assert sum(p.numel() for p in model.parameters()) == 266_610
    evaluated = run_cli("eval", str(tmp_path / "t"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"{100 * spec['metrics']['test_top1']:.2f}%" in evaluated.stdout

    changed = run_cli(*args[:-1], "--lr", "0.5")
    assert changed.returncode == 2 and "other settings" in changed.stderr


@pytest.mark.slow
def test_unknown_model_is_one_line_and_writes_nothing(tmp_path):
    res = run_cli("train", "--model", "resnet21", "--data", "synthetic", "--runs-dir", str(tmp_path))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unknown model 'resnet21'" in res.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_stats_prints_per_layer_table():
    res = run_cli("stats", "lenet5")
    assert res.returncode == 0 and "2,293,000" in res.stdout and "classifier.1" in res.stdout


def test_stats_takes_the_input_shape():
    """--model-arg in_channels/input_size pick the input; --input-shape overrides; a shape the model
    does not take, or no shape at all, is one line and exit 2."""
    res = run_cli("stats", "mobilenetv3-small", "--model-arg", "in_channels=3", "--model-arg", "input_size=224")
    assert res.returncode == 0 and "3x224x224" in res.stdout
    # the published MobileNetV3-small at 224: 56M multiply-adds (Howard et al. 2019, table 3)
    total = [line for line in res.stdout.splitlines() if "total" in line][0]
    macs = int(total.split("│")[-2].strip().replace(",", ""))
    assert abs(macs / 56e6 - 1) < 0.02
    res = run_cli("stats", "lenet5", "--input-shape", "3x28x28")
    assert res.returncode == 2 and "does not run on a 3x28x28 input" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("stats", "lenet5", "--input-shape", "28x28")
    assert res.returncode == 2 and "must look like CxHxW" in res.stderr
