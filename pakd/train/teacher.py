"""``pakd train``: train a teacher into ``runs/<name>/teacher/`` and reuse it when it is done."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import load_dataset
from ..errors import RunError
from ..metrics import model_stats
from ..modelio import SPEC_FILE, library_versions, load_model, read_spec, save_model, write_json_atomic
from ..models import build_model, zoo_entry
from .trainer import ProgressFn, TrainConfig, evaluate, train

CHECKPOINT_FILE = "checkpoint.pt"
JOB_FILE = "job.json"


@dataclass(frozen=True)
class TeacherJob:
    model: str
    data: str = "fashion-mnist"
    model_args: tuple[tuple[str, Any], ...] = ()
    train: TrainConfig = TrainConfig()
    data_dir: str | None = None

    @classmethod
    def with_defaults(
        cls,
        model: str,
        data: str = "fashion-mnist",
        model_args: tuple[tuple[str, Any], ...] = (),
        data_dir: str | None = None,
        **train: Any,
    ) -> TeacherJob:
        """The job for ``model``: its own training settings from the zoo (``pakd/models/zoo.py``),
        with every setting given in ``train`` (None = not given) on top."""
        entry = zoo_entry(model)
        settings = dict(entry.train_defaults) if entry else {}
        settings.update({k: v for k, v in train.items() if v is not None})
        return cls(
            model=model, data=data, model_args=model_args, train=TrainConfig.from_dict(settings), data_dir=data_dir
        )

    def identity(self) -> dict[str, Any]:
        """What must match for an existing teacher to be reused."""
        return {
            "model": {"name": self.model, "args": dict(self.model_args)},
            "data": self.data,
            "train": self.train.to_dict(),
        }


@dataclass(frozen=True)
class TeacherResult:
    folder: Path
    model: nn.Module
    spec: dict[str, Any]
    reused: bool


def train_teacher(
    job: TeacherJob, folder: str | Path, force: bool = False, progress: ProgressFn | None = None, device: str = "cpu"
) -> TeacherResult:
    """Train (or reuse, or resume) the teacher described by ``job`` in ``folder``."""
    folder = Path(folder)
    ckpt_path = folder / CHECKPOINT_FILE
    if (folder / SPEC_FILE).is_file():
        spec = read_spec(folder)
        if spec.get("job") == job.identity() and not force:
            model, spec = load_model(folder)
            return TeacherResult(folder, model, spec, reused=True)
        if not force:
            raise RunError(
                f"{folder} already holds a teacher trained with other settings; "
                "choose another --name or pass --force to overwrite it"
            )
    job_path = folder / JOB_FILE
    if job_path.is_file() and ckpt_path.is_file() and not force:
        try:
            same = json.loads(job_path.read_text()) == job.identity()
        except (json.JSONDecodeError, UnicodeDecodeError):
            same = False
        if not same:
            raise RunError(
                f"{folder} holds an unfinished training with other settings; "
                "choose another --name or pass --force to start over"
            )
    # load and build first: bad input must fail before anything is written
    data = load_dataset(job.data, job.data_dir)
    args = dict(job.model_args)
    if zoo_entry(job.model) is not None:  # zoo factories take the data's channels and classes
        args = {"in_channels": data.input_shape[0], "num_classes": data.num_classes, **args}
    torch.manual_seed(job.train.seed)  # initial weights depend on the seed only
    model = build_model(job.model, **args)

    if force:
        for stale in (folder / SPEC_FILE, ckpt_path):
            stale.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(job_path, job.identity())
    t0 = time.perf_counter()
    history = train(model, data.train, data.val, job.train, checkpoint=ckpt_path, progress=progress, device=device)
    wall = time.perf_counter() - t0
    test_top1, test_loss = evaluate(model, data.test)
    stats = model_stats(model, data.input_shape)
    spec = {
        "model": {"name": job.model, "args": args},
        "data": data.describe(),
        "train": job.train.to_dict(),
        "seed": job.train.seed,
        "metrics": {
            "val_top1": history[-1].val_top1,
            "test_top1": test_top1,
            "test_loss": test_loss,
            "params": stats.params,
            "nonzeros": stats.nonzeros,
            "macs": stats.macs,
            "dense_fp32_bytes": stats.dense_fp32_bytes,
        },
        "history": [vars(h) for h in history],
        "train_seconds_this_process": wall,
        "train_seconds_total": sum(h.seconds for h in history),
        "versions": library_versions(),
        "device": device,
        "threads": torch.get_num_threads(),
        "job": job.identity(),  # what a rerun compares to decide whether to reuse this teacher
    }
    save_model(folder, model, spec)
    ckpt_path.unlink(missing_ok=True)
    return TeacherResult(folder, model.eval(), read_spec(folder), reused=False)


def teacher_folder(runs_dir: str | Path, model: str, data: str, name: str | None = None) -> Path:
    """Where ``pakd train`` puts a teacher: RUNS_DIR/NAME/teacher, NAME = MODEL-DATA by default."""
    run_name = name or f"{model.replace(':', '-').replace('.', '-')}-{data}"
    return Path(runs_dir) / run_name / "teacher"


@dataclass(frozen=True)
class Evaluation:
    """``pakd eval``: top-1 and loss per split (name, images, top-1, loss), and the model's size."""

    title: str
    data: str
    splits: list[tuple[str, int, float, float]]
    stats: Any  # pakd.metrics.ModelStats


def evaluate_model(
    folder: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,
    model_args: tuple[tuple[str, Any], ...] = (),
    data: str = "fashion-mnist",
    data_dir: str | Path | None = None,
    threads: int = 0,
) -> Evaluation:
    """Validation and test top-1 of a model folder (or a run folder's teacher), or of a zoo / user
    model by name with optional safetensors ``weights``; the data set is the folder's own."""
    from ..models import load_weights
    from .trainer import set_threads

    set_threads(threads)
    if folder is not None:
        if not (folder / SPEC_FILE).is_file() and (folder / "teacher" / SPEC_FILE).is_file():
            folder = folder / "teacher"
        net, spec = load_model(folder)
        data = spec.get("data", {}).get("name", data)
        title = str(folder)
    elif model is not None:
        net = build_model(model, **dict(model_args))
        if weights is not None:
            load_weights(net, weights)
        title = model
    else:
        raise RunError("give either a model folder or a model name")
    bundle = load_dataset(data, str(data_dir) if data_dir else None)
    splits = []
    for split_name in ("val", "test"):
        split = getattr(bundle, split_name)
        top1, loss = evaluate(net, split)
        splits.append((split_name, len(split), top1, loss))
    return Evaluation(title, data, splits, model_stats(net, bundle.input_shape))
