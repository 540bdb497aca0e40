"""Symmetric per-output-channel int8 weight quantization, with activation-range calibration.

Weights: q = round(w / s_c) in [-127, 127], s_c = max|w_c| / 127 per output channel (zeros stay
zero, so sparsity survives). Activations: the input range of every conv/linear layer is recorded
over calibration batches (max |x|) and stored as a per-tensor scale for the runtime's int8 GEMM.
During fine-tuning weights are snapped back to their int8 grid after every step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import dist
from ..models.layers import prunable_weights
from .base import Int8Codes, WeightCodes
from .hook import SnapHook


def quantize_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, float32 scales [out_channels]) with w ~= q * scale[:, None, ...]."""
    flat = w.detach().reshape(w.shape[0], -1)
    scales = flat.abs().amax(1) / 127.0
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    q = torch.round(flat / scales[:, None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(w.shape), scales.float()


def dequantize_per_channel(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    return (q.float().reshape(q.shape[0], -1) * scales[:, None]).reshape(q.shape)


@torch.no_grad()
def calibrate_activations(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, float]:
    """max |input| of every conv/linear layer over ``batches`` -> int8 activation scale. In a
    data-parallel run each rank sees its share of the batches; the maxima are all-reduced."""
    ranges: dict[str, float] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):

            def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...], _out: object, name: str = name) -> None:
                ranges[name] = max(ranges.get(name, 0.0), float(inp[0].abs().max()))

            handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    for x in dist.shard(batches):
        model(x)
    model.train(was_training)
    for h in handles:
        h.remove()
    if dist.world().distributed:  # -1: a layer no rank's batches reached
        names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        seen = torch.tensor([ranges.get(n, -1.0) for n in names], dtype=torch.float64)
        dist.all_reduce_([seen], op="max")
        ranges = {n: float(v) for n, v in zip(names, seen.tolist(), strict=True) if v >= 0}
    return {n: (r / 127.0 if r > 0 else 1.0) for n, r in ranges.items()}


class Int8Quantizer(SnapHook):
    def __init__(self, skip: tuple[str, ...] = ()) -> None:
        self.skip = skip
        self.act_scales: dict[str, float] = {}

    def snap(self, model: nn.Module) -> None:
        with torch.no_grad():
            for _, p in prunable_weights(model, self.skip).items():
                q, s = quantize_per_channel(p)
                p.copy_(dequantize_per_channel(q, s))

    def setup(self, model: nn.Module) -> nn.Module:
        self.snap(model)
        return model

    def calibrate(self, model: nn.Module, batches: list[torch.Tensor]) -> None:
        self.act_scales = calibrate_activations(model, batches)

    def weight_codes(self, model: nn.Module) -> dict[str, WeightCodes]:
        out: dict[str, WeightCodes] = {}
        for name, p in prunable_weights(model, self.skip).items():
            q, scales = quantize_per_channel(p)
            out[name] = Int8Codes(q, scales)
        return out

    def file_meta(self) -> dict[str, Any]:
        return {"activation_scales": self.act_scales}  # per-layer input scales for the runtime's int8 GEMM

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"act.{n}": torch.tensor(v) for n, v in self.act_scales.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.act_scales = {k[len("act.") :]: float(v) for k, v in state.items() if k.startswith("act.")}
