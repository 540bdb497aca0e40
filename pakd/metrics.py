"""Size and compute metrics used by every stage: parameters, nonzeros, MACs, dense fp32 bytes.

MACs come from torch's own counter (``torch.utils.flop_counter.FlopCounterMode``), which counts
convolutions (grouped/depthwise included) and matrix products exactly; a multiply-accumulate is
two of its FLOPs. Element-wise ops, pooling and batch-norm are not counted, as is the convention
(Deep Compression, Torch-Pruning). Dense fp32 bytes = 4 bytes per parameter: the teacher-side
denominator of every size ratio (BN running statistics are not counted, which only makes ratios
against it harder to reach).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models.layers import prunable_weights

FP32_BYTES = 4


@dataclass(frozen=True)
class LayerStats:
    name: str
    kind: str
    params: int
    nonzeros: int
    macs: int


@dataclass(frozen=True)
class ModelStats:
    layers: tuple[LayerStats, ...]
    params: int
    nonzeros: int
    macs: int

    @property
    def dense_fp32_bytes(self) -> int:
        return FP32_BYTES * self.params

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzeros / self.params if self.params else 0.0

    def to_dict(self) -> dict:
        return {
            "params": self.params,
            "nonzeros": self.nonzeros,
            "macs": self.macs,
            "dense_fp32_bytes": self.dense_fp32_bytes,
            "layers": [asdict(layer) for layer in self.layers],
        }


def _unique_params(module: nn.Module, recurse: bool) -> list[torch.Tensor]:
    seen: dict[int, torch.Tensor] = {}
    for p in module.parameters(recurse=recurse):
        seen.setdefault(id(p), p)
    return list(seen.values())


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> dict[str, int]:
    """MACs for one input, per module (fully qualified name; ``""`` is the whole model)."""
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        x = torch.zeros((1, *input_shape), dtype=param.dtype if param is not None else torch.float32)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    root = type(model).__name__
    macs: dict[str, int] = {}
    for key, per_op in counter.get_flop_counts().items():
        if key == "Global":
            continue
        name = "" if key == root else key[len(root) + 1 :] if key.startswith(root + ".") else None
        if name is not None:
            macs[name] = int(sum(per_op.values())) // 2
    macs[""] = int(counter.get_total_flops()) // 2
    return macs


def model_stats(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> ModelStats:
    """Per-layer and total parameters, nonzeros and MACs for one input of ``input_shape``."""
    macs = count_macs(model, input_shape)
    layers = []
    for name, module in model.named_modules():
        own = _unique_params(module, recurse=False)
        if not own and not (name in macs and not any(True for _ in module.children())):
            continue
        layers.append(
            LayerStats(
                name=name,
                kind=type(module).__name__,
                params=sum(p.numel() for p in own),
                nonzeros=sum(int(torch.count_nonzero(p)) for p in own),
                macs=macs.get(name, 0) if not any(True for _ in module.children()) else 0,
            )
        )
    everything = _unique_params(model, recurse=True)
    return ModelStats(
        layers=tuple(layers),
        params=sum(p.numel() for p in everything),
        nonzeros=sum(int(torch.count_nonzero(p)) for p in everything),
        macs=macs[""],
    )


@torch.no_grad()
def weight_sparsity(model: nn.Module) -> float:
    """The fraction of zeros among the conv/linear weights."""
    ws = list(prunable_weights(model).values())
    total = sum(w.numel() for w in ws)
    return 1.0 - sum(int(torch.count_nonzero(w)) for w in ws) / max(1, total)
