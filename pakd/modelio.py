"""A model folder: ``model.safetensors`` (weights) + ``spec.json`` (architecture, arguments,
provenance, metrics). Every stage writes and reads models through these two functions, so a
teacher, a stage checkpoint and a user's model travel the same way. Nothing is unpickled."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as save_weights
from torch import nn

from .errors import ModelError, PakdError, RunError
from .models import build_model, load_weights
from .storage import atomic_json, atomic_write

SPEC_FORMAT = "pakd-model/1"
WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "spec.json"


def library_versions() -> dict[str, str]:
    import numpy

    from ._version import __version__

    return {
        "pakd": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def write_json_atomic(path: Path, data: Any) -> None:
    atomic_json(path, data)


def save_model(folder: str | Path, model: nn.Module, spec: dict[str, Any]) -> Path:
    """Write weights then spec (the spec's presence marks the folder complete)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(folder / WEIGHTS_FILE, save_weights(state))
    write_json_atomic(folder / SPEC_FILE, {"format": SPEC_FORMAT, **spec})
    return folder


def read_spec(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise RunError(f"{folder}: no {SPEC_FILE} here (not a finished model folder)")
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT or "model" not in spec:
        raise RunError(f"{path}: not a PaKD model spec (format {SPEC_FORMAT!r} expected)")
    model = spec["model"]
    if (
        not isinstance(model, dict)
        or not isinstance(model.get("name"), str)
        or not isinstance(model.get("args", {}), dict)
    ):
        raise RunError(f'{path}: "model" must be {{"name": "...", "args": {{...}}}}')
    for key in ("data", "structure", "metrics", "stage"):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            raise RunError(f"{path}: {key!r} must be a JSON object, not {type(spec[key]).__name__}")
    shape = (spec.get("data") or {}).get("input_shape")
    if shape is not None and not (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 65536 for v in shape)
    ):
        raise RunError(f"{path}: data.input_shape must be [channels, height, width] (positive integers), not {shape!r}")
    return spec


def load_model(folder: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the architecture named in ``spec.json`` and load its safetensors weights."""
    spec = read_spec(folder)
    name, args = spec["model"]["name"], spec["model"].get("args", {})
    try:
        model = build_model(name, **args)
        if spec.get("structure"):  # a channel-pruned student: rebuild its smaller layers first
            from .prune.structured import apply_channel_config

            shape = (spec.get("data") or {}).get("input_shape") or [1, 28, 28]
            model = apply_channel_config(model, torch.zeros(1, *shape), spec["structure"])
    except PakdError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError) as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ModelError(
            f"{Path(folder) / SPEC_FILE}: model {name!r} cannot be built from its arguments {args!r}: {text}"
        ) from None
    load_weights(model, Path(folder) / WEIGHTS_FILE)
    return model.eval(), spec
