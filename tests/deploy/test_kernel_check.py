"""pakd-kernel-check (csrc/kernel-check): every kernel of every family against its family's
reference, kernel by kernel, in the C++ program itself, so the ARM kernels are checked where they
run: cross-built for the boards and run under qemu with each board's CPU model (rpi4: Cortex-A72,
plain NEON; rpi5: Cortex-A76, dot product; rpi3: armv7 NEON), and natively on the host. The
program fails when a family has no check or a supported kernel ran no case, so a kernel added to
a list is checked here without a new test."""

from __future__ import annotations

import re
import subprocess

import pytest

from pakd.deploy.crossbuild import cross_build_kernel_check
from pakd.deploy.emulate import run_emulated
from tests.deploy.conftest import require_target

pytestmark = pytest.mark.slow  # the runtime cross-compiled per target, qemu runs

_LINE = re.compile(r"^(ok  |skip|FAIL) (\S+)(?: (\S+) \(([^)]*)\))?")


def _kernel_check(target_name: str, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "pakd-native"  # shared with tests/deploy/test_crossbuild.py
    root.mkdir(exist_ok=True)
    target = require_target(target_name, emulator=target_name != "host")
    return target, cross_build_kernel_check(target, root)


def _parse(stdout: str) -> dict[tuple[str, str], str]:
    seen = {}
    for line in stdout.splitlines():
        m = _LINE.match(line)
        if m:
            seen[(m.group(2), m.group(3) or "")] = m.group(1).strip()
    return seen


def _run(target, argv):
    """The program on the board's qemu (its CPU model), or here for the host."""
    if target.emulator:
        return run_emulated(target, argv, timeout=900)
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=900)


def _listed(target, binary) -> list[tuple[str, str, str]]:
    r = _run(target, [binary, "--list"])
    assert r.returncode == 0, r.stderr
    rows = []
    for line in r.stdout.splitlines():
        family, name, rest = line.split(" ", 2)
        rows.append((family, name, rest))
    return rows


@pytest.mark.parametrize(
    ("board", "isa_expected"),
    [("host", None), ("rpi4", "neon"), ("rpi5", "neon"), ("rpi3", "neon")],
)
def test_every_kernel_matches_its_reference_on_the_board(board, isa_expected, tmp_path_factory):
    target, binary = _kernel_check(board, tmp_path_factory)
    r = _run(target, [binary])
    seen = _parse(r.stdout)
    failed = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert r.returncode == 0 and not failed, f"{board} ({' '.join(target.emulator[:3])}):\n" + "\n".join(
        failed or r.stdout.splitlines()[-5:] + [r.stderr]
    )
    listed = _listed(target, binary)
    assert listed, "no kernels listed"
    for family, name, rest in listed:
        status = seen.get((family, name))
        if "unsupported" in rest:
            assert status == "skip", (family, name)
        else:
            assert status == "ok", f"{family} {name}: {status}"
    if isa_expected:  # the board runs the NEON kernels, not only the portable ones
        neon = [(f, n) for f, n, rest in listed if f"({isa_expected}" in rest and "unsupported" not in rest]
        assert neon, f"no {isa_expected} kernel runs on {board}"
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("cpu: ") and " 0 failed" in last


def test_family_filter_and_usage_errors(tmp_path_factory):
    """An unknown family is a usage error (exit 2); a family filter checks only that family."""
    _, binary = _kernel_check("host", tmp_path_factory)
    r = subprocess.run([binary, "--family", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown kernel family nope" in r.stderr
    r = subprocess.run([binary, "--family", "f32-gemm"], capture_output=True, text=True)
    assert r.returncode == 0
    assert {family for family, _ in _parse(r.stdout)} == {"f32-gemm"}
