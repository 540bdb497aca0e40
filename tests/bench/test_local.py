"""The local benchmark run: which models and engines, and the ratios (on known numbers)."""

from __future__ import annotations

import json

import pytest

from pakd.bench import BenchConfig, BenchError, Row, Timing, parse_threads, plan_cases, run_local, with_ratios

pytestmark = pytest.mark.slow  # bundles built and timed on this machine


def _row(engine, role, threads, median):
    return Row(
        engine=engine,
        role=role,
        model=role,
        threads=threads,
        timing=Timing(1, median, median, median, median, median, 0.0),
    )


def test_ratios_against_the_best_teacher_engine_and_the_same_engine():
    rows = with_ratios(
        [
            _row("torch", "teacher", 1, 300.0),
            _row("onnxruntime", "teacher", 1, 100.0),
            _row("pakd", "student", 1, 25.0),
            _row("torch", "student", 1, 150.0),
            Row(engine="pakd", role="teacher", model="teacher", threads=1, reason="not built"),
        ]
    )
    torch_t, ort_t, pakd_s, torch_s, missing = rows
    assert ort_t.baseline and not torch_t.baseline
    assert torch_t.vs_best_teacher == pytest.approx(1 / 3) and ort_t.vs_best_teacher == 1.0
    assert pakd_s.vs_best_teacher == 4.0 and pakd_s.same_engine is None  # no pakd teacher timing
    assert torch_s.vs_best_teacher == pytest.approx(100 / 150) and torch_s.same_engine == 2.0
    assert missing.vs_best_teacher is None and missing.reason == "not built"


def test_ratios_compare_equal_thread_counts_only():
    rows = with_ratios(
        [
            _row("torch", "teacher", 1, 200.0),
            _row("torch", "teacher", 2, 100.0),
            _row("torch", "student", 1, 100.0),
            _row("torch", "student", 2, 100.0),
        ]
    )
    assert [r.vs_best_teacher for r in rows] == [1.0, 1.0, 2.0, 1.0]


def test_a_single_model_is_its_own_baseline():
    rows = with_ratios([_row("torch", "model", 1, 300.0), _row("onnxruntime", "model", 1, 100.0)])
    assert rows[1].baseline and rows[0].vs_best_teacher == pytest.approx(1 / 3)


@pytest.mark.parametrize("text,expected", [("1", (1,)), ("1,2", (1, 2)), ("2, 1,2", (2, 1))])
def test_parse_threads(text, expected):
    assert parse_threads(text) == expected


@pytest.mark.parametrize("text", ["0", "a", "", "1,-2"])
def test_parse_threads_refuses_nonsense(text):
    with pytest.raises(BenchError, match="--threads"):
        parse_threads(text)


def _run_folder(zoo_folder, tmp_path, teacher):
    run = tmp_path / "run"
    for k in (1, 2):
        zoo_folder(run / f"stage-{k}", "lenet-300-100")
    (run / "stage-3").mkdir()  # unfinished: no spec.json yet
    (run / "run.json").write_text(json.dumps({"teacher": str(teacher)}))
    return run


def test_a_run_folder_gives_the_teacher_everywhere_and_the_last_finished_student(tmp_path, zoo_folder):
    teacher = zoo_folder(tmp_path / "t" / "teacher", "lenet-300-100")
    teacher_t, student_t = plan_cases(_run_folder(zoo_folder, tmp_path, teacher))
    assert teacher_t.role == "teacher" and teacher_t.model.folder == teacher
    assert set(teacher_t.engines) >= {"torch", "onnxruntime", "pakd"}
    assert student_t.role == "student" and student_t.model.folder.name == "stage-2"
    assert student_t.engines == ("pakd", "torch")


def test_a_run_without_its_teacher_is_a_clear_error(tmp_path, zoo_folder):
    with pytest.raises(BenchError, match="names teacher"):
        plan_cases(_run_folder(zoo_folder, tmp_path, tmp_path / "gone"))


def test_a_bare_pakd_file_runs_on_the_native_engine_only(tmp_path):
    from pakd.lower.native import PakdFileError, export_pakd
    from pakd.models import build_model

    export_pakd(build_model("lenet-300-100"), tmp_path / "m.pakd")
    (target,) = plan_cases(tmp_path / "m.pakd")
    assert target.engines == ("pakd",)
    (tmp_path / "bad.pakd").write_bytes(b"PAKD")  # one the loader refuses is refused here, not timed
    with pytest.raises(PakdFileError, match="shorter than the .pakd header"):
        plan_cases(tmp_path / "bad.pakd")


def test_run_local_times_every_pair_and_checks_outputs(tmp_path, test_image, zoo_folder):
    teacher = zoo_folder(tmp_path / "t" / "teacher", "lenet-300-100")
    targets = plan_cases(_run_folder(zoo_folder, tmp_path, teacher))
    seen = []
    rows = run_local(
        targets,
        BenchConfig(threads=(1,), repeats=3, warmup=1, min_time_s=0),
        test_image,
        lambda done, total, what: seen.append((done, total)),
    )
    assert len(rows) == 6 and seen[-1] == (6, 6)  # the teacher on 4 engines, the student on 2
    timed = {(r.role, r.engine): r for r in rows if r.timing is not None}
    for key in (("teacher", "torch"), ("teacher", "onnxruntime"), ("teacher", "executorch"), ("student", "torch")):
        assert timed[key].timing.count >= 3 and timed[key].max_abs_diff < 1e-4
    assert all(r.reason for r in rows if r.timing is None)


def test_bench_config_refuses_bad_values():
    with pytest.raises(BenchError):
        BenchConfig(threads=(0,))
    with pytest.raises(BenchError):
        BenchConfig(repeats=0)
