"""The ``pakd`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
import typer.exceptions
from rich.table import Table

from .errors import PakdError

app = typer.Typer(
    name="pakd",
    help="PaKD: compress PyTorch networks by pruning + knowledge distillation, "
         "run them on fast native kernels, and prove the gain on the device.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataOpt = typer.Option("fashion-mnist", "--data", help="Dataset: fashion-mnist, digits or synthetic.")
DataDirOpt = typer.Option(None, "--data-dir", envvar="PAKD_DATA_DIR",
                          help="Folder with the Fashion-MNIST IDX .gz files "
                               "[default: /usr/share/datasets/fashion-mnist].")


def _parse_model_args(items: list[str]) -> tuple[tuple[str, object], ...]:
    import json

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PakdError(f"--model-arg {item!r} must look like key=value")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.append((key, parsed))
    return tuple(out)


@app.command("models")
def models_cmd() -> None:
    """List the model zoo: parameters and MACs for one 1x28x28 image."""
    from .metrics import model_stats
    from .models import build_model, zoo
    from .ui import console, fmt_int

    table = Table(title="PaKD model zoo (1x28x28 input, 10 classes)")
    for col, kw in (("name", {}), ("params", {"justify": "right"}), ("MACs", {"justify": "right"}),
                    ("fp32 size", {"justify": "right"}), ("description", {})):
        table.add_column(col, **kw)
    for name, entry in zoo().items():
        stats = model_stats(build_model(name))
        table.add_row(name, fmt_int(stats.params), fmt_int(stats.macs),
                      f"{stats.dense_fp32_bytes / 1024:.0f} KiB", entry.description)
    console.print(table)
    console.print("User models: --model package.module:factory [--weights file.safetensors]")


@app.command("targets")
def targets_cmd(
    targets_dir: Optional[Path] = typer.Option(None, "--targets-dir", help="A folder of your own board TOML files (searched first)."),
) -> None:
    """List the boards PaKD builds for (targets/*.toml), and whether their toolchain is installed."""
    import os
    import shutil

    from .deploy import list_targets
    from .ui import console

    table = Table(title="PaKD targets")
    for col in ("name", "arch", "triple", "cpu", "cores", "compiler", "emulator", "description"):
        table.add_column(col)
    for t in list_targets(targets_dir):
        if t.requires_env and not os.environ.get(t.requires_env):
            have_cc = f"set {t.requires_env}"
        else:
            have_cc = "ok" if not t.compiler.missing() else "apt install " + " ".join(t.apt)
        emu = "-" if not t.emulator else ("ok" if shutil.which(t.emulator[0]) else "apt install " + " ".join(t.emulator_apt))
        table.add_row(t.name, t.arch, t.triple, t.cpu, str(t.cores), have_cc, emu, t.description)
    console.print(table)


@app.command("train")
def train_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Zoo model name (see `pakd models`) or package.module:factory."),
    data: str = DataOpt,
    epochs: Optional[int] = typer.Option(None, help="Epochs [default: the model's, see README]."),
    batch_size: int = typer.Option(128, help="Mini-batch size."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate of the one-cycle schedule."),
    optimizer: Optional[str] = typer.Option(None, help="sgd (Nesterov momentum) or adamw."),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay (not on biases/norms)."),
    augment: Optional[str] = typer.Option(None, help="none, flip or crop+flip."),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing in [0, 1)."),
    seed: int = typer.Option(0, help="Random seed: same seed + same threads = same weights."),
    threads: int = typer.Option(0, help="Intra-op threads (0 = one per core)."),
    model_arg: list[str] = typer.Option([], "--model-arg", help="Model argument key=value (repeatable)."),
    name: Optional[str] = typer.Option(None, help="Run name [default: MODEL-DATA]."),
    runs_dir: Path = typer.Option(Path("runs"), help="Folder holding runs."),
    data_dir: Optional[Path] = DataDirOpt,
    force: bool = typer.Option(False, "--force", help="Retrain even if a finished teacher exists."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    device: str = typer.Option("cpu", help="Torch device to train on (cpu; cuda where present - never required)."),
) -> None:
    """Train a teacher into RUNS_DIR/NAME/teacher/ (model.safetensors + spec.json).

    A finished teacher with the same settings is reused; an interrupted one resumes from its
    last finished epoch when the same command runs again.
    """
    from .models import zoo_entry
    from .train import TeacherJob, TrainConfig, train_teacher
    from .ui import TrainProgress, console

    entry = zoo_entry(model)
    settings = dict(entry.train_defaults) if entry else {}
    for key, value in (("epochs", epochs), ("lr", lr), ("optimizer", optimizer), ("weight_decay", weight_decay),
                       ("augment", augment), ("label_smoothing", label_smoothing)):
        if value is not None:
            settings[key] = value
    cfg = TrainConfig.from_dict({**settings, "batch_size": batch_size, "seed": seed, "threads": threads})
    job = TeacherJob(model=model, data=data, model_args=_parse_model_args(model_arg), train=cfg,
                     data_dir=str(data_dir) if data_dir else None)
    run_name = name or f"{model.replace(':', '-').replace('.', '-')}-{data}"
    folder = runs_dir / run_name / "teacher"
    with TrainProgress(f"train {model} on {data}", quiet=quiet) as progress:
        result = train_teacher(job, folder, force=force, progress=progress, device=device)
    m = result.spec["metrics"]
    verb = "reused" if result.reused else "trained"
    console.print(f"[bold green]{verb}[/] {folder}: test top-1 [bold]{100 * m['test_top1']:.2f}%[/] "
                  f"(val {100 * m['val_top1']:.2f}%), {m['params']:,} params, {m['macs']:,} MACs, "
                  f"train time {result.spec['train_seconds_total']:.0f}s")


@app.command("eval")
def eval_cmd(
    folder: Optional[Path] = typer.Argument(None, help="A model folder (e.g. runs/lenet5-fashion-mnist/teacher) or a run folder."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Instead of FOLDER: model name or package.module:factory."),
    weights: Optional[Path] = typer.Option(None, help="safetensors weights for --model."),
    model_arg: list[str] = typer.Option([], "--model-arg", help="Model argument key=value (repeatable)."),
    data: str = DataOpt,
    data_dir: Optional[Path] = DataDirOpt,
    threads: int = typer.Option(0, help="Intra-op threads (0 = one per core)."),
) -> None:
    """Top-1 accuracy and loss on the validation and test sets."""
    from .data import load_dataset
    from .metrics import model_stats
    from .modelio import SPEC_FILE, load_model
    from .models import build_model, load_weights
    from .train import evaluate, set_threads
    from .ui import console

    set_threads(threads)
    if (folder is None) == (model is None):
        raise PakdError("give either a model FOLDER or --model (with --weights)")
    if folder is not None:
        if not (folder / SPEC_FILE).is_file() and (folder / "teacher" / SPEC_FILE).is_file():
            folder = folder / "teacher"
        net, spec = load_model(folder)
        data = spec.get("data", {}).get("name", data)
        title = str(folder)
    else:
        net = build_model(model, **dict(_parse_model_args(model_arg)))
        if weights is not None:
            load_weights(net, weights)
        title = model
    bundle = load_dataset(data, data_dir)
    table = Table(title=f"{title} on {data}")
    for col in ("split", "images", "top-1", "loss"):
        table.add_column(col, justify="right")
    for split_name in ("val", "test"):
        split = getattr(bundle, split_name)
        top1, loss = evaluate(net, split)
        table.add_row(split_name, f"{len(split):,}", f"{100 * top1:.2f}%", f"{loss:.4f}")
    console.print(table)
    stats = model_stats(net, bundle.input_shape)
    console.print(f"{stats.params:,} params ({stats.nonzeros:,} nonzero), {stats.macs:,} MACs per image, "
                  f"{stats.dense_fp32_bytes:,} dense fp32 bytes")


@app.command("stats")
def stats_cmd(
    model: str = typer.Argument(..., help="Zoo model name, package.module:factory, or a model folder."),
    model_arg: list[str] = typer.Option([], "--model-arg", help="Model argument key=value (repeatable)."),
) -> None:
    """Per-layer parameters, nonzeros and MACs (one 1x28x28 image)."""
    from .metrics import model_stats
    from .modelio import load_model
    from .models import build_model
    from .ui import console, fmt_int

    if Path(model).is_dir():
        net, _ = load_model(model)
    else:
        net = build_model(model, **dict(_parse_model_args(model_arg)))
    stats = model_stats(net)
    table = Table(title=f"{model}: per-layer metrics")
    for col in ("layer", "type", "params", "nonzeros", "MACs"):
        table.add_column(col, justify="left" if col in ("layer", "type") else "right")
    for layer in stats.layers:
        table.add_row(layer.name, layer.kind, f"{layer.params:,}", f"{layer.nonzeros:,}", f"{layer.macs:,}")
    table.add_row("[bold]total", "", f"[bold]{stats.params:,}", f"[bold]{stats.nonzeros:,}",
                  f"[bold]{stats.macs:,}")
    console.print(table)
    console.print(f"dense fp32 bytes: {stats.dense_fp32_bytes:,} ({fmt_int(stats.dense_fp32_bytes)})")


@app.command("compress")
def compress_cmd(
    teacher: Optional[Path] = typer.Option(None, help="Teacher model folder, e.g. runs/lenet5-fashion-mnist/teacher."),
    recipe: Optional[Path] = typer.Option(None, help="Recipe TOML (see recipes/)."),
    name: Optional[str] = typer.Option(None, help="Run name [default: the recipe's name]."),
    runs_dir: Path = typer.Option(Path("runs"), help="Folder holding runs."),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder (same recipe and teacher)."),
    data_dir: Optional[Path] = DataDirOpt,
    threads: int = typer.Option(0, help="Intra-op threads (0 = one per core)."),
    device: str = typer.Option("cpu", help="Torch device (cpu; cuda where present - never required)."),
    seed: int = typer.Option(0, help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Compress a teacher by the stages of a recipe: prune -> distill -> evaluate -> checkpoint.

    Finished stages are reused; an interrupted stage (Ctrl-C, kill -9) continues from its last
    finished epoch with --resume RUN_FOLDER (or the same command again).
    """
    from .pipeline import CompressJob, compress, load_recipe, resume_job
    from .ui import TrainProgress, console, ledger_table

    if resume is not None:
        job = resume_job(resume, threads, device)
    else:
        if teacher is None or recipe is None:
            raise PakdError("give --teacher and --recipe (or --resume RUN_FOLDER)")
        run_name = name or load_recipe(recipe).name
        job = CompressJob(recipe_path=recipe, teacher_dir=teacher, run_dir=runs_dir / run_name,
                          data_dir=str(data_dir) if data_dir else None, threads=threads, device=device, seed=seed)
    recipe_obj, rows = compress(job, lambda title: TrainProgress(title, quiet=quiet))
    console.print(ledger_table(rows, title=f"{job.run_dir}: {recipe_obj.name}"))
    final = rows[-1]
    drop = 100 * (rows[0]["test_top1"] - final["test_top1"])
    console.print(f"[bold]{final['size_ratio']:.1f}x smaller[/] ({final['bytes_huffman' if recipe_obj.huffman else 'bytes']:,} "
                  f"bytes vs {4 * rows[0]['params']:,} fp32 teacher bytes), {final['mac_ratio']:.2f}x fewer MACs, "
                  f"test top-1 {100 * final['test_top1']:.2f}% (teacher {100 * rows[0]['test_top1']:.2f}%, {-drop:+.2f} pt)")


@app.command("build")
def build_cmd(
    student: Path = typer.Argument(..., help="A compress run folder (its last stage), a model folder, or a .pakd file."),
    target: str = typer.Option(..., "--target", "-t", help="A board from `pakd targets` (or a path to a target .toml)."),
    backend: str = typer.Option("native", help="native (PaKD's runtime), tvm (Apache TVM), or auto (the faster on the host)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Bundle folder [default: build/<target>]."),
    tune_trials: int = typer.Option(0, "--tune-trials", help="TVM only: MetaSchedule trials (0 = untuned; tuning is slow)."),
    targets_dir: Optional[Path] = typer.Option(None, "--targets-dir", help="A folder of your own board TOML files."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Build a deployable bundle of a model for a board: artifacts, runner, libraries, manifest.json.

    The manifest records the sha256 of every file and a golden input with its expected output;
    rebuilding an unchanged model for the same target is a no-op.
    """
    from .deploy import load_target
    from .deploy.build import BuildConfig, build
    from .ui import console

    t = load_target(target, targets_dir)
    out_dir = out or Path("build") / t.name
    result = build(student, BuildConfig(target=t, backend=backend, out_dir=out_dir,
                                        cache_dir=Path("build") / ".cache", tune_trials=tune_trials,
                                        data_dir=data_dir))
    m = result.bundle.manifest
    if result.choice:
        console.print(f"--backend auto: host medians {result.choice['median_us']} -> {m['backend']}")
    state = "up to date" if result.up_to_date else "built"
    total = sum(f["bytes"] for f in m["files"].values())
    console.print(f"[bold green]{state}[/] {out_dir}: {m['model']} for {t.name} ({t.triple}), backend {m['backend']}, "
                  f"{len(m['files'])} files, {total:,} bytes (model {m['sizes']['model_bytes']:,})")


@app.command("verify")
def verify_cmd(
    bundle: Path = typer.Argument(..., help="A bundle folder written by `pakd build`."),
    emulate: bool = typer.Option(False, "--emulate", help="Run an ARM bundle here under qemu-user."),
    count: bool = typer.Option(False, "--count", help="Also count emulated instructions per inference (with --emulate)."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Another bundle for the same target (e.g. the teacher): prints the instruction ratio."),
    targets_dir: Optional[Path] = typer.Option(None, "--targets-dir", help="A folder of your own board TOML files."),
) -> None:
    """Check a bundle: every file against its manifest hash, then the golden output (on this
    machine, or under qemu with --emulate; with --count, the emulated instructions of one
    inference — emulated seconds mean nothing and are never reported)."""
    from .deploy.build import verify
    from .ui import console

    rep = verify(bundle, emulate=emulate, count=count or emulate, baseline=baseline, targets_dir=targets_dir)
    where = f"under qemu ({rep.target})" if rep.emulated else f"on this machine ({rep.target})"
    verdict = "[bold green]outputs match[/]" if rep.ok else "[bold red]outputs DIFFER[/]"
    console.print(f"{verdict} {where}: max |diff| {rep.max_abs_diff:.2e}, top-1 {'equal' if rep.argmax_equal else 'different'}")
    if rep.instructions is not None:
        console.print(f"emulated instructions per inference: {rep.instructions:,} (1 thread)")
    if rep.baseline_instructions is not None:
        console.print(f"baseline {baseline}: {rep.baseline_instructions:,}; ratio baseline/this = "
                      f"[bold]{rep.instruction_ratio:.2f}x[/]")
    if not rep.ok:
        raise typer.Exit(1)


@app.command("bench")
def bench_cmd(
    target: Path = typer.Argument(..., help="A compress run folder (runs/lenet5: teacher + final student), "
                                            "a model folder, or a .pakd file."),
    device: str = typer.Option("local", help="Where to run: local (this machine). Boards come with remote benchmarking."),
    threads: str = typer.Option("1", help="Thread counts, e.g. 1 or 1,2 (each is a full pass)."),
    repeats: int = typer.Option(200, help="Timed batch-1 calls per row (at least)."),
    warmup: int = typer.Option(20, help="Untimed calls before timing."),
    min_time: float = typer.Option(0.2, "--min-time", help="Time each row for at least this many seconds."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write every number (and the machine) to this JSON file."),
    data_dir: Optional[Path] = DataDirOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    same_process: bool = typer.Option(False, "--same-process", help="Time every row in this process (faster; "
                                      "other engines' spinning thread pools then disturb multi-thread rows)."),
) -> None:
    """Batch-1 latency (median, p90) of a teacher on every dense engine here and of its student on PaKD.

    Ratios are taken in this one run at equal threads: "vs best teacher" against the fastest
    engine the teacher ran on, "same engine" against the teacher on the row's engine.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .bench import BenchConfig, parse_threads, plan_targets, rows_table, run_local
    from .bench.local import machine_info, report_dict, sample_image
    from .modelio import write_json_atomic
    from .ui import console

    if device != "local":
        raise PakdError(f"--device {device}: only 'local' is supported here; remote devices come with "
                        "the remote benchmarking work (pakd/deploy)")
    config = BenchConfig(threads=parse_threads(threads), repeats=repeats, warmup=warmup, min_time_s=min_time,
                         isolate=not same_process)
    targets = plan_targets(target)
    x, data = sample_image(targets, config.image_index, str(data_dir) if data_dir else None)
    machine = machine_info()
    with Progress(TextColumn("[bold]timing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=quiet) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        rows = run_local(targets, config, x, progress)
    console.print(rows_table(rows, title=f"{target}: batch 1, {data} test image {config.image_index}, "
                                         f">= {config.repeats} runs after {config.warmup} warm-up"))
    load = machine["load_avg_1_5_15"]
    console.print(f"{machine['cpu']} ({machine['logical_cpus']} logical CPUs), load average before "
                  f"{load[0]:.2f}" if load else machine["cpu"])
    if json_out is not None:
        write_json_atomic(json_out, report_dict(rows, config, str(target), data, machine))
        console.print(f"wrote {json_out}")


@app.command("report")
def report_cmd(
    run: Path = typer.Argument(..., help="A compress run folder, e.g. runs/lenet5-fast."),
    db: Optional[Path] = typer.Option(None, "--db", help="The results store `pakd bench` writes "
                                      "[default: ./results.db; none there = speed not measured]."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for report.html and report.md "
                                       "[default: RUN/report]."),
) -> None:
    """Write a self-contained HTML page (plots inline) and a Markdown summary of a compress run:
    per-stage table, accuracy vs size and vs latency, per-layer channels and sparsity, speedups
    per device, and the verdict against the 11x smaller / 4x faster / <= 1 pt drop goals."""
    import matplotlib

    matplotlib.use("Agg")  # no display, ever (the figures are matplotlib Figure objects saved as SVG)
    from .report import Status, make_report
    from .ui import console

    args = [str(run)] + ([f"--db {db}"] if db is not None else []) + ([f"-o {out}"] if out is not None else [])
    rep, page, md = make_report(run, db, out, command="pakd report " + " ".join(args))
    color = {Status.MET: "green", Status.NOT_MET: "red", Status.NOT_MEASURED: "yellow"}[rep.verdict.status]
    console.print(f"wrote {page}\nwrote {md}", highlight=False)
    console.print(f"[bold {color}]{rep.verdict.headline}[/] {rep.verdict.criteria()}", highlight=False)
    for v in rep.device_verdicts:
        console.print(f"  {v.line()}", highlight=False)
    if any(c.status is Status.NOT_MEASURED for c in rep.verdict.checks):
        console.print(rep.verdict.note, highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr, never a traceback."""
    from .ui import err_console

    try:
        app(args=argv, standalone_mode=False)
    except PakdError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished epochs are saved; rerun the same command to resume")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 1
    except typer.exceptions.TyperException as exc:  # usage errors: click's own one-line message
        exc.show()
        return getattr(exc, "exit_code", 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
