"""Structured (filter/channel) pruning: importance criteria, channel selection and three pruners.

- ``"channel"``: rank channels once (L1/L2 filter norms, Li et al. 2017; or first-order Taylor,
  Molchanov et al. 2017) and remove them physically in ``setup``; the stage fine-tunes the
  smaller model.
- ``"sfp"``: Soft Filter Pruning (He et al. 2018). At every epoch end the weakest filters of each
  group are zeroed; they keep training and may recover. ``finalize`` removes the ones zeroed last.
- ``"gate"``: Gate Decorator (You et al. 2019). A per-channel gate multiplies every group's
  outputs; the Taylor score ``|gate * dL/dgate|`` accumulates over the steps, and each epoch end
  closes (zeroes) the lowest-scoring gates toward the target. ``finalize`` folds the gates into
  the weights and removes the closed channels.

Model shapes stay fixed during a stage (masks and gates), so the runner's optimizer stays valid;
only ``setup`` (channel) and ``finalize`` (sfp, gate) return a new, smaller module.

Resuming mid-stage: rebuild the model the stage started from, ``setup`` it, load the model's
state dict, then ``pruner.load_state_dict``. ``setup`` is deterministic given the same model and
batches, so the shapes match. Calling ``load_state_dict`` *before* ``setup`` also works: setup
then replays the saved plan, masks or gates instead of recomputing them (and needs no batches).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from torch import nn

from .. import dist
from .base import PruneConfig, PruneContext, PruneError, cubic_sparsity, register_pruner
from .depgraph import (
    IN,
    ChannelGroup,
    DepGraph,
    apply_channel_config,
    build_graph,
    channel_config,
    channel_rows,
    prune_channels,
    scale_outputs,
)

__all__ = [
    "ChannelPruner",
    "GateDecorator",
    "Importance",
    "L1Importance",
    "L2Importance",
    "SoftFilterPruner",
    "TaylorImportance",
    "apply_channel_config",
    "channel_config",
    "fold_gates",
    "insert_gates",
    "make_importance",
    "model_gates",
    "register_importance",
    "select_channels",
]

Plan = dict[str, list[int]]  # group name -> removed channel indices: plain, JSON-able data
GATE = "pakd_gate"  # name of the gate parameter registered on a gated layer


# ---------------------------------------------------------------------------------------------
# Importance criteria: ``criterion(group) -> Tensor[group.size]``, higher = more important.
# ---------------------------------------------------------------------------------------------


class Importance(Protocol):
    def __call__(self, group: ChannelGroup) -> torch.Tensor: ...


ImportanceFactory = Callable[[nn.Module, DepGraph, PruneContext, Mapping[str, Any]], Importance]
_IMPORTANCE: dict[str, ImportanceFactory] = {}


def register_importance(name: str) -> Callable[[ImportanceFactory], ImportanceFactory]:
    def wrap(factory: ImportanceFactory) -> ImportanceFactory:
        if name in _IMPORTANCE:
            raise ValueError(f"importance criterion {name!r} registered twice")
        _IMPORTANCE[name] = factory
        return factory

    return wrap


def make_importance(
    name: str, model: nn.Module, graph: DepGraph, ctx: PruneContext, options: Mapping[str, Any]
) -> Importance:
    try:
        factory = _IMPORTANCE[name]
    except KeyError:
        raise PruneError(
            f"unknown channel criterion {name!r}; choose one of: {', '.join(sorted(_IMPORTANCE))}"
        ) from None
    return factory(model, graph, ctx, options)


class _NormImportance:
    """Sum over the group's layers of each channel's weight p-norm (filters, input slices, BN
    scales), as Torch-Pruning's MagnitudeImportance."""

    p = 1

    def __init__(self, model: nn.Module, graph: DepGraph, ctx: PruneContext, options: Mapping[str, Any]) -> None:
        self.model = model

    def __call__(self, group: ChannelGroup) -> torch.Tensor:
        score = torch.zeros(group.size)
        for c in group.couplings:
            rows = channel_rows(self.model.get_submodule(c.module), c.role)
            if rows is not None:
                per_position = rows.detach().abs().pow(self.p).sum(1).float().cpu()  # scores live on the CPU
                score += c.gather(per_position, group.size).pow(1.0 / self.p)
        return score


@register_importance("l1")
class L1Importance(_NormImportance):
    p = 1


@register_importance("l2")
class L2Importance(_NormImportance):
    p = 2


@register_importance("taylor")
class TaylorImportance:
    """First-order Taylor estimate of the loss change when a channel is removed:
    ``|sum over positions of activation * gradient|`` per batch, summed over batches. Computed on a
    copy of the model with unit gates at the group sites (``d loss / d gate`` is exactly that sum).
    Option ``taylor_batches`` (default 8) sets how many batches it draws; in a data-parallel run
    each rank scores its share of them and the sums are all-reduced."""

    def __init__(self, model: nn.Module, graph: DepGraph, ctx: PruneContext, options: Mapping[str, Any]) -> None:
        if ctx.batches is None or ctx.loss_fn is None:
            raise PruneError("the taylor criterion needs training batches and a loss (PruneContext.batches, loss_fn)")
        probe = copy.deepcopy(model).eval()
        gates = insert_gates(probe, graph.groups)
        self.scores = {name: torch.zeros_like(g) for name, g in gates.items()}
        for x, y in dist.shard(ctx.batches(int(options.get("taylor_batches", 8)))):
            loss = ctx.loss_fn(probe(x), y)
            grads = torch.autograd.grad(loss, list(gates.values()))
            for name, grad in zip(gates, grads, strict=True):
                self.scores[name] += grad.abs()
        dist.all_reduce_(list(self.scores.values()))

    def __call__(self, group: ChannelGroup) -> torch.Tensor:
        return _site_scores(group, self.scores)


def _site_scores(group: ChannelGroup, per_module: Mapping[str, torch.Tensor]) -> torch.Tensor:
    score = torch.zeros(group.size)
    for c in group.sites:
        score += c.gather(per_module[c.module].detach().float().cpu(), group.size)  # scores live on the CPU
    return score


# ---------------------------------------------------------------------------------------------
# Gates: a per-channel scale on a layer's outputs, as a parameter of that layer plus a forward
# hook, so the existing state-dict keys do not change (one key ``<layer>.pakd_gate`` is added).
# ---------------------------------------------------------------------------------------------


def _apply_gate(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    gate = getattr(module, GATE)
    return output * gate.view((1, -1) + (1,) * (output.dim() - 2))


def insert_gates(model: nn.Module, groups: tuple[ChannelGroup, ...]) -> dict[str, nn.Parameter]:
    """Put a unit gate on every site of ``groups``; returns the gates by layer name."""
    gates = {}
    for name in sorted({c.module for g in groups for c in g.sites}):
        module = model.get_submodule(name)
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.affine:
            raise PruneError(f"cannot gate {name}: a BatchNorm without affine parameters cannot absorb the gate")
        ref = module.weight
        assert isinstance(ref, torch.Tensor)
        module.register_parameter(GATE, nn.Parameter(torch.ones(ref.shape[0], dtype=ref.dtype)))
        module.register_forward_hook(_apply_gate)
        gates[name] = getattr(module, GATE)
    return gates


def model_gates(model: nn.Module) -> dict[str, nn.Parameter]:
    """The gates in ``model``, by the name of the layer they scale."""
    return {name[: -len(GATE) - 1]: p for name, p in model.named_parameters() if name.endswith("." + GATE)}


def fold_gates(model: nn.Module) -> None:
    """Multiply every gate into its layer's weights and remove the gate and its hook, in place."""
    for name in model_gates(model):
        module = model.get_submodule(name)
        scale_outputs(module, getattr(module, GATE).detach())
        delattr(module, GATE)
        # The hook is found by identity (rather than a stored handle) so that copies fold too.
        for key, hook in list(module._forward_hooks.items()):
            if hook is _apply_gate:
                del module._forward_hooks[key]


# ---------------------------------------------------------------------------------------------
# Choosing channels
# ---------------------------------------------------------------------------------------------


def select_channels(
    graph: DepGraph,
    scores: Mapping[str, torch.Tensor],
    amount: float,
    *,
    scope: str = "layer",
    target: str = "channels",
    min_channels: int = 1,
    forced: Mapping[str, torch.Tensor] | None = None,
) -> Plan:
    """The lowest-scoring channels to remove so that ``amount`` of the channels (``target=
    "channels"``) or of the MACs (``"macs"``) is gone. ``scope="layer"`` takes the same fraction
    of every group; ``"global"`` ranks all channels together after dividing each group's scores by
    their mean. Every group keeps at least ``min_channels``. Channels in ``forced`` (bool masks:
    already-closed gates) rank first and are always in the result."""
    groups = graph.groups
    forced = {
        g.name: forced[g.name] if forced and g.name in forced else torch.zeros(g.size, dtype=torch.bool) for g in groups
    }
    ranked: dict[str, torch.Tensor] = {}
    for g in groups:
        s = scores[g.name].detach().float().clone()
        rest = s[~forced[g.name]]
        if scope == "global" and len(rest):
            s = s / (rest.mean() + 1e-12)
        s[forced[g.name]] = -float("inf")
        ranked[g.name] = s
    caps = {g.name: max(0, g.size - min_channels) for g in groups}

    if scope == "global":
        pool = sorted(
            ((float(v), name, i) for name, s in ranked.items() for i, v in enumerate(s.tolist())), key=lambda t: t[0]
        )
        order, taken = [], dict.fromkeys(caps, 0)
        for _, name, i in pool:  # accept in score order while the group is above its minimum
            if taken[name] < caps[name]:
                taken[name] += 1
                order.append((name, i))

        def pick(n: int) -> dict[str, list[int]]:  # the n lowest channels overall
            plan: dict[str, list[int]] = {g.name: [] for g in groups}
            for name, i in order[:n]:
                plan[name].append(i)
            return plan

        limit, wanted = len(order), round(amount * sum(g.size for g in groups))
    else:
        orders = {name: torch.argsort(s, stable=True).tolist() for name, s in ranked.items()}

        def pick(n: int) -> dict[str, list[int]]:  # the same fraction n / 1e6 of every group
            return {g.name: orders[g.name][: min(round(n / 1e6 * g.size), caps[g.name])] for g in groups}

        limit, wanted = 1_000_000, round(amount * 1e6)

    if target == "channels":
        n = min(wanted, limit)
    else:  # the smallest removal reaching the MAC reduction (monotone in n): binary search
        base = graph.macs()

        def reduction(n: int) -> float:
            return 1.0 - graph.macs({name: len(ch) for name, ch in pick(n).items()}) / base

        if reduction(limit) < amount:
            raise PruneError(
                f"cannot remove {amount:.1%} of the MACs: at most {reduction(limit):.1%} while keeping "
                f"{min_channels} channel(s) per group"
            )
        n, hi = 0, limit
        while n < hi:
            mid = (n + hi) // 2
            n, hi = (mid + 1, hi) if reduction(mid) < amount else (n, mid)
    return {name: sorted(set(ch) | set(forced[name].nonzero().flatten().tolist())) for name, ch in pick(n).items()}


# ---------------------------------------------------------------------------------------------
# Pruners
# ---------------------------------------------------------------------------------------------


def _graph(model: nn.Module, cfg: PruneConfig, ctx: PruneContext) -> DepGraph:
    """The model's channel groups; an error naming why when there is none to prune."""
    graph = build_graph(model, ctx.example_input, skip=cfg.skip)
    if not graph.groups and cfg.amount > 0:
        why = "; ".join(graph.held[:3]) + ("; ..." if len(graph.held) > 3 else "")
        raise PruneError(
            f"method {cfg.method!r} finds no channel of {type(model).__name__} that can be removed: "
            + (why or "every channel reaches the network input or output or a skipped layer")
        )
    return graph


def _options(cfg: PruneConfig, allowed: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(cfg.options) - set(allowed))
    if unknown:
        raise PruneError(
            f"unknown option(s) for method {cfg.method!r}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    opts = {**allowed, **cfg.options}
    if int(opts["min_channels"]) < 1:
        raise PruneError(f"min_channels must be at least 1, got {opts['min_channels']}")
    return opts


def _criterion(cfg: PruneConfig, default: str) -> str:
    # PruneConfig's default "magnitude" means the method's own norm criterion.
    name = default if cfg.criterion == "magnitude" else cfg.criterion
    if name not in _IMPORTANCE:
        raise PruneError(
            f"unknown channel criterion {name!r} for method {cfg.method!r}; "
            f"choose one of: {', '.join(sorted(_IMPORTANCE))}"
        )
    return name


def _plan_state(prefix: str, plan: Mapping[str, list[int]]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{name}": torch.tensor(ch, dtype=torch.long) for name, ch in plan.items()}


def _state_plan(prefix: str, state: Mapping[str, torch.Tensor]) -> Plan:
    return {k[len(prefix) + 1 :]: v.tolist() for k, v in state.items() if k.startswith(prefix + ".")}


def _masks(plan: Mapping[str, list[int]], graph: DepGraph) -> dict[str, torch.Tensor]:
    masks = {}
    for g in graph.groups:
        mask = torch.zeros(g.size, dtype=torch.bool)
        mask[plan.get(g.name, [])] = True
        masks[g.name] = mask
    return masks


_NORM_OPTIONS = {"min_channels": 1, "taylor_batches": 8}


class _StructuredPruner:
    """What the three structured pruners share: the runner saves ``channel_config(model)`` with the
    weights so that the smaller architecture can be rebuilt (:func:`apply_channel_config`)."""

    def channel_config(self, model: nn.Module) -> dict:
        return channel_config(model)

    def on_step(self, model: nn.Module, step: int) -> None:
        pass

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        pass


@register_pruner("channel")
class ChannelPruner(_StructuredPruner):
    """One-shot channel pruning: rank, remove physically in ``setup``, fine-tune the smaller model.

    Options: ``min_channels`` (default 1) kept per group; ``taylor_batches`` for ``criterion="taylor"``.
    """

    def __init__(self, cfg: PruneConfig, ctx: PruneContext) -> None:
        if cfg.schedule != "oneshot":
            raise PruneError(
                "method 'channel' prunes once (schedule='oneshot'); for gradual structured pruning use 'sfp' or 'gate'"
            )
        self.cfg, self.ctx = cfg, ctx
        self.options = _options(cfg, _NORM_OPTIONS)
        self.criterion = _criterion(cfg, "l1")
        self.plan: Plan | None = None

    def setup(self, model: nn.Module) -> nn.Module:
        graph = _graph(model, self.cfg, self.ctx)
        if self.plan is None:
            importance = make_importance(self.criterion, model, graph, self.ctx, self.options)
            self.plan = select_channels(
                graph,
                {g.name: importance(g) for g in graph.groups},
                self.cfg.amount,
                scope=self.cfg.scope,
                target=self.cfg.target,
                min_channels=int(self.options["min_channels"]),
            )
        return graph.prune(self.plan)

    def finalize(self, model: nn.Module) -> nn.Module:
        return model

    def state_dict(self) -> dict[str, torch.Tensor]:
        return _plan_state("removed", self.plan or {})

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.plan = _state_plan("removed", state) or None


def _epoch_fraction(cfg: PruneConfig, epoch: int, total: int) -> float:
    return cfg.amount if cfg.schedule == "oneshot" else cubic_sparsity(epoch, total, cfg.amount)


@register_pruner("sfp")
class SoftFilterPruner(_StructuredPruner):
    """Soft Filter Pruning: zero the weakest filters each epoch end, remove them in ``finalize``.

    The zeroed filters (conv/linear rows of the group's producers) are not frozen and may grow back;
    BN parameters are left alone so that gradients still reach them. The fraction follows the
    schedule (``oneshot``: the full amount every epoch, as in the paper; ``cubic``: growing to it by
    the last epoch). Options: ``min_channels``, ``taylor_batches``.
    """

    def __init__(self, cfg: PruneConfig, ctx: PruneContext) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.options = _options(cfg, _NORM_OPTIONS)
        self.criterion = _criterion(cfg, "l2")
        self.plan: Plan = {}
        self._graph: DepGraph | None = None

    @property
    def graph(self) -> DepGraph:
        """The dependency graph, built by :meth:`setup`."""
        assert self._graph is not None, "setup() builds the graph first"
        return self._graph

    def setup(self, model: nn.Module) -> nn.Module:
        self._graph = _graph(model, self.cfg, self.ctx)
        self._zero(model)
        return model

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        importance = make_importance(self.criterion, model, self.graph, self.ctx, self.options)
        self.plan = select_channels(
            self.graph,
            {g.name: importance(g) for g in self.graph.groups},
            _epoch_fraction(self.cfg, epoch, self.ctx.total_epochs),
            scope=self.cfg.scope,
            target=self.cfg.target,
            min_channels=int(self.options["min_channels"]),
        )
        self._zero(model)

    @torch.no_grad()
    def _zero(self, model: nn.Module) -> None:
        for name, channels in self.plan.items():
            if not channels:
                continue
            group = self.graph.group(name)
            for c in group.couplings:
                if c.role != IN and c.module in self.graph.layers:  # conv/linear filters, not BN
                    module = model.get_submodule(c.module)
                    assert isinstance(module.weight, torch.Tensor)
                    factors = torch.ones(module.weight.shape[0])
                    factors[c.positions(torch.tensor(channels))] = 0.0
                    scale_outputs(module, factors)

    def finalize(self, model: nn.Module) -> nn.Module:
        return prune_channels(model, self.ctx.example_input, self.plan)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return _plan_state("zeroed", self.plan)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.plan = _state_plan("zeroed", state)


@register_pruner("gate")
class GateDecorator(_StructuredPruner):
    """Gate Decorator: gates after every group's producers (after the BN when there is one).

    The gates are parameters of the model (``<layer>.pakd_gate``), trained with it. ``on_step``
    accumulates ``|gate * grad|`` (call it after ``optimizer.step()``, before the gradients are
    cleared) and keeps closed gates at zero. ``on_epoch_end`` closes the lowest-scoring gates
    until the scheduled fraction is reached; the cubic schedule reaches the target one epoch before
    the end so the last epoch fine-tunes. Options: ``min_channels``.
    """

    def __init__(self, cfg: PruneConfig, ctx: PruneContext) -> None:
        if cfg.criterion not in ("magnitude", "taylor"):
            raise PruneError(
                f"method 'gate' ranks channels by the Taylor score of its gates; "
                f"criterion {cfg.criterion!r} does not apply"
            )
        self.cfg, self.ctx = cfg, ctx
        self.options = _options(cfg, {"min_channels": 1})
        self.plan: Plan = {}
        self.scores: dict[str, torch.Tensor] = {}
        self._graph: DepGraph | None = None

    @property
    def graph(self) -> DepGraph:
        """The dependency graph, built by :meth:`setup`."""
        assert self._graph is not None, "setup() builds the graph first"
        return self._graph

    def setup(self, model: nn.Module) -> nn.Module:
        self._graph = _graph(model, self.cfg, self.ctx)
        gates = insert_gates(model, self.graph.groups)
        for name, gate in gates.items():
            self.scores.setdefault(name, torch.zeros_like(gate, dtype=torch.float32))
        self._close(model)
        return model

    def on_step(self, model: nn.Module, step: int) -> None:
        for name, gate in model_gates(model).items():
            if gate.grad is not None:
                self.scores[name] += (gate.detach() * gate.grad).abs().float().cpu()
        self._close(model)

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        span = max(1, self.ctx.total_epochs - 1)
        fraction = _epoch_fraction(self.cfg, min(epoch, span), span)
        scores = {g.name: _site_scores(g, self.scores) for g in self.graph.groups}
        self.plan = select_channels(
            self.graph,
            scores,
            fraction,
            scope=self.cfg.scope,
            target=self.cfg.target,
            min_channels=int(self.options["min_channels"]),
            forced=_masks(self.plan, self.graph),
        )
        self._close(model)
        for s in self.scores.values():  # a fresh estimate for the next round
            s.zero_()

    @torch.no_grad()
    def _close(self, model: nn.Module) -> None:
        gates = model_gates(model)
        for name, channels in self.plan.items():
            if channels:
                for c in self.graph.group(name).sites:
                    gates[c.module][c.positions(torch.tensor(channels))] = 0.0

    def finalize(self, model: nn.Module) -> nn.Module:
        fold_gates(model)
        return prune_channels(model, self.ctx.example_input, self.plan)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**_plan_state("closed", self.plan), **{f"score.{k}": v.clone() for k, v in self.scores.items()}}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.plan = _state_plan("closed", state)
        self.scores = {k[len("score.") :]: v.clone() for k, v in state.items() if k.startswith("score.")}
