"""Unstructured (weight-level) pruning with masks: magnitude (Han et al. 2015) or Optimal Brain
Damage saliency (LeCun et al. 1990), on a gradual cubic schedule (Zhu & Gupta 2017) or at once.

``PruneConfig.amount`` is the sparsity (fraction of zeros) of the prunable weights at the end of
the stage; zeros the stage starts with stay zero. Prunable weights are those of Conv2d and Linear
layers not listed in ``skip``. Masks are re-applied after every optimizer step, so pruned weights
never come back through momentum or weight decay.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .. import dist
from ..models.layers import prunable_weights
from .base import PruneConfig, PruneContext, PruneError, cubic_sparsity, register_pruner

Scores = Callable[[nn.Module, dict[str, nn.Parameter]], dict[str, torch.Tensor]]
_CRITERIA: dict[str, Callable[[PruneConfig, PruneContext], Scores]] = {}


def register_criterion(name: str):
    def wrap(factory):
        _CRITERIA[name] = factory
        return factory

    return wrap


@register_criterion("magnitude")
def _magnitude(cfg: PruneConfig, ctx: PruneContext) -> Scores:
    return lambda model, params: {n: p.detach().abs() for n, p in params.items()}


def _hessian_diagonal(
    model: nn.Module, params: dict[str, nn.Parameter], ctx: PruneContext, method: str, n_batches: int
) -> dict[str, torch.Tensor]:
    """Diagonal Hessian estimate of the training loss w.r.t. ``params``.

    fisher: the empirical Fisher, mean of squared mini-batch gradients;
    hutchinson: E[z * (H z)] with Rademacher z (Hessian-vector products by double backprop).
    In a data-parallel run each rank takes its share of the batches; the sums are all-reduced.
    """
    if ctx.batches is None or ctx.loss_fn is None:
        raise PruneError("OBD saliency needs training batches (none were given to the pruner)")
    names, tensors = list(params), list(params.values())
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    was_training = model.training
    model.eval()  # BN statistics must not move while we probe the loss surface
    batches = ctx.batches(n_batches)
    device = tensors[0].device
    for x, y in dist.shard(batches):
        loss = ctx.loss_fn(model(x.to(device)), y.to(device))
        if method == "fisher":
            grads = torch.autograd.grad(loss, tensors)
            for n, g in zip(names, grads, strict=True):
                acc[n] += g.detach() ** 2
        else:
            grads = torch.autograd.grad(loss, tensors, create_graph=True)
            zs = [torch.randint_like(t, 2) * 2 - 1 for t in tensors]
            hz = torch.autograd.grad(grads, tensors, grad_outputs=zs)
            for n, z, h in zip(names, zs, hz, strict=True):
                acc[n] += (z * h).detach()
    model.train(was_training)
    dist.all_reduce_(list(acc.values()))
    return {n: (a / max(1, len(batches))).abs() for n, a in acc.items()}


@register_criterion("obd")
def _obd(cfg: PruneConfig, ctx: PruneContext) -> Scores:
    method = cfg.options.get("hessian", "fisher")
    if method not in ("fisher", "hutchinson"):
        raise PruneError(f"OBD hessian estimate must be 'fisher' or 'hutchinson', got {method!r}")
    n_batches = int(cfg.options.get("hessian_batches", 16))

    def scores(model: nn.Module, params: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
        h = _hessian_diagonal(model, params, ctx, method, n_batches)
        # OBD saliency of deleting w_i: s_i = h_ii * w_i^2 / 2
        return {n: 0.5 * h[n] * p.detach() ** 2 for n, p in params.items()}

    return scores


def _keep_all_but_lowest(flat: torch.Tensor, k: int) -> torch.Tensor:
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k:
        keep[flat.argsort(stable=True)[:k]] = False
    return keep


def masks_for_sparsity(
    scores: dict[str, torch.Tensor], sparsity: float, scope: str, keep: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Boolean keep-masks removing the ``sparsity`` fraction of lowest scores, per layer or globally.

    Weights already removed (``keep`` False) rank lowest, so they stay removed.
    """
    if keep is not None:
        scores = {n: torch.where(keep[n], s, torch.full_like(s, -1.0)) for n, s in scores.items()}
    if scope == "global":
        flat = torch.cat([s.flatten() for s in scores.values()])
        kept = _keep_all_but_lowest(flat, int(round(sparsity * flat.numel())))
        return {
            n: m.view_as(scores[n])
            for n, m in zip(scores, kept.split([s.numel() for s in scores.values()]), strict=True)
        }
    return {
        n: _keep_all_but_lowest(s.flatten(), int(round(sparsity * s.numel()))).view_as(s) for n, s in scores.items()
    }


class UnstructuredPruner:
    """Masks on conv/linear weights; removed weights are exactly zero after every step."""

    def __init__(self, cfg: PruneConfig, ctx: PruneContext) -> None:
        if cfg.criterion not in _CRITERIA:
            raise PruneError(
                f"unknown unstructured criterion {cfg.criterion!r}; choose one of: {', '.join(sorted(_CRITERIA))}"
            )
        self.cfg, self.ctx = cfg, ctx
        self.scores = _CRITERIA[cfg.criterion](cfg, ctx)
        total = max(1, ctx.total_epochs * ctx.steps_per_epoch)
        # prune during the first `ramp` of the stage, then fine-tune with frozen masks
        self.ramp_steps = 0 if cfg.schedule == "oneshot" else int(total * float(cfg.options.get("ramp", 0.75)))
        self.update_every = max(1, int(cfg.options.get("update_every", max(1, ctx.steps_per_epoch // 4))))
        self.masks: dict[str, torch.Tensor] = {}
        self.initial_sparsity = 0.0

    def _params(self, model: nn.Module) -> dict[str, nn.Parameter]:
        params = prunable_weights(model, self.cfg.skip)
        if not params:
            raise PruneError("no prunable Conv2d/Linear weights in the model")
        return params

    def _update(self, model: nn.Module, sparsity: float) -> None:
        params = self._params(model)
        keep = (
            {n: m.to(params[n].device) for n, m in self.masks.items()}
            if self.masks
            else {n: p.detach() != 0 for n, p in params.items()}
        )
        self.masks = masks_for_sparsity(self.scores(model, params), sparsity, self.cfg.scope, keep)
        self._apply(model)

    def _apply(self, model: nn.Module) -> None:
        with torch.no_grad():
            for n, p in self._params(model).items():
                if self.masks[n].device != p.device:  # the model moved to the training device
                    self.masks[n] = self.masks[n].to(p.device)
                p.mul_(self.masks[n])

    def current_sparsity(self) -> float:
        total = sum(m.numel() for m in self.masks.values())
        return 1.0 - sum(int(m.sum()) for m in self.masks.values()) / max(1, total)

    def setup(self, model: nn.Module) -> nn.Module:
        if not self.masks:  # (a resumed stage already has its masks)
            params = self._params(model)
            self.masks = {n: p.detach() != 0 for n, p in params.items()}
            self.initial_sparsity = self.current_sparsity()
            if self.ramp_steps == 0:
                self._update(model, self.cfg.amount)
        return model

    def target_at(self, step: int) -> float:
        if self.ramp_steps == 0:
            return self.cfg.amount
        return max(self.initial_sparsity, cubic_sparsity(step, self.ramp_steps, self.cfg.amount, self.initial_sparsity))

    def on_step(self, model: nn.Module, step: int) -> None:
        if self.ramp_steps and step <= self.ramp_steps and (step % self.update_every == 0 or step == self.ramp_steps):
            target = self.target_at(step)
            if target > self.current_sparsity() + 1e-9:
                self._update(model, target)
                return
        self._apply(model)

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        self._apply(model)

    def finalize(self, model: nn.Module) -> nn.Module:
        # masks keep round(amount * N) weights: within half a weight of the target is on target
        total = max(1, sum(m.numel() for m in self.masks.values()))
        if self.current_sparsity() + 0.5 / total < self.cfg.amount:
            self._update(model, self.cfg.amount)  # a stage too short for its ramp still reaches the target
        self._apply(model)
        return model

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"mask.{n}": m.to("cpu", torch.uint8) for n, m in self.masks.items()}
        state["initial_sparsity"] = torch.tensor(self.initial_sparsity, dtype=torch.float64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.masks = {k[len("mask.") :]: v.bool() for k, v in state.items() if k.startswith("mask.")}
        self.initial_sparsity = float(state.get("initial_sparsity", torch.tensor(0.0)))


@register_pruner("unstructured")
def _make_unstructured(cfg: PruneConfig, ctx: PruneContext) -> UnstructuredPruner:
    return UnstructuredPruner(cfg, ctx)
