"""Peer engines on the board without the board: a dense model on ExecuTorch + XNNPACK (and ONNX
Runtime) built for the target, run under the target's qemu, counted in guest instructions.

DESIGN.md times the teacher on the best dense engine there is. On ARM without a board that is a
count of executed guest instructions per inference (:mod:`.emulate`), taken here the same way as
for PaKD's own ``pakd-run``: ``(count(--iters 11) - count(--iters 1)) / 10``, one thread, an
empty environment, qemu as the board's CPU model (XNNPACK picks kernels at run time: under
qemu's default ``max`` CPU it would run SVE / dot-product code that a Cortex-A72 does not have).

ExecuTorch: the model is lowered on the host (``torch.export`` -> ``to_edge_transform_and_lower``
with the XNNPACK partitioner -> ``.pte``, :func:`export_pte`); the target's runtime is the
shared libraries of the executorch wheel for its platform (``pip download``, cached under
:func:`.emulate.default_cache_dir`); ``csrc/tools/et-runner.cc`` is compiled against them with
the target's cross compiler and sits beside them (RUNPATH ``$ORIGIN``).

ONNX Runtime: the model is exported to ONNX on the host (:func:`export_onnx`); the target's
runtime is ``libonnxruntime.so`` from the onnxruntime wheel for its platform, driven by
``csrc/tools/ort-runner.c`` through the C API (the wheel has no header: the runner declares the
few entries it calls). One intra-op and one inter-op thread, all graph optimizations.

Both peers pick kernels by the core they run on (pytorch/cpuinfo reads the MIDR from
/proc/cpuinfo). qemu-user shows the guest the host's x86 /proc/cpuinfo, so each peer runs with
``csrc/tools/cpuinfo-shim.c`` preloaded and the board's /proc/cpuinfo (:func:`board_cpuinfo`:
the target's core, as the board's kernel prints it) in its place.

Errors of the environment (no network for the wheel, no cross compiler, a runner that does not
compile) raise :class:`PeerError` (one line). What an engine cannot do with a model here (a
target it has no wheel for, a graph it cannot lower, a run that fails or disagrees with PyTorch)
comes back as a :class:`PeerCount` whose ``reason`` says why. :func:`measure_peers` turns both
into rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

from ..errors import PakdError
from ..resources import runtime_sources
from ..targets import Target
from .emulate import EmulationError, default_cache_dir, instructions_per_inference, run_emulated

# The one place the peers' versions are pinned (pyproject.toml pins the same; a test checks it).
EXECUTORCH_VERSION = "1.5.1"
ONNXRUNTIME_VERSION = "1.30.0"
# The executorch wheels there are, by target architecture (Linux: x86_64 and aarch64 only).
EXECUTORCH_WHEEL_PLATFORMS = {"aarch64": "manylinux_2_28_aarch64"}
WHEEL_PYTHON = "3.11"  # any CPython tag works: the runner uses only the C++ libraries
EXECUTORCH_LIBS = ("libexecutorch.so", "libexecutorch_backend_xnnpack.so", "libexecutorch_threadpool.so")
ET_RUNNER_SOURCE = runtime_sources() / "csrc" / "tools" / "et-runner.cc"
# ONNX Runtime's wheels by target architecture (Linux: x86_64 and aarch64), and the library in them
ORT_WHEEL_PLATFORMS = {"aarch64": "manylinux_2_28_aarch64"}
ORT_LIB = "libonnxruntime.so.1"  # its SONAME; the wheel names the file libonnxruntime.so.<version>
ORT_RUNNER_SOURCE = runtime_sources() / "csrc" / "tools" / "ort-runner.c"
CPUINFO_SHIM_SOURCE = runtime_sources() / "csrc" / "tools" / "cpuinfo-shim.c"
# What a board's kernel prints for its cores in /proc/cpuinfo: (implementer, variant, part,
# revision, features) of the qemu CPU models the targets use (Arm's TRMs; Pi 4: A72 r0p3, Pi 5:
# A76 r4p1, Pi 3: A53 r0p4, Jetson Nano: A57 r1p1).
BOARD_CORES = {
    "cortex-a53": (0x41, 0x0, 0xD03, 4, "fp asimd evtstrm crc32 cpuid"),
    "cortex-a57": (0x41, 0x1, 0xD07, 1, "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"),
    "cortex-a72": (0x41, 0x0, 0xD08, 3, "fp asimd evtstrm crc32 cpuid"),
    "cortex-a76": (
        0x41,
        0x4,
        0xD0B,
        1,
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
    ),
}
ET_RUNNER_DEFINES = ("-DC10_USING_CUSTOM_GENERATED_MACROS", "-DET_EVENT_TRACER_ENABLED")
DEFAULT_ATOL = 1e-4  # max |ExecuTorch - PyTorch| accepted on the logits (measured: ~1e-6)
PIP_TIMEOUT_S = 900


class PeerError(PakdError):
    """A peer engine cannot be set up here: its wheel cannot be downloaded, its runner not built."""


class PeerDownloadError(PeerError):
    """pip could not download a peer's wheel for the target's platform (no network, no such wheel)."""


@dataclass(frozen=True)
class PeerCount:
    """One peer engine on one model for one target: guest instructions per inference, or why not."""

    engine: str  # "executorch" (XNNPACK delegate) or "onnxruntime"
    version: str
    target: str
    emulator_cpu: str | None  # the qemu CPU model the count was taken on
    threads: int = 1
    instructions: int | None = None
    max_abs_diff: float | None = None  # vs PyTorch on the same input
    reason: str = ""  # why there is no (trustworthy) count
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.instructions is not None and not self.reason

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Exporters (host side; pakd.bench.engines uses them too)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence an exporter's stdout chatter, warnings and its logger below ERROR."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def export_onnx(net: nn.Module, example: np.ndarray, path: Path) -> None:
    """Write ``net`` as one self-contained ONNX file with the torch.export-based exporter
    (torch 2.13's default; the TorchScript exporter is deprecated). Its chatter is silenced."""
    import torch

    with _quiet("torch.onnx"):  # "torchvision is not installed. Skipping torchvision::nms" ...
        torch.onnx.export(
            net,
            (torch.from_numpy(example),),
            str(path),
            dynamo=True,
            external_data=False,
            verbose=False,
            input_names=["input"],
            output_names=["logits"],
        )


def _for_xnnpack(net: nn.Module) -> nn.Module:
    """``net`` (a copy, when anything changes) with every ``nn.Hardsigmoid`` (MobileNetV3's
    squeeze-excite gate) computed as ``relu6(x + 3) / 6``, the same values for every float32:
    XNNPACK has no hardsigmoid, and ExecuTorch's decomposition of it leaves scalar-constant copies
    (``_to_dim_order_copy``) outside the delegate, which only portable kernels (not linked into
    the board's runner) run."""
    import copy

    import torch.nn.functional as F
    from torch import nn as tnn

    class Relu6Hardsigmoid(tnn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu6(x + 3.0) / 6.0

    if not any(isinstance(m, tnn.Hardsigmoid) for m in net.modules()):
        return net
    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in parent.named_children():
            if isinstance(child, tnn.Hardsigmoid):
                setattr(parent, name, Relu6Hardsigmoid())
    return net


def export_pte(net: nn.Module, example: torch.Tensor, path: str | Path) -> dict[str, Any]:
    """Lower ``net`` (eval mode, for inputs shaped like ``example``) to an ExecuTorch program with
    every op XNNPACK takes delegated to it, and write it to ``path``. Returns what was lowered:
    ``{"bytes", "delegated_calls", "undelegated_ops"}`` (ops left to ExecuTorch's portable
    kernels, which the aarch64 runner does not link: an empty list is the normal case)."""
    import torch

    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise PeerError(f"executorch is not installed ({exc}); pip install executorch=={EXECUTORCH_VERSION}") from None
    with _quiet("executorch"), torch.no_grad():
        ep = torch.export.export(_for_xnnpack(net.eval()), (example,))
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
        graph = edge.exported_program().graph
        program = edge.to_executorch()
    calls = [n for n in graph.nodes if n.op == "call_function"]
    delegated = sum(1 for n in calls if "executorch_call_delegate" in str(n.target))
    undelegated = sorted(
        {
            str(n.target)
            for n in calls
            if "executorch_call_delegate" not in str(n.target) and "getitem" not in str(n.target)
        }
    )
    data = program.buffer
    Path(path).write_bytes(data)
    return {"bytes": len(data), "delegated_calls": delegated, "undelegated_ops": undelegated}


# --------------------------------------------------------------------------------------------
# The target's ExecuTorch runtime and runner
# --------------------------------------------------------------------------------------------


def _pip_download(spec: str, platform: str, dest: Path) -> Path:
    """``pip download`` one binary wheel for ``platform`` into ``dest``; PeerDownloadError on failure."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        platform,
        "--python-version",
        WHEEL_PYTHON,
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        spec,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise PeerDownloadError(
            f"downloading the {platform} wheel of {spec} timed out ({PIP_TIMEOUT_S // 60} min); is the network up?"
        ) from None
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip() and "is ignored" not in ln]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines or [f"exit {proc.returncode}, no wheel"]
        raise PeerDownloadError(
            f"cannot download the {platform} wheel of {spec} (no network, or no such wheel): {errors[-1]}"
        )
    return wheels[0]


def executorch_platform(target: Target) -> str | None:
    """The wheel platform of the executorch runtime for ``target``, None when there is none."""
    return EXECUTORCH_WHEEL_PLATFORMS.get(target.arch)


def fetch_executorch_runtime(target: Target, cache_dir: str | Path | None = None) -> Path:
    """The folder holding the target's ExecuTorch headers (``include/``) and shared libraries
    (``lib/``), extracted from the executorch wheel of :data:`EXECUTORCH_VERSION` for its platform,
    once, into ``cache_dir`` (default :func:`.emulate.default_cache_dir`) ``/peers/``."""
    platform = executorch_platform(target)
    if platform is None:
        raise PeerError(
            f"target {target.name} ({target.arch}): executorch publishes Linux wheels for x86_64 and aarch64 only"
        )
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = cache / "peers" / f"executorch-{EXECUTORCH_VERSION}" / platform
    done = root / ".complete"
    if done.is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        wheel = _pip_download(f"executorch=={EXECUTORCH_VERSION}", platform, Path(tmp))
        staging = Path(tmp) / "x"
        with zipfile.ZipFile(wheel) as zf:
            members = [
                m for m in zf.namelist() if m.startswith("executorch/include/") or m in _lib_members(EXECUTORCH_LIBS)
            ]
            missing = [lib for lib in _lib_members(EXECUTORCH_LIBS) if lib not in members]
            if missing:
                raise PeerError(f"{wheel.name} has no {missing[0]}")
            zf.extractall(staging, members)
        for sub in ("include", "lib"):
            dest = root / sub
            if dest.exists():
                import shutil

                shutil.rmtree(dest)
            os.replace(staging / "executorch" / sub, dest)
    done.write_text(f"executorch=={EXECUTORCH_VERSION} {platform}\n")
    return root


def _lib_members(names: tuple[str, ...]) -> list[str]:
    return [f"executorch/lib/{n}" for n in names]


def _compile(target: Target, cmd: list[str], out: Path, what: str) -> Path:
    """Run a compile ``cmd`` writing ``out`` atomically (through a temporary name)."""
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    try:
        proc = subprocess.run([*cmd, "-o", str(tmp)], capture_output=True, text=True)
        if proc.returncode != 0:
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[-300:])
            raise PeerError(f"target {target.name}: compiling {what} failed: {first}")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def _source_key(source: Path, *parts: str) -> str:
    return hashlib.sha256(source.read_bytes() + "\0".join(parts).encode()).hexdigest()[:16]


def build_et_runner(target: Target, cache_dir: str | Path | None = None) -> Path:
    """``et-runner`` (csrc/tools/et-runner.cc) compiled for ``target`` with its cross compiler,
    beside the runtime's shared libraries (RUNPATH ``$ORIGIN``), cached by a hash of the source,
    the compiler and its flags. Raises TargetError without the compiler, PeerError when it fails."""
    target.check_toolchain()
    root = fetch_executorch_runtime(target, cache_dir)
    if not ET_RUNNER_SOURCE.is_file():
        raise PeerError(f"runner source {ET_RUNNER_SOURCE} not found (PaKD ships it in csrc/tools/; reinstall PaKD)")
    flags = ["-std=c++17", "-O2", *target.compiler.cflags, *ET_RUNNER_DEFINES]
    runner = root / "lib" / f"et-runner-{_source_key(ET_RUNNER_SOURCE, target.compiler.cxx, *flags)}"
    if runner.is_file():
        return runner
    include = root / "include"
    cmd = [
        target.compiler.cxx,
        *flags,
        "-isystem",
        str(include),
        "-isystem",
        str(include / "executorch" / "runtime" / "core" / "portable_type" / "c10"),
        str(ET_RUNNER_SOURCE),
        "-L",
        str(root / "lib"),
        "-Wl,--no-as-needed",  # the XNNPACK backend registers itself in a static constructor
        *(f"-l{lib[3:-3]}" for lib in EXECUTORCH_LIBS),
        "-Wl,--as-needed",
        "-Wl,-rpath,$ORIGIN",
    ]
    return _compile(target, cmd, runner, ET_RUNNER_SOURCE.name)


def _host_cpus() -> int:
    """How many CPUs the guest sees in /sys (qemu-user passes the host's through)."""
    try:
        text = Path("/sys/devices/system/cpu/possible").read_text().strip()
        return int(text.split(",")[-1].split("-")[-1]) + 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


def board_cpuinfo(cpu: str, cpus: int | None = None) -> str | None:
    """/proc/cpuinfo as an AArch64 board with ``cpus`` cores of model ``cpu`` (a qemu -cpu name)
    prints it; None for a core :data:`BOARD_CORES` does not know."""
    core = BOARD_CORES.get(cpu)
    if core is None:
        return None
    implementer, variant, part, revision, features = core
    blocks = [
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x{implementer:02x}\n"
        f"CPU architecture: 8\nCPU variant\t: 0x{variant:x}\nCPU part\t: 0x{part:03x}\nCPU revision\t: {revision}\n"
        for i in range(cpus or _host_cpus())
    ]
    return "\n".join(blocks) + "\n"


def peer_guest_env(target: Target, work_dir: str | Path, cache_dir: str | Path | None = None) -> dict[str, str]:
    """The guest environment a peer runs with under qemu: ``csrc/tools/cpuinfo-shim.c`` (built for
    ``target``, cached) preloaded, and the board's /proc/cpuinfo written to ``work_dir``. Empty
    for a host target or a core :func:`board_cpuinfo` does not know."""
    text = board_cpuinfo(target.emulator_cpu or "")
    if target.is_host or text is None:
        return {}
    if not CPUINFO_SHIM_SOURCE.is_file():
        raise PeerError(f"{CPUINFO_SHIM_SOURCE} not found (PaKD ships it in csrc/tools/; reinstall PaKD)")
    target.check_toolchain()
    flags = ["-std=c99", "-O2", "-shared", "-fPIC", *target.compiler.cflags]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _source_key(CPUINFO_SHIM_SOURCE, target.compiler.cc, *flags)
    shim = cache / "peers" / "cpuinfo-shim" / f"cpuinfo-shim-{key}.so"
    if not shim.is_file():
        shim.parent.mkdir(parents=True, exist_ok=True)
        _compile(target, [target.compiler.cc, *flags, str(CPUINFO_SHIM_SOURCE), "-ldl"], shim, CPUINFO_SHIM_SOURCE.name)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "cpuinfo").write_text(text)
    return {"LD_PRELOAD": str(shim), "PAKD_CPUINFO": str((work / "cpuinfo").resolve())}


def fetch_onnxruntime_runtime(target: Target, cache_dir: str | Path | None = None) -> Path:
    """The folder (``lib/``) holding ``libonnxruntime.so.1`` from the onnxruntime wheel of
    :data:`ONNXRUNTIME_VERSION` for the target's platform, extracted once into ``cache_dir``
    (default :func:`.emulate.default_cache_dir`) ``/peers/``."""
    platform = ORT_WHEEL_PLATFORMS.get(target.arch)
    if platform is None:
        raise PeerError(
            f"target {target.name} ({target.arch}): onnxruntime publishes Linux wheels for x86_64 and aarch64 only"
        )
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = cache / "peers" / f"onnxruntime-{ONNXRUNTIME_VERSION}" / platform
    done = root / ".complete"
    if done.is_file():
        return root
    (root / "lib").mkdir(parents=True, exist_ok=True)
    member = f"onnxruntime/capi/libonnxruntime.so.{ONNXRUNTIME_VERSION}"
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        wheel = _pip_download(f"onnxruntime=={ONNXRUNTIME_VERSION}", platform, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            if member not in zf.namelist():
                raise PeerError(f"{wheel.name} has no {member}")
            zf.extract(member, tmp)
        os.replace(Path(tmp) / member, root / "lib" / ORT_LIB)
    done.write_text(f"onnxruntime=={ONNXRUNTIME_VERSION} {platform}\n")
    return root


def build_ort_runner(target: Target, cache_dir: str | Path | None = None) -> Path:
    """``ort-runner`` (csrc/tools/ort-runner.c) compiled for ``target`` beside the wheel's
    ``libonnxruntime.so.1`` (RUNPATH ``$ORIGIN``), cached by a hash of the source, compiler and flags."""
    target.check_toolchain()
    root = fetch_onnxruntime_runtime(target, cache_dir)
    if not ORT_RUNNER_SOURCE.is_file():
        raise PeerError(f"runner source {ORT_RUNNER_SOURCE} not found (PaKD ships it in csrc/tools/; reinstall PaKD)")
    flags = ["-std=c99", "-O2", *target.compiler.cflags]
    runner = root / "lib" / f"ort-runner-{_source_key(ORT_RUNNER_SOURCE, target.compiler.cc, *flags)}"
    if runner.is_file():
        return runner
    lib = root / "lib" / ORT_LIB
    return _compile(
        target,
        [target.compiler.cc, *flags, str(ORT_RUNNER_SOURCE), str(lib), "-Wl,-rpath,$ORIGIN"],
        runner,
        ORT_RUNNER_SOURCE.name,
    )


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def _reference(model: nn.Module, example: torch.Tensor) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model.eval()(example).detach().numpy().astype(np.float32).reshape(-1)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1].strip()


def measure_executorch(
    model: nn.Module,
    example: torch.Tensor,
    target: Target,
    work_dir: str | Path,
    *,
    iters: int = 10,
    atol: float = DEFAULT_ATOL,
    cache_dir: str | Path | None = None,
    plugin: str | Path | None = None,
) -> PeerCount:
    """``model`` on ExecuTorch + XNNPACK built for ``target``, under its qemu: the output on
    ``example`` (batch 1) checked against PyTorch (``atol``), then guest instructions per
    inference, one thread. ``work_dir`` receives ``model.pte``, ``input.f32`` and
    ``output.f32``. Raises PeerError (download, compiler), TargetError / EmulationError (no
    cross compiler, no qemu); returns a PeerCount with a reason for what the engine cannot do."""
    base: dict[str, Any] = dict(
        engine="executorch", version=EXECUTORCH_VERSION, target=target.name, emulator_cpu=target.emulator_cpu
    )
    if executorch_platform(target) is None:
        return PeerCount(
            **base, reason=f"no executorch runtime for {target.arch} (its wheels: x86_64 and aarch64 Linux)"
        )
    if target.is_host:
        return PeerCount(**base, reason="a host target: time it with pakd bench (engine executorch) instead")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    runner = build_et_runner(target, cache_dir)
    pte, x_file, y_file = work / "model.pte", work / "input.f32", work / "output.f32"
    try:
        lowered = export_pte(model, example, pte)
    except PeerError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.export / lowering: the message is the reason
        return PeerCount(**base, reason=f"cannot lower to ExecuTorch + XNNPACK: {_last_line(str(exc))}")
    info: dict[str, Any] = {"pte_bytes": lowered["bytes"], "delegated_calls": lowered["delegated_calls"]}
    if lowered["undelegated_ops"]:
        return PeerCount(
            **base,
            info=info,
            reason=f"ops not taken by XNNPACK (the runner links no portable kernels): {', '.join(lowered['undelegated_ops'])}",
        )
    example.detach().numpy().astype("<f4").tofile(x_file)
    y_file.unlink(missing_ok=True)
    env = peer_guest_env(target, work, cache_dir)
    info["cpuinfo"] = target.emulator_cpu if env else None
    r = run_emulated(
        target, [runner, pte, "--input", x_file, "--output", y_file, "--iters", "1"], cwd=work, guest_env=env
    )
    if r.returncode != 0 or not y_file.is_file():
        return PeerCount(**base, info=info, reason=f"et-runner failed (exit {r.returncode}): {_last_line(r.stderr)}")
    out, ref = np.fromfile(y_file, dtype="<f4"), _reference(model, example)
    if out.shape != ref.shape:
        return PeerCount(**base, info=info, reason=f"output has {out.size} values, PyTorch's {ref.size}")
    diff = float(np.max(np.abs(out - ref)))
    if not diff <= atol:
        return PeerCount(**base, max_abs_diff=diff, info=info, reason=f"output differs from PyTorch by {diff:.2e}")
    try:
        count = instructions_per_inference(
            target, [runner, pte, "--input", x_file], iters=iters, cwd=work, plugin=plugin, guest_env=env
        )
    except EmulationError as exc:
        return PeerCount(**base, max_abs_diff=diff, info=info, reason=str(exc))
    return PeerCount(**base, instructions=count, max_abs_diff=diff, info=info)


def measure_onnxruntime(
    model: nn.Module,
    example: torch.Tensor,
    target: Target,
    work_dir: str | Path,
    *,
    iters: int = 10,
    atol: float = DEFAULT_ATOL,
    cache_dir: str | Path | None = None,
    plugin: str | Path | None = None,
) -> PeerCount:
    """``model`` on ONNX Runtime built for ``target`` (the wheel's library + ort-runner), under its
    qemu: the output on ``example`` checked against PyTorch (``atol``), then guest instructions per
    inference, one thread. ``work_dir`` receives ``model.onnx``, ``input.f32``, ``output.f32``.
    Raises PeerError / TargetError / EmulationError for the environment; returns a PeerCount with
    a reason for what the engine cannot do."""
    base: dict[str, Any] = dict(
        engine="onnxruntime", version=ONNXRUNTIME_VERSION, target=target.name, emulator_cpu=target.emulator_cpu
    )
    if target.arch not in ORT_WHEEL_PLATFORMS:
        return PeerCount(
            **base, reason=f"no onnxruntime runtime for {target.arch} (its wheels: x86_64 and aarch64 Linux)"
        )
    if target.is_host:
        return PeerCount(**base, reason="a host target: time it with pakd bench (engine onnxruntime) instead")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    runner = build_ort_runner(target, cache_dir)
    env = peer_guest_env(target, work, cache_dir)
    onnx_file, x_file, y_file = work / "model.onnx", work / "input.f32", work / "output.f32"
    try:
        export_onnx(model.eval(), example.detach().numpy().astype(np.float32), onnx_file)
    except Exception as exc:  # noqa: BLE001 - the exporter's message is the reason
        return PeerCount(**base, reason=f"cannot export to ONNX: {_last_line(str(exc))}")
    ref = _reference(model, example)
    shape_args = [
        "--input-shape",
        ",".join(str(d) for d in example.shape),
        "--output-shape",
        f"1,{ref.size}",
    ]
    info: dict[str, Any] = {"onnx_bytes": onnx_file.stat().st_size, "cpuinfo": target.emulator_cpu if env else None}
    example.detach().numpy().astype("<f4").tofile(x_file)
    y_file.unlink(missing_ok=True)
    argv: list[str | Path] = [runner, onnx_file, *shape_args, "--input", x_file]
    r = run_emulated(target, [*argv, "--output", y_file, "--iters", "1"], cwd=work, guest_env=env)
    if r.returncode != 0 or not y_file.is_file():
        return PeerCount(**base, info=info, reason=f"ort-runner failed (exit {r.returncode}): {_last_line(r.stderr)}")
    out = np.fromfile(y_file, dtype="<f4")
    diff = float(np.max(np.abs(out - ref))) if out.shape == ref.shape else float("inf")
    if not diff <= atol:
        return PeerCount(**base, max_abs_diff=diff, info=info, reason=f"output differs from PyTorch by {diff:.2e}")
    try:
        count = instructions_per_inference(target, argv, iters=iters, cwd=work, plugin=plugin, guest_env=env)
    except EmulationError as exc:
        return PeerCount(**base, max_abs_diff=diff, info=info, reason=str(exc))
    return PeerCount(**base, instructions=count, max_abs_diff=diff, info=info)


PEERS = {"executorch": measure_executorch, "onnxruntime": measure_onnxruntime}


def measure_peers(
    model: nn.Module,
    example: torch.Tensor,
    target: Target,
    work_dir: str | Path,
    *,
    engines: tuple[str, ...] = tuple(PEERS),
    **options: Any,
) -> list[PeerCount]:
    """Every peer engine on ``model`` for ``target`` (each in ``work_dir/<engine>/``), one row
    each; setup errors (PakdError: no network, no compiler, no qemu) become the row's reason."""
    rows = []
    for name in engines:
        try:
            rows.append(PEERS[name](model, example, target, Path(work_dir) / name, **options))
        except PakdError as exc:
            version = EXECUTORCH_VERSION if name == "executorch" else ONNXRUNTIME_VERSION
            rows.append(PeerCount(name, version, target.name, target.emulator_cpu, reason=str(exc)))
    return rows


def best_peer(rows: list[PeerCount]) -> PeerCount | None:
    """The counted row with the fewest instructions (the teacher's best ARM engine), if any."""
    counted = [r for r in rows if r.ok]
    return min(counted, key=lambda r: r.instructions or 0) if counted else None


__all__ = [
    "EXECUTORCH_VERSION",
    "ONNXRUNTIME_VERSION",
    "PeerCount",
    "PeerDownloadError",
    "PeerError",
    "best_peer",
    "board_cpuinfo",
    "build_et_runner",
    "build_ort_runner",
    "export_onnx",
    "export_pte",
    "fetch_executorch_runtime",
    "fetch_onnxruntime_runtime",
    "measure_executorch",
    "measure_onnxruntime",
    "measure_peers",
    "peer_guest_env",
]
