"""Regenerates the seed corpus of the loader fuzzer (csrc/fuzz/corpus/).

    .venv/bin/python csrc/fuzz/make_corpus.py

Writes a few small, valid .pakd files that between them reach every encoding
(f32, per-channel int8, codebook; dense and sparse; bit-packed and Huffman)
and every op type of the runtime, plus a few broken files (truncated, bad
magic, bad checksum, header only). Weights come from a fixed seed, so the
files are reproducible; each is a few KB at most.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pakd.lower.native import to_pakd
from pakd.quant.int8 import Int8Quantizer

OUT = Path(__file__).resolve().parent / "corpus"


class Mlp(nn.Module):
    """Two linear layers: the smallest runnable graph (reshape, linear+relu, linear, softmax)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x):
        return F.softmax(self.fc2(F.relu(self.fc1(torch.flatten(x, 1)))), dim=1)


class ConvNet(nn.Module):
    """Tiny conv net: conv+bn+relu6, max/avg pooling, a residual add, a channel concat, hardswish,
    sigmoid, a depthwise conv, global average pooling and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        x = F.relu6(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 2)
        y = self.conv2(x) + x
        y = torch.cat([F.hardswish(y), torch.sigmoid(self.dw(x))], dim=1)
        y = F.avg_pool2d(self.bn2(y), 2, ceil_mode=True)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class WinoNet(nn.Module):
    """3x3 convolutions the session runs through Winograd F(4x4, 3x3) (12 -> 10 channels at
    14x14) and the direct kernels (the 1-channel stem; a strided 1x1), and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 12, 3, padding=1)
        self.conv2 = nn.Conv2d(12, 10, 3, padding=1)
        self.conv3 = nn.Conv2d(10, 6, 1, stride=2)
        self.fc = nn.Linear(6 * 7 * 7, 3)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(torch.flatten(self.conv3(x), 1))


class MobileOps(nn.Module):
    """The ops of format 1.1: SiLU, hardswish, hardsigmoid, GELU (both forms), clamp, a
    squeeze-excite scale (binary mul, rows), a general broadcast, scalar constants, a mean over H
    and W with reshape-only indexing, an asymmetric zero pad, a grouped conv, channel shuffle
    (module and view-transpose-view) and nearest upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.se1 = nn.Conv2d(8, 4, 1)
        self.se2 = nn.Conv2d(4, 8, 1)
        self.g = nn.Conv2d(8, 8, 3, groups=2)
        self.gate = nn.Conv2d(8, 1, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = F.silu(self.conv1(x))
        y = F.hardswish(self.dw(x))
        y = y * F.hardsigmoid(self.se2(F.relu(self.se1(y.mean((2, 3), keepdim=True)))))
        y = F.channel_shuffle(self.g(F.pad(y, (0, 1, 0, 1))), 2)  # 8 x 7 x 7
        n, c, h, w = y.shape
        y = y.view(n, 4, c // 4, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        y = F.interpolate(y, scale_factor=2, mode="nearest")
        y = torch.clamp(y, -1.0, 2.0) - 0.5 * F.gelu(y) + F.gelu(y, approximate="tanh") / 2.0
        y = y * self.gate(y) + y.mean((2, 3))[:, :, None, None]
        return self.fc(y.mean((2, 3)))


def _init(model: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _sparse(model: nn.Module, density: float, k: int | None = None, skew: bool = False) -> nn.Module:
    """Zeroes most of conv2's weight (stored sparse), and with ``k`` snaps the rest to k shared
    values (stored as a codebook); ``skew`` makes one value dominate, so Huffman coding wins."""
    with torch.no_grad():
        w = model.conv2.weight
        keep = torch.rand(w.shape) < density
        if k is not None:
            levels = torch.linspace(-0.3, 0.3, k)
            idx = torch.randint(0, k, w.shape)
            if skew:
                idx = torch.where(torch.rand(w.shape) < 0.85, torch.zeros_like(idx), idx)
            w.copy_(levels[idx])
        w.mul_(keep)
    return model


def _with_crc(blob: bytearray) -> bytes:
    struct.pack_into("<Q", blob, 16, len(blob))
    struct.pack_into("<I", blob, 24, zlib.crc32(bytes(blob[32:])) & 0xFFFFFFFF)
    return bytes(blob)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    valid = {
        "mlp.pakd": to_pakd(_init(Mlp(), 1), {"model": "mlp", "input_shape": [1, 4, 4]}),
        "conv-codebook-huffman.pakd": to_pakd(
            _sparse(_init(ConvNet(), 2), 0.8, k=16, skew=True), {"model": "conv", "input_shape": [1, 8, 8]}
        ),
        "conv-codebook-packed.pakd": to_pakd(
            _sparse(_init(ConvNet(), 3), 0.3, k=4), {"model": "conv", "input_shape": [1, 8, 8]}, huffman=False
        ),
        "conv-int8-sparse.pakd": to_pakd(
            _sparse(_init(ConvNet(), 4), 0.2), {"model": "conv", "input_shape": [1, 8, 8]}, quant=Int8Quantizer()
        ),
        # A fully pruned int8 layer: a sparse tensor without nonzeros (once UB in the loader).
        "conv-int8-empty-layer.pakd": to_pakd(
            _sparse(_init(ConvNet(), 5), 0.0), {"model": "conv", "input_shape": [1, 8, 8]}, quant=Int8Quantizer()
        ),
        # Winograd and strided direct convolutions (int8 weights keep the seed small).
        "conv-winograd-int8.pakd": to_pakd(
            _init(WinoNet(), 6), {"model": "wino", "input_shape": [1, 14, 14]}, quant=Int8Quantizer()
        ),
        # The ops of format 1.1 (squeeze-excite, broadcasting, pad, shuffle, upsample, GELU...).
        "mobile-ops.pakd": to_pakd(_init(MobileOps(), 7), {"model": "mobile", "input_shape": [1, 8, 8]}),
    }
    for name, blob in valid.items():
        (OUT / name).write_bytes(blob)
    mlp = valid["mlp.pakd"]
    broken = {
        "broken-truncated.pakd": mlp[: len(mlp) // 2],
        "broken-header-only.pakd": mlp[:32],
        "broken-bad-magic.pakd": b"PAKX" + mlp[4:],
        "broken-bad-crc.pakd": mlp[:40] + bytes([mlp[40] ^ 0xFF]) + mlp[41:],
        # Checksum fixed up, so the loader gets past it: a truncated GRAPH/TENSORS section.
        "broken-short-sections.pakd": _with_crc(bytearray(mlp[: len(mlp) - 24])),
    }
    for name, blob in broken.items():
        (OUT / name).write_bytes(blob)
    for p in sorted(OUT.iterdir()):
        print(f"{p.stat().st_size:7d}  {p.name}")


if __name__ == "__main__":
    main()
