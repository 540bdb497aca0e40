"""Running a target's binaries without the board: qemu-user, and guest instruction counts.

Emulated seconds say nothing about the board (qemu's cost per guest instruction varies wildly:
NEON is expensive to emulate), so speed under emulation is measured in *executed guest
instructions*, counted by a small TCG plugin (``csrc/tools/qemu-insn-count.c``) that this module
compiles with the host's gcc. Counts are deterministic for a single-threaded guest in a fixed
environment, so every run here gets an empty one (like ``env -i``). Per inference::

    (count(pakd-run MODEL --iters N+1) - count(pakd-run MODEL --iters 1)) / N

which cancels the process start, the model load and the first inference (the lazy set-up some
engines do on their first run: arenas, buffers), so that what is left is N steady-state
inferences, the same way for PaKD and for the peer engines (``.peers``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import PakdError
from ..resources import runtime_sources
from ..targets import Target

PLUGIN_SOURCE = runtime_sources() / "csrc" / "tools" / "qemu-insn-count.c"  # the wheel's copy, or the checkout's
PLUGIN_CC = ("gcc", "cc")  # the host C compiler that builds the plugin, first found
PLUGIN_APT = "gcc"
# Host variables qemu itself may need to start (its own shared libraries); kept for qemu and
# unset in the guest (qemu -U), so the guest's environment is empty whatever the host's.
_QEMU_HOST_ENV = ("LD_LIBRARY_PATH",)
# Inferences run before the counted ones, in both runs of a pair (see the module's docstring).
WARMUP_ITERS = 1


class EmulationError(PakdError):
    """qemu or the plugin compiler is missing, the plugin cannot be loaded, or a run failed."""


@dataclass(frozen=True)
class EmulatedRun:
    returncode: int
    stdout: str
    stderr: str
    instructions: int | None  # executed guest instructions; None when not counted
    by_symbol: dict[str, int] | None = None  # per function (mangled ELF symbol, "?" for none) with per_symbol


def default_cache_dir() -> Path:
    """Where the compiled plugin is kept: $PAKD_CACHE_DIR, else $XDG_CACHE_HOME/pakd, else ~/.cache/pakd."""
    base = os.environ.get("PAKD_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pakd"


def build_plugin(cache_dir: str | Path | None = None, source: str | Path = PLUGIN_SOURCE) -> Path:
    """Compiles the instruction-count plugin with the host compiler, once per source version:
    the file name carries a hash of the source, so an edited plugin is rebuilt."""
    source = Path(source)
    if not source.is_file():
        raise EmulationError(f"plugin source {source} not found (PaKD ships it in csrc/tools/; reinstall PaKD)")
    text = source.read_bytes()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = cache / f"qemu-insn-count-{hashlib.sha256(text).hexdigest()[:16]}.so"
    if out.is_file():
        return out
    cc = next((c for c in PLUGIN_CC if shutil.which(c)), None)
    if cc is None:
        raise EmulationError(
            f"no host C compiler ({' or '.join(PLUGIN_CC)}) to build the qemu instruction-count "
            f"plugin; install with: sudo apt-get install -y {PLUGIN_APT}"
        )
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem, suffix=".so.tmp", dir=cache)
    os.close(fd)
    try:
        r = subprocess.run(
            [cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", tmp, str(source)], capture_output=True, text=True
        )
        if r.returncode != 0:
            first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[-300:])
            raise EmulationError(f"{cc} could not build the qemu plugin {source.name}: {first}")
        os.replace(tmp, out)  # atomic: a concurrent build never sees half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _emulator_argv(target: Target) -> list[str]:
    target.check_emulator()  # TargetError naming the apt package when qemu is missing
    return [shutil.which(target.emulator[0]) or target.emulator[0], *target.emulator[1:]]


def run_emulated(
    target: Target,
    argv: Sequence[str | os.PathLike],
    *,
    cwd: str | Path | None = None,
    count_instructions: bool = False,
    timeout: float | None = 600,
    plugin: str | Path | None = None,
    per_symbol: bool = False,
    guest_env: Mapping[str, str] | None = None,
) -> EmulatedRun:
    """Runs ``argv`` (a binary built for ``target`` and its arguments) under the target's qemu,
    with an empty guest environment but ``guest_env`` (qemu -E; e.g. a peer's LD_PRELOAD); with
    ``count_instructions`` through the counting plugin (``plugin``, else :func:`build_plugin` in
    the default cache), and with ``per_symbol`` also per function of the binary."""
    cmd = _emulator_argv(target)
    host_env = {k: os.environ[k] for k in _QEMU_HOST_ENV if k in os.environ}
    for k in host_env:
        cmd += ["-U", k]
    for k, v in (guest_env or {}).items():
        cmd += ["-E", f"{k}={v}"]
    with tempfile.TemporaryDirectory(prefix="pakd-qemu-") as tmp:
        outfile = Path(tmp) / "insns.txt"
        if count_instructions:
            so = Path(plugin) if plugin is not None else build_plugin()
            if "," in str(so) or "," in str(outfile):
                raise EmulationError(f"qemu plugin paths cannot contain ',': {so}, {outfile}")
            cmd += ["-plugin", f"{so},outfile={outfile}" + (",symbols=on" if per_symbol else ""), "-d", "plugin"]
        cmd += [str(a) for a in argv]
        try:
            r = subprocess.run(
                cmd, cwd=cwd, env=host_env, capture_output=True, text=True, timeout=timeout, errors="replace"
            )
        except subprocess.TimeoutExpired:
            raise EmulationError(
                f"{Path(str(argv[0])).name} under {target.emulator[0]} did not finish within {timeout:g} s"
            ) from None
        instructions = None
        by_symbol: dict[str, int] | None = None
        if count_instructions:
            plugin_lines = [ln for ln in r.stderr.splitlines() if "plugin" in ln.lower()]
            if not outfile.exists() and plugin_lines:  # e.g. a qemu built without plugin support
                raise EmulationError(
                    f"{target.emulator[0]} cannot load the instruction-count plugin: {plugin_lines[-1].strip()}"
                )
            if outfile.exists():
                lines = outfile.read_text().splitlines()
                if lines and lines[0].startswith("insns:"):
                    instructions = int(lines[0].split()[1])
                if per_symbol:
                    by_symbol = {}
                    for line in lines[1:]:
                        _, n, name = line.split(" ", 2)
                        by_symbol[name] = by_symbol.get(name, 0) + int(n)
    return EmulatedRun(r.returncode, r.stdout, r.stderr, instructions, by_symbol)


def _iters_pair(
    target: Target,
    argv_without_iters: Sequence[str | os.PathLike],
    iters: int,
    cwd: str | Path | None,
    timeout: float | None,
    plugin: str | Path | None,
    per_symbol: bool,
    guest_env: Mapping[str, str] | None = None,
) -> tuple[EmulatedRun, EmulatedRun]:
    """The counted runs with ``--iters N+1`` and ``--iters 1`` (their difference is N
    steady-state inferences: the first one, with any lazy set-up, is in both)."""
    if iters < 1:
        raise ValueError("iters must be >= 1")
    so = Path(plugin) if plugin is not None else build_plugin()
    runs = []
    for n in (iters + WARMUP_ITERS, WARMUP_ITERS):
        r = run_emulated(
            target,
            [*argv_without_iters, "--iters", str(n)],
            cwd=cwd,
            count_instructions=True,
            timeout=timeout,
            plugin=so,
            per_symbol=per_symbol,
            guest_env=guest_env,
        )
        if r.returncode != 0 or r.instructions is None or (per_symbol and r.by_symbol is None):
            last = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise EmulationError(
                f"{Path(str(argv_without_iters[0])).name} --iters {n} under "
                f"{target.emulator[0]} failed (exit {r.returncode}): {last}"
            )
        runs.append(r)
    return runs[0], runs[1]


def instructions_per_inference(
    target: Target,
    argv_without_iters: Sequence[str | os.PathLike],
    *,
    iters: int = 10,
    cwd: str | Path | None = None,
    timeout: float | None = 600,
    plugin: str | Path | None = None,
    guest_env: Mapping[str, str] | None = None,
) -> int:
    """Guest instructions of one inference: pakd-run (``argv_without_iters``: the binary, the
    model, options such as ``--threads 1``) counted with ``--iters N+1`` and with ``--iters 1``,
    the difference divided by N. Use one thread: spinning workers make counts noisy."""
    full, empty = _iters_pair(target, argv_without_iters, iters, cwd, timeout, plugin, False, guest_env)
    assert full.instructions is not None and empty.instructions is not None
    return round((full.instructions - empty.instructions) / iters)


def _demangle(names: list[str]) -> dict[str, str]:
    """C++ names made readable by binutils' c++filt (installed with g++); unchanged without it."""
    tool = shutil.which("c++filt")
    if tool is None or not names:
        return {n: n for n in names}
    r = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True)
    out = r.stdout.splitlines()
    return dict(zip(names, out, strict=True)) if r.returncode == 0 and len(out) == len(names) else {n: n for n in names}


def _without_arguments(name: str) -> str:
    """``ns::f(int, (anonymous namespace)::T) const`` -> ``ns::f``: the argument list is the
    parenthesis group that closes the name (``c++filt -p`` would also cut ``(anonymous namespace)``)."""
    end = name.rstrip()
    for suffix in (" const", " volatile", " &", " &&"):
        end = end.removesuffix(suffix)
    if not end.endswith(")"):
        return name
    depth = 0
    for i in range(len(end) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(end[i], 0)
        if depth == 0:
            return end[:i] or name
    return name


def instructions_by_function(
    target: Target,
    argv_without_iters: Sequence[str | os.PathLike],
    *,
    iters: int = 10,
    cwd: str | Path | None = None,
    timeout: float | None = 600,
    plugin: str | Path | None = None,
) -> list[tuple[str, int]]:
    """Where one inference's instructions go: per function of the binary (demangled, without
    arguments; "?" for code qemu has no symbol for, e.g. the C library), the same difference of
    ``--iters N+1`` and ``--iters 1`` runs as :func:`instructions_per_inference`, most first."""
    full, empty = _iters_pair(target, argv_without_iters, iters, cwd, timeout, plugin, per_symbol=True)
    assert full.by_symbol is not None and empty.by_symbol is not None
    per = {k: round((v - empty.by_symbol.get(k, 0)) / iters) for k, v in full.by_symbol.items()}
    names = _demangle(sorted(per))
    merged: dict[str, int] = {}
    for k, v in per.items():
        if v > 0:
            name = _without_arguments(names[k])
            merged[name] = merged.get(name, 0) + v
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
