"""What quantizers share as training hooks: the weights live on a grid (int8 levels, codebook
centroids) and are snapped back to it after every epoch and at the end of the stage."""

from __future__ import annotations

import torch
from torch import nn


class SnapHook:
    def snap(self, model: nn.Module) -> None:
        raise NotImplementedError

    def on_step(self, model: nn.Module, step: int) -> None:
        self.snap(model)

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        self.snap(model)

    def finalize(self, model: nn.Module) -> nn.Module:
        self.snap(model)
        return model

    def calibrate(self, model: nn.Module, batches: list[torch.Tensor]) -> None:
        """After training, on a few input batches (int8 records activation ranges); default: nothing."""
