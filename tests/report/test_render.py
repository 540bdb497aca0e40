"""The Markdown summary and the HTML page's content (self-contained, escaped, the verdict shown),
with real latency figures: rows made by timing the run's teacher and student here."""

from __future__ import annotations

import re

import pytest

from pakd.data import load_dataset
from pakd.report import Report, make_report
from pakd.report.data import gather
from pakd.report.render import html, markdown
from tests.report.conftest import make_db, row
from tests.report.timed import timed_rows


@pytest.fixture(scope="module")
def timed_db(tiny_run, tiny_teacher, tmp_path_factory):
    x = load_dataset("synthetic").test.images[:1].numpy().copy()
    rows = timed_rows(tiny_run, tiny_teacher, "stage-3", x)
    return make_db(tmp_path_factory.mktemp("store") / "results.db", rows), rows


def test_real_timings_flow_into_the_speedup(tiny_run, timed_db, tmp_path):
    db, rows = timed_db
    rep, page, md = make_report(tiny_run, db, tmp_path / "out")
    teacher_best = min(r["median_us"] for r in rows if r["role"] == "teacher")
    student = next(r["median_us"] for r in rows if r["role"] == "student")
    teacher_pakd = next(r["median_us"] for r in rows if r["role"] == "teacher" and r["engine"] == "pakd")
    (c,) = rep.comparisons
    assert c.speedup == pytest.approx(teacher_best / student)
    assert c.same_engine == pytest.approx({"pakd": teacher_pakd / student})
    speed = next(ch for ch in rep.verdict.checks if ch.name == "Speed")
    assert speed.value == pytest.approx(teacher_best / student)
    text = page.read_text()
    assert f"{teacher_best / student:.2f}x" in text and f"{student:,.1f} µs" in text
    assert f"{teacher_best / student:.2f}x" in md.read_text()
    assert rep.verdict.line() in md.read_text()


def test_markdown_summary(tiny_run, timed_db):
    rep = Report.of(gather(tiny_run, timed_db[0]))
    md = markdown(rep)
    assert md.startswith(f"# PaKD report: {tiny_run.name}")
    assert f"## Verdict: {rep.verdict.headline}" in md
    for s in rep.data.stages:
        assert f"| {s.label} |" in md
    for layer in rep.data.layers:
        assert f"| {layer.name} | {layer.kind} |" in md
    for name in ("Size", "Speed", "Accuracy"):
        assert f"- **{name}**" in md
    assert "at most 1 point" in md
    # every table row has as many cells as its header
    for block in re.findall(r"((?:^\|.*\n)+)", md, flags=re.M):
        widths = {line.count(" | ") - line.count("\\|") for line in block.strip().splitlines() if "--" not in line}
        assert len(widths) == 1, block


def test_markdown_without_latency_says_how_to_measure(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rep = Report.of(gather(tiny_run))
    md = markdown(rep)
    assert "Speed: **not measured**" in md and "pakd bench <bundles> --device local" in md
    assert "## Verdict: SPEED NOT MEASURED" in md or "## Verdict: GOALS NOT MET" in md


def test_the_page_fetches_nothing(tiny_run, timed_db):
    page = html(Report.of(gather(tiny_run, timed_db[0])))
    assert page.count("<svg") == 4  # size, speedups, latency, layers
    assert "<script" not in page and "<link" not in page and "<img" not in page and "@import" not in page
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls  # namespaces, not fetched
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids are unique across the inline figures"


def test_text_from_the_store_is_escaped(tiny_run, tiny_teacher, tmp_path):
    db = make_db(
        tmp_path / "results.db",
        [
            row("teacher", tiny_teacher, "torch", 500.0, device="<b>board</b>"),
            row("student", tiny_run / "stage-3", "pakd", 100.0, device="<b>board</b>", facts='{"os": "<i>x</i>"}'),
        ],
    )
    page = html(Report.of(gather(tiny_run, db)))
    assert "<b>board</b>" not in page and "&lt;b&gt;board&lt;/b&gt;" in page and "<i>x</i>" not in page
