"""The report's figures, drawn with matplotlib's object API (no pyplot state, no display) and
returned as inline SVG: text is drawn as paths, so the page needs no font and fetches nothing."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import Any

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .data import Comparison, Layer, RunData
from .verdict import MAX_DROP_PT, SIZE_GOAL, SPEED_GOAL

TEACHER_COLOR = "#6b7280"
STUDENT_COLOR = "#2563eb"
FINAL_COLOR = "#c2410c"
GOAL_COLOR = "#15803d"
ENGINE_MARKERS = {"torch": "o", "onnxruntime": "s", "tvm": "D", "pakd": "^"}
STYLE: dict[Any, Any] = {
    "svg.fonttype": "path",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#9ca3af",
    "xtick.color": "#374151",
    "ytick.color": "#374151",
    "axes.labelcolor": "#111827",
    "legend.frameon": False,
}


def _bytes(x: float, _pos: object = None) -> str:
    for unit, div in (("MB", 1e6), ("kB", 1e3)):
        if x >= div:
            return f"{x / div:g} {unit}"
    return f"{x:g} B"


def _us(x: float, _pos: object = None) -> str:
    return f"{x / 1000:g} ms" if x >= 1000 else f"{x:g} µs"


def _log_axis(axis: Any, major: Callable[..., str], span: float) -> None:
    """Label a log axis with ``major``; when it spans less than two decades, also at 2x and 5x."""
    import math

    def minor(x: float, _pos: object = None) -> str:
        mantissa = round(x / 10 ** math.floor(math.log10(x)), 6) if x > 0 else 0
        return major(x) if span < 100 and mantissa in (2.0, 5.0) else ""

    axis.set_major_formatter(FuncFormatter(major))
    axis.set_minor_formatter(FuncFormatter(minor))
    if span < 100:  # minor labels on the same baseline as the major ones
        axis.set_tick_params(which="minor", length=axis.get_major_ticks()[0].tick1line.get_markersize())


def to_svg(fig: Figure, name: str, title: str) -> str:
    """The figure as an <svg> element to inline: ids prefixed with ``name`` (several figures share
    one page), scaled to the page's width, with a <title> for screen readers."""
    buf = io.StringIO()
    with rc_context({**STYLE, "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)  # RDF boilerplate (namespace URLs)
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{name}-{m.group(1)}"', svg)
    svg = re.sub(
        r'(href="#|url\(#)([^")]+)',
        lambda m: m.group(1) + (f"{name}-{m.group(2)}" if m.group(2) in ids else m.group(2)),
        svg,
    )
    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    head += f' class="plot" role="img" aria-labelledby="{name}-title"'
    from html import escape

    return f'{head}><title id="{name}-title">{escape(title)}</title>{svg[head_end + 1 :]}'


def _figure(width: float, height: float) -> Figure:
    with rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def accuracy_vs_size(data: RunData) -> str:
    """Test top-1 against deployed bytes per stage, the teacher at its fp32 dense bytes; the goal
    region (>= 11x smaller, <= 1 pt drop) shaded."""
    with rc_context(STYLE):
        fig = _figure(6.4, 3.9)
        ax = fig.add_subplot()
        dense = data.teacher_dense_bytes
        teacher_acc = 100 * float(data.teacher.row["test_top1"])
        xs = [dense] + [s.deployed_bytes for s in data.stages[1:]]
        ys = [100 * float(s.row["test_top1"]) for s in data.stages]
        limit = dense / SIZE_GOAL
        floor = teacher_acc - MAX_DROP_PT
        lo_x, hi_x = min(xs + [limit]) / 2.2, max(xs) * 2.2
        lo_y = min(ys + [floor]) - 0.6
        hi_y = min(100.0, max(ys + [teacher_acc]) + 0.5) + 0.05
        ax.axvspan(lo_x, limit, ymin=(floor - lo_y) / (hi_y - lo_y), color=GOAL_COLOR, alpha=0.08, lw=0)
        ax.axvline(limit, color=GOAL_COLOR, ls="--", lw=1)
        ax.axhline(floor, color=GOAL_COLOR, ls="--", lw=1)
        ax.text(
            limit, hi_y, f" {SIZE_GOAL:g}x smaller", color=GOAL_COLOR, va="top", ha="right", fontsize=8, rotation=90
        )
        ax.text(hi_x, floor, f"teacher - {MAX_DROP_PT:g} pt ", color=GOAL_COLOR, va="bottom", ha="right", fontsize=8)
        ax.plot(xs, ys, color="#9ca3af", lw=1, zorder=1)
        for i, (x, y, s) in enumerate(zip(xs, ys, data.stages, strict=False)):
            color = TEACHER_COLOR if i == 0 else FINAL_COLOR if i == len(xs) - 1 else STUDENT_COLOR
            ax.scatter([x], [y], s=42, color=color, zorder=3, edgecolors="white", linewidths=0.8)
            ratio = dense / x
            label = "teacher (fp32)" if i == 0 else f"{s.label} ({ratio:.1f}x)"
            ax.annotate(
                label,
                (x, y),
                textcoords="offset points",
                xytext=(0, 8 if i % 2 == 0 else -14),
                ha="center",
                fontsize=8,
                color=color,
            )
        ax.set_xscale("log")
        ax.set_xlim(lo_x, hi_x)
        ax.set_ylim(lo_y, hi_y)
        _log_axis(ax.xaxis, _bytes, hi_x / lo_x)
        ax.set_xlabel("model size: .pakd bytes (teacher: fp32 dense bytes), log scale")
        ax.set_ylabel("test top-1 (%)")
        ax.set_title("Accuracy vs size, per stage")
    return to_svg(fig, "fig-size", "Test top-1 accuracy against model size for each stage")


def _one_thread(comparisons: Iterable[Comparison]) -> list[Comparison]:
    """The comparison each device is judged on: 1 thread, else its fewest threads."""
    best: dict[str, Comparison] = {}
    for c in comparisons:
        if c.device not in best or c.threads < best[c.device].threads:
            best[c.device] = c
    return [best[d] for d in sorted(best)]


def accuracy_vs_latency(data: RunData, comparisons: list[Comparison]) -> str | None:
    """Test top-1 against median batch-1 latency, per device (its 1-thread session): the teacher
    on each engine, every stage timed on each engine; the 4x line is drawn from the fastest teacher
    engine. None when nothing was timed."""
    chosen = [c for c in _one_thread(comparisons) if c.teacher or c.students]
    if not chosen:
        return None
    acc = {s.label: 100 * float(s.row["test_top1"]) for s in data.stages}
    order = {s.label: s.index for s in data.stages}
    with rc_context(STYLE):
        n = min(len(chosen), 3)
        rows = -(-len(chosen) // n)
        fig = _figure(6.4 if n == 1 else 3.4 * n, 3.9 * rows)
        axes = fig.subplots(rows, n, squeeze=False).ravel()
        engines_seen: set[str] = set()
        for ax, c in zip(axes, chosen, strict=False):
            points = [(t.median_us, acc[data.teacher.label], e, TEACHER_COLOR, "teacher") for e, t in c.teacher.items()]
            for stage, per_engine in sorted(c.students.items(), key=lambda kv: order.get(kv[0], 0)):
                final = stage == data.student.label
                for e, t in per_engine.items():
                    points.append((t.median_us, acc[stage], e, FINAL_COLOR if final else STUDENT_COLOR, stage))
            for k, (x, y, engine, color, stage) in enumerate(points):
                engines_seen.add(engine)
                ax.scatter(
                    [x],
                    [y],
                    marker=ENGINE_MARKERS.get(engine, "X"),
                    s=46,
                    color=color,
                    zorder=3,
                    edgecolors="white",
                    linewidths=0.8,
                )
                ax.annotate(
                    f"{engine}" if stage == "teacher" else f"{stage.split(': ')[-1]} / {engine}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(6, 4 if k % 2 == 0 else -11),
                    fontsize=7,
                    color=color,
                )
            ys = [p[1] for p in points]
            ax.axhline(acc[data.teacher.label] - MAX_DROP_PT, color=GOAL_COLOR, ls="--", lw=1)
            ax.set_ylim(min(ys + [acc[data.teacher.label] - MAX_DROP_PT]) - 0.6, min(100.0, max(ys) + 0.6) + 0.05)
            best = c.teacher_best
            if best is not None:
                ax.axvline(best.median_us / SPEED_GOAL, color=GOAL_COLOR, ls="--", lw=1)
                ax.text(
                    best.median_us / SPEED_GOAL,
                    ax.get_ylim()[1],
                    f"{SPEED_GOAL:g}x faster than best teacher ",
                    color=GOAL_COLOR,
                    va="top",
                    ha="right",
                    rotation=90,
                    fontsize=7,
                )
            ax.set_xscale("log")
            xs = [p[0] for p in points] + ([best.median_us / SPEED_GOAL] if best else [])
            ax.set_xlim(min(xs) / 1.8, max(xs) * 2.5)
            _log_axis(ax.xaxis, _us, max(xs) * 2.5 / (min(xs) / 1.8))
            ax.set_title(f"{c.device}, {c.threads} thread{'s' if c.threads != 1 else ''}")
            ax.set_xlabel("median batch-1 latency, log scale")
            ax.set_ylabel("test top-1 (%)")
        for ax in axes[len(chosen) :]:
            ax.set_visible(False)
        handles = [
            axes[0].scatter([], [], marker=ENGINE_MARKERS.get(e, "X"), color="#374151", label=e)
            for e in sorted(engines_seen)
        ]
        handles += [
            axes[0].scatter([], [], marker="o", color=col, label=lab)
            for col, lab in (
                (TEACHER_COLOR, "teacher"),
                (STUDENT_COLOR, "earlier stage"),
                (FINAL_COLOR, "final student"),
            )
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 7), fontsize=8)
        fig.suptitle("Accuracy vs latency (lower left is better)", fontsize=10)
    return to_svg(fig, "fig-latency", "Test top-1 accuracy against median batch-1 latency, per device")


def _same_engine(engine: str) -> Callable[[Comparison], float | None]:
    return lambda c: c.same_engine.get(engine)


def speedups(comparisons: list[Comparison]) -> str | None:
    """Per device and thread count: the speedup vs the best teacher engine and the same-engine
    ratios, with the 4x goal line. None when no comparison has a speedup."""
    rows = [c for c in comparisons if c.speedup is not None]
    if not rows:
        return None
    engines = sorted({e for c in rows for e in c.same_engine})
    series: list[tuple[str, Callable[[Comparison], float | None], str]] = [
        ("vs best teacher engine", lambda c: c.speedup, FINAL_COLOR)
    ]
    palette = ["#93c5fd", "#a5b4fc", "#99f6e4", "#fcd34d"]
    series += [(f"same engine: {e}", _same_engine(e), palette[i % len(palette)]) for i, e in enumerate(engines)]
    with rc_context(STYLE):
        fig = _figure(6.4, 1.5 + 0.28 * len(rows) * len(series))
        ax = fig.add_subplot()
        height = 0.8 / len(series)
        labels = [f"{c.device}, {c.threads} thr" for c in rows]
        top = 0.0
        for k, (name, value, color) in enumerate(series):
            ys, ws = [], []
            for i, c in enumerate(rows):
                v = value(c)
                if v is not None:
                    ys.append(i + (k - (len(series) - 1) / 2) * height)
                    ws.append(v)
            bars = ax.barh(ys, ws, height=height * 0.92, color=color, label=name)
            ax.bar_label(bars, labels=[f"{w:.2f}x" for w in ws], padding=3, fontsize=7)
            top = max([top] + ws)
        ax.axvline(SPEED_GOAL, color=GOAL_COLOR, ls="--", lw=1)
        ax.text(SPEED_GOAL, -0.5, f" goal {SPEED_GOAL:g}x", color=GOAL_COLOR, fontsize=8, va="top")
        ax.axvline(1.0, color="#9ca3af", lw=0.8)
        ax.set_yticks(range(len(rows)), labels)
        ax.invert_yaxis()
        ax.set_xlim(0, max(top, SPEED_GOAL) * 1.18)
        ax.set_xlabel("teacher median / student median (above 1: the student is faster)")
        ax.grid(axis="y", visible=False)
        fig.legend(loc="outside lower center", ncol=min(len(series), 3), fontsize=8)
        ax.set_title("Teacher vs student speedup, per device and threads")
    return to_svg(fig, "fig-speed", "Speedup of the student over the teacher per device and thread count")


def layers(student: list[Layer] | tuple[Layer, ...], title: str) -> str | None:
    """Per conv/linear layer of the final student: output channels kept (vs the teacher) and the
    share of its remaining weights that are zero. None for a model without such layers."""
    if not student:
        return None
    with rc_context(STYLE):
        fig = _figure(6.4, 1.1 + 0.2 * len(student))
        left, right = fig.subplots(1, 2, sharey=True)
        names = [layer.name for layer in student]
        ys = range(len(student))
        kept = [100 * layer.kept_out for layer in student]
        zero = [100 * layer.sparsity for layer in student]
        left.barh(ys, [100] * len(student), color="#e5e7eb", height=0.7)
        bars = left.barh(ys, kept, color=STUDENT_COLOR, height=0.7)
        left.bar_label(
            bars,
            labels=[f"{layer.out_channels}/{layer.teacher_out}" for layer in student],
            padding=2,
            fontsize=6.5,
            color="#111827",
        )
        left.set_xlim(0, 125)
        left.set_xlabel("output channels kept (% of teacher)")
        left.set_yticks(list(ys), names, fontsize=7)
        left.invert_yaxis()
        right.barh(ys, [100] * len(student), color="#e5e7eb", height=0.7)
        bars = right.barh(ys, zero, color=FINAL_COLOR, height=0.7)
        right.bar_label(bars, labels=[f"{z:.0f}%" for z in zero], padding=2, fontsize=6.5, color="#111827")
        right.set_xlim(0, 115)
        right.set_xlabel("weights that are zero (% of the layer)")
        for ax in (left, right):
            ax.grid(axis="y", visible=False)
        fig.suptitle(title, fontsize=10)
    return to_svg(fig, "fig-layers", "Per-layer remaining output channels and weight sparsity of the final student")
