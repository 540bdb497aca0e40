"""Same-process, interleaved batch-1 latency of one model on ONNX Runtime and on PaKD's runtime
(with its default kernel choice, and with Winograd off), for a box shared with other work.

Run:  .venv/bin/python benchmarks/interleaved_teachers.py runs/resnet20 --rounds 7 --calls 300

Each round times `--calls` single-image calls on every engine in turn (order rotated every round)
and records each engine's median; a load spike then hits all engines of that round, not one row.
Prints every round and the median over rounds, one thread each. The model is a compress run
folder (its teacher is used), a model folder, or a .pakd file (PaKD rows only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from pakd._core import Session
from pakd.bench import ModelRef, get_engine
from pakd.data import load_fashion_mnist
from pakd.lower.native import export_pakd

def _teacher_folder(path: Path) -> Path:
    run = path / "run.json"
    if run.is_file():
        return Path(json.loads(run.read_text())["teacher"])
    return path

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    folder = _teacher_folder(args.model)
    x = load_fashion_mnist().test.images[:1].numpy().copy()
    runners = {}
    if folder.suffix != ".pakd":
        runners["onnxruntime"] = get_engine("onnxruntime").open(ModelRef.from_path(folder), 1)
        with tempfile.TemporaryDirectory() as tmp:
            blob = export_pakd(folder, Path(tmp) / "model.pakd")
    else:
        blob = folder.read_bytes()
    for name, winograd in (("pakd", 0), ("pakd winograd=-1", -1)):
        session = Session(blob, num_threads=1, winograd=winograd)
        runners[name] = session.run
    names = list(runners)
    for name in names:  # warm-up
        for _ in range(50):
            runners[name](x)
    medians: dict[str, list[float]] = {n: [] for n in names}
    print(f"{folder}  load average {os.getloadavg()[0]:.2f}")
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            run = runners[name]
            times = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                run(x)
                times.append(time.perf_counter() - t0)
            medians[name].append(statistics.median(times) * 1e6)
        print(f"round {r + 1}: " + "  ".join(f"{n} {medians[n][-1]:.1f} us" for n in names), flush=True)
    print("median over rounds: " + "  ".join(f"{n} {statistics.median(medians[n]):.1f} us" for n in names))
    print(f"load average {os.getloadavg()[0]:.2f}")

if __name__ == "__main__":
    main()
