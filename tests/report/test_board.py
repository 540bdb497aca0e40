"""The board's verdict: `pakd bench BUNDLES --device qemu:rpi4` counts the teacher and the student
bundles built for the Pi 4 under qemu with its CPU model (cortex-a72), stores the counts in the
results store (instructions and cpu columns), and `pakd report` shows an rpi4 verdict beside the
host one: the student against the teacher on the board's best engine, the same-engine ratio
beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pakd.bench.emulated import bench_emulated, board_verdict
from pakd.bench.results import open_store
from pakd.report import make_report
from pakd.report.data import BoardCount, compare_boards
from tests.conftest import run_cli
from tests.deploy.conftest import require_target, shared_build_cache
from tests.report.conftest import make_db, row


@pytest.fixture(scope="module")
def rpi4_bundles(tiny_run, tiny_teacher, tmp_path_factory):
    from pakd.deploy.build import BuildConfig, build

    target = require_target("rpi4", emulator=True)
    cache = shared_build_cache(tmp_path_factory)
    out = tmp_path_factory.mktemp("rpi4-bundles")
    for role, src in (("teacher", tiny_teacher), ("student", tiny_run)):
        build(src, BuildConfig(target=target, backend="native", out_dir=out / role, cache_dir=cache))
    return out / "teacher", out / "student"


@pytest.mark.slow
def test_counts_are_stored_reused_and_reach_the_report(tiny_run, rpi4_bundles, tmp_path):
    db = tmp_path / "results.db"
    with open_store(db) as store:
        first = bench_emulated(list(rpi4_bundles), "rpi4", store, peers=False)
        again = bench_emulated(list(rpi4_bundles), "rpi4", store, peers=False)
        stored = store.rows(session=first.session)
    assert first.measured == 2 and again.measured == 0 and again.reused == 2
    assert {(r["role"], r["engine"], r["device"], r["cpu"]) for r in stored} == {
        ("teacher", "pakd", "qemu:rpi4", "cortex-a72"),
        ("student", "pakd", "qemu:rpi4", "cortex-a72"),
    }
    assert all(r["instructions"] > 0 and r["golden_ok"] == 1 and r["median_us"] is None for r in stored)
    counts = {r["role"]: r["instructions"] for r in stored}
    v = board_verdict(stored)
    assert v is not None and v.board == "rpi4" and v.ratio == pytest.approx(counts["teacher"] / counts["student"])

    rep, page, md = make_report(tiny_run, db, tmp_path / "report")
    (b,) = rep.boards
    assert (b.board, b.cpu) == ("rpi4", "cortex-a72")
    assert b.ratio == pytest.approx(counts["teacher"] / counts["student"])
    (bv,) = rep.board_verdicts
    assert bv.scope.startswith("rpi4 (qemu -cpu cortex-a72")
    text = md.read_text()
    assert f"{b.ratio:.2f}x" in text and f"{counts['teacher']:,}" in text and bv.line() in text
    assert 'id="board-table"' in page.read_text()
    # latency rows are absent: the overall verdict does not take instructions for time
    assert rep.verdict.headline == "SPEED NOT MEASURED"


@pytest.mark.slow
def test_the_cli_prints_the_counts_and_the_board_verdict(rpi4_bundles, tmp_path):
    teacher, student = rpi4_bundles
    r = run_cli("bench", str(teacher), str(student), "--device", "qemu:rpi4", "--db", str(tmp_path / "r.db"), "-q",
                "--no-peers")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rpi4 under qemu -cpu cortex-a72" in r.stdout and "fewer instructions than the teacher" in r.stdout
    r = run_cli("bench", str(teacher), "--device", "qemu:rpi4", "--device", "local", "--db", str(tmp_path / "r.db"))
    assert r.returncode == 2 and "only qemu: devices" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_bundles_for_another_board_are_refused(rpi4_bundles, tmp_path):
    r = run_cli("bench", str(rpi4_bundles[0]), "--device", "qemu:rpi5", "--db", str(tmp_path / "r.db"))
    assert r.returncode == 2 and "built for rpi4, not rpi5" in r.stderr


def _count(role: str, engine: str, n: int | None, *, session: str = "s1", when: str = "2026-01-01", **kw) -> BoardCount:
    return BoardCount(session, when, role, "teacher" if role == "teacher" else "3: quantize", engine, "qemu:rpi4",
                      "cortex-a72", n, kw.get("ok", True), kw.get("reason"))  # fmt: skip


def test_the_best_engine_decides_and_missing_engines_keep_their_reason():
    counts = [
        _count("teacher", "pakd", 4_000_000),
        _count("teacher", "executorch", 1_200_000),
        _count("teacher", "onnxruntime", None, reason="does not run under qemu"),
        _count("student", "pakd", 300_000),
        _count("teacher", "pakd", 9_000_000, session="old", when="2025-01-01"),
    ]
    (b,) = compare_boards(counts, "3: quantize")
    assert b.session == "s1" and b.teacher_best == ("executorch", 1_200_000)
    assert b.ratio == pytest.approx(4.0) and b.same_engine == pytest.approx(4_000_000 / 300_000)
    assert b.missing == {"onnxruntime": "does not run under qemu"}


def test_a_count_whose_output_failed_the_golden_check_does_not_count():
    counts = [
        _count("teacher", "pakd", 4_000_000),
        _count("teacher", "executorch", 1_000, ok=False),
        _count("student", "pakd", 400_000),
    ]
    (b,) = compare_boards(counts, "3: quantize")
    assert b.teacher_best == ("pakd", 4_000_000) and "golden" in b.missing["executorch"]


def test_emulated_rows_stay_out_of_the_latency_comparison(tiny_run, tiny_teacher, tmp_path):
    """A store with a board count and host latency rows: the host comparison has only latency."""
    db = make_db(
        tmp_path / "results.db",
        [
            row("teacher", tiny_teacher, "pakd", 100.0),
            row("student", Path(tiny_run) / "stage-3", "pakd", 20.0),
            row("teacher", tiny_teacher, "pakd", None, device="qemu:rpi4", instructions=5_000, cpu="cortex-a72"),
            row("student", Path(tiny_run) / "stage-3", "pakd", None, device="qemu:rpi4", instructions=1_000,
                cpu="cortex-a72"),
        ],
    )  # fmt: skip
    rep, _, md = make_report(tiny_run, db, tmp_path / "out")
    assert [c.device for c in rep.comparisons] == ["local"] and rep.comparisons[0].speedup == pytest.approx(5.0)
    (b,) = rep.boards
    assert b.ratio == pytest.approx(5.0)
    assert "rpi4 (qemu -cpu cortex-a72, instructions): GOALS" in md.read_text()


@pytest.mark.slow
def test_verify_lists_where_the_instructions_go(rpi4_bundles):
    r = run_cli("verify", str(rpi4_bundles[1]), "--emulate", "--functions", "5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "where the instructions of one inference go (top 5)" in r.stdout and "pakd_f32_" in r.stdout
    r = run_cli("verify", str(rpi4_bundles[1]), "--functions", "-1")
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.slow
def test_the_teacher_is_counted_on_the_boards_other_engines(tiny_run, rpi4_bundles, tmp_path):
    """With peers, the teacher bundle's model also runs on ExecuTorch + XNNPACK for the board's
    CPU and on ONNX Runtime for aarch64 (each output checked against PyTorch); the verdict takes
    the engine with the fewest instructions; a rerun measures nothing."""
    db = tmp_path / "results.db"
    with open_store(db) as store:
        res = bench_emulated(list(rpi4_bundles), "rpi4", store, work_dir=tmp_path / "peers")
        again = bench_emulated(list(rpi4_bundles), "rpi4", store, work_dir=tmp_path / "peers")
    by_engine = {(r.role, r.engine): r for r in res.rows}
    assert set(by_engine) == {("teacher", "pakd"), ("teacher", "executorch"), ("teacher", "onnxruntime"),
                              ("student", "pakd")}  # fmt: skip
    et = by_engine[("teacher", "executorch")]
    assert et.instructions > 0 and et.golden_ok and et.max_abs_diff < 1e-4 and et.cpu == "cortex-a72"
    ort = by_engine[("teacher", "onnxruntime")]
    assert ort.instructions > 0 and ort.golden_ok and ort.max_abs_diff < 1e-4 and ort.cpu == "cortex-a72"
    assert again.measured == 0 and again.reused == 4
    v = board_verdict(res.rows, "rpi4")
    teachers = {e: r.instructions for (role, e), r in by_engine.items() if role == "teacher" and r.instructions}
    assert v is not None and v.best_instructions == min(teachers.values())
    rep, _, md = make_report(tiny_run, db, tmp_path / "report")
    (b,) = rep.boards
    assert b.teacher == teachers and not b.missing
    assert "executorch" in md.read_text() and "onnxruntime" in md.read_text()
