"""Peak resident memory (RSS) of `pakd train` and `pakd compress`: resnet20 and the phone-scale
zoo models on the built-in Fashion-MNIST, and the phone-scale models at 3x224x224 on .npz files the
script makes (Fashion-MNIST upsampled to 224x224 RGB: 640 images, and 1,520, the most that the
default --data-memory keeps in memory), against the project's 3 GB promise.

Run:  .venv/bin/python benchmarks/peak_rss.py [--limit 150] [--out build/peak-rss] [--only NAME,...]

Each command runs in a process of its own; its peak RSS is the kernel's high-water mark
(getrusage(RUSAGE_CHILDREN).ru_maxrss of a wrapper process that runs only that command). A command
still running after --limit seconds is stopped with SIGINT (the peak of a training epoch comes in
its first batches and its evaluation; the row says "stopped" so nobody reads it as a finished
run). The compress rows need a teacher: the script trains one (1 epoch) first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

GiB = 1024**3
PROMISE = 3 * GiB

WRAPPER = r"""
import json, resource, signal, subprocess, sys
argv, limit = json.loads(sys.argv[1]), float(sys.argv[2])
p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
try:
    _, err = p.communicate(timeout=limit)
    state = "finished" if p.returncode == 0 else f"failed ({p.returncode}): {err.strip().splitlines()[-1:]}"
except subprocess.TimeoutExpired:
    p.send_signal(signal.SIGINT)
    try:
        p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
    state = f"stopped after {limit:.0f} s"
print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "state": state}))
"""


def peak(argv: list[str], limit: float) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps(argv), str(limit)], capture_output=True, text=True, check=True
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return int(r["maxrss_kib"]) * 1024, str(r["state"])


def make_npz(path: Path, n_train: int = 512, n_test: int = 128) -> Path:
    """Fashion-MNIST images upsampled to 224x224 and tinted to RGB, uint8 NHWC."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from pakd.data import load_dataset

    if path.is_file():
        return path
    data = load_dataset("fashion-mnist")
    g = torch.Generator().manual_seed(0)

    def part(split, n):
        x = split.take(torch.arange(n)).images
        x = (x - x.amin()) / (x.amax() - x.amin())
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
        x = x * (torch.rand(n, 3, 1, 1, generator=g) * 0.7 + 0.3)
        return (x.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8), split.labels[:n].numpy()

    xtr, ytr = part(data.train, n_train)
    xte, yte = part(data.test, n_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=150.0, help="seconds per command before it is stopped")
    parser.add_argument("--out", type=Path, default=Path("build/peak-rss"))
    parser.add_argument("--only", default="", help="comma-separated row names")
    args = parser.parse_args()
    runs = (args.out / "runs").resolve()
    pakd = [sys.executable, "-m", "pakd"]
    npz = str(make_npz(args.out / "fm224.npz"))
    train = [*pakd, "train", "--runs-dir", str(runs), "--epochs", "1", "--quiet", "--force"]
    rows: list[tuple[str, list[str], float]] = [
        ("train resnet20 (fashion-mnist)", [*train, "--model", "resnet20", "--name", "r20"], args.limit),
        ("compress resnet20 (recipes/resnet20.toml)", [], args.limit),
    ]
    for m in ("mobilenetv3-small", "mobilenetv2", "resnet18"):
        rows.append((f"train {m} (fashion-mnist, 1x28x28)", [*train, "--model", m, "--name", f"{m}-28"], args.limit))
    for m, batch in (("mobilenetv3-small", 32), ("mobilenetv2", 32), ("mobilenetv2", 16), ("resnet18", 32)):
        rows.append(
            (
                f"train {m} (.npz 3x224x224, batch {batch})",
                [*train, "--model", m, "--data", npz, "--batch-size", str(batch), "--name", f"{m}-224-{batch}"],
                args.limit,
            )
        )
    # the most data the default --data-memory (1 GiB) keeps as tensors at 3x224x224, with the
    # reading pass's chunk: 1,520 images, 873 MiB as float32
    full = str(make_npz(args.out / "fm224-1520.npz", n_train=1280, n_test=240))
    for m in ("mobilenetv2", "resnet18"):
        rows.append(
            (
                f"train {m} (.npz 1,520 images 3x224x224 kept in memory, batch 32)",
                [*train, "--model", m, "--data", full, "--batch-size", "32", "--name", f"{m}-224-full"],
                args.limit,
            )
        )
    only = set(filter(None, args.only.split(",")))
    table = []
    for name, argv, limit in rows:
        if only and not any(o in name for o in only):
            continue
        if name.startswith("compress resnet20"):
            teacher = runs / "r20" / "teacher"
            if not (teacher / "spec.json").is_file():
                print("  (training the resnet20 teacher for 1 epoch first)", flush=True)
                subprocess.run([*train, "--model", "resnet20", "--name", "r20"], check=True)
            argv = [*pakd, "compress", "--teacher", str(teacher), "--recipe", "resnet20", "--runs-dir", str(runs)]
            argv += ["--name", "r20-c", "--quiet"]
        print(f"{name} ...", flush=True)
        rss, state = peak(argv, limit)
        table.append((name, rss, state))
        print(f"  peak RSS {rss / GiB:.2f} GiB ({state})", flush=True)
    print("\n| command | peak RSS | under 3 GB | run |\n|---|---|---|---|")
    for name, rss, state in table:
        print(f"| {name} | {rss / 2**20:,.0f} MiB | {'yes' if rss < PROMISE else 'NO'} | {state} |")


if __name__ == "__main__":
    main()
