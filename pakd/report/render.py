"""The report as one self-contained HTML page (inline CSS, inline SVG plots, nothing fetched) and
as Markdown (the same tables and verdict, without the plots)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from ..storage import atomic_write
from . import plots
from .data import BENCH_COMMAND, DEPLOY_ENGINES, BoardComparison, Comparison, EngineTime, RunData
from .verdict import (
    BOARD_RULE,
    DEFINITIONS,
    MAX_DROP_PT,
    SIZE_GOAL,
    SPEED_GOAL,
    Status,
    Verdict,
    overall,
    per_board,
    per_device,
)

STATUS_CLASS = {Status.MET: "met", Status.NOT_MET: "notmet", Status.NOT_MEASURED: "unknown"}
STATUS_MARK = {Status.MET: "✔", Status.NOT_MET: "✘", Status.NOT_MEASURED: "?"}
FACT_KEYS = (
    ("cpu_model", "CPU"),
    ("cores", "cores"),
    ("governor", "governor"),
    ("temperature_c", "°C"),
    ("throttled", "throttled"),
    ("os", "OS"),
    ("kernel", "kernel"),
    ("ram_bytes", "RAM"),
)


@dataclass(frozen=True)
class Report:
    """Everything rendered: the data, the comparisons and the verdicts."""

    data: RunData
    comparisons: tuple[Comparison, ...]
    verdict: Verdict
    device_verdicts: tuple[Verdict, ...]
    generated_at: str
    command: str
    boards: tuple[BoardComparison, ...] = ()
    board_verdicts: tuple[Verdict, ...] = ()

    @classmethod
    def of(cls, data: RunData, command: str = "") -> Report:
        comps = data.comparisons()
        now = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        no_rows = (
            f"no latency rows for this run in {data.db_path}"
            if data.db_found
            else f"no results store at {data.db_path}"
        )
        boards = data.board_comparisons()
        return cls(
            data,
            tuple(comps),
            overall(data.size_ratio, data.drop_pt, comps, no_rows),
            tuple(per_device(data.size_ratio, data.drop_pt, comps)),
            now,
            command or f"pakd report {data.run_dir}",
            tuple(boards),
            tuple(per_board(data.size_ratio, data.drop_pt, boards)),
        )


# -- formatting -----------------------------------------------------------------------------------


def _pct(x: Any) -> str:
    return f"{100 * float(x):.2f}%"


def _int(x: Any) -> str:
    return f"{int(x):,}"


def _us(t: EngineTime | None) -> str:
    if t is None:
        return "-"
    p90 = f" (p90 {t.p90_us:,.1f})" if t.p90_us is not None else ""
    return f"{t.median_us:,.1f} µs{p90}"


def _when(c: Comparison) -> str:
    return c.started_at.replace("T", " ").removesuffix("Z")[:16] + " UTC" if c.started_at else ""


def _facts(c: Comparison) -> str:
    out = []
    for key, name in FACT_KEYS:
        if key not in c.facts:
            continue
        v = c.facts[key]
        if key == "ram_bytes" and isinstance(v, (int, float)):
            v = f"{v / 2**30:.1f} GiB"
        elif key == "temperature_c" and isinstance(v, (int, float)):
            out.append(f"{v:.0f} °C")
            continue
        out.append(f"{name} {v}" if name not in ("CPU", "OS") else str(v))
    return ", ".join(out)


def _stage_rows(data: RunData) -> list[list[str]]:
    teacher_acc = float(data.teacher.row["test_top1"])
    rows = []
    for s in data.stages:
        r = s.row
        drop = 100 * (teacher_acc - float(r["test_top1"]))
        rows.append(
            [
                s.label,
                _pct(r["val_top1"]) if "val_top1" in r else "-",
                _pct(r["test_top1"]),
                "-" if s.index == 0 else f"{drop:.2f}",
                _int(r["params"]),
                _int(r.get("nonzeros", r["params"])),
                f"{100 * float(r.get('weight_sparsity', 0.0)):.1f}%",
                _int(r["macs"]),
                _int(data.teacher_dense_bytes) if s.index == 0 else _int(s.deployed_bytes),
                "1.0x" if s.index == 0 else f"{float(r['size_ratio']):.1f}x",
                f"{float(r.get('mac_ratio', 1.0)):.2f}x",
                f"{float(r.get('seconds', 0.0)):,.0f} s" if s.index else "-",
            ]
        )
    return rows


STAGE_HEAD = [
    "stage",
    "val top-1",
    "test top-1",
    "drop (pt)",
    "params",
    "nonzero",
    "sparsity",
    "MACs",
    "size (bytes)",
    "size ratio",
    "MAC ratio",
    "train time",
]
LAYER_HEAD = ["layer", "type", "in ch", "out ch (teacher)", "weights", "zero", "MACs"]
SPEED_HEAD = ["device", "threads", "session", "teacher best", "student best", "speedup", "same engine", "verdict"]


def _layer_rows(data: RunData) -> list[list[str]]:
    return [
        [
            layer.name,
            layer.kind,
            f"{layer.in_channels}/{layer.teacher_in}",
            f"{layer.out_channels}/{layer.teacher_out}",
            _int(layer.weights),
            f"{100 * layer.sparsity:.1f}%",
            _int(layer.macs),
        ]
        for layer in data.layers
    ]


def _speed_rows(rep: Report) -> list[tuple[list[str], Verdict]]:
    out = []
    for c, v in zip(rep.comparisons, rep.device_verdicts, strict=False):
        tb, sb = c.teacher_best, c.student_best
        same = ", ".join(f"{e} {r:.2f}x" for e, r in c.same_engine.items()) or "-"
        out.append(
            (
                [
                    c.device,
                    str(c.threads),
                    c.session,
                    f"{tb.engine} {_us(tb)}" if tb else "not timed",
                    f"{sb.engine} {_us(sb)}" if sb else "not timed",
                    f"{c.speedup:.2f}x" if c.speedup is not None else "not measured",
                    same,
                    v.status.value,
                ],
                v,
            )
        )
    return out


BOARD_HEAD = ["board", "qemu -cpu", "session", "teacher best", "student", "ratio", "same engine", "verdict"]
BOARD_COMMAND = "pakd bench <board bundles> --device qemu:BOARD"


def _board_rows(rep: Report) -> list[tuple[list[str], Verdict]]:
    out = []
    for b, v in zip(rep.boards, rep.board_verdicts, strict=False):
        tb, sb = b.teacher_best, b.student_best
        out.append(
            (
                [
                    b.board,
                    b.cpu or "?",
                    b.session,
                    f"{tb[0]} {tb[1]:,}" if tb else "not counted",
                    f"{sb[0]} {sb[1]:,}" if sb else "not counted",
                    f"{b.ratio:.2f}x" if b.ratio is not None else "not measured",
                    f"{b.same_engine:.2f}x" if b.same_engine is not None else "-",
                    v.status.value,
                ],
                v,
            )
        )
    return out


def _board_engines(b: BoardComparison) -> str:
    """Every teacher engine's count and every missing one's reason, in words."""
    parts = [f"{e} {n:,}" for e, n in sorted(b.teacher.items(), key=lambda kv: kv[1])]
    parts += [f"{e}: {why}" for e, why in sorted(b.missing.items())]
    return "; ".join(parts)


def _size_line(data: RunData) -> str:
    return (
        f"{data.student.deployed_bytes:,} .pakd bytes ({'with' if data.huffman else 'without'} Huffman coding) "
        f"vs {data.teacher_dense_bytes:,} fp32 dense teacher bytes"
    )


def _acc_line(data: RunData) -> str:
    return f"test top-1 {_pct(data.student.row['test_top1'])} vs teacher {_pct(data.teacher.row['test_top1'])}"


# -- HTML -----------------------------------------------------------------------------------------

CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --met:#15803d; --notmet:#b91c1c; --unknown:#b45309; }
* { box-sizing: border-box; }
body { margin: 0; background: #f9fafb; color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 28px 48px; background: #fff; min-height: 100vh; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
.sub, .muted { color: var(--muted); font-size: 13px; }
code { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #f3f4f6;
       padding: 1px 4px; border-radius: 3px; }
.verdict { border-radius: 10px; padding: 16px 20px; margin: 20px 0 8px; border: 2px solid; }
.verdict.met { border-color: var(--met); background: #f0fdf4; }
.verdict.notmet { border-color: var(--notmet); background: #fef2f2; }
.verdict.unknown { border-color: var(--unknown); background: #fffbeb; }
.headline { font-size: 22px; font-weight: 700; letter-spacing: .02em; }
.met .headline, .check.met .state { color: var(--met); }
.notmet .headline, .check.notmet .state { color: var(--notmet); }
.unknown .headline, .check.unknown .state { color: var(--unknown); }
.checks { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; margin-top: 12px; }
.check { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.check .name { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.check .value { font-size: 22px; font-weight: 650; }
.check .state { font-weight: 600; font-size: 13px; }
.check .detail { font-size: 12px; color: var(--muted); }
.note { font-size: 13px; margin-top: 10px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0; }
th, td { padding: 5px 7px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: #f3f4f6; font-weight: 600; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
td.l, th.l { text-align: left; }
tr.final td { font-weight: 600; background: #fff7ed; }
.scroll { overflow-x: auto; }
svg.plot { display: block; width: 100%; height: auto; max-width: 900px; margin: 14px auto; }
dl.defs dt { font-weight: 650; margin-top: 8px; }
dl.defs dd { margin: 2px 0 0 0; color: #374151; font-size: 14px; }
.pill { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.pill.met { color: var(--met); background: #dcfce7; } .pill.notmet { color: var(--notmet); background: #fee2e2; }
.pill.unknown { color: var(--unknown); background: #fef3c7; }
ul.lines li { margin: 4px 0; font-size: 13px; }
td.wrap { white-space: normal; }
.missing { border: 1px dashed var(--unknown); background: #fffbeb; border-radius: 8px; padding: 12px 16px; }
details { margin: 8px 0; } summary { cursor: pointer; color: #1d4ed8; }
@media (max-width: 760px) { .checks { grid-template-columns: 1fr; } main { padding: 16px; } }
footer { margin-top: 40px; font-size: 12px; color: var(--muted); border-top: 1px solid var(--line); padding-top: 10px; }
"""


def _table(head: list[str], rows: list[list[str]], final_last: bool = False, left: tuple[int, ...] = (0,)) -> str:
    th = "".join(f"<th{' class=l' if i in left else ''}>{escape(h)}</th>" for i, h in enumerate(head))
    body = []
    for k, row in enumerate(rows):
        cls = ' class="final"' if final_last and k == len(rows) - 1 else ""
        tds = "".join(f"<td{' class=l' if i in left else ''}>{escape(v)}</td>" for i, v in enumerate(row))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _pill(status: Status, text: str | None = None) -> str:
    return f'<span class="pill {STATUS_CLASS[status]}">{escape(text or status.value)}</span>'


def _verdict_html(rep: Report) -> str:
    v, data = rep.verdict, rep.data
    details = {
        "Size": _size_line(data),
        "Accuracy": _acc_line(data),
        "Speed": (
            "median batch-1 latency at 1 thread, teacher on its best dense engine / student on "
            f"PaKD ({' or '.join(DEPLOY_ENGINES)})"
        ),
    }
    cards = "".join(
        f'<div class="check {STATUS_CLASS[c.status]}"><div class="name">{escape(c.name)} · goal {escape(c.goal)}</div>'
        f'<div class="value">{escape(c.shown)}</div>'
        f'<div class="state">{STATUS_MARK[c.status]} {escape(c.status.value)}</div>'
        f'<div class="detail">{escape((c.where + ": " if c.where else "") + details[c.name])}</div></div>'
        for c in v.checks
    )
    return (
        f'<section class="verdict {STATUS_CLASS[v.status]}" id="verdict">'
        f'<div class="headline">Verdict: {escape(v.headline)}</div>'
        f'<div class="muted" id="verdict-line">{escape(v.line())}</div>'
        f'<div class="checks">{cards}</div><div class="note">{escape(v.note)}</div></section>'
    )


def _board_html(rep: Report) -> str:
    if not rep.boards:
        return (
            '<p class="muted" id="board-missing">No emulated board counts for this run: '
            f"<code>{escape(BOARD_COMMAND)}</code> (the teacher and student bundles built for the board) "
            "stores them.</p>"
        )
    rows = _board_rows(rep)
    head = "".join(
        f"<th{' class=l' if i in (0, 1, 2, 3, 4, 7) else ''}>{escape(h)}</th>" for i, h in enumerate(BOARD_HEAD)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class=l>{escape(x)}</td>" if i in (0, 1, 2, 3, 4) else f"<td>{escape(x)}</td>"
            for i, x in enumerate(r[:-1])
        )
        + f"<td class=l>{_pill(v.status)}</td></tr>"
        for r, v in rows
    )
    engines = "".join(
        f"<li><strong>{escape(b.board)}</strong> teacher: {escape(_board_engines(b))}</li>" for b in rep.boards
    )
    verdicts = "".join(
        f"<li>{_pill(v.status, v.headline)} <strong>{escape(v.scope)}</strong>: {escape(v.criteria())}</li>"
        for v in rep.board_verdicts
    )
    return (
        f'<div class="scroll"><table id="board-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
        f'<ul class="lines" id="board-engines">{engines}</ul>'
        f'<p class="muted">{escape(BOARD_RULE)}</p>'
        f'<h3>Verdict per board</h3><ul class="lines" id="board-verdicts">{verdicts}</ul>'
    )


def _speed_html(rep: Report) -> str:
    data = rep.data
    if not rep.comparisons:
        where = (
            f"the results store <code>{escape(str(data.db_path))}</code> has no rows for this run"
            if data.db_found
            else f"no results store at <code>{escape(str(data.db_path))}</code>"
        )
        return (
            f'<div class="missing" id="speed-missing"><strong>Speed: not measured.</strong> '
            f"No latency is shown or guessed: {where}. The command that measures it is "
            f"<code>{escape(BENCH_COMMAND)}</code> (the teacher and the student bundles, in one session); "
            f"then <code>{escape(rep.command)}</code> again.</div>"
        )
    parts = []
    rows = _speed_rows(rep)
    head = "".join(
        f"<th{' class=l' if i in (0, 2, 3, 4, 6, 7) else ''}>{escape(h)}</th>" for i, h in enumerate(SPEED_HEAD)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class=l>{escape(x)}</td>" if i in (0, 2, 3, 4, 6) else f"<td>{escape(x)}</td>"
            for i, x in enumerate(r[:-1])
        )
        + f"<td class=l>{_pill(v.status)}</td></tr>"
        for r, v in rows
    )
    parts.append(
        f'<div class="scroll"><table id="speed-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )
    parts.append(
        '<p class="muted">speedup = the teacher\'s median on its fastest dense engine / the final '
        f"student's median on its fastest PaKD deployment ({' or '.join(DEPLOY_ENGINES)}), in the same bench "
        "session at equal threads; same engine = teacher / student on one engine. Where a device has "
        "several sessions, the latest that timed both is shown.</p>"
    )
    failed = [f"{c.device}, {c.threads} thread(s): {', '.join(c.failed)}" for c in rep.comparisons if c.failed]
    if failed:
        parts.append(
            '<p class="missing"><strong>Left out:</strong> rows whose output failed the golden check '
            f"(a wrong answer is not a speedup): {escape('; '.join(failed))}.</p>"
        )
    parts.append(
        '<h3>Verdict per device and threads</h3><ul class="lines">'
        + "".join(
            f"<li>{_pill(v.status, v.headline)} <strong>{escape(v.scope)}</strong>: {escape(v.criteria())}</li>"
            for v in rep.device_verdicts
        )
        + "</ul>"
    )
    sessions: dict[tuple[str, str], Any] = {}
    for c in rep.comparisons:
        sessions.setdefault((c.device, c.session), c)
    parts.append(
        "<h3>Sessions and devices</h3><ul>"
        + "".join(
            f"<li><strong>{escape(d)}</strong>, session <code>{escape(s)}</code> started {escape(_when(c))}"
            + (f": {escape(_facts(c))}" if _facts(c) else "")
            + "</li>"
            for (d, s), c in sessions.items()
        )
        + "</ul>"
    )
    svg = plots.speedups(list(rep.comparisons))
    if svg:
        parts.append(svg)
    svg = plots.accuracy_vs_latency(data, list(rep.comparisons))
    if svg:
        parts.append(svg)
    parts.append(
        "<details><summary>Every timing in these sessions</summary>"
        + _table(
            ["device", "threads", "model", "engine", "median", "p90", "repeat-runs"], _timing_rows(rep), left=(0, 2, 3)
        )
        + "</details>"
    )
    return "".join(parts)


def _timing_rows(rep: Report) -> list[list[str]]:
    out = []
    for c in rep.comparisons:
        entries = [("teacher", e, t) for e, t in c.teacher.items()]
        entries += [(stage, e, t) for stage, per in c.students.items() for e, t in per.items()]
        for model, e, t in entries:
            out.append(
                [
                    c.device,
                    str(c.threads),
                    model,
                    e,
                    f"{t.median_us:,.1f} µs",
                    f"{t.p90_us:,.1f} µs" if t.p90_us is not None else "-",
                    str(t.runs),
                ]
            )
    return out


def html(rep: Report) -> str:
    data = rep.data
    from .._version import __version__

    title = f"PaKD report: {data.run_dir.name}"
    defs = "".join(f"<dt>{escape(n)} ({escape(g)})</dt><dd>{escape(d)}</dd>" for n, g, d in DEFINITIONS)
    size_svg = plots.accuracy_vs_size(data)
    layer_svg = plots.layers(data.layers, f"Final student ({data.student.label}): per layer")
    layer_part = (
        (
            layer_svg
            + "<details><summary>Per-layer table</summary>"
            + _table(LAYER_HEAD, _layer_rows(data), left=(0, 1))
            + "</details>"
        )
        if layer_svg
        else ('<p class="muted">The final stage\'s model folder is missing: no per-layer figures.</p>')
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style></head>
<body><main>
<h1>{escape(title)}</h1>
<div class="sub">recipe <code>{escape(data.recipe)}</code> · run <code>{escape(str(data.run_dir))}</code> ·
teacher <code>{escape(str(data.teacher_dir))}</code> · final student <code>{escape(data.student.label)}</code><br>
generated {escape(rep.generated_at)} by pakd {escape(__version__)} · results store
<code>{escape(str(data.db_path))}</code> ({len(data.measurements)} row{"s" if len(data.measurements) != 1 else ""} for this run)<br>
{escape(_data_line(rep))}</div>
{_verdict_html(rep)}
<h2>Goals and their definitions</h2>
<p>PaKD's claim: the student is at least {SIZE_GOAL:g}x smaller and {SPEED_GOAL:g}x faster than the teacher it
started from, with (almost) no loss of accuracy. Each is measured as follows (DESIGN.md, honest measurement):</p>
<dl class="defs">{defs}</dl>
<p class="muted">The three criteria must all hold; a criterion that was not measured is reported as such, never
estimated. "Almost no loss" means a drop of at most {MAX_DROP_PT:g} percentage point: that threshold is ours.</p>
<h2>Stages</h2>
{_table(STAGE_HEAD, _stage_rows(data), final_last=True)}
<p class="muted">size: the teacher at its fp32 dense bytes (4 per parameter); each stage at its .pakd bytes
({"with" if data.huffman else "without"} Huffman coding, as the recipe says). drop: teacher test top-1 minus the
stage's, in points. MACs: multiply-accumulates for one image.</p>
{size_svg}
<h2>Speed: teacher vs student per device</h2>
{_speed_html(rep)}
<h2>On the board: instructions under qemu with the board's CPU model</h2>
{_board_html(rep)}
<h2>Per-layer: remaining channels and sparsity</h2>
{layer_part}
<footer>Made by <code>{escape(rep.command)}</code>. Latency rows come from <code>{escape(BENCH_COMMAND)}</code>;
accuracy, sizes and MACs from <code>{escape(str(data.run_dir / "ledger.json"))}</code> (written by
<code>pakd compress</code>). This page is self-contained: no script, no web font, nothing fetched.</footer>
</main></body></html>
"""


# -- Markdown -------------------------------------------------------------------------------------


def _md_cell(x: str) -> str:
    return x.replace("|", "\\|")


def _md_table(head: list[str], rows: list[list[str]], left: tuple[int, ...] = (0,)) -> str:
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(":--" if i in left else "--:" for i in range(len(head))) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _data_line(rep: Report) -> str:
    """The teacher's data in one line: name, form and source, input shape, classes, test images."""
    d = rep.data.data
    if d is None:
        return "Data: unknown (the teacher's spec.json is not readable)"
    where = d.name if d.kind == "builtin" else f"{d.name} ({d.kind} {d.source})"
    shape = "x".join(str(v) for v in d.input_shape)
    shown = ", ".join(d.classes[:20]) + (f", ... ({len(d.classes) - 20} more)" if len(d.classes) > 20 else "")
    classes = f"{len(d.classes)} classes ({shown})" if d.classes else "classes not recorded"
    test = f", {d.test_images:,} test images" if d.test_images is not None else ""
    return f"Data: {where}, input {shape}, {classes}{test}"


def markdown(rep: Report) -> str:
    data, v = rep.data, rep.verdict
    out = [
        f"# PaKD report: {data.run_dir.name}",
        "",
        f"Recipe `{data.recipe}`, run `{data.run_dir}`, teacher `{data.teacher_dir}`, final student "
        f"`{data.student.label}`. Generated {rep.generated_at}; results store `{data.db_path}` "
        f"({len(data.measurements)} rows for this run).",
        "",
        _data_line(rep) + ".",
        "",
        f"## Verdict: {v.headline}",
        "",
        f"`{v.line()}`",
        "",
    ]
    out += [
        f"- **{c.name}** (goal {c.goal}): {c.shown}{' ' + c.where if c.where else ''} - {c.status.value}"
        for c in v.checks
    ]
    out += ["", f"Size: {_size_line(data)}. Accuracy: {_acc_line(data)}.", "", v.note, "", "## Definitions", ""]
    out += [f"- **{n}** ({g}): {d}" for n, g, d in DEFINITIONS]
    out += [
        "",
        "## Stages",
        "",
        _md_table(STAGE_HEAD, _stage_rows(data)),
        "",
        "## Speed: teacher vs student per device",
        "",
    ]
    if rep.comparisons:
        out += [
            _md_table(SPEED_HEAD, [r for r, _ in _speed_rows(rep)], left=(0, 2, 3, 4, 6, 7)),
            "",
            "Per device and threads:",
            "",
        ]
        out += [f"- `{dv.line()}`" for dv in rep.device_verdicts]
        failed = [f"{c.device}, {c.threads} thread(s): {', '.join(c.failed)}" for c in rep.comparisons if c.failed]
        if failed:
            out += ["", "Left out (output failed the golden check): " + "; ".join(failed) + "."]
    else:
        out += [
            f"Speed: **not measured** (no latency rows for this run in `{data.db_path}`). "
            f"`{BENCH_COMMAND}` produces them; then `{rep.command}` again."
        ]
    out += ["", "## On the board: instructions under qemu with the board's CPU model", ""]
    if rep.boards:
        out += [_md_table(BOARD_HEAD, [r for r, _ in _board_rows(rep)], left=(0, 1, 2, 3, 4, 7)), ""]
        out += [f"- {b.board} teacher: {_board_engines(b)}" for b in rep.boards]
        out += ["", BOARD_RULE, "", "Per board:", ""]
        out += [f"- `{bv.line()}`" for bv in rep.board_verdicts]
    else:
        out += [f"No emulated board counts for this run: `{BOARD_COMMAND}` stores them."]
    if data.layers:
        out += [
            "",
            f"## Per-layer: final student ({data.student.label})",
            "",
            _md_table(LAYER_HEAD, _layer_rows(data), left=(0, 1)),
        ]
    out += ["", f"Plots: `report.html` beside this file. Made by `{rep.command}`.", ""]
    return "\n".join(out)


def write(rep: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page, md = out / "report.html", out / "report.md"
    atomic_write(page, html(rep))
    atomic_write(md, markdown(rep))
    return page, md
