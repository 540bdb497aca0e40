"""The TVM backend of ``pakd build``: a PyTorch model compiled by Apache TVM (Relax) into one
shared library per target, the TVM runtime of the target's architecture, and a small C++ runner.

Pipeline (measured choices in ``docs/tvm.md``): ``torch.export`` -> Relax
(``from_exported_program``, weights folded in as constants) -> ``tvm.compile`` for the target's
``[tvm] target`` dict with the default Relax pipeline -> ``export_library`` through the target's
C++ compiler (a value from the target file, never an environment variable).

Untuned TVM code is several times *slower* than eager PyTorch on a CPU; MetaSchedule tuning
(``tune_trials``) is what makes it fast, and takes minutes to hours: it never runs unless asked.

``import tvm`` takes seconds, so this module imports it only inside the functions that need it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import PakdError
from ..resources import runtime_sources
from ..targets import Target

#: The versions this backend is tested with (pyproject's ``tvm`` extra pins the same).
TVM_PINS = {"apache-tvm": "0.27.0.post1", "apache-tvm-ffi": "0.1.14.post1"}
MODEL_FILE = "model.so"
RUNNER_FILE = "tvm-runner"
RUNTIME_LIBS = ("libtvm_runtime.so", "libtvm_ffi.so")
#: Relax function added beside ``main``: returns the input shape, so the runner needs no side file.
INPUT_SHAPE_FUNC = "pakd_input_shape"
RUNNER_SOURCE = runtime_sources() / "csrc" / "tools" / "tvm-runner.cc"  # the wheel's copy, or the checkout's
# Where each runtime library lies inside its wheel.
_WHEEL_MEMBERS = {"apache-tvm": "tvm/lib/libtvm_runtime.so", "apache-tvm-ffi": "tvm_ffi/lib/libtvm_ffi.so"}


class TvmError(PakdError):
    """The TVM backend cannot do what was asked (a target without TVM support, a failed build)."""


class TvmUnavailableError(TvmError):
    """TVM is not installed, or installed in a version known not to work."""


class TvmRuntimeError(TvmError):
    """The target's TVM runtime libraries cannot be had (no wheels for its arch, no network)."""


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def tvm_available() -> str | None:
    """None when the TVM backend can run here, else the reason (one line, with the fix).

    Cheap: reads package metadata and does not import tvm."""
    fix = f"pip install apache-tvm=={TVM_PINS['apache-tvm']} apache-tvm-ffi=={TVM_PINS['apache-tvm-ffi']}"
    tvm_v, ffi_v = _version("apache-tvm"), _version("apache-tvm-ffi")
    if tvm_v is None or importlib.util.find_spec("tvm") is None:
        return f"TVM is not installed (install the test/tvm extra: pip install -e '.[tvm]', or {fix})"
    if ffi_v is None or importlib.util.find_spec("tvm_ffi") is None:
        return f"apache-tvm-ffi is not installed ({fix})"
    if ffi_v.startswith("0.1.15") and tvm_v.startswith("0.27."):
        return (
            f"apache-tvm-ffi {ffi_v} crashes in tvm.ir.save_json with apache-tvm {tvm_v} "
            f"(MetaSchedule's database); {fix}"
        )
    return None


def _require_tvm() -> None:
    reason = tvm_available()
    if reason:
        raise TvmUnavailableError(reason)


@dataclass(frozen=True)
class TvmBuild:
    """What :func:`compile_tvm` produced (plain data: ``to_dict`` goes into a build manifest)."""

    target: str
    model: Path  # out_dir / "model.so"
    files: tuple[Path, ...]  # every file written into out_dir
    input_shape: tuple[int, ...]  # with the batch dimension
    output_shape: tuple[int, ...]
    tvm_target: dict[str, Any] = field(default_factory=dict)
    tuned: bool = False  # at least one kernel scheduled from the database
    tune_trials: int = 0  # trials run by this build (0: none, maybe reused)
    tuning_db: Path | None = None  # the per-target database folder used, if any
    tvm_version: str = ""
    tvm_ffi_version: str = ""
    seconds: float = 0.0  # wall time of the whole build, tuning included

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": "tvm",
            "target": self.target,
            "model": self.model.name,
            "files": [f.name for f in self.files],
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "tvm_target": self.tvm_target,
            "tuned": self.tuned,
            "tune_trials": self.tune_trials,
            "tuning_db": str(self.tuning_db) if self.tuning_db else None,
            "tvm_version": self.tvm_version,
            "tvm_ffi_version": self.tvm_ffi_version,
            "seconds": round(self.seconds, 3),
        }


def _tvm_target(target: Target):
    import tvm

    if not target.tvm_target:
        raise TvmError(
            f"target {target.name} has no [tvm] section in {target.path or 'its target file'} "
            f'(add e.g. target = {{ kind = "llvm", mtriple = "{target.triple}" }})'
        )
    spec = dict(target.tvm_target)
    if spec.get("kind") == "llvm":  # MetaSchedule needs the core count; the target file has it
        spec.setdefault("num-cores", target.cores)
    try:
        return tvm.target.Target(spec)
    except Exception as exc:  # TVM raises its own error types for a malformed target dict
        raise TvmError(
            f"target {target.name}: TVM rejects [tvm] target {target.tvm_target!r}: {str(exc).strip().splitlines()[-1]}"
        ) from None


def _fcompile(target: Target):
    """The target's C++ compiler as TVM's export_library fcompile (a fresh options list each call:
    ``cross_compiler`` appends to the list it is given)."""
    from tvm.support import cc

    return cc.cross_compiler(target.compiler.cxx, options=list(target.compiler.cflags))


def _to_relax(model: nn.Module, shape: tuple[int, ...]):
    import torch
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    example = torch.zeros(shape)
    with torch.no_grad():
        exported = torch.export.export(model.eval(), (example,))
        out_shape = tuple(model(example).shape)
    mod = from_exported_program(exported, keep_params_as_input=False, unwrap_unit_return_tuple=True)
    bb = relax.BlockBuilder(mod)
    with bb.function(INPUT_SHAPE_FUNC, []):
        bb.emit_func_output(relax.ShapeExpr(list(shape)))
    return bb.get(), out_shape


def _tuning_dir(tuning_db: Path | None, target: Target) -> Path | None:
    return None if tuning_db is None else Path(tuning_db) / target.name


def _database_has_records(db_dir: Path | None) -> bool:
    return (
        db_dir is not None
        and (db_dir / "database_tuning_record.json").is_file()
        and (db_dir / "database_tuning_record.json").stat().st_size > 0
    )


def _tuned_executable(mod, tvm_target, target: Target, db_dir: Path, trials: int):
    """MetaSchedule (docs/tvm.md, "Tuning pitfalls"): decompose for inference, the "zero" pipeline
    (legalize + fuse), tune into a JSON database with a patient builder, apply the database inside
    the target and database contexts, then lower with the "default" pipeline, which does not
    re-fuse (re-fusing drops the tuned schedules)."""
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    mod = relax.transform.DecomposeOpsForInference()(mod)
    mod = relax.get_pipeline("zero")(mod)
    db_dir.mkdir(parents=True, exist_ok=True)
    if trials > 0:
        # The task scheduler visits the tasks in turn, num_trials_per_iter at a time: spread a
        # small budget over every task instead of spending it all on the first. Builder workers
        # import tvm.s_tir.tensor_intrin (35-50 s): the default 30 s timeout completes no trial.
        tasks = len(ms.relax_integration.extract_tasks(mod, tvm_target))
        per_iter = max(1, min(64, trials // max(1, tasks)))
        database = ms.relax_integration.tune_relax(
            mod=mod,
            params={},
            target=tvm_target,
            work_dir=str(db_dir),
            max_trials_global=trials,
            num_trials_per_iter=per_iter,
            builder=ms.builder.LocalBuilder(timeout_sec=600),
        )
    else:
        database = ms.database.JSONDatabase(work_dir=str(db_dir))
    with tvm_target, database:
        mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
    scheduled = sum(
        1
        for f in mod.functions.values()
        if isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None and "tirx.is_scheduled" in f.attrs
    )
    return tvm.compile(mod, target=tvm_target, relax_pipeline="default"), scheduled


def compile_tvm(
    model: nn.Module,
    input_shape: tuple[int, ...],
    target: Target,
    out_dir: Path,
    *,
    tune_trials: int = 0,
    tuning_db: Path | None = None,
    batch: int = 1,
) -> TvmBuild:
    """Compile ``model`` for ``target`` into ``out_dir/model.so`` (a Relax VM executable).

    ``input_shape`` is one sample's shape without the batch dimension, as in a model's
    ``spec.json`` (``data.input_shape``, e.g. ``(1, 28, 28)``); the library is compiled for
    ``batch`` samples (static shapes). With ``tuning_db``, MetaSchedule records live in
    ``tuning_db/<target name>/`` (JSON): ``tune_trials > 0`` tunes into it (on this machine, so
    only for a host target), and a later build with ``tune_trials=0`` reuses what is there.
    """
    _require_tvm()
    start = time.perf_counter()
    target.check_toolchain()
    if tune_trials < 0:
        raise TvmError(f"tune_trials must be >= 0, got {tune_trials}")
    if tune_trials > 0 and not target.is_host:
        raise TvmError(
            f"target {target.name}: MetaSchedule measures candidates on this machine, so "
            f"tuning runs only for a host target; tune on the host (or the board itself) "
            f"and pass the same tuning_db to reuse its records"
        )
    db_dir = _tuning_dir(tuning_db, target)
    if tune_trials > 0 and db_dir is None:
        raise TvmError("tune_trials > 0 needs a tuning_db folder to keep the records in")

    import tvm
    from tvm import relax

    tvm_target = _tvm_target(target)
    shape = (batch, *(int(d) for d in input_shape))
    mod, out_shape = _to_relax(model, shape)
    tuned = False
    if tune_trials > 0 or _database_has_records(db_dir):
        assert db_dir is not None  # tuning without a database was refused above
        executable, scheduled = _tuned_executable(mod, tvm_target, target, db_dir, tune_trials)
        tuned = scheduled > 0  # records for other models leave every kernel unscheduled
    else:
        executable = tvm.compile(mod, target=tvm_target, relax_pipeline=relax.get_default_pipeline(tvm_target))

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_FILE
    try:
        executable.export_library(str(path), fcompile=_fcompile(target))
    except Exception as exc:  # the compiler's own message is the useful part
        raise TvmError(
            f"target {target.name}: linking {path.name} with {target.compiler.cxx} failed: {str(exc).strip()[-2000:]}"
        ) from None
    return TvmBuild(
        target=target.name,
        model=path,
        files=(path,),
        input_shape=shape,
        output_shape=out_shape,
        tvm_target=dict(target.tvm_target),
        tuned=tuned,
        tune_trials=tune_trials,
        tuning_db=db_dir,
        tvm_version=_version("apache-tvm") or "",
        tvm_ffi_version=_version("apache-tvm-ffi") or "",
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------------------------
# The target's runtime libraries and the runner
# --------------------------------------------------------------------------------------------


def default_runtime_cache() -> Path:
    return Path.home() / ".cache" / "pakd" / "tvm-runtime"


def _host_runtime_libs() -> list[Path]:
    import tvm_ffi.libinfo
    from tvm import libinfo

    return [Path(libinfo.find_libtvm_runtime()), Path(tvm_ffi.libinfo.find_libtvm_ffi())]


def _ffi_include_dirs() -> list[Path]:
    """The tvm-ffi C++ headers and dlpack, from the host wheel (the headers are arch-independent)."""
    import tvm_ffi.libinfo

    return list(
        dict.fromkeys(
            Path(p) for p in (tvm_ffi.libinfo.find_include_path(), tvm_ffi.libinfo.find_dlpack_include_path())
        )
    )


def fetch_tvm_runtime(target: Target, cache_dir: Path | None = None) -> list[Path]:
    """``libtvm_runtime.so`` and ``libtvm_ffi.so`` built for ``target``'s architecture.

    For the host target: the installed ones. Otherwise extracted from the target's wheels of the
    *same* apache-tvm / apache-tvm-ffi versions as installed here (``pip download``), cached in
    ``cache_dir/<platform>/<versions>/`` (default ``~/.cache/pakd/tvm-runtime``)."""
    _require_tvm()
    if target.is_host:
        return _host_runtime_libs()
    if not target.tvm_wheel_platforms:
        if target.arch == "armv7":
            raise TvmRuntimeError(
                f"target {target.name}: no TVM wheels for armv7 (32-bit ARM): Apache TVM publishes "
                f"runtime wheels for x86_64 and aarch64 only; build libtvm_runtime from source for "
                f"it, use a 64-bit OS on the board (an aarch64 target), or use the native backend"
            )
        raise TvmRuntimeError(
            f"target {target.name} ({target.arch}): its target file lists no [tvm] "
            f"wheel_platforms, so there is no TVM runtime to fetch for it"
        )
    versions = {dist: _version(dist) for dist in TVM_PINS}
    platform = target.tvm_wheel_platforms[0]
    cache = Path(cache_dir) if cache_dir else default_runtime_cache()
    dest = cache / platform / f"tvm-{versions['apache-tvm']}_ffi-{versions['apache-tvm-ffi']}"
    libs = [dest / name for name in RUNTIME_LIBS]
    if all(p.is_file() for p in libs):
        return libs
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
        ]
        for plat in target.tvm_wheel_platforms:
            cmd += ["--platform", plat]
        cmd += [f"{dist}=={v}" for dist, v in versions.items()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise TvmRuntimeError(
                f"target {target.name}: downloading the TVM runtime wheels timed out (15 min); is the network up?"
            ) from None
        if proc.returncode != 0:
            last = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("WARNING")][-1:] or ["?"]
            raise TvmRuntimeError(
                f"target {target.name}: cannot download the {platform} wheels of "
                f"{', '.join(f'{d}=={v}' for d, v in versions.items())} (no network, or no wheel for "
                f"this platform): {last[0]}"
            )
        wheels = list(Path(tmp).glob("*.whl"))
        for dist, member in _WHEEL_MEMBERS.items():
            stem = dist.replace("-", "_") + "-"
            found = [w for w in wheels if w.name.startswith(stem)]
            if not found:
                raise TvmRuntimeError(f"target {target.name}: pip downloaded no {dist} wheel for {platform}")
            with zipfile.ZipFile(found[0]) as zf:
                try:
                    data = zf.read(member)
                except KeyError:
                    raise TvmRuntimeError(f"{found[0].name} has no {member}") from None
            out = dest / Path(member).name
            tmp_out = out.with_suffix(".so.tmp")
            tmp_out.write_bytes(data)
            tmp_out.chmod(0o755)
            tmp_out.replace(out)
    return libs


def build_tvm_runner(target: Target, out_dir: Path, cache_dir: Path | None = None) -> Path:
    """Compile ``csrc/tools/tvm-runner.cc`` for ``target`` into ``out_dir/tvm-runner``, with the
    target's runtime libraries copied into ``out_dir/lib`` (found through RUNPATH ``$ORIGIN/lib``).
    Run it as ``tvm-runner model.so --input x.f32 --output y.f32`` (``--help`` lists the rest)."""
    _require_tvm()
    target.check_toolchain()
    libs = fetch_tvm_runtime(target, cache_dir)
    out_dir = Path(out_dir)
    lib_dir = out_dir / "lib"
    lib_dir.mkdir(parents=True, exist_ok=True)
    for lib in libs:
        shutil.copy2(lib, lib_dir / lib.name)
    runner = out_dir / RUNNER_FILE
    cmd = [target.compiler.cxx, "-std=c++17", "-O2", *target.compiler.cflags]
    for inc in _ffi_include_dirs():
        cmd += ["-isystem", str(inc)]
    cmd += [
        str(RUNNER_SOURCE),
        "-o",
        str(runner),
        "-L",
        str(lib_dir),
        f"-Wl,-rpath-link,{lib_dir}",
        "-ltvm_runtime",
        "-ltvm_ffi",
        "-Wl,-rpath,$ORIGIN/lib",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TvmError(
            f"target {target.name}: compiling {RUNNER_SOURCE.name} failed:\n"
            f"{' '.join(cmd)}\n{proc.stderr.strip()[-3000:]}"
        )
    return runner
