"""The loader fuzz target (csrc/fuzz/) under AddressSanitizer + UndefinedBehaviorSanitizer:
the checked-in corpus and a bounded, seeded mutation run produce no finding, the driver does
report a planted memory error, and the C tests pass under the same sanitizers.

The mutation run lasts PAKD_FUZZ_SECONDS (default 20) seconds; PAKD_FUZZ_SEED picks the seed
(default 1), so a failing run is reproducible with the same value."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tools.conftest import REPO, Model, run

pytestmark = pytest.mark.slow  # an ASan + UBSan build and a mutation run

SANITIZE = "address,undefined"
CORPUS = REPO / "csrc/fuzz/corpus"
SECONDS = float(os.environ.get("PAKD_FUZZ_SECONDS", "20"))
SEED = os.environ.get("PAKD_FUZZ_SEED", "1")
SANITIZER_REPORT = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


def _sanitizers_missing(tmp: Path) -> str | None:
    """Why the C++ compiler cannot build and run an ASan+UBSan program, or None."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        return "no C++ compiler"
    src = tmp / "probe.cc"
    src.write_text("#include <vector>\nint main() { std::vector<int> v(3); return v[1]; }\n")
    try:
        build = subprocess.run(
            [cxx, f"-fsanitize={SANITIZE}", str(src), "-o", str(tmp / "probe")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if build.returncode != 0:
            return f"{cxx} cannot build with -fsanitize={SANITIZE}: {build.stderr.strip()[-300:]}"
        probe = subprocess.run([str(tmp / "probe")], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sanitizer probe failed: {exc}"
    if probe.returncode != 0:
        return f"an -fsanitize={SANITIZE} program does not run here: {probe.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def sanitized_build(cmake_build, tmp_path_factory) -> Path:
    why = _sanitizers_missing(tmp_path_factory.mktemp("probe"))
    if why:
        pytest.skip(why)
    return cmake_build(
        "sanitize",
        REPO,
        {
            "CMAKE_BUILD_TYPE": "RelWithDebInfo",
            "PAKD_SANITIZE": SANITIZE,
            "PAKD_BUILD_FUZZ": "ON",
            "PAKD_BUILD_TESTS": "ON",
            "PAKD_BUILD_TOOLS": "ON",
        },
        ["fuzz-loader", "test_header_c99", "test_pakd_hpp", "pakd-run"],
    )


def _stats(stdout: str) -> dict[str, float]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("fuzz-loader: done:"))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}


def test_corpus_loads_as_documented():
    """Valid seeds load (so mutations start from files that reach the graph and the kernels),
    broken-* seeds are refused."""
    from pakd._core import Session

    files = sorted(CORPUS.iterdir())
    valid = [f for f in files if not f.name.startswith("broken-")]
    assert len(valid) >= 4 and len(files) > len(valid)
    for f in files:
        assert f.stat().st_size <= 8192, f"{f.name}: keep corpus files small"
        if f in valid:
            Session(str(f))
        else:
            with pytest.raises(ValueError, match="bad format"):
                Session(str(f))


def test_corpus_and_mutations_have_no_findings(sanitized_build, tmp_path):
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    r = run(
        [sanitized_build / "fuzz-loader", "--seconds", SECONDS, "--seed", SEED, "--artifacts", artifacts, CORPUS],
        check=False,
        timeout=SECONDS + 300,
    )
    findings = sorted(p.name for p in artifacts.iterdir())
    assert r.returncode == 0 and not findings and not SANITIZER_REPORT.search(r.stderr), (
        f"fuzz-loader found something (seed {SEED}; inputs in {artifacts}: {findings})\n{r.stderr[-6000:]}"
    )
    stats = _stats(r.stdout)
    print(r.stdout.strip())
    n_corpus = len(list(CORPUS.iterdir()))
    assert stats["corpus"] == n_corpus and stats["findings"] == 0
    assert stats["accepted"] >= 4  # the valid seeds at least
    assert stats["mutations"] >= 100 and stats["executions"] == n_corpus + stats["mutations"]
    assert stats["distinct_errors"] >= 20  # mutants reach many different checks of the loader


def test_driver_reports_a_planted_memory_error(sanitized_build, tmp_path):
    """The standalone driver with a target that overflows a heap buffer on one input: the run
    fails with ASan's report and the input is saved."""
    cache = (sanitized_build / "CMakeCache.txt").read_text()
    cxx = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.+)$", cache, re.M).group(1)
    target = tmp_path / "planted.cc"
    target.write_text(
        "#include <cstddef>\n#include <cstdint>\n#include <cstring>\n"
        'extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {\n'
        '  if (n >= 4 && std::memcmp(d, "BOOM", 4) == 0) { char* p = new char[4]; p[n] = 1; delete[] p; }\n'
        "  return 0;\n}\n"
    )
    exe = tmp_path / "planted"
    run(
        [
            cxx,
            "-std=c++17",
            f"-fsanitize={SANITIZE}",
            "-fno-sanitize-recover=all",
            "-g",
            f"-I{REPO / 'csrc/include'}",
            target,
            REPO / "csrc/fuzz/standalone-main.cc",
            sanitized_build / "libpakd.a",
            "-lpthread",
            "-o",
            exe,
        ]
    )
    (tmp_path / "seed").write_bytes(b"BOOM and then some")
    r = run([exe, "--artifacts", tmp_path, tmp_path / "seed"], check=False)
    assert r.returncode != 0
    assert "heap-buffer-overflow" in r.stderr
    crashes = list(tmp_path.glob("crash-*"))
    assert len(crashes) == 1 and crashes[0].read_bytes() == b"BOOM and then some"


def test_c_tests_pass_under_sanitizers(sanitized_build, lenet: Model, tmp_path):
    run([sanitized_build / "test_header_c99"])
    r = run([sanitized_build / "test_pakd_hpp", lenet.path, lenet.input_file, lenet.output_file])
    assert "all checks passed (with model)" in r.stdout
    r = run(
        [
            sanitized_build / "pakd-run",
            lenet.path,
            "--input",
            lenet.input_file,
            "--expect",
            lenet.output_file,
            "--atol",
            "1e-5",
            "--threads",
            "2",
        ]
    )
    assert not SANITIZER_REPORT.search(r.stderr)
