"""Compression recipes: TOML, validated on load into frozen config objects.

```toml
[recipe]
name = "lenet5"              # default run name
batch_size = 128
huffman = true               # entropy-code codebook indices and sparse index gaps

[[stage]]
name = "prune"
epochs = 10
lr = 0.01                    # peak of the stage's one-cycle schedule
optimizer = "sgd"            # sgd | adamw
augment = "crop+flip"        # none | flip | crop+flip
[stage.prune]                # optional
method = "unstructured"      # see `pakd compress --help` for the registered methods
criterion = "magnitude"
amount = 0.9
[stage.distill]              # optional; absent = plain labels (alpha 0)
teachers = ["teacher"]       # "teacher", "previous" (assistant) or model folders; several = ensemble
alpha = 0.7
temperature = 4.0
[stage.quantize]             # optional
method = "kmeans"            # kmeans | int8
bits = { conv = 8, linear = 5 }
```
Every problem is reported as one line naming the stage and the key.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..distill import DistillConfig
from ..errors import InvalidField, PakdError, reading
from ..prune import PruneConfig, pruner_names
from ..resources import recipes_dir
from ..train import TrainConfig

QUANT_METHODS = ("kmeans", "int8")


class RecipeError(PakdError):
    """A recipe that cannot run: unknown method, value out of range, wrong type, missing key."""


@dataclass(frozen=True)
class QuantConfig:
    method: str
    bits: tuple[tuple[str, int], ...] = (("conv", 8), ("linear", 5))
    skip: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageConfig:
    """A stage's fine-tuning settings (validated by :class:`TrainConfig`, whose defaults they take),
    and what it does to the model."""

    name: str
    epochs: int
    lr: float
    optimizer: str = TrainConfig.optimizer
    weight_decay: float = TrainConfig.weight_decay
    augment: str = TrainConfig.augment
    prune: PruneConfig | None = None
    distill: DistillConfig = DistillConfig(teachers=(), alpha=0.0)
    quantize: QuantConfig | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    stages: tuple[StageConfig, ...]
    batch_size: int = TrainConfig.batch_size
    huffman: bool = True
    text_sha256: str = ""
    source: str = ""


def _take(
    table: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: str,
    default: Any = ...,
    check: Callable[[Any], bool] | None = None,
    what: str = "",
) -> Any:
    if key not in table:
        if default is ...:
            raise RecipeError(f"{where}: missing required key {key!r}")
        return default
    value = table.pop(key)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise RecipeError(f"{where}.{key}: expected {kinds[0].__name__}, got a boolean")
    if not isinstance(value, kinds):
        raise RecipeError(f"{where}.{key}: expected {kinds[0].__name__}, got {type(value).__name__} {value!r}")
    if check is not None and not check(value):
        raise RecipeError(f"{where}.{key}: {value!r} is not {what}")
    return value


def _names(keys: Any) -> str:
    """Keys for a message on one line: plain ones bare, others quoted (escapes shown, not obeyed)."""
    return ", ".join(k if re.fullmatch(r"[A-Za-z0-9_.-]+", k) else repr(k) for k in sorted(map(str, keys)))


def _table(value: Any, where: str) -> dict[str, Any]:
    """A TOML table (a copy, to pop from), or a RecipeError."""
    if not isinstance(value, dict):
        raise RecipeError(f"{where}: expected a table, got {type(value).__name__} {value!r}")
    return dict(value)


def _build(cls: Callable[..., Any], where: str, **values: Any) -> Any:
    """``cls(**values)``, its own validation reported at the recipe key the bad value came from."""
    try:
        return cls(**values)
    except InvalidField as exc:
        raise RecipeError(f"{where}.{exc.field}: {exc.value!r} is not {exc.what}") from None


def _given(table: dict[str, Any], where: str, kinds: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The keys of ``kinds`` present in ``table`` (removed from it), type-checked."""
    return {k: _take(table, k, kind, where) for k, kind in kinds.items() if k in table}


def _no_leftovers(table: dict, where: str) -> None:
    if table:
        raise RecipeError(f"{where}: unknown key(s) {_names(table)}")


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecipeError(f"{where}: expected a list of strings")
    return tuple(value)


def _prune(t: Any, where: str) -> PruneConfig:
    t = _table(t, where)
    method = _take(t, "method", str, where)
    if method not in pruner_names():
        raise RecipeError(
            f"{where}.method: unknown pruning method {method!r}; choose one of: {', '.join(pruner_names())}"
        )
    amount = _take(t, "amount", (float, int), where)
    kw = _given(t, where, {"criterion": str, "scope": str, "target": str, "schedule": str})
    kw.setdefault("schedule", "oneshot" if method == "channel" else "cubic")  # each method's own default
    skip = _str_list(t.pop("skip", []), f"{where}.skip")
    options = _table(t.pop("options", {}), f"{where}.options")
    _no_leftovers(t, where)
    return _build(PruneConfig, where, method=method, amount=float(amount), skip=skip, options=options, **kw)


def _distill(t: Any, where: str) -> DistillConfig:
    t = _table(t, where)
    teachers = _str_list(t.pop("teachers", ["teacher"]), f"{where}.teachers")
    numbers = _given(t, where, {"alpha": (float, int), "temperature": (float, int), "hint_weight": (float, int)})
    hints = t.pop("hint_layers", [])
    if not isinstance(hints, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(m, str) for m in p) for p in hints
    ):
        raise RecipeError(f"{where}.hint_layers: expected a list of [student_module, teacher_module] pairs")
    _no_leftovers(t, where)
    return _build(
        DistillConfig,
        where,
        teachers=teachers,
        hint_layers=tuple(tuple(p) for p in hints),
        **{k: float(v) for k, v in numbers.items()},
    )


def _quantize(t: Any, where: str) -> QuantConfig:
    t = _table(t, where)
    method = _take(
        t, "method", str, where, check=lambda v: v in QUANT_METHODS, what=f"one of {', '.join(QUANT_METHODS)}"
    )
    bits = t.pop("bits", {})  # what it leaves out keeps QuantConfig's default
    if (
        not isinstance(bits, dict)
        or set(bits) - {"conv", "linear"}
        or not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 8 for b in bits.values())
    ):
        raise RecipeError(f"{where}.bits: expected {{conv = 1..8, linear = 1..8}}")
    skip = _str_list(t.pop("skip", []), f"{where}.skip")
    _no_leftovers(t, where)
    merged = {**dict(QuantConfig.bits), **bits}
    return QuantConfig(method=method, bits=tuple(sorted(merged.items())), skip=skip)


def _stage(t: Any, index: int) -> StageConfig:
    t = _table(t, f"stage {index}")
    label = t.get("name", "unnamed")
    where = f"stage {index} ({label if isinstance(label, str) and label.isprintable() else repr(label)})"
    name = _take(t, "name", str, where, f"stage-{index}", str.isprintable, "a name on one line")
    epochs = _take(t, "epochs", int, where)
    lr = float(_take(t, "lr", (float, int), where))
    given = _given(t, where, {"optimizer": str, "weight_decay": (float, int), "augment": str})
    if "weight_decay" in given:
        given["weight_decay"] = float(given["weight_decay"])
    train = _build(TrainConfig, where, epochs=epochs, lr=lr, **given)  # validates; the runner builds its own
    prune = _prune(t.pop("prune"), f"{where}.prune") if "prune" in t else None
    distill = (
        _distill(t.pop("distill"), f"{where}.distill") if "distill" in t else DistillConfig(teachers=(), alpha=0.0)
    )
    quantize = _quantize(t.pop("quantize"), f"{where}.quantize") if "quantize" in t else None
    _no_leftovers(t, where)
    if prune is not None and quantize is not None:
        raise RecipeError(f"{where}: prune and quantize in one stage; quantize in a stage of its own, after pruning")
    return StageConfig(
        name=name,
        epochs=train.epochs,
        lr=train.lr,
        optimizer=train.optimizer,
        weight_decay=train.weight_decay,
        augment=train.augment,
        prune=prune,
        distill=distill,
        quantize=quantize,
    )


def parse_recipe(text: str, source: str = "<recipe>") -> Recipe:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{source}: not valid TOML ({exc})") from None
    head = _table(data.pop("recipe", {}), "[recipe]")
    stages_raw = data.pop("stage", None)
    if data:
        raise RecipeError(f"{source}: unknown section(s) {_names(data)} (expected [recipe] and [[stage]])")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise RecipeError(f"{source}: no [[stage]] tables")
    name = _take(
        head,
        "name",
        str,
        "[recipe]",
        Path(source).stem,
        lambda v: v.isprintable() and "/" not in v and "\\" not in v and v.strip(". ") != "",
        "a run folder name (printable, no / or \\, not . or ..)",
    )
    batch = _take(head, "batch_size", int, "[recipe]", TrainConfig.batch_size)
    _build(TrainConfig, "[recipe]", batch_size=batch)  # validates
    huff = _take(head, "huffman", bool, "[recipe]", True)
    _no_leftovers(head, "[recipe]")
    try:
        stages = tuple(_stage(s, i + 1) for i, s in enumerate(stages_raw))
    except RecipeError as exc:
        raise RecipeError(f"{source}: {exc}") from None
    for i, st in enumerate(stages):
        if "previous" in st.distill.teachers and i == 0:
            raise RecipeError(f"stage 1 ({st.name}).distill.teachers: 'previous' needs an earlier stage")
        if any(st.quantize for st in stages[:i]) and st.prune is not None:
            raise RecipeError(f"stage {i + 1} ({st.name}): pruning after quantization would break the codebooks")
    return Recipe(
        name=name,
        stages=stages,
        batch_size=batch,
        huffman=huff,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        source=source,
    )


def find_recipe(path: str | Path) -> Path:
    """``path`` itself when it is a file; otherwise the shipped recipe of that name
    (``lenet5-fast``, ``lenet5-fast.toml`` or ``recipes/lenet5-fast.toml``: found in the wheel's
    copy of ``recipes/`` when there is no checkout), so ``pakd demo`` and ``pakd compress --recipe
    NAME`` work from an installed wheel too."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = recipes_dir() / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if len(path.parts) <= 2 and shipped.is_file() and path.parent.name in ("", "recipes"):
        return shipped
    raise RecipeError(f"recipe not found: {path}")


def load_recipe(path: str | Path) -> Recipe:
    path = find_recipe(path)
    with reading(path, "recipe"):
        text = path.read_text()
    return parse_recipe(text, str(path))
