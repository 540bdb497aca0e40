"""PaKD: pruning + knowledge distillation toolchain with native C++ kernels.

The public Python API is listed in ``__all__``; names are imported on first use so that
``import pakd`` (and ``import pakd._core``) stays light.
"""

from __future__ import annotations

from importlib import import_module

from ._version import __version__

_EXPORTS = {
    "PakdError": "pakd.errors",
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
    "TrainConfig": "pakd.train",
    "TeacherJob": "pakd.train",
    "evaluate": "pakd.train",
    "train": "pakd.train",
    "train_teacher": "pakd.train",
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
