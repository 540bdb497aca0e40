"""``pakd compress``: run a recipe's stages (prune -> distill -> evaluate -> checkpoint).

The run folder's layout is :mod:`pakd.rundir`'s.
A finished stage is never redone; an interrupted one resumes from its last finished epoch.

Under torchrun every process runs the same stages (:mod:`pakd.dist`): the student trains in
DistributedDataParallel, the frozen teachers run on every rank outside it, data-driven pruning
statistics and calibration are computed on shards and all-reduced, every structural decision is
checked to be the same on every rank (:func:`pakd.dist.agree`), and only rank 0 reads the run
folder's state and writes the run folder.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import dist, rundir
from ..data import DataBundle, load_data
from ..distill import DistillLoss, FeatureHints
from ..errors import RunError, reading
from ..lower.accountant import serialize
from ..metrics import model_stats, weight_sparsity
from ..modelio import SPEC_FILE, library_versions, load_model, read_spec, save_model
from ..prune import PruneContext, make_pruner
from ..quant import Int8Quantizer, KMeansConfig, Quantizer, WeightSharing
from ..storage import atomic_copy, atomic_write, writer_lock
from ..train import TrainConfig, evaluate, set_threads, train
from ..train.trainer import check_device
from .recipe import Recipe, StageConfig, find_recipe, load_recipe


@dataclass(frozen=True)
class CompressJob:
    recipe_path: Path
    teacher_dir: Path
    run_dir: Path
    data_dir: str | None = None
    threads: int = 0
    device: str = "cpu"
    seed: int = 0
    data_memory: int | None = None  # --data-memory in bytes (None: 1 GiB); over it the data streams
    parallel: dist.ParallelConfig = dist.ParallelConfig()  # backend, --sync-bn (under torchrun)


ProgressFactory = Callable[[str], Any]  # title -> context manager that is also a train progress callback


def _quantizer(stage: StageConfig) -> WeightSharing | Int8Quantizer | None:
    q = stage.quantize
    if q is None:
        return None
    if q.method == "kmeans":
        return WeightSharing(KMeansConfig(bits=dict(q.bits), skip=q.skip))
    return Int8Quantizer(skip=q.skip)


class _Quiet:
    """The progress of ranks other than 0: nothing."""

    def __init__(self, title: str) -> None:
        pass

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        pass


class _Run:
    def __init__(self, job: CompressJob, recipe: Recipe, progress: ProgressFactory) -> None:
        self.world = dist.world()
        self.job, self.recipe = job, recipe
        self.progress: ProgressFactory = progress if self.world.main else _Quiet
        self.device = dist.local_device(job.device)
        self.teacher, self.teacher_spec = load_model(job.teacher_dir)
        # the teacher's own data, as its spec.json records it (source, channels, size, normalization)
        self.data: DataBundle = load_data(
            self.teacher_spec.get("data") or "fashion-mnist", job.data_dir, memory=job.data_memory
        )
        self.input_shape = self.data.input_shape
        self.teacher_stats = model_stats(self.teacher, self.input_shape)
        self.ledger: list[dict[str, Any]] = []

    # -- helpers ---------------------------------------------------------------------------
    def meta(self, stage: str, quant: Quantizer | None = None) -> dict[str, Any]:
        meta = {
            "model": self.teacher_spec["model"],
            "input_shape": list(self.input_shape),
            "classes": list(self.data.classes),
            "stage": stage,
            "normalize": self.teacher_spec["data"].get("normalize"),
        }
        if quant is not None:
            meta.update(quant.file_meta())
        return meta

    def batches(self, n: int, size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.job.seed + 7)
        idx = torch.randperm(len(self.data.train), generator=g)[: n * size]
        return [(s.images, s.labels) for s in (self.data.train.take(i) for i in idx.split(size))]

    def serialize_both(self, stage: str, model: nn.Module, quant: Quantizer | None = None) -> dict[bool, bytes]:
        """The .pakd bytes without and with Huffman coding, keyed by ``huffman``."""
        return {h: serialize(model, self.meta(stage, quant), quant, huffman=h) for h in (False, True)}

    def row(
        self,
        stage: str,
        model: nn.Module,
        blobs: dict[bool, bytes],
        seconds: float = 0.0,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        val, _ = evaluate(model, self.data.val)
        test, _ = evaluate(model, self.data.test)
        stats = model_stats(model, self.input_shape)
        plain, coded = len(blobs[False]), len(blobs[True])
        dense = self.teacher_stats.dense_fp32_bytes
        return {
            "stage": stage,
            "val_top1": val,
            "test_top1": test,
            "params": stats.params,
            "nonzeros": stats.nonzeros,
            "weight_sparsity": weight_sparsity(model),
            "macs": stats.macs,
            "bytes": plain,
            "bytes_huffman": coded,
            "size_ratio": dense / (coded if self.recipe.huffman else plain),
            "mac_ratio": self.teacher_stats.macs / max(1, stats.macs),
            "seconds": seconds,
            **(extra or {}),
        }

    def resolve_teachers(self, stage: StageConfig, previous: nn.Module) -> list[nn.Module]:
        out = []
        for name in stage.distill.teachers:
            if name == "teacher":
                model = self.teacher
            elif name == "previous":
                model = previous
            else:
                model = load_model(name)[0]
            out.append(copy.deepcopy(model).eval().to(self.device))  # frozen copies on the training device
        return out

    # -- stages ----------------------------------------------------------------------------
    def run_stage(self, k: int, stage: StageConfig, start: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
        folder = rundir.stage_dir(self.job.run_dir, k)

        def finished() -> tuple[nn.Module, dict[str, Any]] | None:
            if not rundir.is_finished(folder):
                return None
            spec = read_spec(folder)
            if spec.get("stage", {}).get("config") == _stage_dict(stage):
                model = load_model(folder)[0]  # rebuilds channel-pruned layers from spec["structure"]
                return model, spec["metrics"]
            raise RunError(f"{folder} was made by another version of the recipe; start a new run (--name)")

        done = dist.from_main(finished)  # rank 0 reads the folder; every rank gets its model
        if done is not None:
            return done
        if self.world.main:
            folder.mkdir(parents=True, exist_ok=True)
        cfg = TrainConfig(
            epochs=stage.epochs,
            batch_size=self.recipe.batch_size,
            optimizer=stage.optimizer,
            lr=stage.lr,
            weight_decay=stage.weight_decay,
            augment=stage.augment,
            seed=self.job.seed + k,
            threads=self.job.threads,
        )
        steps = -(-len(self.data.train) // cfg.batch_size)
        student = copy.deepcopy(start).train()
        hooks = []
        pruner = None
        if stage.prune is not None:
            ctx = PruneContext(
                example_input=torch.zeros(1, *self.input_shape),
                batches=self.batches,
                loss_fn=F.cross_entropy,
                total_epochs=stage.epochs,
                steps_per_epoch=steps,
            )
            pruner = make_pruner(stage.prune, ctx)
            student = pruner.setup(student)
            hooks.append(pruner)
        quant = _quantizer(stage)
        if quant is not None:
            student = quant.setup(student)
            hooks.append(quant)
        dist.agree(f"stage {k}'s masks and channel configuration", self.decisions(student, hooks))
        teachers = self.resolve_teachers(stage, start)
        hints = (
            FeatureHints(student, teachers[0], stage.distill.hint_layers)
            if stage.distill.hint_weight > 0 and stage.distill.hint_layers and teachers
            else None
        )
        loss = DistillLoss(stage.distill, teachers, hints) if stage.distill.enabled else None
        t0 = time.perf_counter()
        with self.progress(f"stage {k}/{len(self.recipe.stages)} {stage.name}") as prog:
            history = train(
                student,
                self.data.train,
                self.data.val,
                cfg,
                checkpoint=folder / rundir.CHECKPOINT_FILE,
                progress=prog,
                device=self.device,
                loss_fn=loss,
                hooks=tuple(hooks),
                parallel=self.job.parallel,
            )
        if hints is not None:
            hints.close()
        for hook in hooks:
            student = hook.finalize(student)
        if quant is not None:
            quant.calibrate(student, [x for x, _ in self.batches(8)])
        digests = dist.agree(f"stage {k}'s final masks, channels and codebooks", self.decisions(student, hooks))
        seconds = sum(h.seconds for h in history)
        blobs = self.serialize_both(stage.name, student, quant)
        extra = {"epochs": stage.epochs, "wall_this_process": time.perf_counter() - t0, "processes": self.world.size}
        row = self.row(stage.name, student, blobs, seconds, extra)
        spec = {
            "model": self.teacher_spec["model"],
            "data": self.teacher_spec["data"],
            "structure": _structure(student, self.teacher),
            "stage": {"index": k, "config": _stage_dict(stage)},
            "metrics": row,
            "history": [vars(h) for h in history],
            "versions": library_versions(),
            "parallel": {
                "processes": self.world.size,
                "global_batch": self.recipe.batch_size,
                "state_digests": digests,  # of each rank's masks, channels and codebooks: all equal
            },
        }
        if self.world.main:
            atomic_write(folder / rundir.PAKD_FILE, blobs[self.recipe.huffman])
            save_model(folder, student, spec)
            (folder / rundir.CHECKPOINT_FILE).unlink(missing_ok=True)
        return student.eval(), row

    def decisions(self, model: nn.Module, hooks: list[Any]) -> dict[str, Any]:
        """What every rank must have decided alike: the channel counts and the hooks' state
        (unstructured masks, channel plans, gate scores, codebooks and assignments)."""
        from ..prune.structured import channel_config

        return {"channels": channel_config(model), "hooks": [h.state_dict() for h in hooks]}

    def run(self) -> list[dict[str, Any]]:
        self.ledger = [self.row("teacher", self.teacher, self.serialize_both("teacher", self.teacher))]
        model = self.teacher
        for k, stage in enumerate(self.recipe.stages, 1):
            model, row = self.run_stage(k, stage, model)
            self.ledger.append(row)
            if self.world.main:
                rundir.write_ledger(self.job.run_dir, self.recipe.name, self.ledger)
        return self.ledger


def _stage_dict(stage: StageConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(stage), default=list))


def _structure(model: nn.Module, reference: nn.Module) -> dict[str, Any] | None:
    """The channel counts of a structurally pruned model (None when it has the teacher's shapes),
    so a finished stage can be rebuilt from the zoo architecture and its safetensors."""
    from ..prune.structured import channel_config

    config = channel_config(model)
    return None if config == channel_config(reference) else config


def compress(job: CompressJob, progress: ProgressFactory) -> tuple[Recipe, list[dict[str, Any]]]:
    """Run (or continue) the compression described by ``job``; returns the ledger rows.

    Under torchrun (several processes) this is one data-parallel run: every process calls it
    with the same job, rank 0 writes the run folder (see the module's docstring)."""
    check_device(job.device)  # before joining a process group on it
    with dist.session(job.device, job.parallel):
        with dist.peer_guard(f"continue with pakd compress --resume {job.run_dir}"):
            return _compress(job, progress)


def _compress(job: CompressJob, progress: ProgressFactory) -> tuple[Recipe, list[dict[str, Any]]]:
    recipe_file = find_recipe(job.recipe_path)  # a path, or the name of a shipped recipe
    recipe = load_recipe(recipe_file)
    if not (job.teacher_dir / SPEC_FILE).is_file():
        raise RunError(
            f"teacher not found: {job.teacher_dir} has no {SPEC_FILE} "
            "(train one with `pakd train`, or pass --teacher runs/<name>/teacher)"
        )
    identity = {"recipe_sha256": recipe.text_sha256, "teacher": str(job.teacher_dir.resolve()), "seed": job.seed}
    world = dist.world()
    if world.distributed and recipe.batch_size % world.size:
        raise RunError(
            f"the recipe's batch size {recipe.batch_size} (the global batch) does not split over {world.size} "
            f"processes; run a number of processes that divides it"
        )

    def previous_run() -> dict[str, Any] | None:
        if not rundir.is_run(job.run_dir):
            return None
        with reading(job.run_dir / rundir.RUN_FILE, "run.json"):
            previous = rundir.read_run(job.run_dir)
        if {k: previous.get(k) for k in identity} != identity:
            raise RunError(
                f"{job.run_dir} was started with another recipe or teacher; "
                "choose another --name (or delete the folder)"
            )
        return previous

    with writer_lock(job.run_dir, f"run folder {job.run_dir}"):  # one writer per run folder (rank 0 holds it)
        previous = dist.from_main(previous_run)
        set_threads(job.threads)
        runner = _Run(job, recipe, progress)  # validates data and teacher before writing anything
        parallel = {
            "world_size": world.size,
            "global_batch": recipe.batch_size,
            "batch_per_process": recipe.batch_size // world.size,
            "backend": (job.parallel.backend or dist.default_backend(job.device)) if world.distributed else None,
            "sync_bn": job.parallel.sync_bn,
        }
        if world.main:
            job.run_dir.mkdir(parents=True, exist_ok=True)
            if previous is None:
                atomic_copy(recipe_file, job.run_dir / rundir.RECIPE_COPY)
                rundir.write_run(
                    job.run_dir,
                    {
                        **identity,
                        "recipe_path": str(recipe_file),
                        "data_dir": job.data_dir,
                        "threads": job.threads,
                        "device": job.device,
                        **parallel,
                    },
                )
            elif {k: previous.get(k) for k in parallel} != parallel:  # resumed with another number of processes
                rundir.write_run(job.run_dir, {**previous, **parallel})
        return recipe, runner.run()


def resume_job(
    run_dir: Path, threads: int = 0, device: str = "cpu", parallel: dist.ParallelConfig | None = None
) -> CompressJob:
    """The job that started ``run_dir``, to continue it."""
    if not rundir.is_run(run_dir):
        raise RunError(f"{run_dir}: no {rundir.RUN_FILE} here (not a compression run)")
    with reading(run_dir / rundir.RUN_FILE, "run.json"):
        info = rundir.read_run(run_dir)
        teacher = Path(info["teacher"])
    return CompressJob(
        recipe_path=run_dir / rundir.RECIPE_COPY,
        teacher_dir=teacher,
        run_dir=run_dir,
        data_dir=info.get("data_dir"),
        threads=threads or info.get("threads", 0),
        device=device,
        seed=info.get("seed", 0),
        parallel=parallel or dist.ParallelConfig(),
    )


def compress_job(
    teacher: Path | None = None,
    recipe: Path | None = None,
    *,
    name: str | None = None,
    runs_dir: Path = Path("runs"),
    resume: Path | None = None,
    data_dir: str | None = None,
    threads: int = 0,
    device: str = "cpu",
    seed: int = 0,
    data_memory: int | None = None,
    parallel: dist.ParallelConfig | None = None,
) -> CompressJob:
    """The job of ``pakd compress``: continue the run in ``resume``, or compress ``teacher`` by
    ``recipe`` into RUNS_DIR/NAME (NAME = the recipe's name by default)."""
    if resume is not None:
        from dataclasses import replace

        return replace(resume_job(resume, threads, device, parallel), data_memory=data_memory)
    if teacher is None or recipe is None:
        raise RunError("give --teacher and --recipe (or --resume RUN_FOLDER)")
    return CompressJob(
        recipe_path=recipe,
        teacher_dir=teacher,
        run_dir=runs_dir / (name or load_recipe(recipe).name),
        data_dir=data_dir,
        threads=threads,
        device=device,
        seed=seed,
        data_memory=data_memory,
        parallel=parallel or dist.ParallelConfig(),
    )
