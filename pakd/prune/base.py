"""What every pruning method looks like to the stage runner, and the registry that names them.

A stage of ``pakd compress`` runs: ``method.setup`` -> fine-tune (``on_step`` after every
optimizer step, ``on_epoch_end`` after every epoch) -> ``method.finalize``. Methods are chosen by
name from a recipe (``[stage.prune] method = "magnitude"``) through :func:`register_pruner`;
adding one touches one file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ..errors import InvalidField, PakdError


class PruneError(PakdError):
    """A pruning request that cannot be honoured (unknown method, a graph construct not handled)."""


class PruneConfigError(PruneError, InvalidField):
    """A pruning setting out of range (amount, scope, target, schedule)."""


SCOPES = ("layer", "global")
TARGETS = ("channels", "macs")
SCHEDULES = ("cubic", "oneshot")


@dataclass(frozen=True)
class PruneConfig:
    """One frozen config per stage's pruning.

    ``amount`` is the target: the fraction of weights (unstructured) or of channels / MACs
    (structured, see ``target``) removed by the end of the stage, counted against the model the
    stage starts from.
    """

    method: str
    amount: float
    criterion: str = "magnitude"  # magnitude | obd (unstructured); l1 | l2 | taylor (structured)
    scope: str = "layer"  # layer: same ratio in every layer; global: one threshold for all
    target: str = "channels"  # structured: "channels" (fraction removed) or "macs" (fraction of MACs removed)
    schedule: str = "cubic"  # cubic (Zhu & Gupta 2017) | oneshot
    skip: tuple[str, ...] = ()  # module names never pruned (e.g. the classifier)
    options: dict[str, Any] = field(default_factory=dict)  # method-specific extras

    def __post_init__(self) -> None:
        if not 0.0 <= self.amount < 1.0:
            raise PruneConfigError(
                f"prune amount must be in [0, 1), got {self.amount}", "amount", self.amount, "in [0, 1)"
            )
        for name, allowed in (("scope", SCOPES), ("target", TARGETS), ("schedule", SCHEDULES)):
            value = getattr(self, name)
            if value not in allowed:
                what = " or ".join(repr(a) for a in allowed)
                raise PruneConfigError(f"prune {name} must be {what}, got {value!r}", name, value, what)


@dataclass
class PruneContext:
    """What a method may need from the stage: an example input, a batch source for
    data-driven criteria (OBD's Fisher, Taylor importance) and the loss used to train."""

    example_input: torch.Tensor
    batches: Callable[[int], list[tuple[torch.Tensor, torch.Tensor]]] | None = None  # n -> [(x, y)]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    total_epochs: int = 1
    steps_per_epoch: int = 1


class Pruner(Protocol):
    """A pruning method bound to one model for one stage."""

    def setup(self, model: nn.Module) -> nn.Module:
        """Prepare ``model`` (masks, gates, an initial prune); returns the model to fine-tune."""

    def on_step(self, model: nn.Module, step: int) -> None:
        """After each optimizer step (``step`` counts from 0 over the whole stage)."""

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        """After each epoch (``epoch`` counts from 1)."""

    def finalize(self, model: nn.Module) -> nn.Module:
        """Bake the result: masked weights stay zero; structured methods return a smaller dense model."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors needed to resume mid-stage (masks, gates); saved with the stage checkpoint."""

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


PrunerFactory = Callable[[PruneConfig, PruneContext], Pruner]
_PRUNERS: dict[str, PrunerFactory] = {}


def register_pruner(name: str) -> Callable[[PrunerFactory], PrunerFactory]:
    def wrap(factory: PrunerFactory) -> PrunerFactory:
        if name in _PRUNERS:
            raise ValueError(f"pruner {name!r} registered twice")
        _PRUNERS[name] = factory
        return factory

    return wrap


def pruner_names() -> list[str]:
    return sorted(_PRUNERS)


def make_pruner(cfg: PruneConfig, ctx: PruneContext) -> Pruner:
    try:
        factory = _PRUNERS[cfg.method]
    except KeyError:
        raise PruneError(f"unknown pruning method {cfg.method!r}; choose one of: {', '.join(pruner_names())}") from None
    return factory(cfg, ctx)


def cubic_sparsity(step: int, total_steps: int, final: float, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017) gradual schedule: s_t = s_f + (s_i - s_f) (1 - t/T)^3, t in [0, T]."""
    if total_steps <= 0:
        return final
    t = min(max(step, 0), total_steps) / total_steps
    return final + (initial - final) * (1.0 - t) ** 3
