"""Boards as data: one TOML file per target in ``targets/`` (or a user's ``--targets-dir``),
validated on load into a frozen :class:`Target`. Adding a board touches no Python.

```toml
[target]
name = "rpi4"                           # must match the file name
description = "Raspberry Pi 4 Model B"
arch = "aarch64"                        # x86_64 | aarch64 | armv7
triple = "aarch64-linux-gnu"            # GNU triple of the cross toolchain
cpu = "cortex-a72"                      # -mcpu / LLVM mcpu
features = ["neon"]                     # ISA extensions the board has
cores = 4

[toolchain]                             # how to compile for it
cc = "aarch64-linux-gnu-gcc"
cxx = "aarch64-linux-gnu-g++"
cmake_toolchain = "toolchains/aarch64-linux-gnu.cmake"   # relative to the targets folder
apt = ["g++-aarch64-linux-gnu"]         # what installs the compilers (named in errors)
sysroot = "/usr/aarch64-linux-gnu"      # qemu -L and the runtime libraries
requires_env = "ANDROID_NDK"            # optional: a variable that must be set (Android NDK)

[emulator]                              # optional: runs its binaries without the board
command = "qemu-aarch64"
cpu = "cortex-a72"                      # required: the board's qemu CPU model (qemu-aarch64 -cpu help),
                                        # so emulated runs use only the instructions the board has
apt = ["qemu-user"]

[tvm]                                   # optional: the TVM target (JSON dict, see docs/tvm.md)
target = { kind = "llvm", mtriple = "aarch64-linux-gnu", mcpu = "cortex-a72", mattr = ["+neon"], num-cores = 4 }
wheel_platforms = ["manylinux_2_28_aarch64", "manylinux_2_27_aarch64"]
```
Every problem is one line naming the file and the key (``TargetError``, exit code 2 in the CLI).
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PakdError
from .resources import targets_dir

ARCHES = {"x86_64": ("x86_64",), "aarch64": ("aarch64",), "armv7": ("arm", "armv7")}
QEMU_CPU = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
TRIPLE = re.compile(r"^(?P<arch>[a-z0-9_]+)-(?P<rest>[a-z0-9_]+(-[a-z0-9_]+)*)$")
_SECTIONS = {
    "target": {"name", "description", "arch", "triple", "cpu", "features", "cores"},
    "toolchain": {"cc", "cxx", "cmake_toolchain", "apt", "sysroot", "requires_env", "cflags"},
    "emulator": {"command", "cpu", "apt"},
    "tvm": {"target", "wheel_platforms"},
}


class TargetError(PakdError):
    """A target file that cannot be used: unknown key, bad triple, missing toolchain."""


def default_targets_dir() -> Path:
    """The project's board files: the installed package data, or ``targets/`` in a checkout."""
    return targets_dir()


@dataclass(frozen=True)
class Compiler:
    """A cross (or native) compiler as a value: what to run, with which flags."""

    cc: str
    cxx: str
    cflags: tuple[str, ...] = ()
    sysroot: str | None = None

    def missing(self) -> list[str]:
        return [c for c in (self.cc, self.cxx) if shutil.which(c) is None]


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: str
    triple: str
    cpu: str
    features: tuple[str, ...]
    cores: int
    compiler: Compiler
    cmake_toolchain: Path | None
    apt: tuple[str, ...]
    requires_env: str | None = None
    emulator: tuple[str, ...] = ()  # e.g. ("qemu-aarch64", "-cpu", "cortex-a72", "-L", "/usr/aarch64-linux-gnu")
    emulator_apt: tuple[str, ...] = ()
    emulator_cpu: str | None = None  # the qemu CPU model the emulator runs as (its -cpu)
    tvm_target: dict[str, Any] = field(default_factory=dict)
    tvm_wheel_platforms: tuple[str, ...] = ()
    path: Path | None = None

    @property
    def is_host(self) -> bool:
        return not self.emulator and self.arch == _host_arch()

    def toolchain_status(self) -> str:
        """'ok', or what to do first (set the variable it needs, install its compilers)."""
        if self.requires_env and not os.environ.get(self.requires_env):
            return f"set {self.requires_env}"
        return "ok" if not self.compiler.missing() else "apt install " + " ".join(self.apt)

    def emulator_status(self) -> str:
        """'-' (no emulator), 'ok', or how to install it."""
        if not self.emulator:
            return "-"
        return "ok" if shutil.which(self.emulator[0]) else "apt install " + " ".join(self.emulator_apt)

    def check_toolchain(self) -> None:
        """Raises TargetError with the command that fixes it when the compilers are missing."""
        if self.requires_env and not os.environ.get(self.requires_env):
            raise TargetError(
                f"target {self.name}: set {self.requires_env} to your Android NDK "
                f"(https://developer.android.com/ndk/downloads), e.g. export "
                f"{self.requires_env}=$HOME/android-ndk-r26d"
            )
        missing = self.compiler.missing()
        if missing:
            raise TargetError(
                f"target {self.name}: {', '.join(missing)} not found; install with: "
                f"sudo apt-get install -y {' '.join(self.apt)}"
            )

    def check_emulator(self) -> None:
        if not self.emulator:
            raise TargetError(f"target {self.name} has no emulator (run it on the board itself)")
        if shutil.which(self.emulator[0]) is None:
            raise TargetError(
                f"target {self.name}: {self.emulator[0]} not found; install with: "
                f"sudo apt-get install -y {' '.join(self.emulator_apt)}"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "arch": self.arch,
            "triple": self.triple,
            "cpu": self.cpu,
            "features": list(self.features),
            "cores": self.cores,
        }


def _host_arch() -> str:
    import platform

    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, "armv7" if m.startswith("arm") else m)


def _take(
    table: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: str,
    default: Any = ...,
    check: Callable[[Any], bool] | None = None,
    what: str = "",
) -> Any:
    if key not in table:
        if default is ...:
            raise TargetError(f"{where}.{key}: missing")
        return default
    value = table[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok or (check is not None and not check(value)):
        raise TargetError(f"{where}.{key}: expected {what or getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _strings(table: dict, key: str, where: str) -> tuple[str, ...]:
    value = _take(table, key, list, where, [], lambda v: all(isinstance(s, str) for s in v), "a list of strings")
    return tuple(value)


def parse_target(data: dict[str, Any], source: str, base: Path | None = None) -> Target:
    where = source
    for section, body in data.items():
        if section not in _SECTIONS:
            raise TargetError(f"{where}: unknown section [{section}] (known: {', '.join(sorted(_SECTIONS))})")
        if not isinstance(body, dict):
            raise TargetError(f"{where}: [{section}] must be a table")
        unknown = set(body) - _SECTIONS[section]
        if unknown:
            raise TargetError(
                f"{where}: unknown key {section}.{sorted(unknown)[0]} (known: {', '.join(sorted(_SECTIONS[section]))})"
            )
    t = data.get("target")
    if t is None:
        raise TargetError(f"{where}: missing [target]")
    w = f"{where}: target"
    name = _take(
        t, "name", str, w, check=lambda v: re.fullmatch(r"[a-z0-9][a-z0-9_-]*", v) is not None, what="a lowercase name"
    )
    arch = _take(t, "arch", str, w, check=lambda v: v in ARCHES, what=f"one of {', '.join(ARCHES)}")
    triple = _take(
        t, "triple", str, w, check=lambda v: TRIPLE.match(v) is not None, what="a GNU triple like aarch64-linux-gnu"
    )
    m = TRIPLE.match(triple)
    if m is None or not m.group("arch").startswith(ARCHES[arch]):
        raise TargetError(f"{w}.triple: {triple!r} is not an {arch} triple")
    tc = data.get("toolchain", {})
    wt = f"{where}: toolchain"
    cmake_tc = _take(tc, "cmake_toolchain", str, wt, None)
    emu = data.get("emulator")
    emulator: tuple[str, ...] = ()
    emulator_cpu = None
    sysroot = _take(tc, "sysroot", str, wt, None)
    if emu is not None:
        we = f"{where}: emulator"
        cmd = _take(emu, "command", str, we)
        emulator_cpu = _take(
            emu, "cpu", str, we, check=lambda v: bool(QEMU_CPU.match(v)), what="a qemu CPU model such as cortex-a72"
        )
        emulator = (cmd, "-cpu", emulator_cpu, *(("-L", sysroot) if sysroot else ()))
    tvm = data.get("tvm", {})
    tvm_target = _take(tvm, "target", dict, f"{where}: tvm", {})
    return Target(
        name=name,
        description=_take(t, "description", str, w, ""),
        arch=arch,
        triple=triple,
        cpu=_take(t, "cpu", str, w, "generic"),
        features=_strings(t, "features", w),
        cores=_take(t, "cores", int, w, 1, lambda v: 1 <= v <= 256, "an integer 1..256"),
        compiler=Compiler(
            cc=_take(tc, "cc", str, wt, "cc"),
            cxx=_take(tc, "cxx", str, wt, "c++"),
            cflags=_strings(tc, "cflags", wt),
            sysroot=sysroot,
        ),
        cmake_toolchain=(base / cmake_tc) if (cmake_tc and base) else (Path(cmake_tc) if cmake_tc else None),
        apt=_strings(tc, "apt", wt),
        requires_env=_take(tc, "requires_env", str, wt, None),
        emulator=emulator,
        emulator_apt=_strings(emu, "apt", f"{where}: emulator") if emu else (),
        emulator_cpu=emulator_cpu,
        tvm_target=dict(tvm_target),
        tvm_wheel_platforms=_strings(tvm, "wheel_platforms", f"{where}: tvm"),
    )


def _dirs(targets_dir: str | Path | None) -> list[Path]:
    if targets_dir and not Path(targets_dir).is_dir():
        what = "not a folder" if Path(targets_dir).exists() else "no such folder"
        raise TargetError(f"--targets-dir {targets_dir}: {what}")
    dirs = [Path(targets_dir)] if targets_dir else []
    return dirs + [default_targets_dir()]


def load_target(name_or_path: str | Path, targets_dir: str | Path | None = None) -> Target:
    """A target by name (searched in ``targets_dir``, then the project's ``targets/``) or by path."""
    p = Path(name_or_path)
    candidates = [p] if p.suffix == ".toml" else [d / f"{name_or_path}.toml" for d in _dirs(targets_dir)]
    for path in candidates:
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise TargetError(f"{path}: not valid TOML ({exc})") from None
            target = parse_target(data, str(path), path.parent)
            if p.suffix != ".toml" and target.name != path.stem:
                raise TargetError(f"{path}: target.name {target.name!r} does not match the file name")
            return _with_path(target, path)
    known = ", ".join(t.name for t in list_targets(targets_dir))
    raise TargetError(f"unknown target {str(name_or_path)!r} (known: {known})")


def _with_path(target: Target, path: Path) -> Target:
    from dataclasses import replace

    return replace(target, path=path)


def list_targets(targets_dir: str | Path | None = None) -> list[Target]:
    """Every target file; a user's folder first, its names shadowing the project's."""
    seen: dict[str, Target] = {}
    for d in _dirs(targets_dir):
        for path in sorted(d.glob("*.toml")) if d.is_dir() else []:
            if path.stem not in seen:
                seen[path.stem] = load_target(path)
    return list(seen.values())
