"""pakd.deploy.crossbuild: the runtime (libpakd.a, libpakd.so, pakd-run) built for the host and
cross-built for the boards; the ARM pakd-run gives the Python binding's numbers under qemu.

One build per target per session (``native()``; ``test_emulate.py`` shares it). A missing cross
compiler or qemu skips with the apt command that installs it (``make setup`` installs both)."""

from __future__ import annotations

import ctypes
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from pakd.deploy.crossbuild import CrossBuildError, NativeArtifacts, cross_build_native
from pakd.deploy.emulate import run_emulated
from pakd.targets import Compiler, TargetError, load_target
from tests.deploy.conftest import require_target

pytestmark = pytest.mark.slow  # the runtime cross-compiled per target

ELF_MACHINE = {"x86_64": 62, "aarch64": 183, "armv7": 40}
_builds: dict[str, NativeArtifacts] = {}


def native(name: str, tmp_path_factory) -> NativeArtifacts:
    """cross_build_native(name), built once per session: one fixed folder under the session's
    base temp dir, so a second import of this module (as tests.deploy.test_crossbuild) finds
    the build done and CMake has nothing to do."""
    if name not in _builds:
        root = tmp_path_factory.getbasetemp() / "pakd-native"
        root.mkdir(exist_ok=True)
        _builds[name] = cross_build_native(require_target(name), root)
    return _builds[name]


@dataclasses.dataclass(frozen=True)
class Lenet:
    path: Path
    input_file: Path
    output: np.ndarray
    output_file: Path


@pytest.fixture(scope="session")
def lenet_pakd(tmp_path_factory) -> Lenet:
    """LeNet-5 (random weights, fixed seed) as .pakd, a random input and pakd._core's output."""
    from pakd._core import Session
    from pakd.lower.native import export_pakd
    from pakd.models import build_model

    d = tmp_path_factory.mktemp("lenet-xb")
    torch.manual_seed(0)
    path = d / "lenet5.pakd"
    export_pakd(build_model("lenet5").eval(), path)
    x = np.random.default_rng(1).standard_normal((1, 1, 28, 28)).astype("<f4")
    y = np.asarray(Session(str(path)).run(x), dtype="<f4")[0]
    x.tofile(d / "input.f32")
    y.tofile(d / "output.f32")
    return Lenet(path, d / "input.f32", y, d / "output.f32")


def _elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", path
    return int.from_bytes(head[18:20], "little")


@pytest.mark.parametrize("name", ["host", "rpi4", "rpi3"])
def test_build_makes_static_shared_and_pakd_run_for_the_target(name, tmp_path_factory):
    a = native(name, tmp_path_factory)
    target = load_target(name)
    assert a.build_dir.name == name and a.target == name
    for p in (a.pakd_run, a.shared_lib):
        assert _elf_machine(p) == ELF_MACHINE[target.arch], p
    assert a.static_lib.read_bytes()[:8] == b"!<arch>\n"
    assert Path(a.cxx).name == target.compiler.cxx and Path(a.cc).name == target.compiler.cc
    assert "-O3" in a.cflags
    if name == "rpi3":
        assert "-mfpu=neon-vfpv4" in a.cflags and "-mfloat-abi=hard" in a.cflags
    # No pybind11 module: the runtime only.
    assert "PAKD_BUILD_PYTHON:BOOL=OFF" in (a.build_dir / "CMakeCache.txt").read_text()
    assert not list(a.build_dir.rglob("_core*.so"))


def test_host_shared_library_exports_the_c_api(tmp_path_factory):
    lib = ctypes.CDLL(str(native("host", tmp_path_factory).shared_lib))
    lib.pakd_version.restype = ctypes.c_char_p
    assert lib.pakd_version().decode()[:1].isdigit()
    assert hasattr(lib, "pakd_session_run") and hasattr(lib, "pakd_session_create_from_file")


def test_rebuilding_with_unchanged_sources_is_a_no_op(tmp_path_factory):
    a = native("rpi4", tmp_path_factory)
    before = {p: p.stat().st_mtime_ns for p in (a.pakd_run, a.static_lib, a.shared_lib)}
    again = cross_build_native(load_target("rpi4"), a.build_dir.parent)
    assert again == a
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_host_pakd_run_matches_the_binding(tmp_path_factory, lenet_pakd: Lenet, tmp_path):
    import subprocess

    a = native("host", tmp_path_factory)
    out = tmp_path / "out.f32"
    r = subprocess.run(
        [str(a.pakd_run), str(lenet_pakd.path), "--input", str(lenet_pakd.input_file), "--save-output", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.fromfile(out, dtype="<f4"), lenet_pakd.output, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["rpi4", "rpi3"])
def test_arm_pakd_run_under_qemu_matches_the_binding(name, tmp_path_factory, lenet_pakd: Lenet, tmp_path):
    target = require_target(name, emulator=True)
    a = native(name, tmp_path_factory)
    out = tmp_path / "out.f32"
    r = run_emulated(
        target,
        [
            a.pakd_run,
            lenet_pakd.path,
            "--input",
            lenet_pakd.input_file,
            "--save-output",
            out,
            "--expect",
            lenet_pakd.output_file,
            "--atol",
            "1e-5",
        ],
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK" in r.stdout and r.instructions is None
    np.testing.assert_allclose(np.fromfile(out, dtype="<f4"), lenet_pakd.output, atol=1e-5, rtol=0)


@pytest.fixture(scope="session")
def conv3x3_pakd(tmp_path_factory) -> Lenet:
    """A small residual-style net of 3x3 convolutions (Winograd on the host and on the boards:
    the session's choice does not depend on the CPU), stride-2 convolutions and odd channel
    counts, as .pakd with a random input and pakd._core's output on this host."""
    from torch import nn

    from pakd._core import Session
    from pakd.lower.native import export_pakd

    d = tmp_path_factory.mktemp("conv3x3-xb")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 24, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(24, 21, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(21, 32, 1, stride=2),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    ).eval()
    path = d / "conv3x3.pakd"
    export_pakd(model, path)
    x = np.random.default_rng(2).standard_normal((1, 1, 28, 28)).astype("<f4")
    session = Session(str(path))
    assert sum("winograd" in desc for desc, _ in session.profile(x[0], repeats=1)) == 3
    y = np.asarray(session.run(x), dtype="<f4")[0]
    x.tofile(d / "input.f32")
    y.tofile(d / "output.f32")
    return Lenet(path, d / "input.f32", y, d / "output.f32")


@pytest.mark.parametrize("name", ["rpi4", "rpi3"])
def test_arm_winograd_and_strided_convolutions_under_qemu_match_the_host(
    name, tmp_path_factory, conv3x3_pakd, tmp_path
):
    """The portable Winograd and strided direct kernels on ARM (NEON through the compiler) give the
    host's AVX2 numbers within 1e-4 of the output scale (different summation orders)."""
    target = require_target(name, emulator=True)
    a = native(name, tmp_path_factory)
    out = tmp_path / "out.f32"
    atol = 1e-4 * max(1.0, float(np.abs(conv3x3_pakd.output).max()))
    r = run_emulated(
        target,
        [
            a.pakd_run,
            conv3x3_pakd.path,
            "--input",
            conv3x3_pakd.input_file,
            "--save-output",
            out,
            "--expect",
            conv3x3_pakd.output_file,
            "--atol",
            str(atol),
        ],
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    np.testing.assert_allclose(np.fromfile(out, dtype="<f4"), conv3x3_pakd.output, atol=atol, rtol=0)


def test_missing_cross_compiler_names_the_apt_package(tmp_path):
    target = dataclasses.replace(
        load_target("rpi4"), compiler=Compiler("no-such-gcc", "no-such-g++"), apt=("g++-no-such-arch",)
    )
    with pytest.raises(
        TargetError,
        match=r"no-such-gcc, no-such-g\+\+ not found; install with: "
        r"sudo apt-get install -y g\+\+-no-such-arch",
    ):
        cross_build_native(target, tmp_path)
    assert not (tmp_path / "rpi4").exists()


def test_compile_error_is_one_line_with_the_log(tmp_path):
    """A toolchain file that names a compiler flag gcc rejects: the configure step fails."""
    bad = tmp_path / "bad.cmake"
    bad.write_text('set(CMAKE_C_FLAGS_INIT "-mno-such-flag")\nset(CMAKE_CXX_FLAGS_INIT "-mno-such-flag")\n')
    target = dataclasses.replace(load_target("host"), name="badhost", cmake_toolchain=bad)
    with pytest.raises(CrossBuildError) as err:
        cross_build_native(target, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "badhost" in msg and str(tmp_path / "badhost" / "build.log") in msg
