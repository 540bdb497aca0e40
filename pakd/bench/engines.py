"""Inference engines that run one model at batch 1, registered by name.

Each engine turns a model (a model folder: ``model.safetensors`` + ``spec.json``, and for the
native runtime its ``model.pakd``) into a :class:`Runner`: a callable on one float32 NCHW numpy
batch, with a stated thread count. An engine whose library is missing, or that cannot run a
given model, says why (:class:`EngineUnavailable`) instead of crashing, so a benchmark reports
the gap as a row.

    torch        PyTorch eager, torch.set_num_threads(threads), inference_mode
    onnxruntime  torch.onnx.export (the torch.export-based exporter) -> ONNX Runtime CPU session,
                 intra_op threads = threads, inter_op 1, sequential, all graph optimizations
    executorch   torch.export -> ExecuTorch with every op XNNPACK takes delegated to it (a .pte,
                 pakd.deploy.peers.export_pte) -> executorch.runtime; XNNPACK's thread pool
                 reset to ``threads``
    pakd         the native runtime, pakd._core.Session on the folder's model.pakd (a dense
                 teacher is lowered with pakd.lower.native.export_pakd when that exists)

Adding an engine is one class with ``@register_engine("name")``.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from torch import nn

from ..deploy.peers import export_onnx, export_pte
from ..errors import PakdError
from ..rundir import PAKD_FILE, ModelSource


class BenchError(PakdError):
    """A benchmark that cannot be set up: unknown engine, bad options, a model that is not there."""


class EngineUnavailable(BenchError):
    """This engine cannot run this model here (library missing, no .pakd file, ...): a row's reason."""


@dataclass(frozen=True)
class ModelRef(ModelSource):
    """What an engine may run: a model folder, a .pakd file, or both (a finished stage)."""

    @classmethod
    def from_path(cls, path: str | Path, label: str | None = None) -> ModelRef:
        """A model folder (its model.pakd, if any, comes along) or a .pakd file."""
        from ..modelio import SPEC_FILE

        path = Path(path)
        if path.is_file() and path.suffix == ".pakd":
            return cls(label or str(path), None, path)
        if path.is_dir() and (path / SPEC_FILE).is_file():
            pakd = path / PAKD_FILE
            return cls(label or str(path), path, pakd if pakd.is_file() else None)
        raise BenchError(f"{path}: neither a model folder (with {SPEC_FILE}) nor a .pakd file")

    def spec(self) -> dict[str, Any] | None:
        from ..modelio import read_spec

        return read_spec(self.folder) if self.folder is not None else None


@dataclass(frozen=True)
class Runner:
    """A model loaded by one engine: ``runner(x)`` runs a float32 NCHW batch, returns (N, classes)."""

    engine: str
    threads: int
    fn: Callable[[np.ndarray], np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)  # versions, exporter, ...

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(x)


class Engine:
    """Base class: ``availability()`` says whether the engine can run at all here (None = yes,
    else the reason); ``open(model, threads)`` loads one model or raises EngineUnavailable.
    Subclasses implement ``load`` (threads and availability are checked before it)."""

    name: ClassVar[str] = ""

    def availability(self) -> str | None:
        return None

    def open(self, model: ModelRef, threads: int) -> Runner:
        if threads < 1:
            raise BenchError(f"threads must be >= 1 (got {threads})")
        reason = self.availability()
        if reason:
            raise EngineUnavailable(reason)
        return self.load(model, threads)

    def load(self, model: ModelRef, threads: int) -> Runner:
        raise NotImplementedError


_ENGINES: dict[str, type[Engine]] = {}


def register_engine(name: str) -> Callable[[type[Engine]], type[Engine]]:
    """Class decorator: make an :class:`Engine` subclass available under ``name``."""

    def wrap(cls: type[Engine]) -> type[Engine]:
        if name in _ENGINES:
            raise ValueError(f"engine {name!r} registered twice")
        cls.name = name
        _ENGINES[name] = cls
        return cls

    return wrap


def engine_names() -> list[str]:
    return list(_ENGINES)


def get_engine(name: str) -> Engine:
    try:
        return _ENGINES[name]()
    except KeyError:
        raise BenchError(f"unknown engine {name!r}; choose one of: {', '.join(_ENGINES)}") from None


def _missing_modules(*names: str) -> list[str]:
    missing = []
    for mod in names:
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(mod)
    return missing


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def load_module(model: ModelRef) -> nn.Module:
    """The torch module of a model folder (channel-pruned students rebuilt by
    ``pakd.modelio.load_model``), in eval mode."""
    from ..modelio import load_model

    if model.folder is None:
        raise EngineUnavailable(f"{model.label}: a bare .pakd file has no torch model (give the model folder)")
    return load_model(model.folder)[0].eval()


@register_engine("torch")
class TorchEager(Engine):
    def load(self, model: ModelRef, threads: int) -> Runner:
        import torch

        net = load_module(model)
        torch.set_num_threads(threads)

        def run(x: np.ndarray) -> np.ndarray:
            if torch.get_num_threads() != threads:  # another engine changed the process-wide setting
                torch.set_num_threads(threads)
            with torch.inference_mode():
                return net(torch.from_numpy(x)).numpy()

        return Runner(self.name, threads, run, {"torch": torch.__version__})


@register_engine("onnxruntime")
class OnnxRuntime(Engine):
    def availability(self) -> str | None:
        missing = _missing_modules("onnxruntime", "onnx", "onnxscript")
        if missing:
            return f"{', '.join(missing)} not installed (pip install -e . installs the pinned versions)"
        return None

    def load(self, model: ModelRef, threads: int) -> Runner:
        import onnxruntime as ort

        net = load_module(model)
        shape = (model.spec() or {}).get("data", {}).get("input_shape", [1, 28, 28])
        example = np.zeros((1, *shape), dtype=np.float32)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        with tempfile.TemporaryDirectory(prefix="pakd-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(net, example, path)
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        in_name, out_name = session.get_inputs()[0].name, session.get_outputs()[0].name

        def run(x: np.ndarray) -> np.ndarray:
            return session.run([out_name], {in_name: x})[0]

        import torch

        return Runner(
            self.name,
            threads,
            run,
            {"onnxruntime": ort.__version__, "exporter": "torch.export (dynamo)", "torch": torch.__version__},
        )


@register_engine("executorch")
class ExecuTorch(Engine):
    def availability(self) -> str | None:
        missing = _missing_modules("executorch.runtime", "executorch.extension.pybindings.portable_lib")
        if missing:
            from ..deploy.peers import EXECUTORCH_VERSION

            return f"{', '.join(missing)} not installed (pip install executorch=={EXECUTORCH_VERSION})"
        return None

    def load(self, model: ModelRef, threads: int) -> Runner:
        import torch
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        net = load_module(model)
        shape = (model.spec() or {}).get("data", {}).get("input_shape", [1, 28, 28])
        tmp = tempfile.TemporaryDirectory(prefix="pakd-pte-")  # the program reads the file: kept with the runner
        path = Path(tmp.name) / "model.pte"
        try:
            lowered = export_pte(net, torch.zeros(1, *shape), path)
        except PakdError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch.export / lowering: the message is the reason
            raise EngineUnavailable(f"cannot lower {model.label} to ExecuTorch: {exc}") from None
        # Before the method is loaded: XNNPACK keeps the pool it is given then, and a reset
        # afterwards frees that pool under it (an intermittent segfault in execute).
        portable_lib._unsafe_reset_threadpool(threads)
        program = Runtime.get().load_program(path)
        method = program.load_method("forward")
        keep = (tmp, program)  # the method lives as long as its program, the program as its file

        def run(x: np.ndarray, _keep: tuple = keep) -> np.ndarray:
            return method.execute([torch.from_numpy(x)])[0].numpy()

        return Runner(
            self.name,
            threads,
            run,
            {
                "executorch": _dist_version("executorch"),
                "delegate": "XnnpackBackend",
                "undelegated_ops": lowered["undelegated_ops"],
                "torch": torch.__version__,
            },
        )


def native_session_class() -> Any:
    """``pakd._core.Session``, or None where the installed native module has none yet."""
    try:
        from .. import _core
    except ImportError:
        return None
    return getattr(_core, "Session", None)


def native_exporter() -> Callable[..., bytes]:
    """``pakd.lower.native.export_pakd(model_folder_or_module, out_path)``."""
    from ..lower.native import export_pakd

    return export_pakd


@register_engine("pakd")
class PakdNative(Engine):
    def availability(self) -> str | None:
        if native_session_class() is None:
            return "native runtime not built yet: pakd._core has no Session"
        return None

    def load(self, model: ModelRef, threads: int) -> Runner:
        session_cls = native_session_class()
        session, lowered, error = None, False, None
        if model.pakd_file is not None:
            try:
                session = session_cls(str(model.pakd_file), num_threads=threads)
            except ValueError as exc:  # e.g. a weights-only file written before the runtime existed
                error = exc
        if session is None and model.folder is not None:
            with tempfile.TemporaryDirectory(prefix="pakd-lower-") as tmp:
                out = Path(tmp) / PAKD_FILE
                try:
                    native_exporter()(model.folder, out)
                    session = session_cls(out.read_bytes(), num_threads=threads)
                    lowered = True
                except Exception as exc:  # noqa: BLE001 - lowering or loading: the message is the reason
                    error = exc  # type: ignore[assignment]
        if session is None:
            raise EngineUnavailable(f"pakd._core.Session cannot load {model.label}: {error}")

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(x)

        from .. import _core

        return Runner(
            self.name, threads, run, {"pakd_core": getattr(_core, "__version__", "?"), "lowered_here": lowered}
        )
