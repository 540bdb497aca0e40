"""Pruning methods, registered by name (see :func:`pruner_names`)."""

from . import structured as _structured  # noqa: F401  (registers "channel", "sfp", "gate")
from . import unstructured as _unstructured  # noqa: F401  (registers "unstructured")
from .base import (
    PruneConfig,
    PruneContext,
    PruneError,
    Pruner,
    cubic_sparsity,
    make_pruner,
    pruner_names,
    register_pruner,
)

__all__ = [
    "PruneConfig",
    "PruneContext",
    "PruneError",
    "Pruner",
    "cubic_sparsity",
    "make_pruner",
    "pruner_names",
    "register_pruner",
]
