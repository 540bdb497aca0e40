"""Pruning methods, registered by name (see :func:`pruner_names`)."""

from . import unstructured as _unstructured  # noqa: F401  (registers "unstructured")
from .base import (PruneConfig, PruneContext, PruneError, Pruner, cubic_sparsity, make_pruner,
                   pruner_names, register_pruner)

try:  # structured methods (channel, sfp, gate) register themselves when present
    from . import structured as _structured  # noqa: F401
except ImportError:  # pragma: no cover - during development of the structured module
    pass

__all__ = ["PruneConfig", "PruneContext", "PruneError", "Pruner", "cubic_sparsity", "make_pruner",
           "pruner_names", "register_pruner"]
