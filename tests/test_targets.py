"""Boards as data: every shipped target file validates; bad files say what is wrong."""

from __future__ import annotations

import pytest

from pakd.targets import TargetError, list_targets, load_target
from tests.conftest import run_cli

SHIPPED = {"host", "rpi4", "rpi5", "rpi3", "jetson-nano", "android-arm64"}


def test_every_shipped_target_validates():
    targets = {t.name: t for t in list_targets()}
    assert SHIPPED <= set(targets)
    rpi4 = targets["rpi4"]
    assert (rpi4.arch, rpi4.triple, rpi4.cpu, rpi4.cores) == ("aarch64", "aarch64-linux-gnu", "cortex-a72", 4)
    assert rpi4.emulator == ("qemu-aarch64", "-cpu", "cortex-a72", "-L", "/usr/aarch64-linux-gnu")
    assert rpi4.cmake_toolchain.is_file() and rpi4.tvm_target["mtriple"] == "aarch64-linux-gnu"
    assert targets["rpi3"].arch == "armv7" and targets["rpi3"].emulator[0] == "qemu-arm"
    assert targets["host"].is_host and not rpi4.is_host


def test_every_emulated_board_runs_as_its_own_cpu_model():
    """qemu's default CPU (max) has SVE, dot product, ... that a Pi 4 lacks, and engines that pick
    kernels at run time would use them: each board names its qemu -cpu, and the emulator runs it."""
    cpus = {t.name: t.emulator_cpu for t in list_targets() if t.emulator}
    assert cpus == {"rpi4": "cortex-a72", "rpi5": "cortex-a76", "jetson-nano": "cortex-a57", "rpi3": "max"}
    for t in list_targets():
        if t.emulator:
            i = t.emulator.index("-cpu")
            assert t.emulator[i + 1] == t.emulator_cpu


def _write(tmp_path, name, text):
    (tmp_path / f"{name}.toml").write_text(text)
    return tmp_path


GOOD = """
[target]
name = "myboard"
arch = "aarch64"
triple = "aarch64-linux-gnu"
cpu = "cortex-a55"
cores = 8
[toolchain]
cc = "aarch64-linux-gnu-gcc"
cxx = "aarch64-linux-gnu-g++"
apt = ["g++-aarch64-linux-gnu"]
"""


def test_a_user_board_needs_no_code(tmp_path):
    d = _write(tmp_path, "myboard", GOOD)
    t = load_target("myboard", d)
    assert (t.cpu, t.cores) == ("cortex-a55", 8)
    assert "myboard" in {x.name for x in list_targets(d)}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.replace("cores = 8", "cores = 8\nram = 4"), "unknown key target.ram"),
        (
            lambda s: s.replace('triple = "aarch64-linux-gnu"', 'triple = "x86_64-linux-gnu"'),
            "is not an aarch64 triple",
        ),
        (lambda s: s.replace('triple = "aarch64-linux-gnu"', 'triple = "not a triple"'), "expected a GNU triple"),
        (lambda s: s.replace('arch = "aarch64"', 'arch = "mips"'), "target.arch: expected one of"),
        (lambda s: s.replace("cores = 8", 'cores = "eight"'), "target.cores: expected an integer"),
        (lambda s: s + "\n[board]\nx = 1\n", "unknown section [board]"),
        (lambda s: s.replace('name = "myboard"', 'name = "other"'), "does not match the file name"),
        (lambda s: s.replace("[target]", "[target"), "not valid TOML"),
        (lambda s: s + '\n[emulator]\ncommand = "qemu-aarch64"\n', "emulator.cpu: missing"),
        (lambda s: s + '\n[emulator]\ncommand = "qemu-aarch64"\ncpu = "-cpu max"\n', "expected a qemu CPU model"),
    ],
)
def test_bad_target_files_say_what_is_wrong(tmp_path, edit, message):
    d = _write(tmp_path, "myboard", edit(GOOD))
    with pytest.raises(TargetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_target("myboard", d)


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(TargetError, match="unknown target 'pi9'.*rpi4"):
        load_target("pi9")


def test_missing_compiler_names_the_apt_command(tmp_path):
    d = _write(tmp_path, "myboard", GOOD.replace("aarch64-linux-gnu-gcc", "no-such-gcc"))
    with pytest.raises(
        TargetError, match="no-such-gcc not found; install with: sudo apt-get install -y g\\+\\+-aarch64-linux-gnu"
    ):
        load_target("myboard", d).check_toolchain()


def test_android_without_ndk_names_the_variable(monkeypatch):
    monkeypatch.delenv("ANDROID_NDK", raising=False)
    with pytest.raises(TargetError, match="set ANDROID_NDK"):
        load_target("android-arm64").check_toolchain()


def test_cli_lists_targets():
    r = run_cli("targets")
    assert r.returncode == 0, r.stderr
    for name in SHIPPED:
        assert name in r.stdout


def test_cmake_presets_compose_a_toolchain_per_board():
    """CMakePresets.json: base + toolchain + build type for each cross board, toolchain files present."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    presets = {p["name"]: p for p in json.loads((root / "CMakePresets.json").read_text())["configurePresets"]}
    for board in ("rpi4", "rpi3", "android-arm64"):
        preset = presets[f"{board}-release"]
        assert "release" in preset["inherits"]
        toolchain = presets[f"toolchain-{board}"]["toolchainFile"].replace("${sourceDir}", str(root))
        assert Path(toolchain) == load_target(board).cmake_toolchain and Path(toolchain).is_file()
