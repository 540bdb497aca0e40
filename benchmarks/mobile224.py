"""Phone-scale latency table: MobileNetV3-small, MobileNetV2 and ResNet-18 at 3x224x224 (random
weights, 1000 classes), batch 1, one thread, on every dense engine of this machine, with PaKD's
ratio to the fastest other engine; and, with --rpi4, guest instructions of one inference under qemu
as a Raspberry Pi 4 (cortex-a72) for PaKD and the board's peers (ExecuTorch + XNNPACK, ONNX
Runtime), where that runs in reasonable time.

Run:  .venv/bin/python benchmarks/mobile224.py [--models mobilenetv3-small,mobilenetv2,resnet18]
                                               [--rpi4 mobilenetv3-small] [--out DIR]

The x86 rows come from `pakd bench FOLDER` (its model path: every engine in a process of its own,
median and p90 of timed single-image calls) on a model folder this script writes with random
weights; every row also goes to DIR/results.db. Latency on random weights is that of a trained
dense network (no weight is zero).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_bench_mobile224 import MODELS, SHAPE, model_folder  # noqa: E402

from pakd.bench import BenchConfig  # noqa: E402
from pakd.bench.local import bench_models  # noqa: E402


def x86_rows(folder: Path, db: Path, repeats: int, min_time: float) -> list[tuple[str, float, float]]:
    config = BenchConfig.from_options("1", repeats, 3, min_time, isolate=True)
    result = bench_models(folder, config, db)
    out = []
    for row in result.rows:
        if row.timing is None:
            print(f"  {row.engine}: {row.reason}", flush=True)
            continue
        out.append((row.engine, row.timing.median_us, row.timing.p90_us))
    return out


def rpi4_counts(folder: Path, work: Path) -> list[tuple[str, int | None, str]]:
    from pakd.deploy import peers
    from pakd.deploy.build import BuildConfig, build
    from pakd.deploy.verify import _instructions
    from pakd.modelio import load_model
    from pakd.targets import load_target

    target = load_target("rpi4")
    built = build(folder, BuildConfig.for_target(target, work / "bundle", cache_dir=work / "cache"))
    bundle = built.bundle
    rows: list[tuple[str, int | None, str]] = [("pakd", _instructions(bundle, target), "")]
    model = load_model(folder)
    model = model[0] if isinstance(model, tuple) else model
    x = torch.from_numpy(__import__("numpy").random.default_rng(0).standard_normal((1, *SHAPE), dtype="float32"))
    for r in peers.measure_peers(model, x, target, work / "peers", iters=1):
        rows.append((r.engine, r.instructions, r.reason))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rpi4", default="", help="models to also count under qemu as rpi4 (comma-separated)")
    parser.add_argument("--out", type=Path, default=Path("build/mobile224"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / "results.db"
    table = []
    for name in args.models.split(","):
        folder = model_folder(args.out, name)
        print(f"{name}: timing on this machine ...", flush=True)
        rows = x86_rows(folder, db, args.repeats, args.min_time)
        others = [r for r in rows if r[0] != "pakd"]
        best = min(others, key=lambda r: r[1]) if others else None
        for engine, med, p90 in rows:
            ratio = f"{best[1] / med:.2f}x vs {best[0]}" if best and engine == "pakd" else ""
            table.append((name, engine, f"{med:,.0f}", f"{p90:,.0f}", ratio))
        if name in args.rpi4.split(","):
            print(f"{name}: counting under qemu (rpi4, cortex-a72) ...", flush=True)
            counts = rpi4_counts(folder, args.out / f"{name}-rpi4")
            ok = [c for c in counts if c[1]]
            best_peer = min((c for c in ok if c[0] != "pakd"), key=lambda c: c[1] or 0, default=None)
            for engine, n, reason in counts:
                ratio = f"{best_peer[1] / n:.2f}x vs {best_peer[0]}" if n and best_peer and engine == "pakd" else ""
                table.append((name, f"{engine} (rpi4 insns)", f"{n:,}" if n else reason, "", ratio))
    print("\n| model | engine | median us | p90 us | PaKD vs best other |\n|---|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
