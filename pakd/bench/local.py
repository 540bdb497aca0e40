"""``pakd bench --device local``: time a teacher and its compressed student on this machine, in one
run, at batch 1 on a real test image, and report the ratios the way DESIGN.md asks:

- the teacher on every engine present (PyTorch eager, ONNX Runtime, and the native runtime when
  the teacher can be lowered); the fastest of them is the baseline ("best teacher engine");
- the student on the native runtime (its deployment) and on PyTorch eager for reference;
- ``vs best teacher`` = baseline median / row median (above 1: faster than the teacher at its
  best), ``same engine`` = the teacher's median on the row's engine / row median; both at the
  row's thread count;
- every output is checked against PyTorch eager on the same model (max |difference|), so a
  fast wrong engine shows.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rich.table import Table

from .. import rundir
from .engines import BenchError, EngineUnavailable, ModelRef, engine_names, get_engine, load_module
from .timing import Timing, measure

TEACHER, STUDENT, MODEL = "teacher", "student", "model"
STUDENT_ENGINES = ("pakd", "torch")  # the deployment, and eager PyTorch for reference


@dataclass(frozen=True)
class BenchConfig:
    """How to time: thread counts (each one a full pass), calls per row, warm-up, minimum time."""

    threads: tuple[int, ...] = (1,)
    repeats: int = 200
    warmup: int = 20
    min_time_s: float = 0.2
    image_index: int = 0
    # Each row in a fresh process: thread pools that spin after their run (PyTorch's OpenMP,
    # ONNX Runtime's) would otherwise take cores from the next engine's threads.
    isolate: bool = True

    @classmethod
    def from_options(
        cls,
        threads: str | None = None,
        repeats: int | None = None,
        warmup: int | None = None,
        min_time_s: float | None = None,
        isolate: bool = True,
    ) -> BenchConfig:
        """The config from command-line options; None takes the default above. ``threads`` like '1,2'."""
        given: dict[str, Any] = {
            "threads": parse_threads(threads) if threads else None,
            "repeats": repeats,
            "warmup": warmup,
            "min_time_s": min_time_s,
        }
        return cls(isolate=isolate, **{k: v for k, v in given.items() if v is not None})

    def __post_init__(self) -> None:
        if not self.threads or any(t < 1 for t in self.threads):
            raise BenchError(f"threads must be one or more counts >= 1 (got {list(self.threads)})")
        if self.repeats < 1 or self.warmup < 0 or not 0 <= self.min_time_s < float("inf"):
            raise BenchError(
                f"need repeats >= 1, warmup >= 0, min-time >= 0 (got {self.repeats}, {self.warmup}, {self.min_time_s})"
            )


@dataclass(frozen=True)
class BenchCase:
    """One model to time and the engines to time it on."""

    role: str
    model: ModelRef
    engines: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    engine: str
    role: str
    model: str
    threads: int
    timing: Timing | None = None
    reason: str = ""  # why there is no timing
    max_abs_diff: float | None = None  # vs PyTorch eager on the same model and input
    vs_best_teacher: float | None = None
    same_engine: float | None = None
    baseline: bool = False  # this row is the best teacher engine at its thread count
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["timing"] = self.timing.to_dict() if self.timing else None
        return d


def parse_threads(text: str) -> tuple[int, ...]:
    """'1' or '1,2' -> (1,) or (1, 2)."""
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise BenchError(f"--threads {text!r}: give counts like 1 or 1,2") from None
    if not values or any(v < 1 for v in values):
        raise BenchError(f"--threads {text!r}: give counts >= 1 like 1 or 1,2")
    return tuple(dict.fromkeys(values))


def _last_stage(run_dir: Path) -> Path:
    stage = rundir.last_stage(run_dir)
    if stage is None:
        raise BenchError(f"{run_dir}: no finished stage (stage-K/ with spec.json) yet")
    return stage


def plan_cases(path: str | Path) -> list[BenchCase]:
    """A compress run folder -> its teacher (every engine) and final student; a model folder ->
    that model on every engine; a .pakd file -> the native runtime only."""
    path = Path(path)
    if not path.exists():
        raise BenchError(f"{path}: no such file or folder")
    if path.is_dir() and rundir.is_run(path):
        run_file = path / rundir.RUN_FILE
        teacher_dir = rundir.teacher_of(path)
        if teacher_dir is None:
            raise BenchError(f"{run_file}: no teacher path in it (not a compress run?)")
        if not teacher_dir.is_dir():
            raise BenchError(f"{run_file} names teacher {teacher_dir}, which is not there")
        student = _last_stage(path)
        return [
            BenchCase(
                TEACHER,
                ModelRef.from_path(teacher_dir, f"teacher ({teacher_dir.parent.name}/{teacher_dir.name})"),
                tuple(engine_names()),
            ),
            BenchCase(STUDENT, ModelRef.from_path(student, f"student ({path.name}/{student.name})"), STUDENT_ENGINES),
        ]
    ref = ModelRef.from_path(path)
    if ref.folder is None and ref.pakd_file is not None:  # the native runtime only: a file it refuses is an error
        from ..lower.native import open_pakd

        open_pakd(ref.pakd_file)
    return [BenchCase(MODEL, ref, tuple(engine_names()) if ref.folder is not None else ("pakd",))]


def sample_image(targets: list[BenchCase], index: int = 0, data_dir: str | None = None) -> tuple[np.ndarray, str]:
    """One real test image (1, C, H, W) of the data set the models were trained on (their
    spec.json's data record; Fashion-MNIST for .pakd files alone), normalized as in training."""
    import torch

    from ..data import load_data

    records = [
        spec["data"]
        for spec in (t.model.spec() for t in targets if t.model.folder is not None)
        if spec and isinstance(spec.get("data"), dict)
    ]
    if not records:  # .pakd files alone: the data of the teacher of the run they are in, if any
        from ..deploy.build import Student, data_record

        for t in targets:
            if t.model.pakd_file is not None:
                rec = data_record(Student(t.model.label, None, t.model.pakd_file))
                if rec is not None:
                    records.append(rec)
    keys = {(r.get("kind", "builtin"), str(r.get("source") or r.get("name"))) for r in records}
    if len(keys) > 1:
        raise BenchError(f"the models were trained on different data sets: {sorted(k[1] for k in keys)}")
    record = records[0] if records else {"name": "fashion-mnist"}
    test = load_data(record, data_dir, memory=0).test  # streamed: only the one image is decoded
    if not 0 <= index < len(test):
        raise BenchError(f"image index {index} out of range 0..{len(test) - 1}")
    return test.take(torch.tensor([index])).images.numpy().copy(), str(record.get("name") or record.get("source"))


Progress = Callable[[int, int, str], None]  # (done, total, what is being timed now)


def run_local(
    targets: list[BenchCase], config: BenchConfig, x: np.ndarray, progress: Progress | None = None
) -> list[Row]:
    """Time every (threads, target, engine) (each in its own process unless ``config.isolate`` is
    off), then fill in the ratios."""
    import torch

    references = {}
    for t in targets:
        if t.model.folder is not None:
            with torch.inference_mode():
                references[t.model.label] = load_module(t.model)(torch.from_numpy(x)).numpy()
    total = len(config.threads) * sum(len(t.engines) for t in targets)
    rows: list[Row] = []
    for threads in config.threads:
        for target in targets:
            for name in target.engines:
                if progress:
                    progress(len(rows), total, f"{target.model.label} on {name}, {threads} thread(s)")
                time_row = _time_isolated if config.isolate else _time_one
                rows.append(time_row(name, target, threads, config, x, references.get(target.model.label)))
    if progress:
        progress(total, total, "done")
    return with_ratios(rows)


def _time_isolated(
    name: str, target: BenchCase, threads: int, config: BenchConfig, x: np.ndarray, reference: np.ndarray | None
) -> Row:
    """_time_one in a fresh (spawned) process that exits afterwards."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_time_one, name, target, threads, config, x, reference).result()


def _time_one(
    name: str, target: BenchCase, threads: int, config: BenchConfig, x: np.ndarray, reference: np.ndarray | None
) -> Row:
    base: dict[str, Any] = dict(engine=name, role=target.role, model=target.model.label, threads=threads)
    engine = get_engine(name)
    reason = engine.availability()
    if reason:
        return Row(**base, reason=reason)
    try:
        runner = engine.open(target.model, threads)
    except EngineUnavailable as exc:
        return Row(**base, reason=str(exc))
    out = np.asarray(runner(x))
    diff = float(np.max(np.abs(out - reference))) if reference is not None and out.shape == reference.shape else None
    timing = measure(lambda: runner(x), warmup=config.warmup, repeats=config.repeats, min_time_s=config.min_time_s)
    return Row(**base, timing=timing, max_abs_diff=diff, info=dict(runner.info))


def _median_us(row: Row) -> float:
    assert row.timing is not None
    return row.timing.median_us


def with_ratios(rows: list[Row]) -> list[Row]:
    """Fill ``vs_best_teacher`` and ``same_engine`` per thread count. The teacher is a compress
    run's teacher; without one (a single model) the model is its own baseline."""
    from dataclasses import replace

    out = []
    for row in rows:
        peers = [r for r in rows if r.threads == row.threads and r.timing is not None]
        base_role = TEACHER if any(r.role == TEACHER for r in peers) else MODEL
        teacher = [r for r in peers if r.role == base_role]
        if row.timing is None or not teacher:
            out.append(row)
            continue
        best = min(teacher, key=_median_us)
        same = next((r for r in teacher if r.engine == row.engine), None)
        out.append(
            replace(
                row,
                vs_best_teacher=_median_us(best) / row.timing.median_us,
                same_engine=_median_us(same) / row.timing.median_us if same else None,
                baseline=row is best,
            )
        )
    return out


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu or platform.processor(),
        "logical_cpus": os.cpu_count(),
        "load_avg_1_5_15": list(load) if load else None,
    }


def report_dict(
    rows: list[Row], config: BenchConfig, source: str, data: str, machine_before: dict[str, Any]
) -> dict[str, Any]:
    from ..modelio import library_versions

    return {
        "format": "pakd-bench/1",
        "device": "local",
        "source": source,
        "batch": 1,
        "input": {"data": data, "split": "test", "index": config.image_index},
        "config": {**asdict(config), "threads": list(config.threads)},
        "machine": machine_before,
        "load_avg_after": machine_info()["load_avg_1_5_15"],
        "versions": library_versions(),
        "rows": [r.to_dict() for r in rows],
    }


def rows_table(rows: list[Row], title: str = "") -> Table:
    """The rich table of a benchmark: one row per (engine, model, threads)."""
    from rich.table import Table

    table = Table(
        title=title,
        caption="ratios at equal threads: the teacher's median (fastest engine, or the same "
        "engine) / the row's median; above 1 = faster. max |diff|: vs PyTorch eager",
    )
    for col in (
        "engine",
        "model",
        "threads",
        "median us",
        "p90 us",
        "vs best teacher",
        "same engine",
        "max |diff|",
        "note",
    ):
        table.add_column(col, justify="left" if col in ("engine", "model", "note") else "right", no_wrap=col != "note")
    for r in rows:
        if r.timing is None:
            table.add_row(r.engine, r.model, str(r.threads), "-", "-", "-", "-", "-", f"[yellow]{r.reason}[/]")
            continue
        vs = f"{r.vs_best_teacher:.2f}x" if r.vs_best_teacher is not None else "-"
        same = f"{r.same_engine:.2f}x" if r.same_engine is not None else "-"
        diff = f"{r.max_abs_diff:.1e}" if r.max_abs_diff is not None else "-"
        note = "best teacher engine" if r.baseline else ""
        table.add_row(
            r.engine,
            r.model,
            str(r.threads),
            f"{r.timing.median_us:,.1f}",
            f"{r.timing.p90_us:,.1f}",
            vs,
            same,
            diff,
            note,
        )
    return table


def store_rows(
    rows: list[Row], targets: list[BenchCase], store: Any, config: BenchConfig, session: str | None = None
) -> str:
    """Put the timed rows into the results store (``pakd.bench.results``) as device ``local``,
    under ``session`` (default: a new one). Returns the session id."""
    import hashlib

    from ..deploy.bundle import sha256_file
    from .remote import parse_facts
    from .results import session_id

    refs = {(t.role, t.model.label): t.model for t in targets}
    digests: dict[str, str] = {}

    def model_digest(ref: ModelRef) -> str:
        path = ref.folder / "model.safetensors" if ref.folder is not None else ref.pakd_file
        key = str(path)
        if key not in digests:
            digests[key] = (
                sha256_file(path) if path is not None and path.is_file() else hashlib.sha256(key.encode()).hexdigest()
            )
        return digests[key]

    session = session or session_id(
        {
            "engines": sorted({r.engine for r in rows}),
            "models": sorted(k[1] for k in refs),
            "config": {**asdict(config), "threads": list(config.threads)},
        },
        fresh=True,
    )
    facts = parse_facts(_local_facts())
    for r in rows:
        ref = refs.get((r.role, r.model))
        if r.timing is None or ref is None:
            continue
        src = ref.path.resolve()
        t = r.timing
        sha = hashlib.sha256(f"{model_digest(ref)}:{r.engine}".encode()).hexdigest()
        store.add(
            {
                "session": session,
                "bundle_sha256": sha,
                "bundle": None,
                "source": str(src),
                "role": r.role if r.role in (TEACHER, STUDENT) else None,
                "model": r.model,
                "engine": r.engine,
                "target": "host",
                "device": "local",
                "threads": r.threads,
                "run": 0,
                "median_us": t.median_us,
                "p90_us": t.p90_us,
                "min_us": t.min_us,
                "max_us": t.max_us,
                "mean_us": t.mean_us,
                "stdev_us": t.stdev_us,
                "iterations": t.count,
                "model_bytes": ref.pakd_file.stat().st_size if ref.pakd_file is not None else None,
                "golden_max_abs_diff": r.max_abs_diff,
                "facts": facts,
            }
        )  # vs PyTorch eager
    return session


def _local_facts() -> str:
    import subprocess

    from .remote import FACTS_SCRIPT

    try:
        return subprocess.run(["sh", "-c", FACTS_SCRIPT], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


@dataclass(frozen=True)
class LocalBench:
    """What ``pakd bench MODEL_OR_RUN`` measured here: the rows (with ratios), how, on what."""

    source: Path
    rows: list[Row]
    config: BenchConfig
    data: str
    machine: dict[str, Any]
    session: str


def bench_models(
    path: str | Path,
    config: BenchConfig,
    db: str | Path,
    *,
    data_dir: str | Path | None = None,
    json_out: Path | None = None,
    progress: Progress | None = None,
) -> LocalBench:
    """Time a compress run (teacher on every engine, final student), a model folder or a .pakd
    file on this machine, store the rows in the results store at ``db`` (and, with ``json_out``,
    every number and the machine in that JSON file)."""
    from .results import open_store

    source = Path(path)
    if json_out is not None and json_out.is_dir():
        raise BenchError(f"--json {json_out}: is a folder, where a file is to be written")
    cases = plan_cases(source)
    x, data = sample_image(cases, config.image_index, str(data_dir) if data_dir else None)
    machine = machine_info()
    rows = run_local(cases, config, x, progress)
    with open_store(db) as store:
        session = store_rows(rows, cases, store, config)
    if json_out is not None:
        from ..modelio import write_json_atomic

        write_json_atomic(json_out, report_dict(rows, config, str(source), data, machine))
    return LocalBench(source, rows, config, data, machine, session)
