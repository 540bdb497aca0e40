"""PaKD installed from its wheel works without the checkout: the wheel (built once for the module,
``pip wheel --no-build-isolation --no-deps .``) is installed into a fresh virtual environment
outside the checkout, which lists the boards, cross-builds a tiny model for rpi4 and checks the
bundle under qemu, from a folder outside the checkout. The sdist carries every source the wheel
is built from."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from tests.deploy.conftest import require_target

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _shipped(folder: str) -> set[str]:
    """The checkout's files under ``folder`` (what must be shipped), relative to the checkout."""
    return {
        p.relative_to(REPO).as_posix()
        for p in (REPO / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def _run(cmd: list, *, cwd: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    )
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", ".", "-w", out],
        cwd=REPO,
        timeout=1800,
    )
    (found,) = out.glob("pakd-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the checkout holding only the wheel; its dependencies (torch, numpy,
    ...) come from the running venv's site-packages through a .pth line, not from a download."""
    root = tmp_path_factory.mktemp("fresh") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    python = root / "bin" / "python"
    purelib = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=root).stdout.strip()
    )
    # A plain path line: the running venv's own .pth files (its editable finder of the checkout)
    # are not run from there, and the fresh site-packages comes first.
    (purelib / "_pakd_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel], cwd=root)
    return root


@pytest.fixture(scope="module")
def outside(venv, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A working folder outside the checkout and the environment of a user of the fresh venv:
    its bin/ first on PATH, nothing of the checkout on PATH or PYTHONPATH, its own cache."""
    work = tmp_path_factory.mktemp("user")
    path = [str(venv / "bin")] + [
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not Path(p).resolve().is_relative_to(REPO)
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=os.pathsep.join(path), PAKD_CACHE_DIR=str(work / "cache"), VIRTUAL_ENV=str(venv))
    return work, env


def test_the_wheel_carries_the_boards_toolchains_and_runtime_sources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = "pakd/_data/"
    for f in _shipped("targets"):
        assert data + f in names, f"{f} is not in the wheel"
    for f in _shipped("csrc"):
        assert data + "runtime/" + f in names, f"{f} is not in the wheel"
    for f in _shipped("recipes"):
        assert data + f in names, f"{f} is not in the wheel"
    assert {data + "runtime/CMakeLists.txt", data + "runtime/VERSION", "pakd/resources.py"} <= names
    assert any(n.startswith("pakd/_core.") and n.endswith(".so") for n in names)
    assert not any(n.startswith(("csrc/", "targets/", "tests/")) for n in names)


def test_the_sdist_carries_every_source(tmp_path):
    _run(
        [sys.executable, "-c", f"from scikit_build_core.build import build_sdist; build_sdist({str(tmp_path)!r})"],
        cwd=REPO,
    )
    (sdist,) = tmp_path.glob("pakd-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    needed = _shipped("csrc") | _shipped("targets") | _shipped("pakd") | {"CMakeLists.txt", "pyproject.toml"}
    needed = {n for n in needed if not n.endswith((".pyc", ".so")) and not n.startswith("pakd/_data/")}
    assert not needed - names, f"missing from the sdist: {sorted(needed - names)[:10]}"


def test_the_installed_package_lies_in_the_fresh_venv_and_finds_its_data(venv, outside):
    work, env = outside
    code = "import pakd, pakd.resources as r; print(pakd.__file__); print(r.targets_dir()); print(r.runtime_sources())"
    lines = _run([venv / "bin" / "python", "-c", code], cwd=work, env=env).stdout.split()
    for line in lines:
        p = Path(line).resolve()
        assert p.is_relative_to(venv.resolve()) and not p.is_relative_to(REPO), line
    assert Path(lines[1], "rpi4.toml").is_file() and Path(lines[2], "csrc", "include", "pakd", "pakd.h").is_file()


def test_a_shipped_recipe_is_found_by_name_outside_the_checkout(venv, outside):
    """`pakd demo`'s default (recipes/lenet5-fast.toml) and `pakd compress --recipe NAME` resolve to
    the wheel's copy of recipes/ when the working folder has none."""
    work, env = outside
    code = (
        "from pakd.pipeline import find_recipe, load_recipe; "
        "print(find_recipe('recipes/lenet5-fast.toml')); print(load_recipe('resnet20').name)"
    )
    path, name = _run([venv / "bin" / "python", "-c", code], cwd=work, env=env).stdout.split()
    assert Path(path).resolve().is_relative_to(venv.resolve()) and name == "resnet20"


def test_pakd_targets_lists_the_shipped_boards(venv, outside):
    work, env = outside
    out = _run([venv / "bin" / "pakd", "targets"], cwd=work, env=env).stdout
    for name in ("host", "rpi4", "rpi5", "rpi3", "jetson-nano", "android-arm64"):
        assert name in out


def test_build_for_rpi4_and_verify_under_qemu_outside_the_checkout(venv, outside):
    require_target("rpi4", emulator=True)
    from pakd.lower.native import export_pakd
    from pakd.models import build_model

    work, env = outside
    torch.manual_seed(0)
    export_pakd(build_model("lenet-300-100"), work / "tiny.pakd", input_shape=(1, 28, 28))  # random weights
    pakd = venv / "bin" / "pakd"
    _run([pakd, "build", "tiny.pakd", "--target", "rpi4", "-o", "bundle"], cwd=work, env=env, timeout=1800)
    assert (work / "bundle" / "bin" / "pakd-run").is_file()
    assert (work / "bundle" / "include" / "pakd" / "pakd.h").is_file()
    wrapper = (work / "build" / ".cache" / "native" / "rpi4" / "wrapper" / "CMakeLists.txt").read_text()
    assert str(venv.resolve()) in wrapper and str(REPO) not in wrapper  # built from the wheel's sources
    out = _run([pakd, "verify", "bundle", "--emulate"], cwd=work, env=env).stdout
    assert "outputs match" in out and "emulated instructions per inference" in out
