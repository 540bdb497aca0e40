"""Wall time of one ``pakd compress`` stage at 1 and N data-parallel processes (same global batch),
their ratio, and the test accuracy of both.

Run:  .venv/bin/python benchmarks/ddp_scaling.py [--data fashion-mnist] [--nproc 2] [--rounds 2]

A LeNet-5 teacher is trained once (``pakd train``, --teacher-epochs, reused when present in
--work), then the same one-stage recipe (channel pruning to half the channels + distillation from
the teacher, --stage-epochs epochs, global batch --batch) is compressed by ``pakd compress`` with
one process and with ``--nproc N`` (gloo on the CPU), alternating, --rounds times each, every run
in a fresh run folder. The cores are shared out: one process gets every core's thread, each of N
processes ``cores / N`` (``--threads 0``); --one-threads T gives the one process T threads instead. Reported per run: the stage's training time (the sum
of its epochs, validation included, from spec.json), the wall time of the whole command (process
start-up, data loading and the teacher's evaluation included) and the stage's test top-1; then
the median of each and the 1-process / N-process ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """
[recipe]
name = "ddp-scaling"
batch_size = {batch}
[[stage]]
name = "channels"
epochs = {epochs}
lr = 0.02
augment = "crop"
[stage.prune]
method = "channel"
criterion = "l1"
schedule = "oneshot"
amount = 0.5
[stage.distill]
teachers = ["teacher"]
alpha = 0.5
temperature = 2.0
"""


def _pakd(*args: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pakd", *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"pakd {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128, help="global batch of both runs")
    parser.add_argument("--stage-epochs", type=int, default=1)
    parser.add_argument("--teacher-epochs", type=int, default=2)
    parser.add_argument(
        "--one-threads", type=int, default=0, help="threads of the 1-process run (0: every core, as --threads 0)"
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "pakd-ddp-scaling")
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    args.work.mkdir(parents=True, exist_ok=True)
    recipe = args.work / "recipe.toml"
    recipe.write_text(RECIPE.format(batch=args.batch, epochs=args.stage_epochs))
    # the teacher, one process (reused when the same settings are there)
    _pakd(
        "train",
        "--model",
        "lenet5",
        "--data",
        args.data,
        "--epochs",
        str(args.teacher_epochs),
        "--runs-dir",
        str(args.work),
        "--name",
        "teacher",
        "--quiet",
    )
    teacher = args.work / "teacher" / "teacher"
    one_threads = args.one_threads or cores
    print(
        f"machine: {cores} cores; data {args.data}; global batch {args.batch}; {args.stage_epochs} epoch(s); "
        f"threads: 1 process {one_threads}, {args.nproc} processes {max(1, cores // args.nproc)} each"
    )
    print(f"{'processes':>9} {'round':>5} {'stage s':>8} {'command s':>9} {'test top-1':>10}")
    results: dict[int, list[tuple[float, float, float]]] = {1: [], args.nproc: []}
    for r in range(args.rounds):
        for n in (1, args.nproc) if r % 2 == 0 else (args.nproc, 1):
            name = f"run-{n}-{r}"
            run = args.work / name
            subprocess.run(["rm", "-rf", str(run)], check=True)
            wall = _pakd(
                "compress",
                "--teacher",
                str(teacher),
                "--recipe",
                str(recipe),
                "--runs-dir",
                str(args.work),
                "--name",
                name,
                "--threads",
                str(args.one_threads if n == 1 else 0),
                "--quiet",
                "--nproc",
                str(n),
            )
            spec = json.loads((run / "stage-1" / "spec.json").read_text())
            stage_s = sum(h["seconds"] for h in spec["history"])
            top1 = spec["metrics"]["test_top1"]
            results[n].append((stage_s, wall, top1))
            print(f"{n:>9} {r + 1:>5} {stage_s:>8.2f} {wall:>9.2f} {100 * top1:>9.2f}%", flush=True)

    med = {n: [statistics.median(v[i] for v in rows) for i in range(3)] for n, rows in results.items()}
    one, many = med[1], med[args.nproc]
    print(
        f"median stage time: 1 process {one[0]:.2f} s, {args.nproc} processes {many[0]:.2f} s, "
        f"ratio {one[0] / many[0]:.2f}x (command: {one[1]:.1f} s vs {many[1]:.1f} s, {one[1] / many[1]:.2f}x)"
    )
    print(f"test top-1: 1 process {100 * one[2]:.2f}%, {args.nproc} processes {100 * many[2]:.2f}%")


if __name__ == "__main__":
    main()
