"""The model zoo registry: factories registered by name, plus user models as ``module:factory``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError


@dataclass(frozen=True)
class ZooEntry:
    """One registered architecture: its factory, a one-line description and its training defaults."""

    name: str
    factory: Callable[..., nn.Module]
    description: str
    # Training settings that reach the documented accuracy (see README); CLI flags override them.
    train_defaults: dict[str, Any] = field(default_factory=dict)


_ZOO: dict[str, ZooEntry] = {}


def register_model(
    name: str, description: str, **train_defaults: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``factory(in_channels=1, num_classes=10, **kwargs) -> nn.Module``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ZOO:
            raise ValueError(f"model {name!r} registered twice")
        _ZOO[name] = ZooEntry(name, factory, description, dict(train_defaults))
        return factory

    return wrap


def zoo() -> dict[str, ZooEntry]:
    """All registered models, by name (a copy)."""
    return dict(_ZOO)


def zoo_entry(name: str) -> ZooEntry | None:
    return _ZOO.get(name)


def _import_factory(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelError(f"user model {spec!r} must look like package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"cannot import module {module_name!r} for model {spec!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ModelError(f"module {module_name!r} has no callable {attr!r}")
    return factory


_SCALARS: dict[type, tuple[type, ...]] = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}


def _check_arg_types(
    factory: Callable[..., nn.Module], name: str, bound: inspect.BoundArguments, sizes: bool = False
) -> None:
    """A ModelError for an argument whose type differs from the one the factory declares (its
    annotation, else the type of its default): int, float, bool and str are checked; with
    ``sizes`` (the zoo's factories, whose ints are all sizes) an int must be >= 1."""
    try:
        params = inspect.signature(factory, eval_str=True).parameters
    except (NameError, TypeError, ValueError):  # an annotation that does not resolve: no types known
        params = inspect.signature(factory).parameters
    for key, value in bound.arguments.items():
        p = params.get(key)
        if p is None or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        want = p.annotation if p.annotation in _SCALARS else type(p.default) if type(p.default) in _SCALARS else None
        if want is None:
            continue
        ok = isinstance(value, _SCALARS[want]) and (want is bool or not isinstance(value, bool))
        if not ok:
            raise ModelError(f"model {name!r}: argument {key}={value!r} must be {want.__name__!r}")
        if sizes and want is int and value < 1:
            raise ModelError(f"model {name!r}: argument {key}={value!r} must be >= 1")


def _call_factory(factory: Callable[..., nn.Module], name: str, kwargs: dict[str, Any], zoo: bool = False) -> nn.Module:
    try:
        bound = inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise ModelError(f"model {name!r} does not accept arguments {sorted(kwargs)}: {exc}") from None
    except ValueError:  # builtins or C callables without a signature: let the call decide
        pass
    else:
        _check_arg_types(factory, name, bound, sizes=zoo)
    try:
        model = factory(**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:  # arguments the factory refuses (e.g. a size <= 0)
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ModelError(f"model {name!r} cannot be built with ({args}): {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"factory for {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a zoo model by name, or a user model given as ``package.module:factory``.

    Zoo factories take ``in_channels`` and ``num_classes``; user factories get exactly the
    keyword arguments passed here (none by default).
    """
    if not isinstance(name, str):
        raise ModelError(f"model name {name!r} is not a string")
    entry = _ZOO.get(name)
    if entry is not None:
        return _call_factory(entry.factory, name, kwargs, zoo=True)
    if ":" in name:
        return _call_factory(_import_factory(name), name, kwargs)
    known = ", ".join(sorted(_ZOO))
    raise ModelError(f"unknown model {name!r}; zoo models: {known}; or give package.module:factory")


def check_state_fits(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a one-line ModelError naming the first tensor of ``state`` that does not fit ``model``:
    one the model has and the file lacks (in the model's order), one of a different shape, or one
    the file has and the model lacks."""
    own = model.state_dict()
    for key, tensor in own.items():
        if key not in state:
            raise ModelError(f"{source} does not fit the model: tensor {key!r} is missing from the weights")
        got = tuple(state[key].shape)
        if got != tuple(tensor.shape):
            raise ModelError(
                f"{source} does not fit the model: tensor {key!r} has shape {got}, the model's is {tuple(tensor.shape)}"
            )
    for key in state:
        if key not in own:
            raise ModelError(f"{source} does not fit the model: tensor {key!r} is not in the model")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load ``state`` into ``model`` strictly, after :func:`check_state_fits`."""
    check_state_fits(model, state, source)
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
    return model


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a safetensors file into ``model`` strictly (every tensor present, every shape equal)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"cannot read weights {path}: not a valid safetensors file ({exc})") from None
    return load_state(model, state, f"weights {path}")
