"""The TVM backend (pakd/lower/tvm.py): real TVM builds of a small CNN (lenet5, random weights),
checked against PyTorch through TVM's Python VM, the compiled C++ runner on this machine, and the
aarch64 build of both run under qemu-aarch64. Tolerance: 1e-4 absolute (docs/tvm.md: ~1e-7 measured).

No tuning here: MetaSchedule's builder workers alone take 35-50 s to start (see docs/tvm.md).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pakd.lower.tvm import (
    INPUT_SHAPE_FUNC,
    TvmError,
    TvmRuntimeError,
    build_tvm_runner,
    compile_tvm,
    fetch_tvm_runtime,
    tvm_available,
)
from pakd.models import build_model
from pakd.targets import Compiler, TargetError, load_target

_REASON = tvm_available()
pytestmark = [
    pytest.mark.slow,  # TVM builds for the host and rpi4
    pytest.mark.skipif(_REASON is not None, reason=f"TVM backend unavailable: {_REASON}"),
]

ATOL = 1e-4
SAMPLE_SHAPE = (1, 28, 28)  # one Fashion-MNIST image, as in spec.json data.input_shape


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    model = build_model("lenet5").eval()
    x = torch.randn(1, *SAMPLE_SHAPE)
    with torch.no_grad():
        y = model(x).numpy()
    return model, x.numpy(), y


@pytest.fixture(scope="module")
def host_build(lenet, tmp_path_factory):
    model, x, _ = lenet
    out = tmp_path_factory.mktemp("tvm-host")
    build = compile_tvm(model, SAMPLE_SHAPE, load_target("host"), out)
    runner = build_tvm_runner(load_target("host"), out)
    x.tofile(out / "in.f32")
    return build, runner


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # env -i: what a board's shell gives it, and no LD_LIBRARY_PATH from this process
    return subprocess.run(["env", "-i", *argv], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_tvm_ffi_save_json_round_trips():
    """apache-tvm-ffi 0.1.15.x segfaults here (MetaSchedule's database): the pin must hold."""
    import tvm
    from tvm.ir.prim import IntImm

    x = IntImm("int32", 7)
    assert tvm.ir.load_json(tvm.ir.save_json(x)).value == 7


def test_host_build_matches_torch_in_the_python_vm(lenet, host_build):
    import tvm
    from tvm import relax

    _, x, y = lenet
    build, _ = host_build
    assert build.model.name == "model.so" and build.files == (build.model,) and not build.tuned
    assert build.input_shape == (1, *SAMPLE_SHAPE) and build.output_shape == (1, 10)
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(build.model)), tvm.cpu())
    assert tuple(vm[INPUT_SHAPE_FUNC]()) == build.input_shape
    out = vm["main"](tvm.runtime.tensor(x)).numpy()
    np.testing.assert_allclose(out, y, rtol=0, atol=ATOL)


def test_build_record_is_plain_data(host_build):
    record = host_build[0].to_dict()
    assert json.loads(json.dumps(record)) == record
    assert record["backend"] == "tvm" and record["files"] == ["model.so"] and record["tuned"] is False


def test_host_runner_matches_torch(lenet, host_build):
    _, _, y = lenet
    build, runner = host_build
    proc = _run([f"./{runner.name}", "./model.so", "--input", "in.f32", "--output", "out.f32"], runner.parent)
    assert proc.returncode == 0, proc.stderr
    out = np.fromfile(runner.parent / "out.f32", dtype="<f4")
    np.testing.assert_allclose(out, y.ravel(), rtol=0, atol=ATOL)


def test_host_runner_bench_prints_statistics(host_build):
    _, runner = host_build
    proc = _run([f"./{runner.name}", "model.so", "--bench", "--warmup", "1", "--repeats", "5"], runner.parent)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["runs"] == 5 and stats["threads"] == 1
    assert 0 < stats["min_us"] <= stats["median_us"] <= stats["p90_us"] <= stats["max_us"]
    assert {"mean_us", "stdev_us"} <= stats.keys()


def test_host_runner_rejects_a_wrong_size_input(host_build):
    _, runner = host_build
    (runner.parent / "short.f32").write_bytes(b"\0" * 12)
    proc = _run([f"./{runner.name}", "model.so", "--input", "short.f32"], runner.parent)
    assert proc.returncode == 2 and "3136 bytes" in proc.stderr


def test_rpi4_build_runs_under_qemu_and_matches_the_host(lenet, host_build, tmp_path):
    model, _, _ = lenet
    host_out_dir = host_build[1].parent
    rpi4 = load_target("rpi4")
    rpi4.check_emulator()
    build = compile_tvm(model, SAMPLE_SHAPE, rpi4, tmp_path)
    runner = build_tvm_runner(rpi4, tmp_path)
    assert {p.name for p in (tmp_path / "lib").iterdir()} == {"libtvm_runtime.so", "libtvm_ffi.so"}
    assert b"\x7fELF" == build.model.read_bytes()[:4] and build.model.read_bytes()[18] == 183  # EM_AARCH64
    (tmp_path / "in.f32").write_bytes((host_out_dir / "in.f32").read_bytes())
    proc = _run(
        [*rpi4.emulator, f"./{runner.name}", "./model.so", "--input", "in.f32", "--output", "out.f32"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    host = _run([f"./{host_build[1].name}", "model.so", "--input", "in.f32", "--output", "out.f32"], host_out_dir)
    assert host.returncode == 0, host.stderr
    np.testing.assert_allclose(
        np.fromfile(tmp_path / "out.f32", dtype="<f4"),
        np.fromfile(host_out_dir / "out.f32", dtype="<f4"),
        rtol=0,
        atol=ATOL,
    )


def test_rpi3_has_no_tvm_runtime(tmp_path):
    with pytest.raises(TvmRuntimeError, match="no TVM wheels for armv7"):
        fetch_tvm_runtime(load_target("rpi3"), tmp_path)


def test_missing_cross_compiler_names_the_apt_package(lenet, tmp_path):
    model, _, _ = lenet
    broken = replace(
        load_target("rpi4"), compiler=Compiler(cc="no-such-gcc", cxx="no-such-g++"), apt=("g++-no-such-arch",)
    )
    with pytest.raises(TargetError, match="sudo apt-get install -y g\\+\\+-no-such-arch"):
        compile_tvm(model, SAMPLE_SHAPE, broken, tmp_path)
    with pytest.raises(TargetError, match="no-such-g\\+\\+ not found"):
        build_tvm_runner(broken, tmp_path)


def test_target_without_a_tvm_section_is_refused(lenet, tmp_path):
    model, _, _ = lenet
    with pytest.raises(TvmError, match=r"no \[tvm\] section"):
        compile_tvm(model, SAMPLE_SHAPE, replace(load_target("host"), tvm_target={}), tmp_path)


def test_tuning_is_refused_for_a_cross_target(lenet, tmp_path):
    model, _, _ = lenet
    with pytest.raises(TvmError, match="only for a host target"):
        compile_tvm(model, SAMPLE_SHAPE, load_target("rpi4"), tmp_path, tune_trials=8, tuning_db=tmp_path)


def test_runtime_download_failure_is_one_clear_error(tmp_path):
    no_wheels = replace(load_target("rpi4"), tvm_wheel_platforms=("manylinux_2_28_nosucharch",))
    with pytest.raises(TvmRuntimeError, match="cannot download the manylinux_2_28_nosucharch wheels"):
        fetch_tvm_runtime(no_wheels, tmp_path)
