"""The page as a browser shows it: Debian's headless Chromium loads report.html from disk, and the
rendered DOM and a screenshot must show the plots and the verdict. Chromium is required (the
Makefile installs it): without it these tests fail, naming the package."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from pakd.report import make_report
from tests.report.conftest import chromium, make_db, row

pytestmark = pytest.mark.slow  # headless Chromium

VERDICT_BORDER = {
    "GOALS MET": (0x15, 0x80, 0x3D),
    "GOALS NOT MET": (0xB9, 0x1C, 0x1C),
    "SPEED NOT MEASURED": (0xB4, 0x53, 0x09),
}  # --met, --notmet, --unknown in render.CSS
STUDENT_BLUE = (0x25, 0x63, 0xEB)  # plots.STUDENT_COLOR: the per-layer bars


def _pixels(png, rgb) -> int:
    im = Image.open(png).convert("RGB")
    return sum(n for n, c in im.getcolors(im.width * im.height) if c == rgb)


@pytest.mark.parametrize("case", ["met", "not measured"])
def test_chromium_renders_the_plots_and_the_verdict(tiny_run, tiny_teacher, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)  # no ./results.db here: "not measured" unless a store is given
    db = None
    if case == "met":
        db = make_db(
            tmp_path / "results.db",
            [row("teacher", tiny_teacher, "torch", 1000.0), row("student", tiny_run / "stage-3", "pakd", 100.0)],
        )
    rep, page, _ = make_report(tiny_run, db, tmp_path / "out")
    headline = rep.verdict.headline
    assert headline == ("GOALS MET" if case == "met" else "SPEED NOT MEASURED")

    res = chromium("--dump-dom", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert f"Verdict: {headline}" in dom
    verdict = re.search(r'<section class="verdict (\w+)" id="verdict">', dom)
    assert verdict and verdict.group(1) == {"met": "met", "not measured": "unknown"}[case]
    n_svg = len(re.findall(r"<svg\b[^>]*class=\"plot\"", dom))
    assert n_svg == (4 if case == "met" else 2)  # size + layers; with latency also speedups + accuracy/latency
    assert len(re.findall(r"<path\b", dom)) > 100  # the figures' marks and glyphs are in the DOM
    if case == "not measured":
        assert "pakd bench &lt;bundles&gt; --device local" in dom

    shot = tmp_path / "page.png"
    res = chromium(f"--screenshot={shot}", "--window-size=1100,1400", page.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    assert _pixels(shot, VERDICT_BORDER[headline]) > 1000  # the verdict box is drawn in its colour
    tall = tmp_path / "tall.png"
    chromium(f"--screenshot={tall}", "--window-size=1100,5000", page.as_uri())
    assert _pixels(tall, STUDENT_BLUE) > 2000  # the plots are painted, not only present in the DOM


def test_a_missing_chromium_fails_with_the_install_command(monkeypatch, tmp_path):
    from tests.report.conftest import chromium_binary

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        chromium_binary()
