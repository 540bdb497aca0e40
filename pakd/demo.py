"""``pakd demo``: the whole path of a model on the built-in default, end to end.

train (or reuse) the teacher -> compress with the default recipe -> build bundles for the host
and rpi4 -> the rpi4 bundles under qemu with the Pi 4's CPU model (golden outputs; instructions of
the teacher on PaKD and on the board's other engines, of the student on PaKD) -> bench
on ``local`` (the teacher on every dense engine here, the student on PaKD; the host bundles
through their runner) -> report -> one summary line.

Every step reuses finished work: a finished teacher or stage is not trained again, an unchanged
bundle is "up to date", stored benchmark rows of the same plan are not measured again, so a
second run takes seconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PakdError

if TYPE_CHECKING:
    from rich.console import Console

    from .bench.results import ResultsStore


@dataclass(frozen=True)
class DemoConfig:
    model: str = "lenet5"
    data: str = "fashion-mnist"
    recipe: Path = Path("recipes/lenet5-fast.toml")
    runs_dir: Path = Path("runs")
    build_dir: Path = Path("build/demo")
    db: Path = Path("results.db")
    data_dir: Path | None = None
    board: str = "rpi4"
    threads: int = 0
    epochs: int | None = None  # teacher epochs [default: the zoo's]
    cache_dir: Path = Path("build/.cache")
    quiet: bool = False
    measure_again: bool = False  # time again even what an identical earlier run stored


@dataclass
class DemoResult:
    teacher_dir: Path
    run_dir: Path
    bundles: dict[str, Path] = field(default_factory=dict)
    size_ratio: float = 0.0
    accuracy_drop_pt: float = 0.0
    teacher_top1: float = 0.0
    student_top1: float = 0.0
    speed_ratio: float | None = None
    best_teacher_engine: str | None = None
    teacher_us: float | None = None
    student_us: float | None = None
    instruction_ratio: float | None = None  # board: teacher on the best ARM engine / student on PaKD
    best_board_engine: str | None = None  # that engine
    same_engine_instruction_ratio: float | None = None  # board: teacher on PaKD / student on PaKD
    emulator_cpu: str | None = None  # the qemu CPU model of the instruction counts
    report: Path | None = None

    def summary(self, board: str) -> str:
        speed = (
            f"{self.speed_ratio:.2f}x faster (student on PaKD {self.student_us:.1f} us vs teacher on "
            f"{self.best_teacher_engine} {self.teacher_us:.1f} us, batch 1, 1 thread, this machine)"
            if self.speed_ratio
            else "speed not measured"
        )
        qemu = f"qemu -cpu {self.emulator_cpu}" if self.emulator_cpu else "qemu"
        same = (
            f", {self.same_engine_instruction_ratio:.2f}x vs the teacher on PaKD"
            if self.same_engine_instruction_ratio and self.best_board_engine != "pakd"
            else ""
        )
        arm = (
            f"; {board}: {self.instruction_ratio:.2f}x fewer instructions than the teacher on "
            f"{self.best_board_engine} ({qemu}{same})"
            if self.instruction_ratio
            else ""
        )
        return (
            f"{self.run_dir.name}: {self.size_ratio:.1f}x smaller, {speed}, accuracy "
            f"{100 * self.student_top1:.2f}% vs {100 * self.teacher_top1:.2f}% ({-self.accuracy_drop_pt:+.2f} pt)"
            f"{arm}"
        )


def _step(console: Console, n: int, total: int, what: str) -> None:
    console.rule(f"[bold]{n}/{total}[/] {what}", align="left")


def run_demo(cfg: DemoConfig) -> DemoResult:
    from .ui import TrainProgress, console

    total = 7
    # bad input fails here, before an hour of training: the recipe, the boards, the model
    from .models import build_model
    from .pipeline import load_recipe
    from .targets import load_target

    load_recipe(cfg.recipe)
    for name in ("host", cfg.board):
        load_target(name)
    build_model(cfg.model)
    if cfg.epochs is not None and cfg.epochs < 1:
        raise PakdError(f"--epochs must be >= 1, got {cfg.epochs}")

    # 1. teacher -------------------------------------------------------------------------------
    _step(console, 1, total, f"teacher: {cfg.model} on {cfg.data}")
    from .models import zoo_entry
    from .train import TeacherJob, TrainConfig, train_teacher

    entry = zoo_entry(cfg.model)
    settings = dict(entry.train_defaults) if entry else {}
    if cfg.epochs is not None:
        settings["epochs"] = cfg.epochs
    tcfg = TrainConfig.from_dict({**settings, "batch_size": 128, "seed": 0, "threads": cfg.threads})
    job = TeacherJob(
        model=cfg.model, data=cfg.data, model_args=(), train=tcfg, data_dir=str(cfg.data_dir) if cfg.data_dir else None
    )
    teacher_dir = cfg.runs_dir / f"{cfg.model}-{cfg.data}" / "teacher"
    with TrainProgress(f"train {cfg.model}", quiet=cfg.quiet) as progress:
        trained = train_teacher(job, teacher_dir, progress=progress)
    console.print(
        f"{'reused' if trained.reused else 'trained'} {teacher_dir}: test top-1 "
        f"{100 * trained.spec['metrics']['test_top1']:.2f}%"
    )

    # 2. compress ------------------------------------------------------------------------------
    from .pipeline import CompressJob, compress, load_recipe
    from .ui import ledger_table

    recipe = load_recipe(cfg.recipe)
    _step(console, 2, total, f"compress: recipe {cfg.recipe}")
    run_dir = cfg.runs_dir / recipe.name
    cjob = CompressJob(
        recipe_path=cfg.recipe,
        teacher_dir=teacher_dir,
        run_dir=run_dir,
        data_dir=str(cfg.data_dir) if cfg.data_dir else None,
        threads=cfg.threads,
    )
    _, rows = compress(cjob, lambda title: TrainProgress(title, quiet=cfg.quiet))
    console.print(ledger_table(rows, title=f"{run_dir}: {recipe.name}"))
    result = DemoResult(teacher_dir, run_dir)
    result.teacher_top1, result.student_top1 = rows[0]["test_top1"], rows[-1]["test_top1"]
    result.accuracy_drop_pt = 100 * (result.teacher_top1 - result.student_top1)
    result.size_ratio = rows[-1]["size_ratio"]

    # 3. bundles -------------------------------------------------------------------------------
    from .deploy.build import BuildConfig, build
    from .targets import load_target

    _step(console, 3, total, f"build: host and {cfg.board} bundles of teacher and student")
    for target_name in ("host", cfg.board):
        target = load_target(target_name)
        for role, src in (("teacher", teacher_dir), ("student", run_dir)):
            out = cfg.build_dir / f"{target_name}-{role}"
            built = build(src, BuildConfig(target=target, out_dir=out, cache_dir=cfg.cache_dir, data_dir=cfg.data_dir))
            result.bundles[f"{target_name}-{role}"] = out
            m = built.bundle.manifest
            console.print(
                f"{'up to date' if built.up_to_date else 'built'} {out} ({m['backend']}, model "
                f"{m['sizes']['model_bytes']:,} bytes)"
            )

    # 4. the board under qemu: golden outputs, instructions of teacher (every ARM engine) and student
    _step(console, 4, total, f"board: {cfg.board} bundles under qemu, the teacher also on the board's other engines")
    from .bench.emulated import bench_emulated, board_verdict
    from .bench.results import open_store

    with open_store(cfg.db) as store:
        emu = bench_emulated(
            [result.bundles[f"{cfg.board}-teacher"], result.bundles[f"{cfg.board}-student"]],
            cfg.board,
            store,
            fresh=cfg.measure_again,
            work_dir=cfg.cache_dir / "peers",
        )
    for r in emu.rows:
        if r.golden_ok is False:
            raise PakdError(f"{r.bundle}: outputs differ under qemu on {r.engine} (max |diff| {r.max_abs_diff:.3g})")
        counted = f"{r.instructions:,} instructions" if r.instructions else f"not counted: {r.reason}"
        console.print(f"{cfg.board} {r.role} on {r.engine}: {counted} (qemu -cpu {r.cpu})")
    v = board_verdict(emu.rows, cfg.board)
    if v is not None:
        result.instruction_ratio, result.best_board_engine = v.ratio, v.best_engine
        result.same_engine_instruction_ratio, result.emulator_cpu = v.same_engine_ratio, v.cpu
        console.print(
            f"outputs match under qemu ({cfg.board}); the student needs {v.ratio:.2f}x fewer instructions than "
            f"the teacher on {v.best_engine} (qemu -cpu {v.cpu})"
        )

    # 5. bench the engines here ----------------------------------------------------------------
    _step(console, 5, total, "bench on local: teacher on every dense engine, student on PaKD")
    from .bench.results import open_store

    with open_store(cfg.db) as store:
        session = _bench_engines(cfg, run_dir, store, console)
        rows_here = store.rows(session=session, threads=1)
    best = min((r for r in rows_here if r["role"] == "teacher"), key=lambda r: r["median_us"], default=None)
    student = next((r for r in rows_here if r["role"] == "student" and r["engine"] == "pakd"), None)
    if best and student:
        result.speed_ratio = best["median_us"] / student["median_us"]
        result.best_teacher_engine, result.teacher_us, result.student_us = (
            best["engine"],
            best["median_us"],
            student["median_us"],
        )

    # 6. bench the host bundles on local -------------------------------------------------------
    _step(console, 6, total, "bench on local: the host bundles through their runner")
    from .bench.devices import local_device
    from .bench.remote import BenchPlan, bench_bundles, compare

    with open_store(cfg.db) as store:
        sid, (outcome,) = bench_bundles(
            [result.bundles["host-teacher"], result.bundles["host-student"]],
            [local_device()],
            BenchPlan(threads=("1",)),
            store,
            fresh=cfg.measure_again,
        )
        if outcome.error:
            raise PakdError(outcome.error)
        for c in compare(store.rows(session=sid)):
            console.print(
                f"host bundles ({c.threads} thread): teacher {c.teacher_median_us:.1f} us, student "
                f"{c.student_median_us:.1f} us = {c.median_ratio:.2f}x; model files {c.size_ratio:.1f}x "
                f"smaller; peak RSS {c.memory_ratio:.2f}x lower"
                + (f" ({outcome.skipped} stored rows reused)" if outcome.skipped else "")
            )

    # 7. report ----------------------------------------------------------------------------------
    _step(console, 7, total, "report")
    result.report = _write_report(run_dir, cfg.db, console)
    return result


def _bench_engines(cfg: DemoConfig, run_dir: Path, store: ResultsStore, console: Console) -> str:
    """Time the teacher on torch / ONNX Runtime / PaKD and the student on PaKD at 1 thread;
    rows of the same models, settings and runtime sources already stored are reused."""
    from .bench import BenchConfig, plan_cases, rows_table, run_local
    from .bench.local import sample_image, store_rows

    config = BenchConfig(threads=(1,), repeats=200, warmup=20, min_time_s=0.3)
    targets = plan_cases(run_dir)
    from ._version import __version__
    from .bench.results import session_id
    from .deploy.build import sources_digest

    digest = hashlib.sha256(f"{__version__}:{sources_digest()}".encode())  # a new runtime measures again
    for t in targets:
        digest.update(
            (t.model.folder / "model.safetensors" if t.model.folder is not None else t.model.path).read_bytes()
        )
    # --measure-again: a session of its own, so the report (latest session first) takes the new rows
    key = "demo-" + session_id({"demo": digest.hexdigest()}, fresh=cfg.measure_again)[:12]
    if not cfg.measure_again and store.rows(session=key):
        console.print(f"reused the stored timings (session {key} in {cfg.db})")
        return key
    x, data = sample_image(targets, 0, str(cfg.data_dir) if cfg.data_dir else None)
    rows = run_local(targets, config, x, None)
    console.print(rows_table(rows, title=f"batch 1, {data} test image 0, 1 thread"))
    store_rows(rows, targets, store, config, session=key)
    return key


def _write_report(run_dir: Path, db: Path, console: Console) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display, ever
    from .report import make_report

    rep, page, md = make_report(run_dir, db, command=f"pakd report {run_dir} --db {db}")
    console.print(f"wrote {page} and {md}")
    console.print(f"verdict: {rep.verdict.headline} {rep.verdict.criteria()}", highlight=False)
    return page


def demo_summary_json(result: DemoResult, board: str) -> dict[str, Any]:
    return {
        "run": str(result.run_dir),
        "size_ratio": result.size_ratio,
        "speed_ratio": result.speed_ratio,
        "best_teacher_engine": result.best_teacher_engine,
        "teacher_us": result.teacher_us,
        "student_us": result.student_us,
        "accuracy_drop_pt": result.accuracy_drop_pt,
        "instruction_ratio": result.instruction_ratio,
        "board": board,
        "report": str(result.report) if result.report else None,
    }
