"""Deep Compression's weight sharing: per-layer k-means over the nonzero weights, 2^b centroids
with linear initialisation, and centroid fine-tuning.

During fine-tuning the optimizer updates every weight as usual; after each step every weight is
snapped back to its cluster's centroid, and the centroid moves to the mean of its members' updated
values — the averaged shared-weight gradient step of Han et al. (2016), expressed so it works with
any optimizer. Zeros (pruned weights) stay zero and are not clustered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import dist
from ..models.layers import prunable_weights
from .base import SharedCodes, WeightCodes
from .hook import SnapHook


@dataclass(frozen=True)
class KMeansConfig:
    bits: dict[str, int]  # per layer kind: {"conv": 8, "linear": 5} (Deep Compression's choice)
    iterations: int = 30
    skip: tuple[str, ...] = ()


def kmeans_1d(values: torch.Tensor, k: int, iterations: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on a 1-D tensor with linear initialisation (Han et al.: the best for
    keeping large weights). Returns (centroids [k], assignment [n] as int64)."""
    values = values.detach().double()
    lo, hi = float(values.min()), float(values.max())
    centroids = torch.linspace(lo, hi, k, dtype=torch.float64) if k > 1 else values.mean().reshape(1)
    for _ in range(iterations):
        # centroids stay sorted, so the nearest one comes from the midpoints
        assign = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, assign, values)
        counts = torch.bincount(assign, minlength=k).double()
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        new, _ = new.sort()
        if torch.allclose(new, centroids, rtol=0, atol=1e-12):
            break
        centroids = new
    assign = torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)
    return centroids.float(), assign


def layer_bits(module: nn.Module, bits: dict[str, int]) -> int:
    return int(bits["conv"] if isinstance(module, nn.Conv2d) else bits["linear"])


class WeightSharing(SnapHook):
    """Clusters the nonzero weights of each conv/linear layer and keeps them shared while training."""

    def __init__(self, cfg: KMeansConfig) -> None:
        self.cfg = cfg
        self.codebooks: dict[str, torch.Tensor] = {}  # param name -> centroids
        self.assign: dict[str, torch.Tensor] = {}  # param name -> int64 index per weight (-1 = zero)

    def setup(self, model: nn.Module) -> nn.Module:
        if self.codebooks:  # resumed
            self.snap(model)
            return model
        modules = dict(model.named_modules())
        for name, p in prunable_weights(model, self.cfg.skip).items():
            module = modules[name.rsplit(".", 1)[0]] if "." in name else model
            k = 2 ** layer_bits(module, self.cfg.bits)
            flat = p.detach().flatten()
            nz = flat != 0
            assign = torch.full_like(flat, -1, dtype=torch.int64)
            if int(nz.sum()) == 0:
                self.codebooks[name], self.assign[name] = torch.zeros(1), assign
                continue
            k = min(k, int(nz.sum()))
            centroids, a = kmeans_1d(flat[nz], k, self.cfg.iterations)
            assign[nz] = a
            self.codebooks[name], self.assign[name] = centroids, assign
        # rank 0's codebooks on every rank of a data-parallel run (its weights are every rank's)
        self.codebooks, self.assign = dist.broadcast_object((self.codebooks, self.assign))
        self.snap(model)
        return model

    def _on_device(self, name: str, device: torch.device) -> None:
        if self.assign[name].device != device:  # the model moved to the training device
            self.assign[name] = self.assign[name].to(device)
            self.codebooks[name] = self.codebooks[name].to(device)

    def snap(self, model: nn.Module) -> None:
        with torch.no_grad():
            for name, p in prunable_weights(model, self.cfg.skip).items():
                self._on_device(name, p.device)
                a = self.assign[name]
                values = torch.where(a >= 0, self.codebooks[name][a.clamp(min=0)], torch.zeros((), device=a.device))
                p.copy_(values.view_as(p))

    def on_step(self, model: nn.Module, step: int) -> None:
        with torch.no_grad():
            for name, p in prunable_weights(model, self.cfg.skip).items():
                self._on_device(name, p.device)
                a, flat = self.assign[name], p.detach().flatten()
                nz = a >= 0
                k = self.codebooks[name].numel()
                sums = torch.zeros(k, device=p.device).index_add_(0, a[nz], flat[nz])
                counts = torch.bincount(a[nz], minlength=k)
                self.codebooks[name] = torch.where(counts > 0, sums / counts.clamp(min=1), self.codebooks[name])
        self.snap(model)

    def weight_codes(self, model: nn.Module) -> dict[str, WeightCodes]:
        return {n: SharedCodes(self.codebooks[n], self.assign[n]) for n in self.codebooks}

    def file_meta(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {f"codebook.{n}": c.cpu() for n, c in self.codebooks.items()}
        out.update({f"assign.{n}": a.cpu() for n, a in self.assign.items()})
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.codebooks = {k[len("codebook.") :]: v for k, v in state.items() if k.startswith("codebook.")}
        self.assign = {k[len("assign.") :]: v for k, v in state.items() if k.startswith("assign.")}
