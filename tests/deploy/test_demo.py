"""`pakd demo` end to end on real Fashion-MNIST with a small model and a two-epoch recipe: every
step runs (train, compress, build host + rpi4, verify under qemu, bench, report) and a second run
reuses all of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.deploy.conftest import require_target, shared_build_cache

pytestmark = pytest.mark.slow  # the whole demo end to end

RECIPE = """
[recipe]
name = "demo-tiny"
batch_size = 256
huffman = true

[[stage]]
name = "prune"
epochs = 1
lr = 0.01
optimizer = "sgd"
[stage.prune]
method = "unstructured"
criterion = "magnitude"
scope = "global"
amount = 0.9
[stage.distill]
teachers = ["teacher"]

[[stage]]
name = "quantize"
epochs = 1
lr = 0.001
optimizer = "sgd"
[stage.quantize]
method = "kmeans"
bits = { linear = 5 }
"""


@pytest.fixture(scope="module")
def demo_dirs(tmp_path_factory):
    require_target("rpi4", emulator=True)
    cache = shared_build_cache(tmp_path_factory)
    root = tmp_path_factory.mktemp("demo")
    (root / "recipe.toml").write_text(RECIPE)
    return root, cache


def _demo(root: Path, cache: Path, *extra: str):
    return run_cli(
        "demo",
        *extra,
        "--model",
        "lenet-300-100",
        "--epochs",
        "1",
        "--recipe",
        str(root / "recipe.toml"),
        "--runs-dir",
        str(root / "runs"),
        "--build-dir",
        str(root / "build"),
        "--db",
        str(root / "results.db"),
        "--cache-dir",
        str(cache),
        "--json",
        str(root / "summary.json"),
        "-q",
        cwd=root,
    )


def test_demo_end_to_end_then_reuse(demo_dirs):
    root, cache = demo_dirs
    first = _demo(root, cache)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-3000:]
    assert "trained" in out and "outputs match under qemu (rpi4)" in out
    summary = json.loads((root / "summary.json").read_text())
    ledger = json.loads((root / "runs" / "demo-tiny" / "ledger.json").read_text())["rows"]
    assert summary["size_ratio"] == pytest.approx(ledger[-1]["size_ratio"])
    assert summary["accuracy_drop_pt"] == pytest.approx(100 * (ledger[0]["test_top1"] - ledger[-1]["test_top1"]))
    assert summary["speed_ratio"] > 0 and summary["instruction_ratio"] > 0
    assert summary["teacher_us"] / summary["student_us"] == pytest.approx(summary["speed_ratio"])
    line = f"demo-tiny: {summary['size_ratio']:.1f}x smaller, {summary['speed_ratio']:.2f}x faster"
    assert line in out
    for name in ("host-teacher", "host-student", "rpi4-teacher", "rpi4-student"):
        assert (root / "build" / name / "manifest.json").is_file()
    rows = run_cli("results", "--db", str(root / "results.db"), "--json").stdout.strip().splitlines()
    devices = {json.loads(r)["device"] for r in rows}
    engines = {json.loads(r)["engine"] for r in rows}
    # local timings, and the rpi4 bundles' instruction counts (the teacher also on ExecuTorch)
    assert devices == {"local", "qemu:rpi4"} and {"pakd", "onnxruntime", "torch", "executorch"} <= engines
    qemu = [json.loads(r) for r in rows if json.loads(r)["device"] == "qemu:rpi4"]
    assert {(r["role"], r["engine"]) for r in qemu} >= {("teacher", "pakd"), ("teacher", "executorch"),
                                                      ("student", "pakd")}  # fmt: skip
    assert all(r["cpu"] == "cortex-a72" for r in qemu)

    again = _demo(root, cache)
    out2 = again.stdout + again.stderr
    assert again.returncode == 0, out2[-3000:]
    assert "reused runs" in out2 or "reused " + str(root / "runs") in out2
    assert "trained" not in out2.replace("untrained", "")
    assert out2.count("up to date") == 4 and "reused the stored timings" in out2 and "stored rows reused" in out2
    assert json.loads((root / "summary.json").read_text())["speed_ratio"] == pytest.approx(summary["speed_ratio"])
    assert len(run_cli("results", "--db", str(root / "results.db"), "--json").stdout.strip().splitlines()) == len(rows)

    # --measure-again: everything else reused, the timings taken anew into sessions of their own
    third = _demo(root, cache, "--measure-again")
    out3 = third.stdout + third.stderr
    assert third.returncode == 0, out3[-3000:]
    assert (
        out3.count("up to date") == 4 and "reused the stored timings" not in out3 and "stored rows reused" not in out3
    )
    rows3 = [
        json.loads(r) for r in run_cli("results", "--db", str(root / "results.db"), "--json").stdout.split("\n") if r
    ]
    assert len(rows3) == 2 * len(rows)
    assert len({r["session"] for r in rows3}) == 2 * len({json.loads(r)["session"] for r in rows})
