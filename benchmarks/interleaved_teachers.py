"""Same-process, interleaved batch-1 latency of a teacher on ONNX Runtime, ExecuTorch + XNNPACK and
PaKD's runtime (default kernel choice, and Winograd off), and of its student on PaKD, for a shared
machine.

Run:  .venv/bin/python benchmarks/interleaved_teachers.py runs/resnet20 --rounds 7 --calls 300

Each round times `--calls` single-image calls (one real Fashion-MNIST test image) on every row in
turn (order rotated every round) and records each row's median, so a load spike hits every row of
that round rather than one. Prints every round, the median over rounds and, for a compress run
folder, the student's ratio to the fastest teacher row of each round, each row's fastest round
(load only adds time, so that is the least disturbed figure) and the median and range of the
per-round ratios. One thread everywhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from pakd._core import Session
from pakd.bench import get_engine, plan_cases
from pakd.bench.local import STUDENT, sample_image
from pakd.lower.native import export_pakd


def _pakd_blob(ref) -> bytes:
    if ref.pakd_file is not None:
        return ref.pakd_file.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        return export_pakd(ref.folder, Path(tmp) / "model.pakd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="compress run folder, model folder or .pakd file")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    targets = plan_cases(args.model)
    x, _ = sample_image(targets)
    runners, teacher_rows = {}, []
    for target in targets:
        role = target.role  # teacher, student, or model (a plain model folder / .pakd file)
        if role != STUDENT and target.model.folder is not None:
            for engine in ("onnxruntime", "executorch"):
                missing = get_engine(engine).availability()
                if missing:
                    print(f"{role} {engine}: not timed ({missing})")
                    continue
                runners[f"{role} {engine}"] = get_engine(engine).open(target.model, 1)
                teacher_rows.append(f"{role} {engine}")
        blob = _pakd_blob(target.model)
        for suffix, winograd in (("", 0), (" winograd=-1", -1)):
            name = f"{role} pakd{suffix}"
            runners[name] = Session(blob, num_threads=1, winograd=winograd).run
            if role != STUDENT:
                teacher_rows.append(name)
    names = list(runners)
    for name in names:  # warm-up
        for _ in range(50):
            runners[name](x)
    medians: dict[str, list[float]] = {n: [] for n in names}
    print(f"{args.model}  load average before {os.getloadavg()[0]:.2f}")
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            run = runners[name]
            times = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                run(x)
                times.append(time.perf_counter() - t0)
            medians[name].append(statistics.median(times) * 1e6)
        line = "  ".join(f"{n} {medians[n][-1]:.1f}" for n in names)
        if "student pakd" in medians:
            best = min(medians[n][-1] for n in teacher_rows)
            line += f"  | best teacher / student {best / medians['student pakd'][-1]:.2f}x"
        print(f"round {r + 1} (us): {line}", flush=True)
    print("median over rounds (us): " + "  ".join(f"{n} {statistics.median(medians[n]):.1f}" for n in names))
    if "student pakd" in medians:
        # Load only ever adds time: each row's fastest round is its least disturbed one.
        fastest = {n: min(medians[n]) for n in names}
        ratios = sorted(
            min(medians[n][r] for n in teacher_rows) / medians["student pakd"][r] for r in range(args.rounds)
        )
        print(
            "fastest round (us): "
            + "  ".join(f"{n} {fastest[n]:.1f}" for n in names)
            + f"  | best teacher / student {min(fastest[n] for n in teacher_rows) / fastest['student pakd']:.2f}x"
        )
        print(
            f"best teacher / student per round: median {statistics.median(ratios):.2f}x, "
            f"range {ratios[0]:.2f}-{ratios[-1]:.2f}x"
        )
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
