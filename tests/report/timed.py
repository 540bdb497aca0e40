"""Results-store rows made by really timing a run's teacher and final student at batch 1: the
student's model.pakd and the teacher (lowered to .pakd here) on the native runtime
(``pakd._core.Session``), and the teacher on PyTorch eager, as `pakd bench` would record them."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np

from pakd import _core
from pakd.bench.engines import ModelRef, get_engine
from pakd.bench.timing import measure
from pakd.lower.native import export_pakd

SESSION = "test-session-1"
STARTED = "2026-01-01T00:00:00Z"


def _row(
    role: str,
    source: Path,
    engine: str,
    model_bytes: bytes,
    timing,
    threads: int,
    run: int,
    device: str,
    session: str,
    started_at: str,
) -> dict:
    return {
        "session": session,
        "started_at": started_at,
        "bundle_sha256": hashlib.sha256(model_bytes + engine.encode()).hexdigest(),
        "bundle": str(source),
        "source": str(source.resolve()),
        "role": role,
        "model": f"{role} {source.name}",
        "engine": engine,
        "target": "host",
        "device": device,
        "threads": threads,
        "run": run,
        "median_us": timing.median_us,
        "p90_us": timing.p90_us,
        "min_us": timing.min_us,
        "max_us": timing.max_us,
        "mean_us": timing.mean_us,
        "stdev_us": timing.stdev_us,
        "iterations": timing.count,
        "model_bytes": len(model_bytes),
        "golden_ok": 1,
        "facts": json.dumps({"cpu_model": platform.processor() or platform.machine(), "os": platform.system()}),
    }


def timed_rows(
    run_dir: Path,
    teacher_dir: Path,
    stage: str,
    x: np.ndarray,
    threads: int = 1,
    repeats: int = 60,
    device: str = "local",
    session: str = SESSION,
    started_at: str = STARTED,
) -> list[dict]:
    """Three real measurements: teacher on pakd and torch, student ``stage`` on pakd."""
    student_file = run_dir / stage / "model.pakd"
    student_bytes = student_file.read_bytes()
    teacher_bytes = export_pakd(teacher_dir)
    rows = []
    for role, source, blob in (("teacher", teacher_dir, teacher_bytes), ("student", run_dir / stage, student_bytes)):
        sess = _core.Session(blob, num_threads=threads)
        timing = measure(lambda sess=sess: sess.run(x), warmup=10, repeats=repeats)
        rows.append(_row(role, source, "pakd", blob, timing, threads, 0, device, session, started_at))
    eager = get_engine("torch").open(ModelRef.from_path(teacher_dir), threads)
    timing = measure(lambda: eager(x), warmup=10, repeats=repeats)
    rows.append(
        _row(
            "teacher",
            teacher_dir,
            "torch",
            (teacher_dir / "model.safetensors").read_bytes(),
            timing,
            threads,
            0,
            device,
            session,
            started_at,
        )
    )
    return rows
