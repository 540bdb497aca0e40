"""The core library builds and works WITHOUT Python.

Configures and builds the repository with real CMake (PAKD_BUILD_PYTHON=OFF,
PAKD_BUILD_TESTS=ON) into a temporary directory and runs the C99 test
(tests/c/test_header_c99.c) through ctest: the public header compiles as
plain C99 and the C API behaves as documented when linked by a C program.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a CMake build of the core and the C tests

REPO = Path(__file__).resolve().parents[2]


def _missing_tool() -> str | None:
    if shutil.which("cmake") is None:
        return "cmake is not installed"
    if shutil.which("ctest") is None:
        return "ctest is not installed"
    cc = os.environ.get("CC") or next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    cxx = os.environ.get("CXX") or next((c for c in ("c++", "g++", "clang++") if shutil.which(c)), None)
    if cc is None or shutil.which(cc.split()[0]) is None:
        return "no C compiler (cc/gcc/clang) found"
    if cxx is None or shutil.which(cxx.split()[0]) is None:
        return "no C++ compiler (c++/g++/clang++) found"
    return None


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed ({result.returncode})\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result


def test_c_library_builds_and_passes_c99_test(tmp_path: Path) -> None:
    missing = _missing_tool()
    if missing:
        pytest.skip(missing)
    build = tmp_path / "build"
    configure = [
        "cmake",
        "-S",
        str(REPO),
        "-B",
        str(build),
        "-DPAKD_BUILD_TESTS=ON",
        "-DPAKD_BUILD_PYTHON=OFF",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    _run(configure)
    _run(["cmake", "--build", str(build), "--parallel", str(os.cpu_count() or 2)])

    # The static library was built without any Python.
    assert list(build.glob("*pakd*")), "libpakd was not built"
    result = _run(["ctest", "--output-on-failure"], cwd=build)
    assert "100% tests passed" in result.stdout
