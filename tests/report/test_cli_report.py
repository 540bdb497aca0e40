"""`pakd report` as a user runs it: the files, the printed verdict, one-line errors."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import run_cli
from tests.report.conftest import make_db, row

pytestmark = pytest.mark.slow  # pakd report in subprocesses


def test_report_writes_both_files_into_the_run_by_default(tiny_run, tiny_teacher, tmp_path):
    import shutil

    run = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, run)
    db = make_db(
        tmp_path / "results.db",
        [row("teacher", tiny_teacher, "torch", 300.0), row("student", run / "stage-3", "pakd", 100.0)],
    )
    res = run_cli("report", str(run), "--db", str(db), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (run / "report" / "report.html").is_file() and (run / "report" / "report.md").is_file()
    assert f"wrote {run / 'report' / 'report.html'}" in res.stdout
    assert "GOALS NOT MET" in res.stdout and "speed 3.00x" in res.stdout and "local, 1 thread" in res.stdout


def test_report_without_a_store_says_speed_not_measured(tiny_run, tmp_path):
    res = run_cli("report", str(tiny_run), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "speed not measured" in res.stdout and "pakd bench <bundles> --device local" in res.stdout
    assert "not measured" in (tmp_path / "out" / "report.md").read_text()


def test_bad_input_is_one_line(tiny_run, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("not sqlite")
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    (tmp_path / "stageless").mkdir()
    (tmp_path / "stageless" / "run.json").write_text('{"teacher": "/nowhere"}')
    cases = [
        (["report", str(tmp_path / "nowhere")], "no such folder"),
        (["report", str(tmp_path)], "no run.json"),
        (["report", str(tmp_path / "stageless")], "no ledger.json"),
        (["report", str(tiny_run), "--db", str(tmp_path / "missing.db")], "no such results store"),
        (["report", str(tiny_run), "--db", str(bad)], "not a readable PaKD results store"),
        (["report", str(tiny_run), "--db", str(empty)], "no such table: results"),
    ]
    for args, message in cases:
        res = run_cli(*args, cwd=tmp_path)
        assert res.returncode != 0, args
        assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
