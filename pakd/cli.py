"""The ``pakd`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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
    # help texts are plain text: "[default: ...]" must not be read as rich markup (it was swallowed)
    rich_markup_mode="markdown",
)

DATA_HELP = (
    "Data: a built-in name (fashion-mnist, digits, synthetic); a folder ROOT holding ROOT/train/CLASS/ image files "
    "(png, jpg, jpeg, bmp, webp) and ROOT/test/CLASS/ (optional ROOT/val/, else 10% of train is held out); an .npz with "
    "x_train, y_train, x_test, y_test (uint8 or float, NHWC or NCHW; optional x_val, y_val, classes); or "
    "package.module:function returning torch Datasets (train, test[, val]) of (CxHxW tensor, int label)."
)
DataOpt = typer.Option("fashion-mnist", "--data", help=DATA_HELP)
ChannelsOpt = typer.Option(None, "--channels", help="Force 1 (grey) or 3 (RGB) channels [default: as the images are].")
ImageSizeOpt = typer.Option(
    None, "--image-size", help="Resize the images to N (square) or HxW [default: their own size, when they agree]."
)
DataMemoryOpt = typer.Option(
    None,
    "--data-memory",
    help="Memory budget for the data, e.g. 512MiB [default: 1GiB]: data that fits is kept as tensors, "
    "larger data streams through DataLoader workers.",
)
NprocOpt = typer.Option(
    1,
    "--nproc",
    min=1,
    help="Processes of one data-parallel run on this machine, started through torch's elastic launcher "
    "(as torchrun --nproc-per-node N); the recipe's batch size is the global batch. Under torchrun "
    "this is ignored.",
)
BackendOpt = typer.Option(
    None,
    "--dist-backend",
    help="torch.distributed backend of a data-parallel run [default: gloo on cpu, nccl on cuda].",
)
SyncBnOpt = typer.Option(
    False, "--sync-bn", help="Batch-norm statistics over the global batch in a data-parallel run (small batches)."
)
DataDirOpt = typer.Option(
    None,
    "--data-dir",
    envvar="PAKD_DATA_DIR",
    help="Folder with the Fashion-MNIST IDX .gz files [default: /usr/share/datasets/fashion-mnist].",
)


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


def _parse_chw(text: str) -> tuple[int, int, int]:
    """``CxHxW`` (also ``C,H,W``) as three positive ints, or a PakdError naming the text."""
    parts = text.replace(",", "x").lower().split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise PakdError(f"--input-shape {text!r} must look like CxHxW with positive sizes, e.g. 3x224x224")
    return dims[0], dims[1], dims[2]


@app.command("models")
def models_cmd() -> None:
    """List the model zoo: parameters and MACs of each model at its defaults (one 1x28x28 image, 10
    classes, the small-input stems).

    resnet18, mobilenetv2 and mobilenetv3-small take the published ImageNet stems with
    --model-arg input_size=224 (any input_size >= 112); their 3x224x224 / 1000-class figures are in
    docs/models.md.
    """
    from .metrics import model_stats
    from .models import build_model, zoo
    from .ui import console, fmt_int

    table = Table(title="PaKD model zoo (1x28x28 input, 10 classes)")
    columns: tuple[tuple[str, dict[str, Any]], ...] = (
        ("name", {}),
        ("params", {"justify": "right"}),
        ("MACs", {"justify": "right"}),
        ("fp32 size", {"justify": "right"}),
        ("description", {}),
    )
    for col, kw in columns:
        table.add_column(col, **kw)
    for name, entry in zoo().items():
        stats = model_stats(build_model(name))
        table.add_row(
            name,
            fmt_int(stats.params),
            fmt_int(stats.macs),
            f"{stats.dense_fp32_bytes / 1024:.0f} KiB",
            entry.description,
        )
    console.print(table)
    console.print("User models: --model package.module:factory [--weights file.safetensors]")


@app.command("targets")
def targets_cmd(
    targets_dir: Path | None = typer.Option(
        None, "--targets-dir", help="A folder of your own board TOML files (searched first)."
    ),
) -> None:
    """List the boards PaKD builds for (targets/*.toml), and whether their toolchain is installed."""
    from .targets import list_targets
    from .ui import console

    table = Table(title="PaKD targets")
    for col in ("name", "arch", "triple", "cpu", "cores", "compiler", "emulator", "description"):
        table.add_column(col)
    for t in list_targets(targets_dir):
        row = (t.name, t.arch, t.triple, t.cpu, str(t.cores), t.toolchain_status(), t.emulator_status(), t.description)
        table.add_row(*row)
    console.print(table)


@app.command("train")
def train_cmd(
    model: str = typer.Option(
        ..., "--model", "-m", help="Zoo model name (see `pakd models`) or package.module:factory."
    ),
    data: str = DataOpt,
    epochs: int | None = typer.Option(None, help="Epochs [default: the model's, see README]."),
    batch_size: int | None = typer.Option(None, help="Mini-batch size [default: 128, TrainConfig's]."),
    lr: float | None = typer.Option(None, help="Peak learning rate of the one-cycle schedule."),
    optimizer: str | None = typer.Option(None, help="sgd (Nesterov momentum) or adamw."),
    weight_decay: float | None = typer.Option(None, help="Weight decay (not on biases/norms)."),
    augment: str | None = typer.Option(
        None,
        help="none, crop, flip or crop+flip (flip: horizontal) [default: the model's; on data other than the "
        "built-in sets without flip].",
    ),
    label_smoothing: float | None = typer.Option(None, help="Label smoothing in [0, 1)."),
    seed: int | None = typer.Option(None, help="Random seed: same seed + same threads = same weights [default: 0]."),
    threads: int = typer.Option(0, help="Intra-op threads (0 = one per core)."),
    model_arg: list[str] = typer.Option([], "--model-arg", help="Model argument key=value (repeatable)."),
    name: str | None = typer.Option(None, help="Run name [default: MODEL-DATA]."),
    runs_dir: Path = typer.Option(Path("runs"), help="Folder holding runs."),
    data_dir: Path | None = DataDirOpt,
    channels: int | None = ChannelsOpt,
    image_size: str | None = ImageSizeOpt,
    data_memory: str | None = DataMemoryOpt,
    force: bool = typer.Option(False, "--force", help="Retrain even if a finished teacher exists."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    device: str = typer.Option("cpu", help="Torch device to train on (cpu; cuda where present - never required)."),
    nproc: int = NprocOpt,
    backend: str | None = BackendOpt,
    sync_bn: bool = SyncBnOpt,
) -> None:
    """Train a teacher into RUNS_DIR/NAME/teacher/ (model.safetensors + spec.json).

    --data takes a built-in name (fashion-mnist, the default; digits; synthetic), a folder in the
    ImageFolder layout (ROOT/train/CLASS/ and ROOT/test/CLASS/ holding png, jpg, jpeg, bmp or
    webp images; optional ROOT/val/), an .npz file (x_train, y_train, x_test, y_test), or
    package.module:function returning torch Datasets (train, test[, val]). Zoo models take their input channels, size and classes from
    the data; spec.json records the data so that later stages load the same. See docs/data.md.

    A finished teacher with the same settings is reused; an interrupted one resumes from its
    last finished epoch when the same command runs again. Data-parallel on several processes:
    --nproc N here, or torchrun (docs/distributed.md).
    """
    from . import dist
    from .data import data_label, parse_image_size, parse_memory
    from .train import TeacherJob, teacher_folder, train_teacher
    from .ui import TrainProgress, console

    parallel = dist.ParallelConfig(backend=backend, sync_bn=sync_bn)
    if nproc > 1 and not dist.launched():
        dist.launch(nproc, _ARGV, "run the same command again to continue")
        return

    job = TeacherJob.with_defaults(
        model,
        data,
        model_args=_parse_model_args(model_arg),
        data_dir=str(data_dir) if data_dir else None,
        channels=channels,
        image_size=parse_image_size(image_size),
        data_memory=parse_memory(data_memory),
        epochs=epochs,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        augment=augment,
        label_smoothing=label_smoothing,
        batch_size=batch_size,
        seed=seed,
        threads=threads,
    )
    folder = teacher_folder(runs_dir, model, data, name)
    quiet = quiet or not dist.is_main()
    with TrainProgress(f"train {model} on {data_label(data)}", quiet=quiet) as progress:
        result = train_teacher(job, folder, force=force, progress=progress, device=device, parallel=parallel)
    if not dist.is_main():
        return
    m = result.spec["metrics"]
    verb = "reused" if result.reused else "trained"
    console.print(
        f"[bold green]{verb}[/] {folder}: test top-1 [bold]{100 * m['test_top1']:.2f}%[/] "
        f"(val {100 * m['val_top1']:.2f}%), {m['params']:,} params, {m['macs']:,} MACs, "
        f"train time {result.spec['train_seconds_total']:.0f}s"
    )


@app.command("import")
def import_cmd(
    weights: Path = typer.Option(
        ...,
        "--weights",
        help="safetensors, a torch.save state dict (read with weights_only=True) or a torch.export .pt2.",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Zoo model name or package.module:factory; optional for a .pt2 (its graph is the architecture).",
    ),
    data: str = DataOpt,
    model_arg: list[str] = typer.Option([], "--model-arg", help="Model argument key=value (repeatable)."),
    name: str | None = typer.Option(None, help="Run name [default: MODEL-DATA, or the .pt2's stem-DATA]."),
    runs_dir: Path = typer.Option(Path("runs"), help="Folder holding runs."),
    data_dir: Path | None = DataDirOpt,
    force: bool = typer.Option(False, "--force", help="Overwrite a teacher made from other weights."),
) -> None:
    """Import a model trained outside PaKD as the teacher RUNS_DIR/NAME/teacher/ (see docs/models.md).

    The weights are loaded into --model strictly (the first tensor that does not fit is named),
    evaluated on the data's test split, and written as model.safetensors + spec.json, so
    `pakd compress --teacher RUNS_DIR/NAME/teacher` takes it like a trained teacher.
    """
    from .train.importer import import_folder, import_teacher
    from .ui import console

    folder = import_folder(runs_dir, weights, data, model, name)
    result = import_teacher(
        weights,
        folder,
        model=model,
        model_args=_parse_model_args(model_arg),
        data=data,
        data_dir=str(data_dir) if data_dir else None,
        force=force,
    )
    m = result.spec["metrics"]
    verb = "reused" if result.reused else "imported"
    console.print(
        f"[bold green]{verb}[/] {folder} ({result.spec['import']['format']}): test top-1 "
        f"[bold]{100 * m['test_top1']:.2f}%[/] (val {100 * m['val_top1']:.2f}%), {m['params']:,} params, "
        f"{m['macs']:,} MACs"
    )


@app.command("eval")
def eval_cmd(
    folder: Path | None = typer.Argument(
        None, help="A model folder (e.g. runs/lenet5-fashion-mnist/teacher) or a run folder."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Instead of FOLDER: model name or package.module:factory."
    ),
    weights: Path | None = typer.Option(None, help="safetensors weights for --model."),
    model_arg: list[str] = typer.Option([], "--model-arg", help="Model argument key=value (repeatable)."),
    data: str | None = typer.Option(
        None, "--data", help=DATA_HELP + " [default: a FOLDER's own data (its spec.json), else fashion-mnist]"
    ),
    data_dir: Path | None = DataDirOpt,
    channels: int | None = ChannelsOpt,
    image_size: str | None = ImageSizeOpt,
    data_memory: str | None = DataMemoryOpt,
    threads: int = typer.Option(0, help="Intra-op threads (0 = one per core)."),
) -> None:
    """Top-1 accuracy and loss on the validation and test sets (of a model folder's own data
    unless --data names other data, read at the model's input shape and normalization)."""
    from .train import evaluate_model
    from .ui import console

    if (folder is None) == (model is None):
        raise PakdError("give either a model FOLDER or --model (with --weights)")
    res = evaluate_model(
        folder=folder,
        model=model,
        weights=weights,
        model_args=_parse_model_args(model_arg),
        data=data,
        data_dir=data_dir,
        threads=threads,
        channels=channels,
        image_size=image_size,
        data_memory=data_memory,
    )
    table = Table(title=f"{res.title} on {res.data}")
    for col in ("split", "images", "top-1", "loss"):
        table.add_column(col, justify="right")
    for split_name, images, top1, loss in res.splits:
        table.add_row(split_name, f"{images:,}", f"{100 * top1:.2f}%", f"{loss:.4f}")
    console.print(table)
    stats = res.stats
    console.print(
        f"{stats.params:,} params ({stats.nonzeros:,} nonzero), {stats.macs:,} MACs per image, "
        f"{stats.dense_fp32_bytes:,} dense fp32 bytes"
    )


@app.command("stats")
def stats_cmd(
    model: str = typer.Argument(..., help="Zoo model name, package.module:factory, or a model folder."),
    model_arg: list[str] = typer.Option([], "--model-arg", help="Model argument key=value (repeatable)."),
    input_shape: str | None = typer.Option(
        None,
        "--input-shape",
        help="One input as CxHxW, e.g. 3x224x224 [default: a model folder's data shape; else "
        "in_channels x input_size x input_size from --model-arg, 1x28x28 without them].",
    ),
) -> None:
    """Per-layer parameters, nonzeros and MACs of one input (a model folder: its data's shape)."""
    from .metrics import model_stats
    from .modelio import load_model
    from .models import build_model
    from .ui import console, fmt_int

    args: dict[str, Any] = dict(_parse_model_args(model_arg))
    if Path(model).is_dir():
        net, spec = load_model(model)
        shape = tuple(spec.get("data", {}).get("input_shape") or (1, 28, 28))
    else:
        net = build_model(model, **args)
        side, chans = args.get("input_size", 28), args.get("in_channels", 1)
        if not (isinstance(side, int) and isinstance(chans, int)):
            raise PakdError("--model-arg input_size and in_channels must be integers (or give --input-shape)")
        shape = (chans, side, side)
    if input_shape is not None:
        shape = _parse_chw(input_shape)
    try:
        stats = model_stats(net, shape)
    except RuntimeError as exc:
        text = " ".join(str(exc).split())
        raise PakdError(f"{model} does not run on a {'x'.join(map(str, shape))} input: {text[:200]}") from None
    table = Table(title=f"{model}: per-layer metrics, one {'x'.join(map(str, shape))} input")
    for col in ("layer", "type", "params", "nonzeros", "MACs"):
        table.add_column(col, justify="left" if col in ("layer", "type") else "right")
    for layer in stats.layers:
        table.add_row(layer.name, layer.kind, f"{layer.params:,}", f"{layer.nonzeros:,}", f"{layer.macs:,}")
    table.add_row("[bold]total", "", f"[bold]{stats.params:,}", f"[bold]{stats.nonzeros:,}", f"[bold]{stats.macs:,}")
    console.print(table)
    console.print(f"dense fp32 bytes: {stats.dense_fp32_bytes:,} ({fmt_int(stats.dense_fp32_bytes)})")


@app.command("compress")
def compress_cmd(
    teacher: Path | None = typer.Option(None, help="Teacher model folder, e.g. runs/lenet5-fashion-mnist/teacher."),
    recipe: Path | None = typer.Option(
        None, help="Recipe TOML file, or the name of a shipped one (lenet5, lenet5-fast, resnet20, ...; see recipes/)."
    ),
    name: str | None = typer.Option(None, help="Run name [default: the recipe's name]."),
    runs_dir: Path = typer.Option(Path("runs"), help="Folder holding runs."),
    resume: Path | None = typer.Option(None, help="Continue the run in this folder (same recipe and teacher)."),
    data_dir: Path | None = DataDirOpt,
    data_memory: str | None = DataMemoryOpt,
    threads: int = typer.Option(0, help="Intra-op threads (0 = one per core)."),
    device: str = typer.Option("cpu", help="Torch device (cpu; cuda where present - never required)."),
    seed: int = typer.Option(0, help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    nproc: int = NprocOpt,
    backend: str | None = BackendOpt,
    sync_bn: bool = SyncBnOpt,
) -> None:
    """Compress a teacher by the stages of a recipe: prune -> distill -> evaluate -> checkpoint.

    The data is the teacher's own, as its spec.json records it. Finished stages are reused; an
    interrupted stage (Ctrl-C, kill -9) continues from its last finished epoch with --resume
    RUN_FOLDER (or the same command again), with any number of processes. Data-parallel on
    several processes: --nproc N here, or torchrun (docs/distributed.md).
    """
    from . import dist
    from .data import parse_memory
    from .pipeline import compress, compress_job
    from .ui import TrainProgress, console, ledger_table

    job = compress_job(
        teacher=teacher,
        recipe=recipe,
        name=name,
        runs_dir=runs_dir,
        resume=resume,
        data_dir=str(data_dir) if data_dir else None,
        threads=threads,
        device=device,
        seed=seed,
        data_memory=parse_memory(data_memory) if data_memory else None,
        parallel=dist.ParallelConfig(backend=backend, sync_bn=sync_bn),
    )
    if nproc > 1 and not dist.launched():
        dist.launch(nproc, _ARGV, f"continue with pakd compress --resume {job.run_dir}")
        return
    quiet = quiet or not dist.is_main()
    recipe_obj, rows = compress(job, lambda title: TrainProgress(title, quiet=quiet))
    if not dist.is_main():
        return
    console.print(ledger_table(rows, title=f"{job.run_dir}: {recipe_obj.name}"))
    final = rows[-1]
    drop = 100 * (rows[0]["test_top1"] - final["test_top1"])
    console.print(
        f"[bold]{final['size_ratio']:.1f}x smaller[/] ({final['bytes_huffman' if recipe_obj.huffman else 'bytes']:,} "
        f"bytes vs {4 * rows[0]['params']:,} fp32 teacher bytes), {final['mac_ratio']:.2f}x fewer MACs, "
        f"test top-1 {100 * final['test_top1']:.2f}% (teacher {100 * rows[0]['test_top1']:.2f}%, {-drop:+.2f} pt)"
    )


@app.command("build")
def build_cmd(
    student: Path = typer.Argument(
        ..., help="A compress run folder (its last stage), a model folder, or a .pakd file."
    ),
    target: str = typer.Option(
        ..., "--target", "-t", help="A board from `pakd targets` (or a path to a target .toml)."
    ),
    backend: str = typer.Option(
        "native", help="native (PaKD's runtime), tvm (Apache TVM), or auto (the faster on the host)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Bundle folder [default: build/<target>]."),
    tune_trials: int = typer.Option(
        0, "--tune-trials", help="TVM only: MetaSchedule trials (0 = untuned; tuning is slow)."
    ),
    targets_dir: Path | None = typer.Option(None, "--targets-dir", help="A folder of your own board TOML files."),
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Build a deployable bundle of a model for a board: artifacts, runner, libraries, manifest.json.

    The manifest records the sha256 of every file and a golden input with its expected output;
    rebuilding an unchanged model for the same target is a no-op.
    """
    from .deploy.build import BuildConfig, build
    from .targets import load_target
    from .ui import console

    t = load_target(target, targets_dir)
    cfg = BuildConfig.for_target(t, out_dir=out, backend=backend, tune_trials=tune_trials, data_dir=data_dir)
    out_dir = cfg.out_dir
    result = build(student, cfg)
    m = result.bundle.manifest
    if result.choice:
        note = result.choice.get("fallback") or f"host medians {result.choice['median_us']} -> {m['backend']}"
        console.print(f"--backend auto: {note}", markup=False)
    state = "up to date" if result.up_to_date else "built"
    total = sum(f["bytes"] for f in m["files"].values())
    console.print(
        f"[bold green]{state}[/] {out_dir}: {m['model']} for {t.name} ({t.triple}), backend {m['backend']}, "
        f"{len(m['files'])} files, {total:,} bytes (model {m['sizes']['model_bytes']:,})"
    )


@app.command("verify")
def verify_cmd(
    bundle: Path = typer.Argument(..., help="A bundle folder written by `pakd build`."),
    emulate: bool = typer.Option(False, "--emulate", help="Run an ARM bundle here under qemu-user."),
    count: bool = typer.Option(
        False, "--count", help="Also count emulated instructions per inference (with --emulate)."
    ),
    baseline: Path | None = typer.Option(
        None, "--baseline", help="Another bundle for the same target (e.g. the teacher): prints the instruction ratio."
    ),
    functions: int = typer.Option(
        0,
        "--functions",
        min=0,
        help="With --emulate: also list the N functions of the runner that execute the most instructions "
        "per inference (where the instructions go: kernels, passes, the C library as '?').",
    ),
    targets_dir: Path | None = typer.Option(None, "--targets-dir", help="A folder of your own board TOML files."),
) -> None:
    """Check a bundle: every file against its manifest hash, then the golden output (on this
    machine, or under qemu with --emulate; with --count, the emulated instructions of one
    inference — emulated seconds mean nothing and are never reported)."""
    from .deploy.verify import verify
    from .ui import console

    rep = verify(
        bundle,
        emulate=emulate,
        count=count or emulate,
        baseline=baseline,
        targets_dir=targets_dir,
        functions=functions > 0,
    )
    where = f"under qemu ({rep.target})" if rep.emulated else f"on this machine ({rep.target})"
    verdict = "[bold green]outputs match[/]" if rep.ok else "[bold red]outputs DIFFER[/]"
    console.print(
        f"{verdict} {where}: max |diff| {rep.max_abs_diff:.2e}, top-1 {'equal' if rep.argmax_equal else 'different'}"
    )
    if rep.instructions is not None:
        cpu = f", qemu -cpu {rep.emulator_cpu}" if rep.emulator_cpu else ""
        console.print(f"emulated instructions per inference: {rep.instructions:,} (1 thread{cpu})")
    if rep.baseline_instructions is not None:
        console.print(
            f"baseline {baseline}: {rep.baseline_instructions:,}; ratio baseline/this = "
            f"[bold]{rep.instruction_ratio:.2f}x[/]"
        )
    if rep.functions:
        total = sum(n for _, n in rep.functions) or 1
        table = Table(title=f"where the instructions of one inference go (top {functions})")
        for col in ("function", "instructions", "share"):
            table.add_column(col, justify="left" if col == "function" else "right")
        for name, n in rep.functions[:functions]:
            table.add_row(name, f"{n:,}", f"{100 * n / total:.1f}%")
        console.print(table)
    if not rep.ok:
        raise typer.Exit(1)


@app.command("bench")
def bench_cmd(
    paths: list[Path] = typer.Argument(
        ...,
        help="Bundles from `pakd build` (timed on --device), or one compress run "
        "folder / model folder / .pakd file (every engine on this machine).",
    ),
    device: list[str] = typer.Option(
        ["local"],
        "--device",
        "-d",
        help="local, a name from devices.toml, ssh://user@host:port, or qemu:BOARD (bundles "
        "built for BOARD: instructions of one inference under qemu with its CPU model, the teacher "
        "also on the board's other engines); repeat it to bench several devices in parallel.",
    ),
    devices_file: Path | None = typer.Option(None, "--devices", help="The devices file [default: ./devices.toml]."),
    threads: str | None = typer.Option(
        None,
        help="Thread counts, e.g. 1 or 1,2; bundles also take 'all' "
        "(every core of the device) [default: bundles 1,all; models 1].",
    ),
    runs: int = typer.Option(3, help="Bundles: timed runner invocations per bundle and thread count."),
    repeats: int | None = typer.Option(
        None, help="Timed batch-1 calls per row, at least [default: bundles 100, models 200]."
    ),
    warmup: int | None = typer.Option(None, help="Untimed calls before timing [default: bundles 10, models 20]."),
    min_time: float | None = typer.Option(
        None, "--min-time", help="Time each row for at least this many seconds [default: bundles 0.5, models 0.2]."
    ),
    db: Path = typer.Option(Path("results.db"), "--db", help="The results store (SQLite) every row goes to."),
    teacher: Path | None = typer.Option(
        None, "--teacher", help="Bundles: which one is the teacher (default: from each bundle's manifest)."
    ),
    new_session: bool = typer.Option(
        False,
        "--new-session",
        help="Bundles: measure again even what this same "
        "command already stored (default: a rerun only fills in what is missing).",
    ),
    accept_new_host_key: bool = typer.Option(
        False,
        "--accept-new-host-key",
        help="Trust an SSH host key not yet in known_hosts (and record it). A changed key is always refused.",
    ),
    identity: Path | None = typer.Option(None, "--identity", "-i", help="SSH private key (for ssh:// devices)."),
    known_hosts: Path | None = typer.Option(
        None, "--known-hosts", help="known_hosts file for ssh:// devices [default: ~/.ssh/known_hosts]."
    ),
    connect_timeout: float | None = typer.Option(None, "--connect-timeout", help="Seconds to connect [default 10]."),
    command_timeout: float | None = typer.Option(
        None, "--command-timeout", help="Seconds a remote command may take [default 600]."
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="Models: also write every number (and the machine) to this JSON file."
    ),
    data_dir: Path | None = DataDirOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    peers: bool = typer.Option(
        True,
        "--peers/--no-peers",
        help="qemu:BOARD: also count the teacher on the board's other engines (ExecuTorch + XNNPACK "
        "and ONNX Runtime, built for the board's CPU), so the verdict is against the best of them.",
    ),
    same_process: bool = typer.Option(
        False,
        "--same-process",
        help="Models: time every row in this process (faster; "
        "other engines' spinning thread pools then disturb multi-thread rows).",
    ),
) -> None:
    """Batch-1 latency (median, p90) of teacher and student, with their ratios from one run.

    Bundles (`pakd build` output) run on each --device through their own runner: uploaded
    content-addressed over SSH (or copied for local), hashes checked on the device, golden output
    checked, then timed at 1 thread and all cores. A model or compress run is timed here on every
    dense engine (PyTorch, ONNX Runtime, PaKD). Every row goes to the results store (--db).
    """
    from .deploy.bundle import MANIFEST

    bundles = [p for p in paths if (p / MANIFEST).is_file()]
    emulated = [d for d in device if d.startswith("qemu:")]
    if emulated:
        if len(emulated) != len(device) or not bundles or len(bundles) != len(paths):
            raise PakdError(
                "--device qemu:BOARD counts bundles built for BOARD: give only bundles and only qemu: devices "
                "(time real devices in a separate pakd bench)"
            )
        for spec in emulated:
            _print_emulated_bench(bundles, spec, db, new_session, quiet, peers)
        return
    if bundles and len(bundles) == len(paths):
        from .bench.remote import BenchPlan

        plan = BenchPlan.from_options(threads, runs, repeats, warmup, min_time)
        overrides = dict(
            accept_new_host_key=True if accept_new_host_key else None,
            identity_file=identity,
            known_hosts=known_hosts,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        _print_device_bench(bundles, device, devices_file, plan, db, teacher, new_session, overrides, quiet)
        return
    if bundles:
        raise PakdError(
            f"{bundles[0]} is a bundle but {next(p for p in paths if p not in bundles)} is not: give only "
            "bundles, or one model / compress run"
        )
    if len(paths) != 1:
        raise PakdError("give bundles (from `pakd build`), or exactly one compress run, model folder or .pakd file")
    if device != ["local"]:
        raise PakdError(
            f"--device {device[0]}: a model or run is timed on this machine's engines; to time it on a "
            f"device, build bundles first (pakd build {paths[0]} --target BOARD) and bench those"
        )
    from .bench import BenchConfig

    config = BenchConfig.from_options(threads, repeats, warmup, min_time, isolate=not same_process)
    _print_local_bench(paths[0], config, db, data_dir, json_out, quiet)


def _print_local_bench(
    source: Path, config: Any, db: Path, data_dir: Path | None, json_out: Path | None, quiet: bool
) -> None:
    from .bench import rows_table
    from .bench.local import bench_models
    from .ui import console, step_progress

    with step_progress("[bold]timing", quiet) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        res = bench_models(source, config, db, data_dir=data_dir, json_out=json_out, progress=progress)
    console.print(
        rows_table(
            res.rows,
            title=f"{source}: batch 1, {res.data} test image {config.image_index}, "
            f">= {config.repeats} runs after {config.warmup} warm-up",
        )
    )
    load = res.machine["load_avg_1_5_15"]
    console.print(
        f"{res.machine['cpu']} ({res.machine['logical_cpus']} logical CPUs), load average before {load[0]:.2f}"
        if load
        else res.machine["cpu"]
    )
    console.print(f"stored in {db} (session {res.session})")
    if json_out is not None:
        console.print(f"wrote {json_out}")


def _print_emulated_bench(bundles: list[Path], spec: str, db: Path, fresh: bool, quiet: bool, peers: bool) -> None:
    from .bench.emulated import bench_emulated, board_of, board_verdict
    from .bench.results import open_store
    from .ui import console, step_progress

    board = board_of(spec)
    with step_progress("[bold]qemu", quiet) as bar, open_store(db) as store:
        task = bar.add_task("", total=None)
        res = bench_emulated(
            bundles, board, store, fresh=fresh, peers=peers, note=lambda what: bar.update(task, description=what)
        )
    table = Table(
        title=f"{board} under qemu -cpu {res.cpu}: guest instructions of one inference, 1 thread "
        f"(instructions, not time; session {res.session})"
    )
    for col in ("bundle", "role", "engine", "instructions", "golden", "note"):
        table.add_column(col, justify="right" if col == "instructions" else "left")
    for r in res.rows:
        golden = "-" if r.golden_ok is None else ("ok" if r.golden_ok else f"DIFF {r.max_abs_diff:.2g}")
        table.add_row(
            r.bundle, r.role or "-", r.engine, f"{r.instructions:,}" if r.instructions else "-", golden, r.reason or ""
        )
    console.print(table)
    v = board_verdict(res.rows, board)
    if v is not None:
        same = f"; {v.same_engine_ratio:.2f}x vs the teacher on PaKD" if v.same_engine_ratio else ""
        console.print(
            f"{board} (qemu -cpu {res.cpu}): the student needs {v.ratio:.2f}x fewer instructions than the teacher "
            f"on the best engine ({v.best_engine}, {v.best_instructions:,} vs {v.student_instructions:,}){same}"
        )
    console.print(f"results in {db} (session {res.session}): measured {res.measured}, already stored {res.reused}")
    if any(r.golden_ok is False for r in res.rows):
        raise typer.Exit(1)


def _print_device_bench(
    bundles: list[Path],
    device_specs: list[str],
    devices_file: Path | None,
    plan: Any,
    db: Path,
    teacher: Path | None,
    fresh: bool,
    overrides: dict[str, Any],
    quiet: bool,
) -> None:
    from rich.progress import TaskID

    from .bench.remote import bench_on_devices
    from .ui import console, err_console, step_progress

    with step_progress("[bold]{task.fields[dev]}", quiet) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(dev: str, done: int, total: int, what: str) -> None:
            if dev not in tasks:
                tasks[dev] = bar.add_task("", total=None, dev=dev)
            bar.update(tasks[dev], completed=done, total=total or None, description=what or None)

        res = bench_on_devices(
            bundles,
            device_specs,
            plan,
            db,
            devices_file=devices_file,
            overrides=overrides,
            teacher=teacher,
            fresh=fresh,
            progress=progress,
        )
    session = res.session
    table = Table(
        title=f"batch 1, golden input; median of {plan.runs} run(s) of >= {plan.repeats} calls (session {session})"
    )
    for col in ("device", "bundle", "role", "engine", "threads", "median us", "p90 us", "peak RSS KiB", "model bytes"):
        table.add_column(col, justify="left" if col in ("device", "bundle", "role", "engine") else "right")
    for r in res.summary:
        table.add_row(
            r.device,
            r.bundle,
            r.role,
            r.engine,
            str(r.threads),
            f"{r.median_us:,.1f}" if r.median_us else "-",
            f"{r.p90_us:,.1f}" if r.p90_us else "-",
            f"{r.peak_rss_kb:,.0f}" if r.peak_rss_kb else "-",
            f"{r.model_bytes:,}" if r.model_bytes else "-",
        )
    if res.rows:
        console.print(table)
    if res.comparisons:
        ct = Table(title="teacher vs student (teacher = the fastest teacher bundle on that device and thread count)")
        for col in ("device", "threads", "size", "median", "p90", "memory", "teacher us", "student us"):
            ct.add_column(col, justify="left" if col == "device" else "right")

        def fmt(v: float | None) -> str:
            return f"{v:.2f}x" if v else "-"

        for c in res.comparisons:
            ct.add_row(
                c.device,
                str(c.threads),
                fmt(c.size_ratio),
                fmt(c.median_ratio),
                fmt(c.p90_ratio),
                fmt(c.memory_ratio),
                f"{c.teacher_median_us:,.1f}",
                f"{c.student_median_us:,.1f}",
            )
        console.print(ct)
    elif res.rows:
        console.print(
            "[yellow]no teacher/student pair to compare[/] (bench a teacher bundle and a student bundle "
            "together; --teacher BUNDLE names the teacher)"
        )
    for o in res.outcomes:
        facts = o.facts
        where = ", ".join(str(facts[k]) for k in ("cpu_model", "board", "os") if facts.get(k))
        console.print(
            f"{o.device.describe()}: {where or 'no facts'}; measured {o.measured}, already stored {o.skipped}, "
            f"files sent {o.uploaded}, already there {o.reused}"
        )
        if o.error:
            err_console.print(f"[bold red]error:[/] {o.error}", highlight=False, soft_wrap=True)
    console.print(f"results in {db} (session {session}); `pakd results --session {session}` lists them")
    if res.failed:
        if res.kept_some:
            err_console.print("finished rows are kept; run the same command again to complete the rest")
        raise typer.Exit(1)


@app.command("results")
def results_cmd(
    db: Path = typer.Option(Path("results.db"), "--db", help="The results store."),
    device: str | None = typer.Option(None, "--device", "-d", help="Only devices whose name contains this."),
    model: str | None = typer.Option(None, "--model", help="Only models whose label contains this."),
    session: str | None = typer.Option(None, "--session", help="Only this session."),
    threads: int | None = typer.Option(None, "--threads", help="Only this thread count."),
    role: str | None = typer.Option(None, "--role", help="teacher or student."),
    engine: str | None = typer.Option(None, "--engine", help="pakd, tvm, onnxruntime or torch."),
    last: int | None = typer.Option(None, "--last", min=1, help="Only the newest N rows."),
    json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON lines instead of a table."),
) -> None:
    """List stored benchmark rows (one per bundle, device, threads and run), filtered."""
    import json

    from .bench.results import read_rows
    from .ui import console

    if not db.exists():
        raise PakdError(f"{db}: no results store yet (pakd bench writes it)")
    if role is not None and role not in ("teacher", "student"):
        raise PakdError("--role must be teacher or student")
    rows = read_rows(
        db, device=device, model=model, session=session, threads=threads, role=role, engine=engine, limit=last
    )
    if json_out:
        for r in rows:
            typer.echo(json.dumps(r, sort_keys=True))
        return
    table = Table(title=f"{db}: {len(rows)} row(s)")
    for col in (
        "when",
        "session",
        "device",
        "model",
        "role",
        "engine",
        "thr",
        "run",
        "median us",
        "p90 us",
        "RSS KiB",
        "golden",
    ):
        table.add_column(col, justify="right" if col in ("thr", "run", "median us", "p90 us", "RSS KiB") else "left")
    for r in rows:
        golden = "-" if r["golden_ok"] is None else ("ok" if r["golden_ok"] else "[red]WRONG[/]")
        table.add_row(
            r["started_at"].replace("+00:00", "Z"),
            r["session"][:8],
            r["device"],
            r["model"] or "-",
            r["role"] or "-",
            r["engine"],
            str(r["threads"]),
            str(r["run"]),
            f"{r['median_us']:,.1f}" if r["median_us"] is not None else "-",
            f"{r['p90_us']:,.1f}" if r["p90_us"] is not None else "-",
            f"{r['peak_rss_kb']:,}" if r["peak_rss_kb"] else "-",
            golden,
        )
    console.print(table)


@app.command("demo")
def demo_cmd(
    model: str = typer.Option("lenet5", "--model", "-m", help="Zoo model of the teacher."),
    recipe: Path = typer.Option(Path("recipes/lenet5-fast.toml"), help="Compression recipe."),
    board: str = typer.Option("rpi4", help="The ARM board to build for and verify under qemu."),
    runs_dir: Path = typer.Option(Path("runs"), help="Folder holding runs."),
    build_dir: Path = typer.Option(Path("build/demo"), help="Folder for the bundles."),
    db: Path = typer.Option(Path("results.db"), "--db", help="The results store."),
    data_dir: Path | None = DataDirOpt,
    threads: int = typer.Option(0, help="Training threads (0 = one per core)."),
    epochs: int | None = typer.Option(None, help="Teacher epochs [default: the model's]."),
    cache_dir: Path = typer.Option(Path("build/.cache"), "--cache-dir", help="Cross-build and tool cache."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the summary figures to this JSON file."),
    measure_again: bool = typer.Option(
        False,
        "--measure-again",
        help="Time the engines and bundles again even "
        "where an identical earlier run stored timings (say, it ran on a busy "
        "machine); the report then uses the new ones.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """The whole path on Fashion-MNIST: train (or reuse) the teacher, compress it, build for the
    host and a board, verify the board build under qemu, bench here, write the report, and print
    one line: size ratio, speed ratio, accuracy drop. A second run reuses finished work."""
    from .demo import DemoConfig, demo_summary_json, run_demo
    from .modelio import write_json_atomic
    from .ui import console

    cfg = DemoConfig(
        model=model,
        recipe=recipe,
        board=board,
        runs_dir=runs_dir,
        build_dir=build_dir,
        db=db,
        data_dir=data_dir,
        threads=threads,
        epochs=epochs,
        cache_dir=cache_dir,
        quiet=quiet,
        measure_again=measure_again,
    )
    result = run_demo(cfg)
    console.rule()
    console.print(f"[bold]{result.summary(board)}[/]", soft_wrap=True)
    if result.report:
        console.print(f"report: {result.report}")
    if json_out is not None:
        write_json_atomic(json_out, demo_summary_json(result, board))


@app.command("report")
def report_cmd(
    run: Path = typer.Argument(..., help="A compress run folder, e.g. runs/lenet5-fast."),
    db: Path | None = typer.Option(
        None,
        "--db",
        help="The results store `pakd bench` writes [default: ./results.db; none there = speed not measured].",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for report.html and report.md [default: RUN/report]."
    ),
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
    for v in (*rep.device_verdicts, *rep.board_verdicts):
        console.print(f"  {v.line()}", highlight=False)
    if any(c.status is Status.NOT_MEASURED for c in rep.verdict.checks):
        console.print(rep.verdict.note, highlight=False)


def error_line(exc: BaseException) -> tuple[str, int] | None:
    """How ``main`` reports ``exc``: one line for stderr and the exit code, or None when
    ``exc`` is not an error (a command's ``typer.Exit``). The one mapping of every command:
    usage errors, user errors (a :class:`PakdError`, or what :func:`pakd.errors.user_error`
    makes of a library's exception) exit 2, any other exception is a bug (docs/errors.md)."""
    from .errors import BUG_EXIT, bug_line, one_line, user_error

    if isinstance(exc, typer.Exit):
        return None
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted: finished epochs are saved; rerun the same command to resume", 130
    if isinstance(exc, typer.Abort):
        return "aborted", 1
    if isinstance(exc, typer.exceptions.TyperException):  # usage errors: click's message on one line
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        return f"error: {one_line(exc.format_message())}{hint}", getattr(exc, "exit_code", 2) or 2
    if not isinstance(exc, Exception):
        return None
    err = user_error(exc)
    if err is None:
        return bug_line(exc), BUG_EXIT
    return f"error: {one_line(err, 1000)}", err.exit_code


_ARGV: list[str] = []  # the arguments of this invocation, for --nproc to start the same command N times


def main(argv: list[str] | None = None) -> int:
    """Entry point: every error is one line on stderr, never a traceback (``PAKD_DEBUG=1``
    re-raises it, traceback and all)."""
    from .errors import debug_enabled

    _ARGV[:] = sys.argv[1:] if argv is None else list(argv)
    try:
        code = app(args=argv, prog_name="pakd", standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) inside a command comes back as its return value
            return code
    except typer.Exit as exc:
        return exc.exit_code
    except BaseException as exc:
        report = error_line(exc)
        if report is None:
            raise
        if debug_enabled() and not isinstance(exc, KeyboardInterrupt):
            raise
        from rich.markup import escape

        from .ui import err_console

        line, code = report
        head, sep, rest = line.partition(": ")
        style = "bold red" if head in ("error", "internal error") else "yellow"
        text = f"[{style}]{escape(head)}[/]{sep}{escape(rest)}" if sep else escape(line)
        err_console.print(text, highlight=False, soft_wrap=True)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
