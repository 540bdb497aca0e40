"""PaKD: pruning + knowledge distillation toolchain with native C++ kernels.

The public Python API is listed in ``__all__``; names are imported on first use so that
``import pakd`` (and ``import pakd._core``) stays light.
"""

from __future__ import annotations

from importlib import import_module

from ._version import __version__

_EXPORTS = {
    "PakdError": "pakd.errors",
    # data and models
    "DataBundle": "pakd.data",
    "load_dataset": "pakd.data",
    "build_model": "pakd.models",
    "load_weights": "pakd.models",
    "register_model": "pakd.models",
    "zoo": "pakd.models",
    "ModelStats": "pakd.metrics",
    "model_stats": "pakd.metrics",
    "load_model": "pakd.modelio",
    "save_model": "pakd.modelio",
    # train (pakd train, pakd eval)
    "TrainConfig": "pakd.train",
    "TeacherJob": "pakd.train",
    "evaluate": "pakd.train",
    "evaluate_model": "pakd.train",
    "train": "pakd.train",
    "train_teacher": "pakd.train",
    # compress (pakd compress)
    "Recipe": "pakd.pipeline",
    "load_recipe": "pakd.pipeline",
    "CompressJob": "pakd.pipeline",
    "compress_job": "pakd.pipeline",
    "compress": "pakd.pipeline",
    "Quantizer": "pakd.quant",
    "export_pakd": "pakd.lower.native",
    # build and verify (pakd targets, pakd build, pakd verify)
    "Target": "pakd.targets",
    "load_target": "pakd.targets",
    "list_targets": "pakd.targets",
    "BuildConfig": "pakd.deploy.build",
    "build": "pakd.deploy.build",
    "VerifyReport": "pakd.deploy.verify",
    "verify": "pakd.deploy.verify",
    # bench (pakd bench, pakd results)
    "BenchConfig": "pakd.bench.local",
    "bench_models": "pakd.bench.local",
    "BenchPlan": "pakd.bench.remote",
    "bench_on_devices": "pakd.bench.remote",
    "read_rows": "pakd.bench.results",
    # report and the whole path (pakd report, pakd demo)
    "make_report": "pakd.report",
    "DemoConfig": "pakd.demo",
    "run_demo": "pakd.demo",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pakd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
