"""A small real compress run (LeNet-5 on the synthetic task: channel pruning, then unstructured
pruning, then weight sharing), a results store made with the store's schema, and headless Chromium."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from pakd.bench.results import COLUMNS
from pakd.pipeline import CompressJob, compress
from pakd.report import RESULTS_SCHEMA
from pakd.train import TeacherJob, TrainConfig, train_teacher
from tests.conftest import QuietProgress

REPO = Path(__file__).resolve().parents[2]

RECIPE = """
[recipe]
name = "tiny-report"
batch_size = 100
huffman = true
[[stage]]
name = "channels"
epochs = 1
lr = 0.02
augment = "none"
[stage.prune]
method = "channel"
criterion = "l1"
target = "macs"
amount = 0.5
[stage.distill]
teachers = ["teacher"]
[[stage]]
name = "prune"
epochs = 1
lr = 0.01
augment = "none"
[stage.prune]
method = "unstructured"
amount = 0.7
[stage.distill]
teachers = ["teacher"]
[[stage]]
name = "share"
epochs = 1
lr = 0.002
augment = "none"
[stage.quantize]
method = "kmeans"
bits = { conv = 6, linear = 4 }
[stage.distill]
teachers = ["teacher"]
"""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """runs/<name>/ made here: a 1-epoch teacher and three 1-epoch stages (about a minute on 2 cores)."""
    root = tmp_path_factory.mktemp("report-run")
    teacher = root / "lenet5-synthetic" / "teacher"
    train_teacher(
        TeacherJob(
            model="lenet5",
            data="synthetic",
            train=TrainConfig(epochs=1, batch_size=100, augment="none", lr=0.02, threads=1),
        ),
        teacher,
    )
    recipe = root / "tiny-report.toml"
    recipe.write_text(RECIPE)
    run = root / "tiny-report"
    compress(CompressJob(recipe_path=recipe, teacher_dir=teacher, run_dir=run, threads=1), QuietProgress)
    return run


def make_db(path: Path, rows: list[dict]) -> Path:
    """A results store with the store's exact schema holding ``rows`` (missing columns NULL)."""
    con = sqlite3.connect(path)
    with con:
        con.executescript(RESULTS_SCHEMA)
        for r in rows:
            con.execute(
                f"INSERT INTO results ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                [r.get(c) for c in COLUMNS],
            )
    con.close()
    return path


def chromium_binary() -> str:
    """Debian's headless Chromium; its absence fails the test with the command that installs it."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "chromium is not installed: the report's page is checked in headless Chromium; "
            "install it with `sudo apt-get install chromium`"
        )
    return path


def chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            chromium_binary(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def row(
    role: str,
    source: Path,
    engine: str,
    median_us: float | None,
    *,
    device: str = "local",
    threads: int = 1,
    session: str = "s1",
    started_at: str = "2026-01-01T00:00:00Z",
    run: int = 0,
    **extra,
) -> dict:
    """One results-store row built by hand (for the logic tests; tests/report/timed.py makes real ones)."""
    return {
        "session": session,
        "started_at": started_at,
        "bundle_sha256": f"{role}-{Path(source).name}-{engine}-{median_us}-{extra.get('model', '')}",
        "bundle": f"build/{role}-{engine}",
        "source": str(source),
        "role": role,
        "model": role,
        "engine": engine,
        "target": "host",
        "device": device,
        "threads": threads,
        "run": run,
        "median_us": median_us,
        "p90_us": median_us * 1.1 if median_us is not None else None,
        "iterations": 200,
        "golden_ok": 1,
        **extra,
    }


@pytest.fixture(scope="session")
def tiny_teacher(tiny_run) -> Path:
    import json

    return Path(json.loads((tiny_run / "run.json").read_text())["teacher"])
