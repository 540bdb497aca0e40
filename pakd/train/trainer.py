"""Supervised training, deterministic under a seed, resumable per epoch.

Speed on a 2-core CPU comes from: data that fits the memory budget kept as one normalized tensor
(no DataLoader workers, no per-sample Python), augmentation done on whole batches with tensor ops,
channels-last memory for conv nets (oneDNN's fast path), and one intra-op thread per physical core.
Data over the budget streams (:class:`pakd.data.StreamSplit`): the same permutation draws the same
batches through DataLoader workers, and the same batch augmentation applies to them, so both
paths train the same weights.

Under torchrun (several processes, :mod:`pakd.dist`) the student trains in
DistributedDataParallel: every rank draws the same permutation, takes its
``DistributedSampler`` share of it in batches of ``batch_size / world size`` (so the global batch
is the configured one and an epoch has the same steps), augments with its own generator derived
from the seed, and evaluates its share of the validation split (sums all-reduced). Only rank 0
writes the checkpoint; every rank resumes from rank 0's.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import dist
from ..data import AnySplit
from ..errors import InvalidField, PakdError, RunError
from ..storage import atomic_file

AUGMENTS = ("none", "crop", "flip", "crop+flip")  # flip: horizontal, only where asked
EVAL_BATCH_BYTES = 16 * 1024**2  # input bytes of one evaluation batch at most (224x224 RGB: 27 images)
STEP_ACTIVATION_BYTES = 768 * 1024**2  # what one forward pass may keep for backward (micro-batches beyond)
OPTIMIZERS = ("sgd", "adamw")


class TrainConfigError(RunError, InvalidField):
    """A training setting out of range (epochs, learning rate, optimizer, ...)."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    augment: str = "crop+flip"
    seed: int = 0
    threads: int = 0  # 0 = one per available core
    channels_last: bool = True

    def __post_init__(self) -> None:
        def bad(field: str, what: str, message: str) -> TrainConfigError:
            return TrainConfigError(message, field, getattr(self, field), what)

        if self.epochs < 1:
            raise bad("epochs", ">= 1", f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise bad("batch_size", ">= 1", f"batch size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise bad("lr", "> 0", f"learning rate must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise bad(
                "optimizer",
                f"one of {OPTIMIZERS}",
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}",
            )
        if not self.weight_decay >= 0:
            raise bad("weight_decay", ">= 0", f"weight decay must be >= 0, got {self.weight_decay}")
        if self.augment not in AUGMENTS:
            raise bad(
                "augment",
                f"one of {AUGMENTS}",
                f"unknown augmentation {self.augment!r}; choose one of {', '.join(AUGMENTS)}",
            )
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "in [0, 1)", f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.threads < 0:
            raise bad("threads", ">= 0", f"threads must be >= 0 (0 = one per core), got {self.threads}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_top1: float
    val_loss: float
    val_top1: float
    lr: float
    seconds: float


def check_device(device: str) -> torch.device:
    """The torch device named ``device``, or a PakdError when there is no such device here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise PakdError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:N): {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PakdError(f"--device {device}: no CUDA GPU here (PaKD runs on the CPU with --device cpu)")
    return dev


def set_threads(threads: int) -> int:
    """Use ``threads`` intra-op threads (0 = one per core this process may run on, shared by
    the processes of a data-parallel run on this machine)."""
    if threads < 0:
        raise PakdError(f"--threads must be >= 0 (0 = one per core), got {threads}")
    if threads == 0:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, threads // dist.world().local_size)
    torch.set_num_threads(threads)
    return threads


def crop_padding(h: int, w: int) -> int:
    """Zero padding of the random crop: 2 pixels at 28x28 (1/14 of the shorter side), at least 1."""
    return max(1, round(min(h, w) / 14))


def without_flip(mode: str) -> str:
    """``mode`` minus the horizontal flip (the default for data that did not ask for one)."""
    return {"flip": "none", "crop+flip": "crop"}.get(mode, mode)


def augment_batch(x: torch.Tensor, mode: str, gen: torch.Generator, pad: int | None = None) -> torch.Tensor:
    """Random crop (zero padding ``pad``, by default :func:`crop_padding` of the image size) and/or
    horizontal flip on a whole batch at once."""
    if mode == "none":
        return x
    b, _, h, w = x.shape
    if pad is None:
        pad = crop_padding(h, w)
    if mode in ("crop", "crop+flip"):
        dev = x.device
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(dev)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(dev)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (B,1,H,1)
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # (B,1,1,W)
        x = padded[
            torch.arange(b, device=dev)[:, None, None, None],
            torch.arange(x.shape[1], device=dev)[None, :, None, None],
            rows,
            cols,
        ]
    if mode == "crop":
        return x
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _uses_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _channels_last_runs(model: nn.Module, split: AnySplit, device: str) -> bool:
    """Whether ``model`` runs on channels-last batches (faster convolutions on CPU). A user model
    that flattens with ``x.view(x.size(0), -1)`` does not (view needs NCHW-contiguous memory):
    it trains in the default layout instead. One forward pass of two zero images in eval mode."""
    shape = tuple(split.images.shape[1:]) if not split.streaming else tuple(split.sample_shape)  # type: ignore[attr-defined]
    if len(shape) != 3:
        return False
    was_training = model.training
    model.eval()
    probe = copy.deepcopy(model).to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    x = torch.zeros((2, *shape), device=device).contiguous(memory_format=torch.channels_last)
    try:
        with torch.no_grad():
            probe(x)
        return True
    except RuntimeError:
        return False
    finally:
        model.train(was_training)


def activation_bytes(model: nn.Module, sample_shape: tuple[int, ...], device: str, channels_last: bool) -> int:
    """Bytes that one training forward pass of ``model`` keeps for its backward pass, per image
    of ``sample_shape``: the saved tensors of a batch of 4 minus those of a batch of 2, halved
    (weights saved by a layer count in both). Measured on a copy in training mode, with the
    random state put back, so the training itself is not touched."""
    if len(sample_shape) != 3:
        return 0
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    probe = copy.deepcopy(model).to(device).train()
    if channels_last:
        probe.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    counts = []
    with torch.random.fork_rng(devices=[]):
        for b in (2, 4):
            saved[0] = 0
            x = torch.zeros((b, *sample_shape), device=device).contiguous(memory_format=fmt)
            try:
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                    probe(x)
            except RuntimeError:  # a model that cannot take zeros: the training says what is wrong
                return 0
            counts.append(saved[0])
    return max(0, (counts[1] - counts[0]) // 2)


def micro_batch(batch: int, per_image: int, budget: int) -> int:
    """The largest part of a ``batch`` whose forward pass keeps at most ``budget`` bytes for
    backward (``per_image`` each); ``batch`` itself when it fits, and never under 2 images (batch
    norm needs two) unless the batch is one image."""
    if per_image * batch <= budget:
        return batch
    return max(min(2, batch), budget // per_image)  # per_image > 0 here


@torch.inference_mode()
def evaluate(
    model: nn.Module, split: AnySplit, batch_size: int = 1000, channels_last: bool = False
) -> tuple[float, float]:
    """(top-1 accuracy in [0, 1], mean cross-entropy) on ``split`` (batches of ``batch_size``
    images, fewer for large images: at most 16 MiB of input per batch). In a data-parallel run
    every rank evaluates its share and the sums are all-reduced: every rank must call it."""
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    device = next(model.parameters()).device
    sample_bytes = 4 * math.prod(split.sample_shape)
    batch_size = max(1, min(batch_size, EVAL_BATCH_BYTES // max(1, sample_bytes)))
    for xb, yb in split.batches(batch_size, dist.eval_shard(len(split))):
        x, y = xb.to(device), yb.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    if dist.world().distributed:
        sums = torch.tensor([float(correct), loss_sum], dtype=torch.float64)
        dist.all_reduce_([sums])
        correct, loss_sum = int(round(float(sums[0]))), float(sums[1])
    n = max(1, len(split))
    return correct / n, loss_sum / n


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # no weight decay on biases and normalization parameters
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    history: list[EpochResult],
    cfg: TrainConfig,
    hooks: tuple[TrainHook, ...],
) -> None:
    with atomic_file(path) as f:
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "epoch": epoch,
                "history": [asdict(h) for h in history],
                "rng": torch.get_rng_state(),
                "config": cfg.to_dict(),
                "hooks": [h.state_dict() for h in hooks],
            },
            f,
        )


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """A checkpoint written by :func:`train`, or None; loaded without unpickling code."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: say so, do not guess
        raise RunError(f"{path}: unreadable training checkpoint ({exc}); delete it to start over") from None


def _load_checkpoint(path: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    ckpt = read_checkpoint(path)
    if ckpt is None:
        return None
    if ckpt.get("config") != cfg.to_dict():
        raise RunError(
            f"{path}: checkpoint was made with other training settings; use the same flags, or --force to start over"
        )
    return ckpt


ProgressFn = Callable[[str, dict[str, Any]], None]
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, x, y) -> loss


class TrainHook(Protocol):
    """Called by :func:`train` (pruners and quantizers are hooks); its state is checkpointed."""

    def on_step(self, model: nn.Module, step: int) -> None: ...
    def on_epoch_end(self, model: nn.Module, epoch: int) -> None: ...
    def state_dict(self) -> dict[str, torch.Tensor]: ...
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


def train(
    model: nn.Module,
    train_split: AnySplit,
    val_split: AnySplit,
    cfg: TrainConfig,
    checkpoint: Path | None = None,
    progress: ProgressFn | None = None,
    device: str = "cpu",
    loss_fn: LossFn | None = None,
    hooks: tuple[TrainHook, ...] = (),
    parallel: dist.ParallelConfig | None = None,
) -> list[EpochResult]:
    """Train ``model`` in place; with ``checkpoint`` set, save after each epoch and resume from it.

    ``loss_fn(logits, x, y)`` replaces cross-entropy (distillation); ``hooks`` get ``on_step``
    after every optimizer step (global step count) and ``on_epoch_end`` after every epoch, and
    their ``state_dict`` is saved in the checkpoint and restored on resume.

    ``device`` is where the work runs ("cpu" by default; "cuda" where a GPU is present, which
    nothing in PaKD requires). The model is returned to the CPU.

    ``progress(event, info)`` receives "start" (total epochs/steps, resumed epoch, this process's
    batch and the micro-batch it runs in), "step" (loss) and "epoch" (an :class:`EpochResult`) events.

    A batch whose forward pass would keep more than ``STEP_ACTIVATION_BYTES`` for backward
    (:func:`activation_bytes`, measured once) runs in parts of :func:`micro_batch` images with
    their gradients added up before the optimizer step: the same steps and learning rates, the
    same gradient up to float rounding, except that batch norm normalizes each part by its own
    statistics. That keeps a 224x224 MobileNetV2 at batch 32 under 3 GB.

    In a data-parallel run (``pakd.dist``) the model trains wrapped in DistributedDataParallel
    (``parallel``: synchronized batch norm), the hooks' state (masks, plans, codebooks) is checked
    to be the same on every rank after every epoch, and at the end every rank holds rank 0's model.
    """
    check_device(device)
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    world = dist.world()
    if world.distributed and cfg.batch_size % world.size:
        raise TrainConfigError(
            f"batch size {cfg.batch_size} does not split over {world.size} processes: use a multiple of "
            f"{world.size} (it is the global batch; each process takes an equal share)",
            "batch_size",
            cfg.batch_size,
            f"a multiple of {world.size}",
        )
    local_batch = cfg.batch_size // world.size
    channels_last = cfg.channels_last and _uses_conv(model) and _channels_last_runs(model, train_split, device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    in_memory = not train_split.streaming
    if in_memory:
        train_x, train_y = train_split.images.to(device), train_split.labels.to(device)  # type: ignore[attr-defined]
    opt = _make_optimizer(model, cfg)
    n = len(train_split)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.15
    )
    history: list[EpochResult] = []
    start_epoch = 0
    ckpt = dist.from_main(lambda: _load_checkpoint(checkpoint, cfg)) if checkpoint else None  # rank 0 reads it
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"])
        for hook, state in zip(hooks, ckpt.get("hooks", []), strict=False):
            hook.load_state_dict(state)
        history = [EpochResult(**h) for h in ckpt["history"]]
        start_epoch = int(ckpt["epoch"])
    per_image = activation_bytes(model, tuple(train_split.sample_shape), device, channels_last)
    micro = micro_batch(local_batch, per_image, STEP_ACTIVATION_BYTES)
    emit = progress or (lambda event, info: None)
    emit(
        "start",
        {
            "epochs": cfg.epochs,
            "steps_per_epoch": steps_per_epoch,
            "resumed_epoch": start_epoch,
            "batch": local_batch,
            "micro_batch": micro,
            "activation_bytes": per_image,
            "activation_budget": STEP_ACTIVATION_BYTES,
        },
    )
    net = dist.wrap(model, device, parallel)  # the model itself in a single process

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # per-epoch: exact resume
        perm = torch.randperm(n, generator=gen)
        aug_gen = gen
        if world.distributed:  # this rank's share, its own augmentation and dropout, from the seed
            perm = dist.shard_order(perm)
            aug_gen = torch.Generator().manual_seed(dist.rank_seed(cfg.seed, epoch))
            torch.manual_seed(dist.rank_seed(cfg.seed, epoch, 1))
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        streamed = None if in_memory else train_split.batches(local_batch, perm)
        for step in range(steps_per_epoch):
            if streamed is None:
                idx = perm[step * local_batch : (step + 1) * local_batch].to(device)
                xb, y = train_x[idx], train_y[idx]
            else:
                xb, y = next(streamed)
                xb, y = xb.to(device), y.to(device)
            x = augment_batch(xb, cfg.augment, aug_gen)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            # parts of at most `micro` images, none of one image (batch norm); the same count on
            # every rank, whose shards are padded alike
            parts = max(1, min(-(-len(y) // micro), len(y) // 2))
            loss = torch.zeros((), device=device)
            for i, (xc, yc) in enumerate(zip(x.tensor_split(parts), y.tensor_split(parts), strict=True)):
                # gradients add up over the parts; DDP reduces them once, after the last part
                with net.no_sync() if i < parts - 1 and isinstance(net, DistributedDataParallel) else nullcontext():
                    logits = net(xc)
                    if loss_fn is None:
                        part_loss = F.cross_entropy(logits, yc, label_smoothing=cfg.label_smoothing)
                    else:
                        part_loss = loss_fn(logits, xc, yc)
                    # every loss is a mean over its images: weighted by its share, the sum is the batch's
                    (part_loss * (len(yc) / len(y)) if parts > 1 else part_loss).backward()
                with torch.no_grad():
                    loss += part_loss.detach() * (len(yc) / len(y))
                    correct += (logits.argmax(1) == yc).sum()
            opt.step()
            sched.step()
            for hook in hooks:
                hook.on_step(model, epoch * steps_per_epoch + step)
            loss_sum += loss * len(y)
            emit("step", {"epoch": epoch, "step": step, "loss": loss})
        close = getattr(streamed, "close", None)
        if close is not None:
            close()  # ends the epoch's loader workers now
        for hook in hooks:
            hook.on_epoch_end(model, epoch + 1)
        seen = n
        if world.distributed:
            sums = torch.stack([loss_sum.double(), correct.double(), torch.tensor(float(len(perm)), device=device)])
            dist.all_reduce_([sums])
            loss_sum, correct, seen = sums[0], sums[1].round().long(), int(round(float(sums[2])))
            dist.agree(f"the pruning and quantization state after epoch {epoch + 1}", [h.state_dict() for h in hooks])
        val_top1, val_loss = evaluate(model, val_split, channels_last=channels_last)
        result = EpochResult(
            epoch=epoch + 1,
            train_loss=float(loss_sum) / seen,
            train_top1=int(correct) / seen,
            val_loss=val_loss,
            val_top1=val_top1,
            lr=opt.param_groups[0]["lr"],
            seconds=time.perf_counter() - t0,
        )
        history.append(result)
        if checkpoint and world.main:
            _save_checkpoint(checkpoint, model, opt, sched, epoch + 1, history, cfg, hooks)
        emit("epoch", {"result": result})
    if world.distributed:
        dist.unwrap_sync_bn(model)
        dist.broadcast_module(model)
    model.to("cpu", memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    return history
