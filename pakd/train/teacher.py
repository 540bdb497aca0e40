"""``pakd train``: train a teacher into ``runs/<name>/teacher/`` and reuse it when it is done."""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import dist
from ..data import DataBundle, data_kind, data_label, load_data, parse_image_size
from ..errors import DataError, ModelError, RunError
from ..metrics import model_stats
from ..modelio import SPEC_FILE, SPEC_FORMAT, library_versions, load_model, read_spec, save_model, write_json_atomic
from ..models import build_model, zoo_entry
from ..storage import writer_lock
from .trainer import ProgressFn, TrainConfig, check_device, evaluate, train, without_flip

CHECKPOINT_FILE = "checkpoint.pt"
JOB_FILE = "job.json"


@dataclass(frozen=True)
class TeacherJob:
    model: str
    data: str = "fashion-mnist"
    model_args: tuple[tuple[str, Any], ...] = ()
    train: TrainConfig = TrainConfig()
    data_dir: str | None = None
    channels: int | None = None  # --channels: force 1 or 3
    image_size: tuple[int, int] | None = None  # --image-size: force H x W
    data_memory: int | None = None  # --data-memory in bytes (None: the default, 1 GiB)

    @classmethod
    def with_defaults(
        cls,
        model: str,
        data: str = "fashion-mnist",
        model_args: tuple[tuple[str, Any], ...] = (),
        data_dir: str | None = None,
        channels: int | None = None,
        image_size: tuple[int, int] | None = None,
        data_memory: int | None = None,
        **train: Any,
    ) -> TeacherJob:
        """The job for ``model``: its own training settings from the zoo (``pakd/models/zoo.py``),
        with every setting given in ``train`` (None = not given) on top. On data other than the
        built-in sets, the default augmentation has no horizontal flip: only ``augment`` asks."""
        entry = zoo_entry(model)
        settings = dict(entry.train_defaults) if entry else {}
        settings.update({k: v for k, v in train.items() if v is not None})
        if train.get("augment") is None and data_kind(data) != "builtin":
            settings["augment"] = without_flip(settings.get("augment", TrainConfig.augment))
        return cls(
            model=model,
            data=data,
            model_args=model_args,
            train=TrainConfig.from_dict(settings),
            data_dir=data_dir,
            channels=channels,
            image_size=tuple(image_size) if image_size else None,  # type: ignore[arg-type]
            data_memory=data_memory,
        )

    def data_identity(self) -> str | dict[str, Any]:
        """The data as the reuse check compares it: the built-in name (as before), or the
        resolved source with the forced channels and size."""
        kind = data_kind(self.data)
        if kind == "builtin" and self.channels is None and self.image_size is None:
            return self.data
        source = str(Path(self.data).expanduser().resolve()) if kind in ("folder", "npz") else self.data
        return {
            "kind": kind,
            "source": source,
            "channels": self.channels,
            "image_size": list(self.image_size) if self.image_size else None,
        }

    def identity(self) -> dict[str, Any]:
        """What must match for an existing teacher to be reused."""
        return {
            "model": {"name": self.model, "args": dict(self.model_args)},
            "data": self.data_identity(),
            "train": self.train.to_dict(),
        }

    def load(self) -> DataBundle:
        return load_data(
            self.data, self.data_dir, channels=self.channels, image_size=self.image_size, memory=self.data_memory
        )


@dataclass(frozen=True)
class TeacherResult:
    folder: Path
    model: nn.Module
    spec: dict[str, Any]
    reused: bool


def train_teacher(
    job: TeacherJob,
    folder: str | Path,
    force: bool = False,
    progress: ProgressFn | None = None,
    device: str = "cpu",
    parallel: dist.ParallelConfig | None = None,
) -> TeacherResult:
    """Train (or reuse, or resume) the teacher described by ``job`` in ``folder``.

    Under torchrun (several processes) this is one data-parallel training: every process calls
    it with the same job; rank 0 reads and writes ``folder`` and shows the progress. One run at a
    time (``folder``'s lock, held by rank 0: a second one is refused, naming the first)."""
    folder = Path(folder)
    check_device(device)  # before joining a process group on it
    with dist.session(device, parallel):
        with dist.peer_guard("run the same command again to continue"):
            with writer_lock(folder, f"teacher folder {folder}"):
                return _train_teacher(job, folder, force, progress, device, parallel)


def _train_teacher(
    job: TeacherJob,
    folder: Path,
    force: bool,
    progress: ProgressFn | None,
    device: str,
    parallel: dist.ParallelConfig | None,
) -> TeacherResult:
    world = dist.world()
    if not world.main:
        progress = None
    device = dist.local_device(device)
    ckpt_path = folder / CHECKPOINT_FILE
    job_path = folder / JOB_FILE

    def existing() -> TeacherResult | None:
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
        return None

    reused = dist.from_main(existing)  # rank 0 reads the folder, every rank gets the answer
    if reused is not None:
        return reused
    # load and build first: bad input must fail before anything is written
    check_device(device)
    data = job.load()
    args = model_args_for(job.model, data, dict(job.model_args))
    torch.manual_seed(job.train.seed)  # initial weights depend on the seed only
    model = build_model_for(job.model, data, args)

    if world.main:
        if force:
            for stale in (folder / SPEC_FILE, ckpt_path):
                stale.unlink(missing_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(job_path, job.identity())
    dist.barrier()  # a forced restart's old checkpoint is gone before any rank looks for one
    t0 = time.perf_counter()
    history = train(
        model,
        data.train,
        data.val,
        job.train,
        checkpoint=ckpt_path,
        progress=progress,
        device=device,
        parallel=parallel,
    )
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
        "parallel": {"world_size": world.size, "global_batch": job.train.batch_size},
        "job": job.identity(),  # what a rerun compares to decide whether to reuse this teacher
    }
    if not world.main:
        return TeacherResult(folder, model.eval(), {"format": SPEC_FORMAT, **spec}, reused=False)
    save_model(folder, model, spec)
    ckpt_path.unlink(missing_ok=True)
    return TeacherResult(folder, model.eval(), read_spec(folder), reused=False)


def model_args_for(model: str, data: DataBundle, args: dict[str, Any]) -> dict[str, Any]:
    """A zoo factory's arguments from the data: ``in_channels``, ``num_classes`` and, where the
    factory takes one and the images are not its default size, ``input_size`` (N, or (H, W) when
    the images are not square); the arguments given win. User factories get ``args`` only."""
    entry = zoo_entry(model)
    if entry is None:
        return args
    c, h, w = data.input_shape
    derived: dict[str, Any] = {"in_channels": c, "num_classes": data.num_classes}
    try:
        param = inspect.signature(entry.factory).parameters.get("input_size")
    except (TypeError, ValueError):
        param = None
    if param is not None:
        size: Any = h if h == w else [h, w]
        if size != param.default:
            derived["input_size"] = size
    return {**derived, **args}


def build_model_for(model: str, data: DataBundle, args: dict[str, Any]) -> nn.Module:
    """``build_model`` checked against the data: it takes one image of the data's shape and gives
    one logit per class, or a ModelError says what does not fit."""
    shape = "x".join(map(str, data.input_shape))
    try:
        net = build_model(model, **args)
        x = data.train.take(torch.tensor([0])).images
        was = net.training
        with torch.no_grad():
            out = net.eval()(x)
        net.train(was)
    except (ModelError, RunError):
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model {model!r} does not take the data's {shape} images: {text}") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != data.num_classes:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(
            f"model {model!r} gives output {got} for one {shape} image; the data has {data.num_classes} classes "
            "(expected (1, classes); --model-arg num_classes=N for a factory that takes it)"
        )
    return net


def teacher_folder(runs_dir: str | Path, model: str, data: str, name: str | None = None) -> Path:
    """Where ``pakd train`` puts a teacher: RUNS_DIR/NAME/teacher, NAME = MODEL-DATA by default
    (DATA: the built-in name, the folder's or .npz file's name, or the factory)."""
    run_name = name or f"{model.replace(':', '-').replace('.', '-')}-{data_label(data)}"
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
    data: str | None = None,
    data_dir: str | Path | None = None,
    threads: int = 0,
    channels: int | None = None,
    image_size: tuple[int, int] | str | None = None,
    data_memory: int | str | None = None,
) -> Evaluation:
    """Validation and test top-1 of a model folder (or a run folder's teacher), or of a zoo / user
    model by name with optional safetensors ``weights``. A folder is evaluated on its own data
    (spec.json's record) unless ``data`` names other data, which is then read at the model's
    input shape and normalized with the model's statistics."""
    from ..models import load_weights
    from .trainer import set_threads

    set_threads(threads)
    image_size = parse_image_size(image_size)
    if folder is not None:
        if data is None and (channels is not None or image_size is not None):
            raise DataError(
                "--channels and --image-size convert the --data given; a model folder's own data is read as recorded"
            )
        if not (folder / SPEC_FILE).is_file() and (folder / "teacher" / SPEC_FILE).is_file():
            folder = folder / "teacher"
        net, spec = load_model(folder)
        record = spec.get("data") or {"name": "fashion-mnist"}
        if data is None:
            bundle = load_data(record, data_dir, memory=data_memory)
        else:
            shape = record.get("input_shape") or [1, 28, 28]
            user = data_kind(data) != "builtin"
            bundle = load_data(
                data,
                data_dir,
                channels=channels or (int(shape[0]) if user else None),
                image_size=image_size or ((int(shape[1]), int(shape[2])) if user else None),
                memory=data_memory,
                normalize=record.get("normalize") if user else None,
            )
            want_shape, want_k = tuple(int(v) for v in shape), record.get("num_classes")
            if bundle.input_shape != want_shape:
                got = "x".join(map(str, bundle.input_shape))
                raise DataError(f"{folder} takes {'x'.join(map(str, want_shape))} images, --data {data} is {got}")
            if isinstance(want_k, int) and bundle.num_classes != want_k:
                raise DataError(f"{folder} has {want_k} classes, --data {data} has {bundle.num_classes}")
        title = str(folder)
    elif model is not None:
        bundle = load_data(
            data or "fashion-mnist", data_dir, channels=channels, image_size=image_size, memory=data_memory
        )
        net = build_model_for(model, bundle, model_args_for(model, bundle, dict(model_args)))
        if weights is not None:
            load_weights(net, weights)
        title = model
    else:
        raise RunError("give either a model folder or a model name")
    net.eval()
    splits = []
    for split_name in ("val", "test"):
        split = getattr(bundle, split_name)
        top1, loss = evaluate(net, split)
        splits.append((split_name, len(split), top1, loss))
    return Evaluation(title, bundle.name, splits, model_stats(net, bundle.input_shape))
