"""What a report shows, gathered from a compress run folder and the results store.

A run folder (``pakd compress``) holds ``run.json`` (the teacher's folder), ``recipe.toml``,
``ledger.json`` (one row per stage: accuracy, size, MACs) and ``stage-K/`` model folders. Latency
comes from the SQLite results store that ``pakd bench`` writes: one row per bundle x device x
threads x repeat-run. The rows of run R are its students' (``source`` inside R) and its teacher's
(``source`` = the teacher folder named in R's ``run.json``).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import rundir
from ..bench.results import DEFAULT_DB, ResultsError, norm_path, rows_of_run
from ..errors import PakdError
from ..rundir import LEDGER_FILE, RUN_FILE

# Engines that count as PaKD's deployment of a student (DESIGN.md: "the student on PaKD's deployment").
DEPLOY_ENGINES = ("pakd", "tvm")
BENCH_COMMAND = "pakd bench <bundles> --device local"


class ReportError(PakdError):
    """A run folder or results store a report cannot be made from."""


@dataclass(frozen=True)
class Layer:
    """One convolution or fully-connected layer of a stage, next to the same layer in the teacher."""

    name: str
    kind: str
    in_channels: int
    out_channels: int
    teacher_in: int
    teacher_out: int
    weights: int
    nonzero_weights: int
    macs: int

    @property
    def sparsity(self) -> float:
        """Fraction of this layer's (remaining) weights that are zero."""
        return 1.0 - self.nonzero_weights / self.weights if self.weights else 0.0

    @property
    def kept_out(self) -> float:
        """Output channels left, as a fraction of the teacher's."""
        return self.out_channels / self.teacher_out if self.teacher_out else 1.0


@dataclass(frozen=True)
class Stage:
    """One ledger row: the teacher (index 0) or stage K of the recipe."""

    index: int
    name: str
    row: dict[str, Any]
    folder: Path | None  # stage-K/ (None for the teacher)
    deployed_bytes: int  # the .pakd bytes the size ratio is taken on

    @property
    def label(self) -> str:
        return "teacher" if self.index == 0 else f"{self.index}: {self.name}"


@dataclass(frozen=True)
class Measurement:
    """One row of the results store that belongs to this run."""

    session: str
    started_at: str
    role: str  # 'teacher' | 'student'
    stage: str  # the Stage.label it timed
    engine: str
    target: str
    device: str
    threads: int
    run: int
    median_us: float
    p90_us: float | None
    golden_ok: bool | None
    bundle_bytes: int | None
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineTime:
    """An engine's latency in one session: the median over its repeat-runs of each run's figures."""

    engine: str
    median_us: float
    p90_us: float | None
    runs: int


@dataclass(frozen=True)
class Comparison:
    """Teacher vs student on one device at one thread count, in one bench session."""

    device: str
    threads: int
    session: str
    started_at: str
    teacher: dict[str, EngineTime]  # engine -> time
    students: dict[str, dict[str, EngineTime]]  # stage label -> engine -> time
    student_stage: str  # the stage the verdict is about (the run's final one)
    facts: dict[str, Any]
    failed: tuple[str, ...] = ()  # "model on engine" rows left out: their output failed the golden check

    @property
    def teacher_best(self) -> EngineTime | None:
        return min(self.teacher.values(), key=lambda t: t.median_us) if self.teacher else None

    @property
    def student(self) -> dict[str, EngineTime]:
        return self.students.get(self.student_stage, {})

    @property
    def student_best(self) -> EngineTime | None:
        deployed = [t for e, t in self.student.items() if e in DEPLOY_ENGINES]
        return min(deployed, key=lambda t: t.median_us) if deployed else None

    @property
    def speedup(self) -> float | None:
        """Teacher on its best engine / student on its best PaKD deployment (above 1: faster)."""
        t, s = self.teacher_best, self.student_best
        return t.median_us / s.median_us if t and s else None

    @property
    def same_engine(self) -> dict[str, float]:
        """Per engine both ran on: teacher median / student median."""
        return {
            e: self.teacher[e].median_us / s.median_us for e, s in sorted(self.student.items()) if e in self.teacher
        }


@dataclass(frozen=True)
class BoardCount:
    """One emulated row of this run (``pakd bench --device qemu:BOARD``): guest instructions of
    one inference on the board's CPU model, or why an engine has none."""

    session: str
    started_at: str
    role: str
    stage: str
    engine: str
    device: str  # qemu:BOARD
    cpu: str
    instructions: int | None
    golden_ok: bool | None
    reason: str | None


@dataclass(frozen=True)
class BoardComparison:
    """Teacher (every engine of the board) vs the final student on PaKD, in instructions, from one
    emulated session."""

    device: str
    cpu: str
    session: str
    teacher: dict[str, int]  # engine -> instructions
    student: dict[str, int]  # engine -> instructions (the final stage)
    missing: dict[str, str]  # engine -> why it has no count

    @property
    def board(self) -> str:
        return self.device.split(":", 1)[-1]

    @property
    def teacher_best(self) -> tuple[str, int] | None:
        return min(self.teacher.items(), key=lambda kv: kv[1]) if self.teacher else None

    @property
    def student_best(self) -> tuple[str, int] | None:
        deployed = [(e, n) for e, n in self.student.items() if e in DEPLOY_ENGINES]
        return min(deployed, key=lambda kv: kv[1]) if deployed else None

    @property
    def ratio(self) -> float | None:
        """Teacher on the board's best engine / student on PaKD (above 1: fewer instructions)."""
        t, s = self.teacher_best, self.student_best
        return t[1] / s[1] if t and s else None

    @property
    def same_engine(self) -> float | None:
        s = self.student_best
        return self.teacher[s[0]] / s[1] if s and s[0] in self.teacher else None


@dataclass(frozen=True)
class DataInfo:
    """The data the run's teacher was trained on, from its spec.json: name, form, where from,
    input shape and class names (pre-existing specs: name and shape only)."""

    name: str
    kind: str  # builtin | folder | npz | factory
    source: str
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    test_images: int | None

    @classmethod
    def of(cls, spec: Any) -> DataInfo | None:
        data = spec.get("data") if isinstance(spec, dict) else None
        if not isinstance(data, dict):
            return None
        name = str(data.get("name") or data.get("source") or "?")
        classes = data.get("classes")
        if not isinstance(classes, list):  # specs written before classes were recorded: built-in sets
            from ..data import FMNIST_CLASSES

            builtin = {
                "fashion-mnist": list(FMNIST_CLASSES),
                "digits": [str(i) for i in range(10)],
                "synthetic": [f"class{i}" for i in range(10)],
            }
            classes = builtin.get(name, [])
        return cls(
            name=name,
            kind=str(data.get("kind", "builtin")),
            source=str(data.get("source") or name),
            input_shape=tuple(int(v) for v in (data.get("input_shape") or (1, 28, 28))),
            classes=tuple(str(c) for c in classes),
            test_images=int(data["test"]) if isinstance(data.get("test"), int) else None,
        )


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    recipe: str
    teacher_dir: Path
    huffman: bool
    stages: tuple[Stage, ...]
    layers: tuple[Layer, ...]  # of the final student
    measurements: tuple[Measurement, ...]
    db_path: Path
    db_found: bool
    board_counts: tuple[BoardCount, ...] = ()
    data: DataInfo | None = None  # the teacher's data (None: its spec.json is not readable)

    @property
    def teacher(self) -> Stage:
        return self.stages[0]

    @property
    def student(self) -> Stage:
        return self.stages[-1]

    @property
    def teacher_dense_bytes(self) -> int:
        return 4 * int(self.teacher.row["params"])

    @property
    def size_ratio(self) -> float:
        return float(self.student.row["size_ratio"])

    @property
    def drop_pt(self) -> float:
        """Test top-1 of the teacher minus the student's, in percentage points."""
        return 100.0 * (float(self.teacher.row["test_top1"]) - float(self.student.row["test_top1"]))

    def comparisons(self) -> list[Comparison]:
        return compare(self.measurements, self.student.label)

    def board_comparisons(self) -> list[BoardComparison]:
        return compare_boards(self.board_counts, self.student.label)


# -- the results store ----------------------------------------------------------------------------


def read_results(db_path: str | Path, teacher_dir: str | Path, run_dir: str | Path) -> list[dict[str, Any]]:
    """The store's rows that belong to run ``run_dir`` (:func:`pakd.bench.results.rows_of_run`)."""
    try:
        return rows_of_run(db_path, teacher_dir, run_dir)
    except ResultsError as exc:
        raise ReportError(str(exc)) from None


def _stage_of(r: dict[str, Any], run: Path, stages: tuple[Stage, ...]) -> str | None:
    """The Stage.label a row measured, or None for a stage the ledger does not list (an unfinished
    or removed one)."""
    if r["role"] == "teacher":
        return stages[0].label
    source = norm_path(r["source"])
    if source == run:  # a bundle of the whole run: its final student
        return stages[-1].label
    by_folder = {norm_path(s.folder): s.label for s in stages if s.folder is not None}
    return by_folder.get(run / source.relative_to(run).parts[0])


def _facts(r: dict[str, Any]) -> dict[str, Any]:
    try:
        facts = json.loads(r.get("facts") or "{}")
    except json.JSONDecodeError:
        facts = {}
    return facts if isinstance(facts, dict) else {}


def _board_counts(rows: list[dict[str, Any]], run_dir: Path, stages: tuple[Stage, ...]) -> list[BoardCount]:
    run = norm_path(run_dir)
    out = []
    for r in rows:
        if not str(r.get("device") or "").startswith("qemu:") or r.get("session") is None:
            continue
        stage = _stage_of(r, run, stages)
        if stage is None:
            continue
        out.append(
            BoardCount(
                session=str(r["session"]),
                started_at=str(r.get("started_at") or ""),
                role=r["role"],
                stage=stage,
                engine=str(r.get("engine") or "?"),
                device=str(r["device"]),
                cpu=str(r.get("cpu") or ""),
                instructions=int(r["instructions"]) if r.get("instructions") else None,
                golden_ok=None if r.get("golden_ok") is None else bool(r["golden_ok"]),
                reason=_facts(r).get("reason"),
            )
        )
    return out


def compare_boards(counts: tuple[BoardCount, ...] | list[BoardCount], student_stage: str) -> list[BoardComparison]:
    """One comparison per emulated board: its latest session that counted both the teacher and
    ``student_stage`` (else its latest session). Counts whose output failed the golden check are
    left out, with the reason."""
    sessions: dict[str, dict[str, list[BoardCount]]] = {}
    for c in counts:
        sessions.setdefault(c.device, {}).setdefault(c.session, []).append(c)
    out = []
    for device, by_session in sorted(sessions.items()):

        def complete(cs: list[BoardCount]) -> bool:
            ok = [c for c in cs if c.instructions and c.golden_ok is not False]
            return any(c.role == "teacher" for c in ok) and any(
                c.stage == student_stage and c.engine in DEPLOY_ENGINES for c in ok
            )

        ordered = sorted(by_session.items(), key=lambda item: max(c.started_at for c in item[1]))
        full = [item for item in ordered if complete(item[1])]
        session, cs = (full or ordered)[-1]
        teacher, student, missing = {}, {}, {}
        for c in cs:
            if c.golden_ok is False:
                missing[c.engine] = "its output failed the golden check"
            elif not c.instructions:
                missing[c.engine] = c.reason or "not counted"
            elif c.role == "teacher":
                teacher[c.engine] = c.instructions
            elif c.stage == student_stage:
                student[c.engine] = c.instructions
        out.append(BoardComparison(device, next((c.cpu for c in cs if c.cpu), ""), session, teacher, student, missing))
    return out


def _measurements(rows: list[dict[str, Any]], run_dir: Path, stages: tuple[Stage, ...]) -> list[Measurement]:
    run = norm_path(run_dir)
    out = []
    for r in rows:
        stage = _stage_of(r, run, stages)
        if stage is None:
            continue
        if (
            r.get("median_us") is None
            or r.get("device") is None
            or r.get("threads") is None
            or r.get("session") is None
        ):
            continue  # a failed or partial row (or an emulated count): nothing to compare
        facts = _facts(r)
        out.append(
            Measurement(
                session=str(r["session"]),
                started_at=str(r.get("started_at") or ""),
                role=r["role"],
                stage=stage,
                engine=str(r.get("engine") or "?"),
                target=str(r.get("target") or ""),
                device=str(r["device"]),
                threads=int(r["threads"]),
                run=int(r.get("run") or 0),
                median_us=float(r["median_us"]),
                p90_us=float(r["p90_us"]) if r.get("p90_us") is not None else None,
                golden_ok=None if r.get("golden_ok") is None else bool(r["golden_ok"]),
                bundle_bytes=r.get("bundle_bytes"),
                facts=facts,
            )
        )
    return out


def _engine_time(engine: str, rows: list[Measurement]) -> EngineTime:
    p90s = [m.p90_us for m in rows if m.p90_us is not None]
    return EngineTime(
        engine, statistics.median(m.median_us for m in rows), statistics.median(p90s) if p90s else None, len(rows)
    )


def compare(measurements: tuple[Measurement, ...] | list[Measurement], student_stage: str) -> list[Comparison]:
    """One comparison per (device, threads): the latest session that timed both the teacher and
    ``student_stage`` there (ratios are only taken within one session); where no session has
    both, the latest session with any of the run's rows (its speedup is then None). Rows whose
    output failed the bundle's golden check are left out (and named in ``failed``)."""
    groups: dict[tuple[str, int], dict[str, list[Measurement]]] = {}
    for m in measurements:  # rows that failed the golden check stay (to be listed) but never count
        groups.setdefault((m.device, m.threads), {}).setdefault(m.session, []).append(m)
    out = []
    for (device, threads), sessions in sorted(groups.items()):

        def complete(rows: list[Measurement]) -> bool:
            good = [m for m in rows if m.golden_ok is not False]
            return any(m.role == "teacher" for m in good) and any(
                m.stage == student_stage and m.engine in DEPLOY_ENGINES for m in good
            )

        def started(item: tuple[str, list[Measurement]]) -> str:
            return max(m.started_at for m in item[1])

        ordered = sorted(sessions.items(), key=started)
        full = [item for item in ordered if complete(item[1])]
        session, rows = (full or ordered)[-1]
        teacher: dict[str, list[Measurement]] = {}
        students: dict[str, dict[str, list[Measurement]]] = {}
        failed = tuple(sorted({f"{m.stage} on {m.engine}" for m in rows if m.golden_ok is False}))
        for m in rows:
            if m.golden_ok is False:
                continue
            if m.role == "teacher":
                teacher.setdefault(m.engine, []).append(m)
            else:
                students.setdefault(m.stage, {}).setdefault(m.engine, []).append(m)
        facts: dict[str, Any] = {}
        for m in rows:
            facts.update({k: v for k, v in m.facts.items() if v is not None})
        out.append(
            Comparison(
                device=device,
                threads=threads,
                session=session,
                started_at=min(m.started_at for m in rows),
                teacher={e: _engine_time(e, ms) for e, ms in sorted(teacher.items())},
                students={s: {e: _engine_time(e, ms) for e, ms in sorted(es.items())} for s, es in students.items()},
                student_stage=student_stage,
                facts=facts,
                failed=failed,
            )
        )
    return out


# -- the run folder -------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ReportError(f"{path.parent}: no {path.name} here ({what})")
    try:
        return rundir.read_json(path)
    except (ValueError, OSError) as exc:
        raise ReportError(f"{path}: not readable JSON ({exc})") from None


def _huffman(run_dir: Path) -> bool:
    from ..pipeline.recipe import load_recipe

    recipe = run_dir / rundir.RECIPE_COPY
    return load_recipe(recipe).huffman if recipe.is_file() else True


def _stages(run_dir: Path, ledger: Any, huffman: bool) -> tuple[Stage, ...]:
    rows = ledger.get("rows") if isinstance(ledger, dict) else None
    need = ("stage", "test_top1", "params", "bytes", "bytes_huffman", "size_ratio", "macs")
    if (
        not rows
        or not isinstance(rows, list)
        or any(not isinstance(r, dict) or any(k not in r for k in need) for r in rows)
    ):
        raise ReportError(f"{run_dir / LEDGER_FILE}: no ledger rows with {', '.join(need)}")
    if rows[0]["stage"] != "teacher":
        raise ReportError(f"{run_dir / LEDGER_FILE}: the first row is not the teacher's")
    if len(rows) < 2:
        raise ReportError(f"{run_dir}: no finished stage in the ledger yet (rerun `pakd compress`)")
    key = "bytes_huffman" if huffman else "bytes"
    stages = [Stage(0, "teacher", rows[0], None, int(rows[0]["bytes"]))]
    for k, row in enumerate(rows[1:], 1):
        folder = rundir.stage_dir(run_dir, k)
        stages.append(Stage(k, str(row["stage"]), row, folder if rundir.is_finished(folder) else None, int(row[key])))
    return tuple(stages)


def student_layers(folder: Path) -> tuple[Layer, ...]:
    """Per conv/linear layer of a stage: channels left (vs the unpruned architecture), weights,
    zeros and MACs, from the stage's own weights."""
    import torch
    from torch import nn

    from ..metrics import model_stats
    from ..modelio import load_model, read_spec
    from ..models import build_model

    spec = read_spec(folder)
    model, _ = load_model(folder)
    original = build_model(spec["model"]["name"], **spec["model"].get("args", {}))
    shape = tuple(spec.get("data", {}).get("input_shape") or (1, 28, 28))
    macs = {layer.name: layer.macs for layer in model_stats(model, shape).layers}
    before = dict(original.named_modules())

    def channels(m: nn.Module) -> tuple[int, int]:
        if isinstance(m, nn.Linear):
            return m.in_features, m.out_features
        assert isinstance(m, nn.Conv2d)
        return m.in_channels, m.out_channels

    out = []
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        cin, cout = channels(m)
        tin, tout = channels(before[name]) if name in before else (cin, cout)
        out.append(
            Layer(
                name=name,
                kind=type(m).__name__,
                in_channels=cin,
                out_channels=cout,
                teacher_in=tin,
                teacher_out=tout,
                weights=m.weight.numel(),
                nonzero_weights=int(torch.count_nonzero(m.weight)),
                macs=macs.get(name, 0),
            )
        )
    return tuple(out)


def gather(run_dir: str | Path, db_path: str | Path | None = None) -> RunData:
    """Everything a report on ``run_dir`` shows. ``db_path`` None: ./results.db when it exists
    (no latency rows otherwise); a path given must exist."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such folder (give a compress run folder, e.g. runs/lenet5-fast)")
    info = _read_json(run_dir / RUN_FILE, "not a compress run folder: `pakd compress` writes one")
    if not isinstance(info, dict) or not isinstance(info.get("teacher"), str):
        raise ReportError(f"{run_dir / RUN_FILE}: no teacher path in it (not a compress run?)")
    ledger = _read_json(run_dir / LEDGER_FILE, "no finished stage yet: `pakd compress` writes it")
    huffman = _huffman(run_dir)
    stages = _stages(run_dir, ledger, huffman)
    teacher_dir = Path(info["teacher"])
    if db_path is None:
        db, found = DEFAULT_DB, DEFAULT_DB.is_file()
    else:
        db = Path(db_path)
        if not db.is_file():
            raise ReportError(f"{db}: no such results store (`{BENCH_COMMAND}` writes one)")
        found = True
    rows = read_results(db, teacher_dir, run_dir) if found else []
    last = stages[-1]
    layers = student_layers(last.folder) if last.folder is not None else ()
    return RunData(
        run_dir=run_dir,
        recipe=str(ledger.get("recipe", "")),
        teacher_dir=teacher_dir,
        huffman=huffman,
        stages=stages,
        layers=layers,
        measurements=tuple(_measurements(rows, run_dir, stages)),
        db_path=db,
        db_found=found,
        board_counts=tuple(_board_counts(rows, run_dir, stages)),
        data=_data_info(teacher_dir),
    )


def _data_info(teacher_dir: Path) -> DataInfo | None:
    try:
        return DataInfo.of(_read_json(teacher_dir / "spec.json", "the teacher's spec"))
    except ReportError:
        return None
