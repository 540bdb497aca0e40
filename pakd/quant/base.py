"""What a quantizer hands the encoder (``pakd.lower``): per weight, either codebook indices or
int8 values with per-channel scales, plus the metadata the runtime needs in the file. The encoder
asks this protocol; it never looks at which quantizer it has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass(frozen=True)
class SharedCodes:
    """Weight sharing: ``weight ~= codebook[indices]``, index -1 marks a zero (pruned) weight."""

    codebook: torch.Tensor  # float [k]
    indices: torch.Tensor  # int64, one per weight (any shape with the weight's element count)


@dataclass(frozen=True)
class Int8Codes:
    """Symmetric per-output-channel int8: ``weight ~= values * scales[:, None, ...]``."""

    values: torch.Tensor  # int8, the weight's shape
    scales: torch.Tensor  # float32 [out_channels]


WeightCodes = SharedCodes | Int8Codes


@runtime_checkable
class Quantizer(Protocol):
    def weight_codes(self, model: nn.Module) -> dict[str, WeightCodes]:
        """The encoding of every quantized weight of ``model``, by parameter name."""
        ...

    def file_meta(self) -> dict[str, Any]:
        """Extra META entries of the .pakd file (e.g. int8 activation scales); may be empty."""
        ...
