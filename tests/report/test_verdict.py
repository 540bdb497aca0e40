"""The verdict against the goals: met, not met and not measured, per device and overall."""

from __future__ import annotations

import pytest

from pakd.report import MAX_DROP_PT, SIZE_GOAL, SPEED_GOAL, Status
from pakd.report.data import Comparison, EngineTime
from pakd.report.verdict import judge, overall, per_device


def comparison(device: str, threads: int, teacher_us: float | None, student_us: float | None) -> Comparison:
    teacher = {"torch": EngineTime("torch", teacher_us, None, 1)} if teacher_us else {}
    student = {"pakd": EngineTime("pakd", student_us, None, 1)} if student_us else {}
    return Comparison(
        device=device,
        threads=threads,
        session="s",
        started_at="",
        teacher=teacher,
        students={"3: share": student},
        student_stage="3: share",
        facts={},
    )


def test_the_goals_are_the_issue_s():
    assert (SIZE_GOAL, SPEED_GOAL, MAX_DROP_PT) == (11.0, 4.0, 1.0)


@pytest.mark.parametrize(
    "size, speed, drop, status",
    [
        (SIZE_GOAL, SPEED_GOAL, MAX_DROP_PT, Status.MET),  # the thresholds themselves pass
        (80.0, 5.0, 0.2, Status.MET),
        (80.0, 5.0, -0.3, Status.MET),  # a gain
        (10.9, 5.0, 0.2, Status.NOT_MET),
        (80.0, 3.9, 0.2, Status.NOT_MET),
        (80.0, 5.0, 1.01, Status.NOT_MET),
        (80.0, None, 0.2, Status.NOT_MEASURED),
        (10.0, None, 0.2, Status.NOT_MET),  # a failed criterion decides even when speed is unmeasured
    ],
)
def test_judge(size, speed, drop, status):
    v = judge(size, speed, drop, "here")
    assert v.status is status
    assert {c.name for c in v.checks} == {"Size", "Speed", "Accuracy"}


def test_not_measured_is_never_a_number():
    v = overall(80.0, 0.2, [])
    speed = next(c for c in v.checks if c.name == "Speed")
    assert speed.value is None and speed.shown == "not measured" and speed.status is Status.NOT_MEASURED
    assert "pakd bench" in v.note and "SPEED NOT MEASURED" in v.line()


def test_overall_uses_one_thread_and_the_slowest_device():
    comps = [
        comparison("rpi4", 1, 900.0, 200.0),  # 4.5x
        comparison("local", 1, 500.0, 100.0),  # 5x
        comparison("local", 4, 100.0, 100.0),
    ]  # 1x at 4 threads: not in the overall verdict
    v = overall(80.0, 0.2, comps)
    speed = next(c for c in v.checks if c.name == "Speed")
    assert v.status is Status.MET and speed.value == pytest.approx(4.5) and "rpi4" in speed.where
    assert [d.status for d in per_device(80.0, 0.2, comps)] == [Status.MET, Status.MET, Status.NOT_MET]
    comps.append(comparison("jetson", 1, 300.0, 100.0))  # 3x
    assert overall(80.0, 0.2, comps).status is Status.NOT_MET


def test_only_multi_thread_rows_leave_speed_unmeasured():
    v = overall(80.0, 0.2, [comparison("local", 2, 500.0, 100.0)])
    assert v.status is Status.NOT_MEASURED and "1 thread" in v.note


def test_a_device_whose_session_lacks_the_student_is_not_measured():
    comps = [comparison("local", 1, 500.0, None)]
    assert per_device(80.0, 0.2, comps)[0].status is Status.NOT_MEASURED
    assert overall(80.0, 0.2, comps).status is Status.NOT_MEASURED
