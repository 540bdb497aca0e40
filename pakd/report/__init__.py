"""``pakd report RUN``: one self-contained HTML page (plots inline) and a Markdown summary of a
compress run: the per-stage table, accuracy vs size and vs latency, per-layer channels and
sparsity, teacher-vs-student speedups per device, and the verdict against the 11x / 4x / 1 pt goals.

    data.py     gathering: the run folder (ledger, stages, weights) and the results store
    verdict.py  the goals, their definitions, and the verdict per device and overall
    plots.py    matplotlib figures as inline SVG
    render.py   HTML and Markdown
"""

from __future__ import annotations

from pathlib import Path

from ..bench.results import SCHEMA as RESULTS_SCHEMA  # the store's table (its module owns it)
from .data import ReportError, RunData, gather, read_results
from .render import Report, write
from .verdict import MAX_DROP_PT, SIZE_GOAL, SPEED_GOAL, Status, Verdict

__all__ = [
    "RESULTS_SCHEMA",
    "ReportError",
    "RunData",
    "gather",
    "read_results",
    "Report",
    "write",
    "make_report",
    "MAX_DROP_PT",
    "SIZE_GOAL",
    "SPEED_GOAL",
    "Status",
    "Verdict",
]


def make_report(
    run_dir: str | Path, db_path: str | Path | None = None, out_dir: str | Path | None = None, command: str = ""
) -> tuple[Report, Path, Path]:
    """Gather, judge and write ``report.html`` + ``report.md`` (into RUN/report/ by default)."""
    rep = Report.of(gather(run_dir, db_path), command)
    page, md = write(rep, out_dir if out_dir is not None else Path(run_dir) / "report")
    return rep, page, md
