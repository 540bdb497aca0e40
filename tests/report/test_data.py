"""Gathering a report's data: the run folder (ledger, stages, per-layer figures from the weights)
and the rows of the results store that belong to the run."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import pytest

from pakd.modelio import read_spec
from pakd.report import ReportError, gather, read_results
from pakd.report.data import compare
from tests.report.conftest import REPO, make_db, row


def test_stages_follow_the_ledger_and_sizes_are_the_pakd_files(tiny_run):
    data = gather(tiny_run, None)
    ledger = json.loads((tiny_run / "ledger.json").read_text())["rows"]
    assert [s.name for s in data.stages] == [r["stage"] for r in ledger]
    assert data.huffman is True
    for stage in data.stages[1:]:
        assert stage.deployed_bytes == (stage.folder / "model.pakd").stat().st_size
    assert data.size_ratio == pytest.approx(data.teacher_dense_bytes / data.student.deployed_bytes)
    assert data.drop_pt == pytest.approx(100 * (ledger[0]["test_top1"] - ledger[-1]["test_top1"]))


def test_layers_show_remaining_channels_and_the_weights_zeros(tiny_run):
    data = gather(tiny_run, None)
    structure = read_spec(data.student.folder)["structure"]["layers"]
    assert data.layers, "the final student has conv/linear layers"
    for layer in data.layers:
        assert (layer.in_channels, layer.out_channels) == (structure[layer.name]["in"], structure[layer.name]["out"])
    assert any(layer.out_channels < layer.teacher_out for layer in data.layers)  # the channel stage pruned some
    zeros = sum(layer.weights - layer.nonzero_weights for layer in data.layers)
    assert zeros / sum(layer.weights for layer in data.layers) == pytest.approx(
        data.student.row["weight_sparsity"], abs=1e-9
    )


def test_only_this_runs_rows_are_read(tiny_run, tiny_teacher, tmp_path):
    other_run = tmp_path / "other-run" / "stage-1"
    db = make_db(
        tmp_path / "results.db",
        [
            row("teacher", tiny_teacher.resolve(), "torch", 500.0),
            row("student", (tiny_run / "stage-3").resolve(), "pakd", 100.0),
            row("student", other_run, "pakd", 1.0),  # another run's student
            row("teacher", tmp_path / "another-teacher", "torch", 9.0),  # another teacher
            row("student", tiny_teacher.resolve(), "pakd", 2.0),  # the teacher's folder under role student
        ],
    )
    rows = read_results(db, tiny_teacher, tiny_run)
    assert sorted((r["role"], r["median_us"]) for r in rows) == [("student", 100.0), ("teacher", 500.0)]


def test_sources_match_through_symlinks(tiny_run, tiny_teacher, tmp_path):
    link = tmp_path / "runs-link"
    link.symlink_to(tiny_run.parent, target_is_directory=True)
    db = make_db(
        tmp_path / "results.db",
        [row("student", link / tiny_run.name / "stage-2", "pakd", 50.0), row("teacher", tiny_teacher, "torch", 60.0)],
    )
    data = gather(tiny_run, db)
    assert {(m.role, m.stage) for m in data.measurements} == {("student", "2: prune"), ("teacher", "teacher")}


def test_ratios_are_taken_within_one_session(tiny_run, tiny_teacher, tmp_path):
    s3 = tiny_run / "stage-3"
    db = make_db(
        tmp_path / "results.db",
        [
            # session a: the teacher only; session b: the student only -> no ratio across them
            row("teacher", tiny_teacher, "torch", 400.0, session="a", started_at="2026-01-01T00:00:00Z"),
            row("student", s3, "pakd", 100.0, session="b", started_at="2026-01-02T00:00:00Z"),
            # device2: two complete sessions, the later one counts; a later incomplete one does not
            row("teacher", tiny_teacher, "torch", 900.0, device="d2", session="c", started_at="2026-01-01T00:00:00Z"),
            row("student", s3, "pakd", 100.0, device="d2", session="c", started_at="2026-01-01T00:00:00Z"),
            row("teacher", tiny_teacher, "torch", 600.0, device="d2", session="d", started_at="2026-01-03T00:00:00Z"),
            row("student", s3, "pakd", 100.0, device="d2", session="d", started_at="2026-01-03T00:00:00Z"),
            row("teacher", tiny_teacher, "torch", 50.0, device="d2", session="e", started_at="2026-01-05T00:00:00Z"),
        ],
    )
    comps = {c.device: c for c in gather(tiny_run, db).comparisons()}
    assert comps["local"].speedup is None
    assert comps["d2"].session == "d" and comps["d2"].speedup == pytest.approx(6.0)


def test_best_teacher_engine_best_deployment_and_same_engine(tiny_run, tiny_teacher, tmp_path):
    s3 = tiny_run / "stage-3"
    db = make_db(
        tmp_path / "results.db",
        [
            row("teacher", tiny_teacher, "torch", 800.0),
            row("teacher", tiny_teacher, "onnxruntime", 600.0),
            row("teacher", tiny_teacher, "pakd", 700.0),
            row("student", s3, "pakd", 200.0),
            row("student", s3, "tvm", 150.0),
            row("student", s3, "torch", 100.0),  # eager PyTorch is not the student's deployment
            # repeat-runs: the median of the runs' medians
            row("teacher", tiny_teacher, "tvm", 300.0, run=0),
            row("teacher", tiny_teacher, "tvm", 900.0, run=1),
            row("teacher", tiny_teacher, "tvm", 1000.0, run=2),
        ],
    )
    (c,) = gather(tiny_run, db).comparisons()
    assert c.teacher_best.engine == "onnxruntime" and c.student_best.engine == "tvm"
    assert c.speedup == pytest.approx(600.0 / 150.0)
    assert c.teacher["tvm"].median_us == 900.0 and c.teacher["tvm"].runs == 3
    assert c.same_engine == pytest.approx({"pakd": 700.0 / 200.0, "torch": 8.0, "tvm": 6.0})


def test_a_student_without_a_deployment_row_has_no_speedup(tiny_run, tiny_teacher, tmp_path):
    db = make_db(
        tmp_path / "results.db",
        [row("teacher", tiny_teacher, "torch", 800.0), row("student", tiny_run / "stage-3", "torch", 100.0)],
    )
    (c,) = compare(gather(tiny_run, db).measurements, "3: share")
    assert c.speedup is None and c.same_engine == {"torch": 8.0}


def test_missing_default_store_means_no_rows(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = gather(tiny_run, None)
    assert not data.db_found and data.measurements == () and data.comparisons() == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nowhere", "no such folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no run.json"),
    ],
)
def test_not_a_run_folder(tmp_path, make, message):
    with pytest.raises(ReportError, match=message):
        gather(make(tmp_path))


def test_missing_or_broken_ledger(tiny_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("*.safetensors", "*.pakd"))
    (copy / "ledger.json").unlink()
    with pytest.raises(ReportError, match="no ledger.json"):
        gather(copy)
    (copy / "ledger.json").write_text("{not json")
    with pytest.raises(ReportError, match="not readable JSON"):
        gather(copy)
    (copy / "ledger.json").write_text(json.dumps({"recipe": "x", "rows": [{"stage": "teacher"}]}))
    with pytest.raises(ReportError, match="no ledger rows"):
        gather(copy)


def test_unreadable_stores(tiny_run, tmp_path):
    with pytest.raises(ReportError, match="no such results store"):
        gather(tiny_run, tmp_path / "missing.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(ReportError, match="not a readable PaKD results store"):
        gather(tiny_run, garbage)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE something (a)")
    con.commit()
    con.close()
    with pytest.raises(ReportError, match="no such table: results"):
        gather(tiny_run, other)


def test_the_store_is_opened_read_only(tiny_run, tiny_teacher, tmp_path):
    db = make_db(tmp_path / "results.db", [row("teacher", tiny_teacher, "torch", 1.0)])
    before = db.read_bytes()
    db.chmod(0o444)
    gather(tiny_run, db)
    assert db.read_bytes() == before and not (tmp_path / "results.db-journal").exists()


RUNS = sorted(p for p in (REPO / "runs").glob("*") if (p / "run.json").is_file() and (p / "ledger.json").is_file())


@pytest.mark.skipif(not RUNS, reason="no trained runs in runs/ (it is not in git; `make demo` makes one)")
@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_trained_runs(run):
    data = gather(run, None)
    ledger = json.loads((run / "ledger.json").read_text())["rows"]
    assert len(data.stages) == len(ledger)
    assert data.size_ratio == pytest.approx(ledger[-1]["size_ratio"])
    if data.student.folder is not None and (data.student.folder / "model.pakd").is_file():
        assert data.student.deployed_bytes == (data.student.folder / "model.pakd").stat().st_size
        assert data.layers


def test_a_wrong_output_is_not_a_speedup(tiny_run, tiny_teacher, tmp_path):
    s3 = tiny_run / "stage-3"
    db = make_db(
        tmp_path / "results.db",
        [
            row("teacher", tiny_teacher, "torch", 800.0),
            row("student", s3, "tvm", 10.0, golden_ok=0),  # fast and wrong: left out
            row("student", s3, "pakd", 200.0),
            row("teacher", tiny_teacher / "model.pakd", "pakd", 700.0),  # a file in the teacher folder counts
        ],
    )
    (c,) = gather(tiny_run, db).comparisons()
    assert c.student_best.engine == "pakd" and c.speedup == pytest.approx(700.0 / 200.0)
    assert c.failed == ("3: share on tvm",)
