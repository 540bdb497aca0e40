"""Which convolution method wins on the board, in instructions: the data the ARM cost model of
``csrc/src/runtime/conv-plan.cc`` is fitted on.

For each convolution shape (the LeNet-5 and ResNet-20 layers and channel-pruned variants of
them), a one-layer model (conv + ReLU, random weights) runs under qemu with the board's CPU model
through the board's ``pakd-run``, once per method the session can be told to use (``--winograd
on|off``; with 20-50% of the weights left, the same weights forced dense with
``--sparse-max-density -1``), and its guest instructions of one inference are counted. The last
columns say what the session's own pick (``auto``) costs and how much it loses against the best
of the forced methods, so a cost model is judged by the instructions it wastes.

    .venv/bin/python benchmarks/arm_conv_costs.py [--board rpi4] [--build build/arm-costs] [--fit]

``--fit`` also counts direct and Winograd on 59 one-layer 3x3 convolutions (seeded random
channel counts 3..32 on 28x28 / 14x14 / 7x7, the 3x3 shapes above, a pruned ResNet-20's) and
searches the AArch64 constants of the Winograd-vs-direct model (``wino_transforms`` and
``wide_3x3`` of ``kCosts``, a Python copy of ``dense_direct_units`` / ``winograd_units``) for the
fewest instructions lost by wrong picks.

Instructions are not time; on a Cortex-A72 they are the closest stand-in qemu gives.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from pakd.deploy.crossbuild import cross_build_native
from pakd.deploy.emulate import build_plugin, instructions_per_inference
from pakd.lower.native import export_pakd
from pakd.targets import load_target

# (cin, cout, h, k, padding): stride 1, square images
DENSE_SHAPES = [
    (1, 20, 28, 5, 0),
    (20, 50, 12, 5, 0),
    (1, 5, 28, 5, 0),
    (5, 12, 12, 5, 0),
    (16, 16, 28, 3, 1),
    (32, 32, 14, 3, 1),
    (64, 64, 7, 3, 1),
    (8, 8, 28, 3, 1),
    (4, 6, 28, 3, 1),
    (12, 14, 14, 3, 1),
    (24, 30, 7, 3, 1),
    (6, 8, 28, 3, 1),
    (1, 16, 28, 3, 1),
]
# a pruned ResNet-20's (runs/resnet20-1epoch) 3x3 stride-1 layers on 14x14 and 7x7
PRUNED_SHAPES = [(12, 9, 14), (9, 11, 14), (11, 9, 14), (7, 9, 14), (9, 7, 14), (27, 18, 7), (18, 27, 7)]
SPARSE_SHAPES = [(1, 10, 28, 5, 0, 0.2), (10, 21, 12, 5, 0, 0.2), (16, 16, 28, 3, 1, 0.5), (32, 32, 14, 3, 1, 0.3)]


class Conv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def _model(folder: Path, name: str, cin: int, cout: int, h: int, k: int, pad: int, density: float = 1.0) -> Path:
    torch.manual_seed(0)
    m = Conv(cin, cout, k, pad).eval()
    if density < 1.0:
        with torch.no_grad():
            w = m.conv.weight
            w[torch.rand_like(w) >= density] = 0
    path = folder / f"{name}.pakd"
    export_pakd(m, path, input_shape=(cin, h, h))
    return path


def _ru(v: int, a: int) -> int:
    return (v + a - 1) // a * a


def _direct_units(cin: int, cout: int, h: int, wide_3x3: float, oc_layout: float = 1.15) -> float:
    """conv-plan.cc's dense_direct_units for a 3x3 pad-1 layer on h x h."""
    taps = cin * 9
    wide = _ru(cout, 4) * _ru(h * (h + 2), 24) * taps * wide_3x3
    return min(wide, _ru(cout, 16) * _ru(h * h, 6) * taps * oc_layout)


def _winograd_units(cin: int, cout: int, h: int, transforms: float, direct: float = 0.84) -> float:
    """conv-plan.cc's winograd_units for a 3x3 pad-1 layer on h x h."""
    tiles = ((h + 3) // 4) ** 2
    gemm = 36 * _ru(min(tiles, 24), 6) * ((tiles + 23) // 24) * cin * _ru(cout, 8) / 8
    tr = tiles * (30 * _ru(cin, 8) / 8 + 20 * _ru(cout, 16) / 8) * 2
    return (gemm + transforms * tr) * 8 / direct


def _fit(count: Callable[..., int], folder: Path, measured: list[tuple[int, int, int, int, int]]) -> None:
    rng = random.Random(1)
    channels = [3, 4, 6, 8, 9, 12, 16, 18, 24, 27, 32]
    shapes = {(rng.choice(channels), rng.choice(channels), h) for h in (28, 14, 7) for _ in range(16)}
    shapes |= set(PRUNED_SHAPES)
    shapes -= {(cin, cout, h) for cin, cout, h, _, _ in measured}
    data = list(measured)
    for cin, cout, h in sorted(shapes):
        path = _model(folder, f"f{cin}-{cout}-{h}", cin, cout, h, 3, 1)
        data.append((cin, cout, h, count(path, "--winograd", "off"), count(path, "--winograd", "on")))

    def lost(transforms: float, wide_3x3: float) -> int:
        total = 0
        for cin, cout, h, direct, wino in data:
            wins = _winograd_units(cin, cout, h, transforms) < _direct_units(cin, cout, h, wide_3x3)
            total += (wino if wins else direct) - min(direct, wino)
        return total

    grid = [(lost(t, f), t, f) for t in (1.5, 2.0, 2.5, 3.0, 3.75, 4.5) for f in (0.7, 0.75, 0.8, 0.85, 0.9, 1.0)]
    print(f"fit on {len(data)} 3x3 shapes: instructions lost by the picks (wino_transforms, wide_3x3)")
    for loss, t, f in sorted(grid)[:6]:
        print(f"  {t:4.2f} {f:4.2f}  {loss:>9,}")
    print(f"  x86 weights (3.75, 1.00): {lost(3.75, 1.0):,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="rpi4")
    ap.add_argument("--build", type=Path, default=Path("build/arm-costs"))
    ap.add_argument("--fit", action="store_true", help="also fit the Winograd-vs-direct constants (59 shapes)")
    args = ap.parse_args()
    target = load_target(args.board)
    run = cross_build_native(target, args.build).pakd_run
    plugin = build_plugin()

    def count(model: Path, *opts: str) -> int:
        return instructions_per_inference(target, [run, model, "--threads", "1", *opts], iters=3, plugin=plugin)

    print(f"{args.board} under qemu -cpu {target.emulator_cpu}: instructions of one conv+ReLU, 1 thread")
    lost = 0
    measured: list[tuple[int, int, int, int, int]] = []  # 3x3 pad 1: cin, cout, h, direct, winograd
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"{'dense cin->cout hxh k':<26}{'direct':>12}{'winograd':>12}{'auto':>12}  pick loses")
        for cin, cout, h, k, pad in DENSE_SHAPES:
            path = _model(folder, f"d{cin}-{cout}-{h}-{k}", cin, cout, h, k, pad)
            direct = count(path, "--winograd", "off")
            wino = count(path, "--winograd", "on") if k == 3 else direct
            auto = count(path)
            lost += auto - min(direct, wino)
            if k == 3 and pad == 1:
                measured.append((cin, cout, h, direct, wino))
            print(
                f"{cin:>4}->{cout:<4}{h:>3}x{h:<3}{k}x{k:<8}{direct:>12,}{wino:>12,}{auto:>12,}"
                f"  {100 * (auto / min(direct, wino) - 1):5.1f}%"
            )
        print(f"{'sparse cin->cout hxh k dens':<30}{'dense':>10}{'auto':>12}  auto vs dense")
        for cin, cout, h, k, pad, dens in SPARSE_SHAPES:
            path = _model(folder, f"s{cin}-{cout}-{h}-{k}", cin, cout, h, k, pad, dens)
            dense = count(path, "--sparse-max-density", "-1")
            auto = count(path)
            lost += max(0, auto - dense)
            print(
                f"{cin:>4}->{cout:<4}{h:>3}x{h:<3}{k}x{k:<3}{dens:>6.0%}{dense:>10,}{auto:>12,}  {auto / dense:6.2f}x"
            )
        print(f"instructions the automatic picks lose in all: {lost:,}")
        if args.fit:
            _fit(count, folder, measured)


if __name__ == "__main__":
    main()
