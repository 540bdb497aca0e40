"""The size accountant: the exact bytes of the compressed student's .pakd file.

Every floating-point tensor of the state dict is stored (weights, biases, batch-norm parameters
and statistics), each in its cheapest valid form: codebook indices for weight-shared layers,
int8 + scales for int8 layers, f32 otherwise; sparse with relative indices when that is smaller.
The size is ``len()`` of the serialized file, so headers, indices, codebooks and scales all count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from ..quant.base import Int8Codes, Quantizer, SharedCodes
from .format import TensorPlan, write_pakd


def tensor_plans(model: nn.Module, quant: Quantizer | None = None) -> list[TensorPlan]:
    plans = []
    codes = quant.weight_codes(model) if quant is not None else {}
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue  # e.g. BatchNorm's num_batches_tracked: not needed for inference
        values = t.detach().cpu().float().contiguous().numpy()
        code = codes.get(name)
        if isinstance(code, SharedCodes):
            idx = code.indices.cpu().reshape(values.shape).numpy()
            codebook = code.codebook.cpu().numpy().astype(np.float32)
            plans.append(TensorPlan(name, values, codebook=codebook, indices=idx))
        elif isinstance(code, Int8Codes):
            plans.append(TensorPlan(name, values, int8=code.values.cpu().numpy(), scales=code.scales.cpu().numpy()))
        else:
            plans.append(TensorPlan(name, values))
    return plans


def serialize(model: nn.Module, meta: dict[str, Any], quant: Quantizer | None = None, huffman: bool = True) -> bytes:
    """The student's .pakd file: runnable by the native runtime (META + GRAPH + TENSORS, batch-norm
    folded) when the model lowers (``pakd.lower.native``); otherwise, e.g. for a user model with an
    op the runtime lacks, the weights-only file (state dict tensors, same encodings)."""
    from .native import LoweringError, to_pakd

    try:
        return to_pakd(model, meta, quant, huffman=huffman)
    except LoweringError:
        return write_pakd(tensor_plans(model, quant), meta, huffman_coding=huffman)
