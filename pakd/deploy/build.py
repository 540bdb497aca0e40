"""``pakd build``: a model becomes a bundle for one target (``pakd verify`` checks it:
pakd.deploy.verify).

Backends, one entry each in ``BACKENDS``:
  native  the .pakd file + ``pakd-run`` and ``libpakd`` (static and shared) cross-compiled from csrc/
  tvm     the model compiled by TVM (``pakd.lower.tvm``) + the target's TVM runtime + a runner
  auto    both built for the host, the faster one (median batch-1 latency) is built for the target
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import rundir
from ..errors import PakdError
from ..resources import runtime_sources
from ..rundir import ModelSource
from ..storage import atomic_copy, atomic_write, replace_folder, sibling_lock, storage_errors
from ..targets import Target, load_target
from .bundle import MANIFEST, Bundle, BundleError, open_bundle, runner_argv, sha256_file, write_manifest

GOLDEN_ATOL = 1e-4


class BuildError(PakdError):
    """A build that cannot be made: unknown backend, unusable model, failed compile."""


@dataclass(frozen=True)
class BuildConfig:
    target: Target
    backend: str = "native"
    out_dir: Path = Path("build")
    cache_dir: Path = Path("build/.cache")
    tune_trials: int = 0
    data_dir: Path | None = None

    @classmethod
    def for_target(cls, target: Target, out_dir: Path | None = None, **options: Any) -> BuildConfig:
        """The config of ``pakd build --target T``: the bundle in build/<target> unless ``out_dir``."""
        return cls(target=target, out_dir=out_dir or Path("build") / target.name, **options)


@dataclass(frozen=True)
class Student(ModelSource):
    """What to build: a model folder (torch model + spec) and/or a .pakd file."""

    role: str | None = None  # "teacher" (a trained dense model), "student" (a compress run's stage), None

    def source(self) -> dict[str, Any]:
        """What the bundle was built from (the results store and reports match on this)."""
        path = self.path.resolve()
        run = rundir.run_of(path) if self.folder is not None else None
        return {"path": str(path), "role": self.role, "run": str(run) if run else None}

    def pakd_bytes(self) -> bytes:
        if self.folder is not None:
            from ..lower.native import export_pakd

            return export_pakd(self.folder)
        assert self.pakd_file is not None
        return self.pakd_file.read_bytes()

    def input_shape(self) -> list[int]:
        if self.folder is not None:
            spec = json.loads((self.folder / "spec.json").read_text())
            return list((spec.get("data") or {}).get("input_shape") or [1, 28, 28])
        from ..lower.native import open_pakd

        assert self.pakd_file is not None
        return list(open_pakd(self.pakd_file).input_shape)

    def check(self) -> None:
        """Load the model (its folder's spec and weights, or the .pakd file), so that a file that
        cannot be read fails before anything is compiled or written."""
        if self.folder is not None:
            from ..modelio import load_model

            load_model(self.folder)
        else:
            self.input_shape()


def resolve_student(path: str | Path) -> Student:
    """A compress run folder (its last stage), a model folder, or a .pakd file."""
    p = Path(path)
    if p.is_file() and p.suffix == ".pakd":
        return Student(p.name, None, p, "student" if rundir.run_of(p.parent) is not None else None)
    if rundir.is_run(p):
        last = rundir.last_stage(p)
        if last is None:
            raise BuildError(f"{p}: the run has no finished stage yet")
        p = last
    if rundir.is_finished(p):
        role = "student" if rundir.run_of(p) is not None else "teacher"
        return Student(f"{p.parent.name}/{p.name}", p, None, role)
    raise BuildError(f"{path}: not a compress run, a model folder (spec.json) or a .pakd file")


def data_record(student: Student) -> dict[str, Any] | None:
    """The data record (spec.json's ``data``) of the model, or of the teacher of the run a .pakd
    file belongs to; None when there is none."""
    spec_file: Path | None = None
    if student.folder is not None:
        spec_file = student.folder / "spec.json"
    elif student.pakd_file is not None:
        run = rundir.run_of(student.pakd_file.parent)
        teacher = rundir.teacher_of(run) if run is not None else None
        spec_file = teacher / "spec.json" if teacher is not None else None
    if spec_file is None or not spec_file.is_file():
        return None
    try:
        data = json.loads(spec_file.read_text()).get("data")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and (data.get("name") or data.get("source")) else None


def golden_input(shape: list[int], data_dir: Path | None, data: dict[str, Any] | None = None) -> np.ndarray:
    """The first test image of the model's own data (its spec's ``data`` record), normalized as
    in training; without a record, Fashion-MNIST test image 0 for a 1x28x28 model, and data the
    code makes for other shapes."""
    import torch

    from ..data import load_data

    if data is not None:
        # streamed (budget 0): one image is decoded, not the whole data set
        x = load_data(data, data_dir, memory=0).test.take(torch.tensor([0])).images.numpy().astype(np.float32)
        if list(x.shape[1:]) != list(shape):
            raise BuildError(f"the model takes {list(shape)} inputs, its data's test images are {list(x.shape[1:])}")
        return x
    if list(shape) == [1, 28, 28]:
        test = load_data("fashion-mnist", data_dir).test
        return test.take(torch.arange(1)).images.numpy().astype(np.float32)
    return np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)


def _run(cmd: list[str], cwd: Path | None = None, what: str = "") -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
        raise BuildError(f"{what or cmd[0]} failed (exit {r.returncode}): " + " | ".join(tail))
    return r


# ----------------------------------------------------------------------------------------------
# Backends
# ----------------------------------------------------------------------------------------------


def _native(student: Student, cfg: BuildConfig, out: Path, x: np.ndarray) -> tuple[dict[str, str], dict[str, Any]]:
    from ..lower.native import open_pakd
    from .crossbuild import cross_build_native

    art = cross_build_native(cfg.target, cfg.cache_dir / "native")
    blob = student.pakd_bytes()
    atomic_write(out / "model.pakd", blob)
    for sub in ("bin", "lib", "include/pakd"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    atomic_copy(art.pakd_run, out / "bin" / "pakd-run")
    atomic_copy(art.static_lib, out / "lib" / "libpakd.a")
    atomic_copy(art.shared_lib, out / "lib" / "libpakd.so")
    include = runtime_sources() / "csrc" / "include" / "pakd"
    for h in ("pakd.h", "pakd.hpp"):
        if (include / h).is_file():
            atomic_copy(include / h, out / "include" / "pakd" / h)
    expected = open_pakd(blob).run(x)
    files = {
        "model.pakd": "model",
        "bin/pakd-run": "runner",
        "lib/libpakd.a": "static-library",
        "lib/libpakd.so": "shared-library",
    }
    files.update(
        {f"include/pakd/{h}": "header" for h in ("pakd.h", "pakd.hpp") if (out / "include" / "pakd" / h).is_file()}
    )
    run = {
        "argv": ["bin/pakd-run", "model.pakd", "--input", "input.f32", "--threads", "1"],
        "output_option": "--save-output",
        "iters_option": "--iters",
        "json_option": "--json",
    }
    return files, {"run": run, "expected": expected, "model_bytes": len(blob)}


def _tvm(student: Student, cfg: BuildConfig, out: Path, x: np.ndarray) -> tuple[dict[str, str], dict[str, Any]]:
    import torch

    from ..lower import tvm as tvm_backend
    from ..modelio import load_model

    reason = tvm_backend.tvm_available()
    if reason:
        raise BuildError(f"the tvm backend is unavailable: {reason}")
    if student.folder is None:
        raise BuildError(f"{student.label}: the tvm backend needs the model folder, not a .pakd file")
    model, _ = load_model(student.folder)
    import warnings

    with warnings.catch_warnings():  # torch.export's deprecation chatter is not the user's business
        warnings.simplefilter("ignore", FutureWarning)
        built = tvm_backend.compile_tvm(
            model,
            tuple(student.input_shape()),
            cfg.target,
            out,
            tune_trials=cfg.tune_trials,
            tuning_db=cfg.cache_dir / "tvm-tuning",
        )
    runner = tvm_backend.build_tvm_runner(cfg.target, out, cfg.cache_dir / "tvm-runtime")  # + out/lib/*.so
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    files = {"model.so": "model", runner.name: "runner"}
    files.update({f"lib/{lib.name}": "runtime-library" for lib in sorted((out / "lib").glob("*.so*"))})
    run = {
        "argv": [runner.name, "./model.so", "--input", "input.f32", "--threads", "1"],
        "output_option": "--output",
        "iters_option": "--iters",
        "json_option": None,
    }
    return files, {
        "run": run,
        "expected": expected,
        "model_bytes": built.model.stat().st_size,
        "tuned": bool(built.tuned),
        "tvm_build": built.to_dict(),
    }


BACKENDS: dict[str, Callable] = {"native": _native, "tvm": _tvm}


# ----------------------------------------------------------------------------------------------
# Build
# ----------------------------------------------------------------------------------------------


def sources_digest() -> str:
    """Hash of the native sources and the lowering code: a bundle built from other sources is stale."""
    sources = runtime_sources()  # csrc/ + CMakeLists.txt: the wheel's copy, or the checkout's
    package = Path(__file__).resolve().parents[2]  # the folder holding the pakd package
    h = hashlib.sha256()
    for root, d in ((sources, "csrc"), (package, "pakd/lower")):
        for f in sorted((root / d).rglob("*")):
            if f.is_file() and f.suffix in {".cc", ".c", ".h", ".hpp", ".inc", ".py", ".txt"}:
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())
    cm = sources / "CMakeLists.txt"
    if cm.is_file():
        h.update(cm.read_bytes())
    return h.hexdigest()


def _input_key(student: Student, cfg: BuildConfig, backend: str) -> str:
    h = hashlib.sha256()
    src = student.folder / "model.safetensors" if student.folder else student.path
    h.update(sha256_file(src).encode())
    if student.folder is not None:
        h.update((student.folder / "spec.json").read_bytes())
    h.update(cfg.target.path.read_bytes() if cfg.target.path else json.dumps(cfg.target.describe()).encode())
    h.update(f"{backend}:{cfg.tune_trials}:{sources_digest()}".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class BuildResult:
    bundle: Bundle
    up_to_date: bool
    choice: dict[str, Any] | None = None  # --backend auto: the host latencies that decided


def build(student_path: str | Path, cfg: BuildConfig) -> BuildResult:
    student = resolve_student(student_path)
    if cfg.backend not in (*BACKENDS, "auto"):
        raise BuildError(f"unknown backend {cfg.backend!r} (choose native, tvm or auto)")
    if cfg.tune_trials < 0:
        raise BuildError(f"--tune-trials must be >= 0, got {cfg.tune_trials}")
    student.check()
    cfg.target.check_toolchain()
    choice = None
    backend = cfg.backend
    if backend == "auto":
        backend, choice = _choose_backend(student, cfg)
    out = cfg.out_dir
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out} is a file, not a bundle folder (PaKD does not replace it)")
    with sibling_lock(out, f"bundle folder {out}"):  # one `pakd build` per bundle folder
        return _build_locked(student, cfg, backend, out, choice)


def _build_locked(
    student: Student, cfg: BuildConfig, backend: str, out: Path, choice: dict[str, Any] | None
) -> BuildResult:
    """Build into a staging folder beside ``out`` and put it in place once complete: a build that
    fails (a full disk included) leaves the previous bundle as it was."""
    key = _input_key(student, cfg, backend)
    if (out / MANIFEST).is_file():
        try:
            existing = open_bundle(out)
            if existing.manifest.get("inputs_key") == key and existing.manifest.get("source") == student.source():
                return BuildResult(existing, True, choice)
        except BundleError:
            pass  # altered or partial: rebuild
    staged = out.parent / f".{out.name}.partial"
    if staged.exists():
        shutil.rmtree(staged)  # left by a build that was killed
    try:
        with storage_errors(out, f"the previous bundle in {out} is unchanged"):
            staged.mkdir(parents=True)
            manifest = _write_bundle(student, cfg, backend, staged, key, choice)
            replace_folder(staged, out)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return BuildResult(Bundle(out, manifest), False, choice)


def _write_bundle(
    student: Student, cfg: BuildConfig, backend: str, out: Path, key: str, choice: dict[str, Any] | None
) -> dict[str, Any]:
    x = golden_input(student.input_shape(), cfg.data_dir, data_record(student))
    files, info = BACKENDS[backend](student, cfg, out, x)
    atomic_write(out / "input.f32", x.astype("<f4").tobytes())
    atomic_write(out / "expected.f32", np.asarray(info["expected"], dtype="<f4").tobytes())
    files.update({"input.f32": "golden-input", "expected.f32": "golden-output"})
    import torch

    from .._version import __version__

    return write_manifest(
        out,
        files,
        target={**cfg.target.describe(), "file_sha256": sha256_file(cfg.target.path) if cfg.target.path else None},
        backend=backend,
        model=student.label,
        inputs_key=key,
        source=student.source(),
        versions={"pakd": __version__, "torch": torch.__version__, **_tvm_versions(backend)},
        golden={
            "input": "input.f32",
            "expected": "expected.f32",
            "shape": list(x.shape),
            "output_shape": list(np.asarray(info["expected"]).shape),
            "atol": GOLDEN_ATOL,
        },
        run=info["run"],
        sizes={"model_bytes": info["model_bytes"]},
        **({"tuned": info["tuned"], "tvm_build": info["tvm_build"]} if "tuned" in info else {}),
        **({"auto_choice": choice} if choice else {}),
    )


def _tvm_versions(backend: str) -> dict[str, str]:
    if backend != "tvm":
        return {}
    from importlib.metadata import version

    return {"apache-tvm": version("apache-tvm"), "apache-tvm-ffi": version("apache-tvm-ffi")}


def _choose_backend(student: Student, cfg: BuildConfig) -> tuple[str, dict[str, Any]]:
    """Build both backends for the host and keep the one with the lower median latency. A model
    the native runtime cannot run (a LoweringError: an op it lacks) falls back to TVM, and the
    choice says so (``fallback``: the console line and the manifest's ``auto_choice``)."""
    from dataclasses import replace

    from ..lower.native import LoweringError

    host = load_target("host")
    medians: dict[str, float] = {}
    lowering_error = None
    with tempfile.TemporaryDirectory(prefix="pakd-auto-") as tmp:
        for backend in BACKENDS:
            try:
                r = build(
                    student.path,
                    replace(cfg, target=host, backend=backend, out_dir=Path(tmp) / backend),
                )
                medians[backend] = bench_bundle(r.bundle, repeats=100)["median_us"]
            except PakdError as exc:
                medians[backend] = float("inf")
                medians[f"{backend}_error"] = str(exc)  # type: ignore[assignment]
                if backend == "native" and isinstance(exc, LoweringError):
                    lowering_error = str(exc)
    best = min(BACKENDS, key=lambda b: medians[b])
    if medians[best] == float("inf"):
        raise BuildError(f"--backend auto: no backend builds for the host ({medians})")
    choice: dict[str, Any] = {"measured_on": "host", "median_us": medians, "chosen": best}
    if lowering_error is not None and best == "tvm":
        choice["fallback"] = f"the native runtime lacks an op of this model, falling back to TVM: {lowering_error}"
    return best, choice


def bench_bundle(bundle: Bundle, repeats: int = 200) -> dict[str, Any]:
    """Host-only: the runner's own bench mode (median/p90 JSON)."""
    json_option = bundle.manifest["run"].get("json_option")
    argv = runner_argv(bundle) + ["--bench", "--repeats", str(repeats)] + ([json_option] if json_option else [])
    r = subprocess.run(argv, cwd=bundle.root, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise BuildError(f"{bundle.root}: bench failed: {(r.stderr or r.stdout).strip()[-300:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
