"""pakd-run (csrc/tools/pakd-run.c), the device runner, on a real exported model: the same
numbers as pakd._core.Session, --expect verdicts, benchmark JSON, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.tools.conftest import Model, run

pytestmark = pytest.mark.slow  # a CMake build of the tools


@pytest.fixture(scope="module")
def pakd_run(tools_build: Path) -> Path:
    return tools_build / "pakd-run"


@pytest.mark.parametrize("threads", [1, 2])
def test_output_matches_session_run(pakd_run, lenet: Model, tmp_path, threads):
    out = tmp_path / "out.f32"
    r = run([pakd_run, lenet.path, "--input", lenet.input_file, "--threads", threads, "--save-output", out, "--json"])
    saved = np.fromfile(out, dtype="<f4")
    np.testing.assert_allclose(saved, lenet.output, atol=1e-5, rtol=0)
    doc = json.loads(r.stdout)
    np.testing.assert_allclose(doc["output"], lenet.output, atol=1e-5, rtol=0)
    assert doc["argmax"] == int(np.argmax(lenet.output))
    assert doc["threads"] == threads
    assert (doc["input_size"], doc["output_size"]) == (784, 10)


def test_default_input_is_the_documented_pattern(pakd_run, lenet: Model, tmp_path):
    """Without --input the sample is the LCG pattern from --help, reproducible anywhere."""
    from pakd._core import Session

    state, x = 12345, []
    for _ in range(784):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        x.append(((state >> 8) & 0xFFFF) / 32768.0 - 1.0)
    expected = np.asarray(Session(str(lenet.path)).run(np.asarray(x, "<f4").reshape(1, 1, 28, 28)))[0]
    out = tmp_path / "out.f32"
    run([pakd_run, lenet.path, "--save-output", out])
    np.testing.assert_allclose(np.fromfile(out, dtype="<f4"), expected, atol=1e-5, rtol=0)


def test_expect_within_tolerance_exits_0(pakd_run, lenet: Model):
    r = run([pakd_run, lenet.path, "--input", lenet.input_file, "--expect", lenet.output_file, "--atol", "1e-5"])
    assert "OK" in r.stdout


def test_expect_mismatch_exits_1(pakd_run, lenet: Model, tmp_path):
    wrong = tmp_path / "wrong.f32"
    (lenet.output + np.float32(1e-3)).astype("<f4").tofile(wrong)
    r = run([pakd_run, lenet.path, "--input", lenet.input_file, "--expect", wrong, "--atol", "1e-5"], check=False)
    assert r.returncode == 1, r.stderr
    assert "MISMATCH" in r.stderr and "max abs diff 0.001" in r.stderr


def test_expect_different_argmax_exits_1(pakd_run, lenet: Model, tmp_path):
    """A swapped top class is a mismatch even with a loose tolerance on values."""
    swapped = lenet.output.copy()
    top, low = int(np.argmax(swapped)), int(np.argmin(swapped))
    swapped[top], swapped[low] = swapped[low], swapped[top]
    path = tmp_path / "swapped.f32"
    swapped.tofile(path)
    atol = float(np.abs(swapped - lenet.output).max()) * 1.01  # values within tolerance
    r = run([pakd_run, lenet.path, "--input", lenet.input_file, "--expect", path, "--atol", atol], check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"argmax {top}, expected {low}" in r.stderr


def test_bench_json(pakd_run, lenet: Model):
    r = run(
        [
            pakd_run,
            lenet.path,
            "--input",
            lenet.input_file,
            "--bench",
            "--warmup",
            "2",
            "--repeats",
            "7",
            "--min-time",
            "0",
            "--json",
        ]
    )
    doc = json.loads(r.stdout)
    fields = {
        "model",
        "threads",
        "batch",
        "runs",
        "median_us",
        "p90_us",
        "min_us",
        "max_us",
        "mean_us",
        "stdev_us",
        "peak_rss_kb",
        "input_size",
        "output_size",
        "output",
    }
    assert fields <= doc.keys()
    assert doc["model"] == str(lenet.path) and doc["batch"] == 1 and doc["threads"] == 1
    assert doc["runs"] >= 7
    assert 0 < doc["min_us"] <= doc["median_us"] <= doc["p90_us"] <= doc["max_us"]
    assert doc["min_us"] <= doc["mean_us"] <= doc["max_us"] and doc["stdev_us"] >= 0
    assert doc["peak_rss_kb"] > 0
    np.testing.assert_allclose(doc["output"], lenet.output[:10], atol=1e-5, rtol=0)


def test_bench_runs_for_min_time(pakd_run, lenet: Model):
    r = run([pakd_run, lenet.path, "--bench", "--warmup", "0", "--repeats", "1", "--min-time", "0.2"])
    doc = json.loads(r.stdout)
    assert doc["runs"] > 1
    assert doc["mean_us"] * doc["runs"] >= 0.2e6 * 0.9  # timed runs fill the minimum time


def test_corrupted_model_exits_2_with_the_loader_message(pakd_run, lenet: Model, tmp_path):
    data = bytearray(lenet.path.read_bytes())
    data[100] ^= 0xFF
    bad = tmp_path / "bad.pakd"
    bad.write_bytes(bytes(data))
    r = run([pakd_run, bad], check=False)
    assert r.returncode == 2
    assert r.stderr.startswith("pakd-run: cannot load model: bad format:")
    assert "checksum mismatch" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "no model given"),
        (["{model}", "--threads", "zero"], "--threads needs an integer"),
        (["{model}", "--atol"], "--atol needs a value"),
        (["{model}", "--frobnicate"], "unknown option '--frobnicate'"),
        (["{model}", "--input", "/nonexistent.f32"], "cannot open input file '/nonexistent.f32'"),
        (["{model}", "--input", "{model}"], "the model needs 784 float32 values (3136 bytes)"),
        (["{model}", "--expect", "{input}"], "expected output file"),
        (["/nonexistent.pakd"], "cannot open '/nonexistent.pakd'"),
    ],
)
def test_usage_and_input_errors_exit_2(pakd_run, lenet: Model, args, message):
    args = [a.format(model=lenet.path, input=lenet.input_file) for a in args]
    r = run([pakd_run, *args], check=False)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("pakd-run: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_help(pakd_run):
    r = run([pakd_run, "--help"])
    for flag in (
        "--input",
        "--expect",
        "--atol",
        "--threads",
        "--bench",
        "--warmup",
        "--repeats",
        "--min-time",
        "--json",
    ):
        assert flag in r.stdout
