"""Which convolution method wins on the board, in instructions: the data the ARM cost model of
``csrc/src/runtime/conv-plan.cc`` is fitted on.

For each convolution shape (the LeNet-5 and ResNet-20 layers and channel-pruned variants of
them), a one-layer model (conv + ReLU, random weights) runs under qemu with the board's CPU model
through the board's ``pakd-run``, once per method the session can be told to use (``--winograd
on|off``; with 20-50% of the weights left, the same weights forced dense with
``--sparse-max-density -1``), and its guest instructions of one inference are counted. The last
columns say what the session's own pick (``auto``) costs and how much it loses against the best
of the forced methods, so a cost model is judged by the instructions it wastes.

    .venv/bin/python benchmarks/arm_conv_costs.py [--board rpi4] [--build build/arm-costs]

Instructions are not time; on a Cortex-A72 they are the closest stand-in qemu gives.
"""

from __future__ import annotations

import argparse
import tempfile
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="rpi4")
    ap.add_argument("--build", type=Path, default=Path("build/arm-costs"))
    args = ap.parse_args()
    target = load_target(args.board)
    run = cross_build_native(target, args.build).pakd_run
    plugin = build_plugin()

    def count(model: Path, *opts: str) -> int:
        return instructions_per_inference(target, [run, model, "--threads", "1", *opts], iters=3, plugin=plugin)

    print(f"{args.board} under qemu -cpu {target.emulator_cpu}: instructions of one conv+ReLU, 1 thread")
    lost = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"{'dense cin->cout hxh k':<26}{'direct':>12}{'winograd':>12}{'auto':>12}  pick loses")
        for cin, cout, h, k, pad in DENSE_SHAPES:
            path = _model(folder, f"d{cin}-{cout}-{h}-{k}", cin, cout, h, k, pad)
            direct = count(path, "--winograd", "off")
            wino = count(path, "--winograd", "on") if k == 3 else direct
            auto = count(path)
            lost += auto - min(direct, wino)
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


if __name__ == "__main__":
    main()
