"""Which weights of a model the compression stages work on (pruning, quantization, lowering)."""

from __future__ import annotations

from torch import nn


def prunable_weights(model: nn.Module, skip: tuple[str, ...] = ()) -> dict[str, nn.Parameter]:
    """Weights of Conv2d and Linear layers, by parameter name, except modules named in ``skip``."""
    out: dict[str, nn.Parameter] = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and name not in skip:
            weight = module.weight
            assert isinstance(weight, nn.Parameter)
            out[f"{name}.weight" if name else "weight"] = weight
    return out
