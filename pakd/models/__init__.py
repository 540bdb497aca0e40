"""Model zoo: architectures registered by name (``pakd models`` lists them)."""

from . import zoo as _zoo  # noqa: F401  (registers the built-in models)
from .registry import (
    ZooEntry,
    build_model,
    check_state_fits,
    load_state,
    load_weights,
    register_model,
    zoo,
    zoo_entry,
)

__all__ = [
    "ZooEntry",
    "build_model",
    "check_state_fits",
    "load_state",
    "load_weights",
    "register_model",
    "zoo",
    "zoo_entry",
]
