"""`pakd build` / `pakd verify` with the native backend: bundles for the host and rpi4 from a
real model folder, golden outputs checked on the host and under qemu, instruction counts,
incremental rebuilds, altered bundles refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pakd.deploy.build import BuildConfig, BuildError, build, resolve_student
from pakd.deploy.bundle import BundleError
from pakd.deploy.verify import verify
from pakd.modelio import save_model
from pakd.models import build_model
from tests.conftest import run_cli
from tests.deploy.conftest import require_target, shared_build_cache

pytestmark = pytest.mark.slow  # cross builds, qemu runs, a TVM build


def _folder(root: Path, name: str, seed: int = 0, **args) -> Path:
    torch.manual_seed(seed)
    model = build_model(name, **args)
    spec = {"model": {"name": name, "args": args}, "data": {"name": "fashion-mnist", "input_shape": [1, 28, 28]}}
    return save_model(root / name, model, spec)


@pytest.fixture(scope="module")
def cfg_for(tmp_path_factory):
    """BuildConfig per target; native builds shared with tests/deploy/test_crossbuild.py."""
    cache = shared_build_cache(tmp_path_factory)

    def make(name: str, out: Path) -> BuildConfig:
        return BuildConfig(
            target=require_target(name, emulator=name != "host"), backend="native", out_dir=out, cache_dir=cache
        )

    return make


def _student(root: Path) -> Path:
    """A compressed LeNet-5 as `pakd compress` leaves it: 90% magnitude-pruned, weight-shared
    (k-means 6/4-bit), saved as a model folder."""
    from pakd.quant import KMeansConfig, WeightSharing

    torch.manual_seed(0)
    model = build_model("lenet5")
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p[p.abs() < p.abs().flatten().quantile(0.9)] = 0
    WeightSharing(KMeansConfig(bits={"conv": 6, "linear": 4})).setup(model)
    spec = {"model": {"name": "lenet5", "args": {}}, "data": {"name": "fashion-mnist", "input_shape": [1, 28, 28]}}
    return save_model(root / "student", model, spec)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"teacher": _folder(root, "lenet5"), "small": _folder(root, "lenet-300-100"), "student": _student(root)}


def test_host_bundle_runs_and_matches_its_golden_output(cfg_for, models, tmp_path, fmnist_dir):
    result = build(models["teacher"], cfg_for("host", tmp_path / "host"))
    m = result.bundle.manifest
    assert m["backend"] == "native" and m["target"]["name"] == "host"
    assert {e["role"] for e in m["files"].values()} >= {
        "model",
        "runner",
        "static-library",
        "shared-library",
        "golden-input",
        "golden-output",
        "header",
    }
    rep = verify(tmp_path / "host")
    assert rep.ok and rep.max_abs_diff <= 1e-5 and not rep.emulated


def test_rpi4_bundle_under_qemu_with_instruction_counts(cfg_for, models, tmp_path):
    for key in ("teacher", "small"):
        build(models[key], cfg_for("rpi4", tmp_path / key))
    rep = verify(tmp_path / "small", emulate=True, count=True, baseline=tmp_path / "teacher")
    assert rep.ok and rep.emulated and rep.target == "rpi4"
    # LeNet-5 (2.3M MACs) against LeNet-300-100 (0.27M MACs): clearly more instructions
    assert rep.instructions > 0 and rep.instruction_ratio > 3


@pytest.mark.parametrize("board", ["host", "rpi4"])
def test_verify_a_bundle_given_by_a_relative_path(cfg_for, models, tmp_path, board):
    """`pakd verify build/rpi4 --emulate` as typed in a project folder (the runner runs with the
    bundle as its working folder, so its path must not stay relative)."""
    build(models["small"], cfg_for(board, tmp_path / "build" / board))
    args = ["verify", f"build/{board}"] + (["--emulate"] if board != "host" else [])
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 0 and "outputs match" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("board", ["host", "rpi4"])
def test_compressed_student_bundle_matches(cfg_for, models, tmp_path, board):
    """The sparse, weight-shared student: a small model file, same outputs as on the host."""
    result = build(models["student"], cfg_for(board, tmp_path / board))
    assert result.bundle.manifest["sizes"]["model_bytes"] < 4 * 431_080 / 10  # >10x below fp32
    rep = verify(tmp_path / board, emulate=board != "host")
    assert rep.ok


def test_arm_bundle_without_emulate_says_how_to_run_it(cfg_for, models, tmp_path):
    build(models["small"], cfg_for("rpi4", tmp_path / "b"))
    with pytest.raises(BuildError, match="run it on the board .* or here under qemu with --emulate"):
        verify(tmp_path / "b")


def test_rebuild_is_a_no_op_and_a_changed_model_rebuilds(cfg_for, models, tmp_path):
    cfg = cfg_for("host", tmp_path / "b")
    assert not build(models["small"], cfg).up_to_date
    assert build(models["small"], cfg).up_to_date
    other = _folder(tmp_path, "lenet-300-100", seed=1)
    assert not build(other, cfg).up_to_date


def test_altered_bundle_is_refused(cfg_for, models, tmp_path):
    build(models["small"], cfg_for("host", tmp_path / "b"))
    model = tmp_path / "b" / "model.pakd"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.pakd does not match its manifest hash"):
        verify(tmp_path / "b")
    # and an altered bundle is rebuilt, not trusted
    assert not build(models["small"], cfg_for("host", tmp_path / "b")).up_to_date


def test_a_compress_run_builds_its_last_stage(tmp_path):
    run = tmp_path / "run"
    for k in (1, 2):
        (run / f"stage-{k}").mkdir(parents=True)
        (run / f"stage-{k}" / "spec.json").write_text("{}")
    (run / "run.json").write_text("{}")
    assert resolve_student(run).folder == run / "stage-2"
    with pytest.raises(BuildError, match="not a compress run"):
        resolve_student(tmp_path)


def test_cli_build_and_verify(models, tmp_path):
    require_target("rpi4", emulator=True)
    r = run_cli("build", str(models["small"]), "--target", "rpi4", "-o", str(tmp_path / "b"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "built" in r.stdout and "rpi4" in r.stdout
    r = run_cli("verify", str(tmp_path / "b"), "--emulate", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "outputs match under qemu (rpi4)" in r.stdout and "instructions per inference" in r.stdout
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["golden"]["output_shape"] == [1, 10]


def test_cli_unknown_backend_and_target_are_one_line_errors(models, tmp_path):
    r = run_cli("build", str(models["small"]), "--target", "pi9")
    assert r.returncode == 2 and "unknown target 'pi9'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("build", str(models["small"]), "--target", "host", "--backend", "gpu", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and "unknown backend 'gpu'" in r.stderr


def _require_tvm():
    from pakd.lower.tvm import tvm_available

    reason = tvm_available()
    if reason:
        pytest.skip(f"TVM backend unavailable: {reason}")


def test_tvm_bundle_for_rpi4_runs_under_qemu(cfg_for, models, tmp_path):
    _require_tvm()
    from dataclasses import replace

    cfg = replace(cfg_for("rpi4", tmp_path / "tvm"), backend="tvm")
    m = build(models["small"], cfg).bundle.manifest
    assert m["backend"] == "tvm" and m["tuned"] is False and m["versions"]["apache-tvm"].startswith("0.27")
    assert {e["role"] for e in m["files"].values()} >= {"model", "runner", "runtime-library"}
    rep = verify(tmp_path / "tvm", emulate=True, count=True)
    assert rep.ok and rep.instructions > 0


def test_auto_backend_measures_both_on_the_host(cfg_for, models, tmp_path):
    _require_tvm()
    from dataclasses import replace

    result = build(models["small"], replace(cfg_for("host", tmp_path / "auto"), backend="auto"))
    medians = result.choice["median_us"]
    assert set(medians) >= {"native", "tvm"} and result.bundle.backend == min(("native", "tvm"), key=medians.get)
    assert result.bundle.manifest["auto_choice"]["chosen"] == result.bundle.backend
