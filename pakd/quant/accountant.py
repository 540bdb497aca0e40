"""The size accountant: the exact bytes of the compressed student's .pakd file.

Every floating-point tensor of the state dict is stored (weights, biases, batch-norm parameters
and statistics), each in its cheapest valid form: codebook indices for weight-shared layers,
int8 + scales for int8 layers, f32 otherwise; sparse with relative indices when that is smaller.
The size is ``len()`` of the serialized file, so headers, indices, codebooks and scales all count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..lower.format import TensorPlan, write_pakd
from .int8 import Int8Quantizer, quantize_per_channel
from .kmeans import WeightSharing


def tensor_plans(model: nn.Module, quant: WeightSharing | Int8Quantizer | None = None) -> list[TensorPlan]:
    plans = []
    int8_names = set()
    if isinstance(quant, Int8Quantizer):
        from ..prune.unstructured import prunable_weights

        int8_names = set(prunable_weights(model, quant.skip))
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue  # e.g. BatchNorm's num_batches_tracked: not needed for inference
        values = t.detach().cpu().float().contiguous().numpy()
        if isinstance(quant, WeightSharing) and name in quant.codebooks:
            idx = quant.assign[name].cpu().reshape(values.shape).numpy()
            plans.append(
                TensorPlan(name, values, codebook=quant.codebooks[name].cpu().numpy().astype(np.float32), indices=idx)
            )
        elif name in int8_names:
            q, scales = quantize_per_channel(t)
            plans.append(TensorPlan(name, values, int8=q.numpy(), scales=scales.numpy()))
        else:
            plans.append(TensorPlan(name, values))
    return plans


def serialize(model: nn.Module, meta: dict[str, Any], quant=None, huffman: bool = True) -> bytes:
    """The student's .pakd file: runnable by the native runtime (META + GRAPH + TENSORS, batch-norm
    folded) when the model lowers (``pakd.lower.native``); otherwise, e.g. for a user model with an
    op the runtime lacks, the weights-only file (state dict tensors, same encodings)."""
    from ..lower.native import LoweringError, to_pakd

    try:
        return to_pakd(model, meta, quant, huffman=huffman)
    except LoweringError:
        return write_pakd(tensor_plans(model, quant), meta, huffman_coding=huffman)


def serialized_bytes(model: nn.Module, meta: dict[str, Any], quant=None, huffman: bool = True) -> int:
    return len(serialize(model, meta, quant, huffman))


@torch.no_grad()
def weight_sparsity(model: nn.Module) -> float:
    from ..prune.unstructured import prunable_weights

    ws = list(prunable_weights(model).values())
    total = sum(w.numel() for w in ws)
    return 1.0 - sum(int(torch.count_nonzero(w)) for w in ws) / max(1, total)
