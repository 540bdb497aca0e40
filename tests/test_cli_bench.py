"""`pakd bench --device local` as a user runs it: a tiny compress run, few repeats."""

from __future__ import annotations

import json

import pytest
import torch

from pakd.modelio import save_model
from pakd.models import build_model
from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # pakd bench in subprocesses, timing every engine

SPEC = {"model": {"name": "lenet-300-100", "args": {}}, "data": {"name": "fashion-mnist", "input_shape": [1, 28, 28]}}
FAST = ("--repeats", "5", "--warmup", "1", "--min-time", "0", "--quiet", "--same-process")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """runs/<name>/ as `pakd compress` leaves it: run.json naming the teacher, finished stages."""
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    teacher = build_model("lenet-300-100")
    save_model(root / "tiny-fashion-mnist" / "teacher", teacher, SPEC)
    student = build_model("lenet-300-100")
    student.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(p.abs() > p.abs().median())  # half the weights gone
    save_model(root / "tiny" / "stage-1", student, SPEC)
    (root / "tiny" / "run.json").write_text(json.dumps({"teacher": str(root / "tiny-fashion-mnist" / "teacher")}))
    return root / "tiny"


def test_bench_local_times_teacher_and_student_and_writes_json(run_folder, tmp_path):
    out = tmp_path / "bench.json"
    db = tmp_path / "results.db"
    res = run_cli("bench", str(run_folder), "--device", "local", *FAST, "--json", str(out), "--db", str(db))
    assert res.returncode == 0, res.stderr
    for text in (
        "engine",
        "median us",
        "p90 us",
        "vs best teacher",
        "same engine",
        "onnxruntime",
        "torch",
        "pakd",
        "teacher (tiny-fashion-mnist/teacher)",
        "student (tiny/stage-1)",
        "best teacher engine",
    ):
        assert text in res.stdout, text
    report = json.loads(out.read_text())
    assert report["device"] == "local" and report["batch"] == 1 and report["config"]["threads"] == [1]
    assert report["input"] == {"data": "fashion-mnist", "split": "test", "index": 0}
    rows = {(r["role"], r["engine"]): r for r in report["rows"]}
    assert rows[("teacher", "torch")]["model"] == "teacher (tiny-fashion-mnist/teacher)"
    assert set(rows) == {
        ("teacher", "torch"),
        ("teacher", "onnxruntime"),
        ("teacher", "executorch"),
        ("teacher", "pakd"),
        ("student", "pakd"),
        ("student", "torch"),
    }
    for key in (("teacher", "torch"), ("teacher", "onnxruntime"), ("teacher", "executorch"), ("student", "torch")):
        row = rows[key]
        assert row["timing"]["count"] >= 5 and row["timing"]["median_us"] > 0 and row["max_abs_diff"] < 1e-4
        assert row["threads"] == 1 and row["vs_best_teacher"] > 0
    assert rows[("teacher", "torch")]["same_engine"] == 1.0
    assert sum(r["baseline"] for r in report["rows"]) == 1
    for row in report["rows"]:  # the native runtime may not be built yet: then a reason, not a crash
        assert (row["timing"] is None) == bool(row["reason"])
    # the same rows went to the results store, one session, device local, roles and sources kept
    from pakd.bench.results import read_rows

    stored = {(r["role"], r["engine"]): r for r in read_rows(db)}
    assert set(stored) == set(rows) and len({r["session"] for r in stored.values()}) == 1
    for key, r in stored.items():
        assert r["device"] == "local" and r["median_us"] == pytest.approx(rows[key]["timing"]["median_us"])
    assert stored[("student", "pakd")]["source"] == str((run_folder / "stage-1").resolve())
    assert stored[("teacher", "onnxruntime")]["source"] == str(
        (run_folder.parent / "tiny-fashion-mnist" / "teacher").resolve()
    )


def test_bench_two_thread_counts_give_rows_for_each(run_folder, tmp_path):
    res = run_cli("bench", str(run_folder), "--threads", "1,2", *FAST, "--db", str(tmp_path / "r.db"))
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "onnxruntime" in ln and "teacher" in ln]
    assert len(lines) == 2


@pytest.mark.parametrize("device", ["pi4", "rpi4"])
def test_model_on_a_device_asks_for_bundles(run_folder, device):
    """A model or run is timed on this machine's engines; a device takes bundles."""
    res = run_cli("bench", str(run_folder), "--device", device)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert f"--device {device}" in res.stderr and "pakd build" in res.stderr


@pytest.mark.parametrize("args,message", [(("--threads", "0"), "--threads"), (("--repeats", "0"), "repeats >= 1")])
def test_bad_options_are_one_line_errors(run_folder, args, message):
    res = run_cli("bench", str(run_folder), *args)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_not_a_model_is_a_one_line_error(tmp_path):
    res = run_cli("bench", str(tmp_path))
    assert res.returncode == 2 and "neither a model folder" in res.stderr and "Traceback" not in res.stderr
