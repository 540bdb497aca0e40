"""pakd.deploy.emulate: qemu-user runs and guest instruction counts (the TCG plugin
csrc/tools/qemu-insn-count.c), which are exact, repeatable and proportional to the work done."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest
import torch

from pakd.deploy import emulate
from pakd.deploy.emulate import EmulationError, build_plugin, instructions_per_inference, run_emulated
from pakd.targets import TargetError, load_target
from tests.deploy.conftest import require_target
from tests.deploy.test_crossbuild import native

pytestmark = pytest.mark.slow  # qemu runs of cross-compiled binaries

LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 0;
  volatile long s = 0;
  for (long i = 0; i < n; ++i) s += i;
  printf("%ld\n", (long)s);
  return 0;
}
"""


@pytest.fixture(scope="session")
def plugin(tmp_path_factory):
    return build_plugin(tmp_path_factory.mktemp("plugin"))


@pytest.fixture(scope="session")
def loop_prog(tmp_path_factory):
    """A tiny C program cross-compiled for rpi4: sums 0..n-1 (n from argv)."""
    target = require_target("rpi4", emulator=True)
    d = tmp_path_factory.mktemp("loop")
    (d / "loop.c").write_text(LOOP_C)
    r = subprocess.run([target.compiler.cc, "-O1", "-o", d / "loop", d / "loop.c"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return target, d / "loop"


HWCAP_C = r"""
#include <stdio.h>
#include <sys/auxv.h>
int main(void) { printf("%lx\n", getauxval(AT_HWCAP)); return 0; }
"""
HWCAP_ASIMDDP, HWCAP_SVE = 1 << 20, 1 << 22  # Linux arm64 <asm/hwcap.h>


def test_each_board_runs_with_its_own_cpu_features(tmp_path):
    """A guest asks the kernel (qemu) for its CPU features: a Pi 4 (cortex-a72) has neither dot
    product nor SVE, a Pi 5 (cortex-a76) has dot product; qemu's default (max) would show both."""
    rpi4 = require_target("rpi4", emulator=True)
    (tmp_path / "hwcap.c").write_text(HWCAP_C)
    r = subprocess.run(
        [rpi4.compiler.cc, "-O1", "-o", tmp_path / "hwcap", tmp_path / "hwcap.c"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    hwcap = {b: int(run_emulated(load_target(b), [tmp_path / "hwcap"]).stdout, 16) for b in ("rpi4", "rpi5")}
    assert not hwcap["rpi4"] & (HWCAP_ASIMDDP | HWCAP_SVE)
    assert hwcap["rpi5"] & HWCAP_ASIMDDP and not hwcap["rpi5"] & HWCAP_SVE


def test_plugin_is_built_once_and_rebuilt_when_the_source_changes(tmp_path):
    first = build_plugin(tmp_path)
    mtime = first.stat().st_mtime_ns
    assert build_plugin(tmp_path) == first and first.stat().st_mtime_ns == mtime
    edited = tmp_path / "edited.c"
    edited.write_text(emulate.PLUGIN_SOURCE.read_text() + "\n/* edited */\n")
    second = build_plugin(tmp_path, source=edited)
    assert second != first and second.is_file() and first.is_file()


def test_instruction_count_is_deterministic_and_scales_with_work(loop_prog, plugin, tmp_path):
    target, prog = loop_prog

    def count(n: int) -> int:
        r = run_emulated(target, [prog, str(n)], cwd=tmp_path, count_instructions=True, timeout=60, plugin=plugin)
        assert r.returncode == 0 and r.stdout.strip() == str(n * (n - 1) // 2), r.stderr
        return r.instructions

    base, small, small_again, big = count(0), count(100_000), count(100_000), count(200_000)
    assert small == small_again  # exact: one thread, empty environment
    assert base > 10_000  # ld.so and libc start-up
    per_iter = (small - base) / 100_000
    assert 2 <= per_iter <= 20
    assert big - base == pytest.approx(2 * (small - base), rel=1e-3)


def test_per_function_counts_add_up_to_the_total(loop_prog, plugin, tmp_path):
    """symbols=on: every executed block is charged to the function qemu resolves for it; the loop
    program's work is in main, and the functions sum to the total."""
    target, prog = loop_prog
    r = run_emulated(
        target, [prog, "100000"], cwd=tmp_path, count_instructions=True, timeout=60, plugin=plugin, per_symbol=True
    )
    assert r.returncode == 0 and r.by_symbol is not None
    assert sum(r.by_symbol.values()) == r.instructions
    assert r.by_symbol["main"] > 100_000 * 2  # the loop: a few instructions per iteration


def test_where_the_instructions_of_an_inference_go(tmp_path_factory, plugin, tmp_path):
    """Per function of pakd-run, per inference: the convolution and GEMM kernels of LeNet-5 carry
    most of the count, and the functions add up to instructions_per_inference."""
    from pakd.deploy.emulate import instructions_by_function
    from pakd.lower.native import export_pakd
    from pakd.models import build_model

    target = require_target("rpi4", emulator=True)
    pakd_run = native("rpi4", tmp_path_factory).pakd_run
    torch.manual_seed(0)
    export_pakd(build_model("lenet5").eval(), tmp_path / "lenet5.pakd")
    argv = [pakd_run, tmp_path / "lenet5.pakd", "--threads", "1"]
    rows = instructions_by_function(target, argv, iters=2, cwd=tmp_path, plugin=plugin)
    total = instructions_per_inference(target, argv, iters=2, cwd=tmp_path, plugin=plugin)
    assert sum(n for _, n in rows) == pytest.approx(total, rel=1e-3)
    # the kernels (pakd_f32_* entry points and the internal-linkage code of their files)
    kernels = sum(n for name, n in rows if name.startswith("pakd_f32_") or "(anonymous namespace)" in name)
    assert kernels > 0.6 * total, rows[:8]
    assert all(name for name, _ in rows)
    assert all(name and not name.endswith(")") for name, _ in rows)  # demangled, without argument lists


def test_plain_run_counts_nothing_and_passes_no_host_environment(loop_prog, tmp_path, monkeypatch):
    target, _ = loop_prog
    monkeypatch.setenv("PAKD_SECRET_HOST_VARIABLE", "1")
    env_c = tmp_path / "env.c"
    env_c.write_text(
        "#include <stdio.h>\nextern char** environ;\n"
        "int main(void) { for (char** e = environ; *e; ++e) puts(*e); return 3; }\n"
    )
    subprocess.run([target.compiler.cc, "-o", tmp_path / "env", env_c], check=True)
    r = run_emulated(target, [tmp_path / "env"], cwd=tmp_path, count_instructions=False, timeout=60)
    assert (r.returncode, r.stdout, r.instructions) == (3, "", None)


def test_bigger_model_takes_clearly_more_instructions_per_inference(tmp_path_factory, plugin, tmp_path):
    from pakd.lower.native import export_pakd
    from pakd.models import build_model

    target = require_target("rpi4", emulator=True)
    pakd_run = native("rpi4", tmp_path_factory).pakd_run
    torch.manual_seed(0)
    export_pakd(build_model("lenet5").eval(), tmp_path / "lenet5.pakd")
    export_pakd(build_model("lenet-300-100").eval(), tmp_path / "mlp.pakd")
    per = {}
    for name in ("lenet5", "mlp"):
        argv = [pakd_run, tmp_path / f"{name}.pakd", "--threads", "1"]
        per[name] = instructions_per_inference(target, argv, iters=3, cwd=tmp_path, plugin=plugin)
        assert per[name] > 100_000
        # Exact counts: the same number again.
        assert instructions_per_inference(target, argv, iters=3, cwd=tmp_path, plugin=plugin) == per[name]
    # LeNet-5 (convolutions) does several times the work of LeNet-300-100 (three small matmuls).
    assert per["lenet5"] > 2 * per["mlp"], per


def test_iters_failure_is_one_line(tmp_path_factory, plugin, tmp_path):
    target = require_target("rpi4", emulator=True)
    pakd_run = native("rpi4", tmp_path_factory).pakd_run
    with pytest.raises(
        EmulationError,
        match=r"pakd-run --iters 4 under qemu-aarch64 failed \(exit 2\): "
        r"pakd-run: cannot load model",
    ) as err:
        instructions_per_inference(target, [pakd_run, tmp_path / "missing.pakd"], iters=3, cwd=tmp_path, plugin=plugin)
    assert "\n" not in str(err.value)


def test_target_without_emulator_is_an_error(tmp_path):
    with pytest.raises(TargetError, match="target host has no emulator"):
        run_emulated(load_target("host"), ["/bin/true"], cwd=tmp_path)


def test_missing_qemu_names_the_apt_package(tmp_path):
    target = dataclasses.replace(load_target("rpi4"), emulator=("qemu-no-such-arch", "-L", "/usr/x"))
    with pytest.raises(
        TargetError,
        match=r"qemu-no-such-arch not found; install with: "
        r"sudo apt-get install -y qemu-user",
    ):
        run_emulated(target, ["prog"], cwd=tmp_path, count_instructions=True)


def test_missing_plugin_compiler_names_the_apt_package(tmp_path, monkeypatch):
    monkeypatch.setattr(emulate, "PLUGIN_CC", ("no-such-gcc",))
    with pytest.raises(EmulationError, match=r"install with: sudo apt-get install -y gcc$"):
        build_plugin(tmp_path)


def test_pakd_run_iters_runs_silently_and_rejects_reporting_options(tmp_path_factory, tmp_path):
    from pakd.lower.native import export_pakd
    from pakd.models import build_model

    pakd_run = native("host", tmp_path_factory).pakd_run
    model = tmp_path / "mlp.pakd"
    export_pakd(build_model("lenet-300-100").eval(), model)
    for n in ("0", "3"):
        r = subprocess.run([pakd_run, model, "--iters", n], capture_output=True, text=True, timeout=60)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    for extra in (["--json"], ["--bench"], ["--save-output", "x.f32"], ["--iters", "-1"]):
        args = [pakd_run, model, *(["--iters", "2"] if extra[0] != "--iters" else []), *extra]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.startswith("pakd-run: ") and r.stderr.count("\n") == 1, (extra, r)
