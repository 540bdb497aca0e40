"""Shared fixtures of the native tools tests: CMake builds (one per configuration per session,
only the targets the tests need) and a real exported model with a reference output.

CI has 2 cores: builds use ``-j2`` (``PAKD_TEST_BUILD_JOBS`` overrides)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
JOBS = os.environ.get("PAKD_TEST_BUILD_JOBS", "2")
NORMALIZE = {"mean": 0.5, "std": 0.25}  # not Fashion-MNIST's, so a tool that ignores META is caught


def run(
    cmd: list, cwd: Path | None = None, timeout: float = 600, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert result.returncode == 0, (
            f"{' '.join(map(str, cmd))} failed ({result.returncode})\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


def _missing_tool() -> str | None:
    for tool in ("cmake", "c++", "cc"):
        if shutil.which(tool) is None and not (tool == "c++" and shutil.which("g++")):
            return f"{tool} is not installed"
    return None


Builder = Callable[..., Path]


@pytest.fixture(scope="session")
def cmake_build(tmp_path_factory) -> Builder:
    """build(name, source, defines, targets) -> build dir; each name is configured and built once
    per session."""
    missing = _missing_tool()
    if missing:
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("cmake")
    built: dict[str, Path] = {}

    def build(name: str, source: Path, defines: dict[str, str], targets: list[str]) -> Path:
        if name in built:
            return built[name]
        out = root / name
        configure = [
            "cmake",
            "-S",
            source,
            "-B",
            out,
            "-DPAKD_BUILD_PYTHON=OFF",
            *[f"-D{k}={v}" for k, v in defines.items()],
        ]
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"]
        run(configure)
        run(["cmake", "--build", out, "-j", JOBS, "--target", *targets])
        built[name] = out
        return out

    return build


@pytest.fixture(scope="session")
def tools_build(cmake_build: Builder) -> Path:
    """Release build of pakd-run and the C++ header test."""
    return cmake_build(
        "release",
        REPO,
        {"CMAKE_BUILD_TYPE": "Release", "PAKD_BUILD_TOOLS": "ON", "PAKD_BUILD_TESTS": "ON"},
        ["pakd-run", "test_pakd_hpp"],
    )


@dataclass(frozen=True)
class Model:
    path: Path
    input: np.ndarray  # one sample, (1, 1, 28, 28) float32
    input_file: Path  # the same, raw little-endian float32
    output: np.ndarray  # pakd._core.Session(path).run(input)[0]
    output_file: Path


@pytest.fixture(scope="session")
def lenet(tmp_path_factory) -> Model:
    """LeNet-5 with random weights (fixed seed), exported to .pakd, with a random input and
    the Python binding's output for it."""
    from pakd._core import Session
    from pakd.lower.native import export_pakd
    from pakd.models import build_model

    d = tmp_path_factory.mktemp("lenet")
    torch.manual_seed(0)
    model = build_model("lenet5").eval()
    path = d / "lenet5.pakd"
    export_pakd(model, path, meta={"normalize": NORMALIZE})
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype("<f4")
    y = np.asarray(Session(str(path)).run(x), dtype="<f4")[0]
    with torch.no_grad():  # the binding itself agrees with torch
        np.testing.assert_allclose(y, model(torch.from_numpy(x))[0].numpy(), atol=1e-5)
    x.tofile(d / "input.f32")
    y.tofile(d / "output.f32")
    return Model(path, x, d / "input.f32", y, d / "output.f32")
