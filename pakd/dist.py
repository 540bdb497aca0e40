"""Data-parallel runs: what ``pakd train`` and ``pakd compress`` need from ``torch.distributed``
when ``torchrun`` (or ``--nproc N``, through torch's own elastic launcher) starts them as several
processes, and nothing at all when one process runs them.

Everything here is a thin layer over torch.distributed collectives; PaKD sends nothing else:

- :func:`session` joins the process group that torchrun's environment (``RANK``, ``WORLD_SIZE``,
  ``MASTER_ADDR``...) describes: gloo for the CPU, NCCL for CUDA, or ``ParallelConfig.backend``;
- :func:`world` says who this process is (rank 0 of 1 without torchrun);
- :func:`shard_order` is ``DistributedSampler``'s split of one seeded permutation;
  :func:`shard` splits a list of batches (data-driven pruning statistics, calibration);
- :func:`all_reduce_`, :func:`broadcast_object`, :func:`from_main` (rank 0 reads, every rank gets
  the result or the same error) and :func:`agree` (an all-gathered hash that fails loudly when
  the ranks' masks or channel configurations differ);
- :func:`wrap` puts a student in ``DistributedDataParallel`` (optionally with synchronized batch
  norm) and :func:`unwrap_sync_bn` undoes the latter; :func:`broadcast_module` makes every rank
  hold rank 0's weights and buffers;
- :func:`launch` starts N local processes through ``torch.distributed.launcher`` (``--nproc``).

See docs/distributed.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as tdist
from torch import nn

from .errors import PakdError, RunError

BACKENDS = ("gloo", "nccl")
T = TypeVar("T")


class DistError(RunError):
    """The processes of one data-parallel run cannot go on together (a peer stopped, they disagree)."""


@dataclass(frozen=True)
class ParallelConfig:
    """How a data-parallel run communicates: ``backend`` (None: gloo on the CPU, nccl on CUDA) and
    ``sync_bn`` (batch-norm statistics over the global batch instead of each process's share)."""

    backend: str | None = None
    sync_bn: bool = False

    def __post_init__(self) -> None:
        if self.backend is not None and self.backend not in BACKENDS:
            raise PakdError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def launched() -> bool:
    """Whether torchrun started this process as one of several (its environment says so)."""
    return _env_int("WORLD_SIZE", 1) > 1


def world() -> World:
    """This process's place in the run: from the joined process group, else from torchrun's
    environment (before :func:`session` joins it), else rank 0 of 1."""
    local = World(0, 1, _env_int("LOCAL_RANK", 0), _env_int("LOCAL_WORLD_SIZE", 1))
    if tdist.is_available() and tdist.is_initialized():
        return World(tdist.get_rank(), tdist.get_world_size(), local.local_rank, local.local_size)
    if launched():
        return World(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), local.local_rank, local.local_size)
    return World(local_rank=0, local_size=1)


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files and shows progress."""
    return world().main


def _joined() -> bool:
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def default_backend(device: str) -> str:
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def local_device(device: str) -> str:
    """``cuda`` means this process's own GPU (``cuda:LOCAL_RANK``) in a data-parallel run."""
    if torch.device(device).type == "cuda" and torch.device(device).index is None and launched():
        return f"cuda:{world().local_rank}"
    return device


@contextmanager
def session(device: str = "cpu", parallel: ParallelConfig | None = None) -> Iterator[World]:
    """Join torchrun's process group for the duration (and leave it); one process: nothing."""
    if not launched() or (tdist.is_available() and tdist.is_initialized()):
        yield world()
        return
    if not tdist.is_available():
        raise DistError("this torch build has no torch.distributed; run one process")
    parallel = parallel or ParallelConfig()
    backend = parallel.backend or default_backend(device)
    dev = torch.device(local_device(device))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    minutes = float(os.environ.get("PAKD_DIST_TIMEOUT_MIN", "30"))
    try:
        tdist.init_process_group(backend, timeout=timedelta(minutes=minutes))
    except (RuntimeError, ValueError) as exc:
        raise DistError(f"cannot join the data-parallel run ({backend}): {_first_line(exc)}") from None
    try:
        yield world()
    finally:
        tdist.destroy_process_group()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    line = re.sub(r"\[[^\]]*\]\s*", "", line)  # gloo's "[.../pair.cc:537] " source locations
    line = re.sub(r"^(Read|Write) error\s*:?\d*:?\s*", "", line).strip()
    return line.split(". ")[0].rstrip(".") or type(exc).__name__


@contextmanager
def peer_guard(resume_hint: str) -> Iterator[None]:
    """A collective that fails because another process of the run stopped (killed, out of memory,
    its own error) becomes one line that says how to continue."""
    try:
        yield
    except (tdist.DistError, RuntimeError) as exc:
        if not _joined() or isinstance(exc, PakdError):
            raise
        text = str(exc)
        if not isinstance(exc, tdist.DistError) and not any(
            k in text.lower() for k in ("connection", "gloo", "nccl", "peer", "timed out", "broken pipe")
        ):
            raise
        raise DistError(
            f"another process of this data-parallel run stopped ({_first_line(exc)}); "
            f"finished epochs are saved: {resume_hint}"
        ) from None


# -- sharding ------------------------------------------------------------------------------


def shard_order(order: torch.Tensor) -> torch.Tensor:
    """This rank's part of ``order`` (a permutation that every rank drew alike), exactly as
    ``torch.utils.data.DistributedSampler(shuffle=False, drop_last=False)`` deals it: padded with
    its own beginning to a multiple of the world size, then every size-th index from the rank on."""
    w = world()
    if not w.distributed:
        return order
    from torch.utils.data import DistributedSampler

    positions: Any = range(len(order))  # any sized sequence is a sampler's dataset
    sampler: DistributedSampler[int] = DistributedSampler(positions, num_replicas=w.size, rank=w.rank, shuffle=False)
    return order[torch.tensor(list(sampler), dtype=torch.long)]


def eval_shard(n: int) -> torch.Tensor | None:
    """The sample indices this rank evaluates (every size-th, no padding: each sample counts once);
    None in a single process (all of them, in order)."""
    w = world()
    return torch.arange(w.rank, n, w.size) if w.distributed else None


def shard(items: Sequence[T]) -> list[T]:
    """This rank's share of ``items`` (every size-th from the rank on); all of them in one process."""
    w = world()
    return list(items[w.rank :: w.size]) if w.distributed else list(items)


def rank_seed(seed: int, *salt: int) -> int:
    """A seed for this rank derived from the run's: ``seed`` itself for a single process."""
    w = world()
    if not w.distributed and not salt:
        return seed
    digest = hashlib.sha256(json.dumps([seed, w.rank, *salt]).encode()).digest()
    return int.from_bytes(digest[:7], "little")


# -- collectives ---------------------------------------------------------------------------


def _comm_device() -> torch.device:
    if tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_(tensors: Sequence[torch.Tensor], op: str = "sum") -> None:
    """Sum (or ``"max"``) ``tensors`` over the ranks, in place; nothing in a single process."""
    if not _joined():
        return
    red = {"sum": tdist.ReduceOp.SUM, "max": tdist.ReduceOp.MAX}[op]
    dev = _comm_device()
    for t in tensors:
        buf = t.detach().to(dev)
        tdist.all_reduce(buf, op=red)
        with torch.no_grad():
            t.copy_(buf.to(t.device))


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (pickled through ``broadcast_object_list``)."""
    if not _joined():
        return obj
    box = [obj if tdist.get_rank() == 0 else None]
    tdist.broadcast_object_list(box, src=0, device=_comm_device())
    return box[0]  # type: ignore[return-value]


def from_main(fn: Callable[[], T]) -> T:
    """``fn()`` run on rank 0 only (it reads the run folder), its result on every rank; a
    :class:`PakdError` it raises is raised on every rank, so that none waits for the others."""
    if not _joined():
        return fn()
    out: Any = None
    if tdist.get_rank() == 0:
        try:
            out = ("ok", fn())
        except PakdError as exc:
            out = ("error", type(exc), str(exc))
    out = broadcast_object(out)
    if out[0] == "error":
        cls = out[1] if isinstance(out[1], type) and issubclass(out[1], PakdError) else RunError
        try:
            raise cls(out[2])
        except TypeError:  # an error type with more constructor arguments
            raise RunError(out[2]) from None
    return out[1]


def barrier() -> None:
    if _joined():
        tdist.barrier()


def digest(obj: Any) -> str:
    """A SHA-256 of tensors (their dtype, shape and bytes), numbers, strings, lists and dicts."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{x.dtype}{tuple(x.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, dict):
            h.update(b"{")
            for k in sorted(x, key=str):
                h.update(str(k).encode() + b":")
                feed(x[k])
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                feed(v)
            h.update(b"]")
        else:
            h.update(repr(x).encode())

    feed(obj)
    return h.hexdigest()


def agree(what: str, obj: Any) -> list[str]:
    """The digest of ``obj`` on every rank (all-gathered); raises :class:`DistError` naming the
    ranks that differ from rank 0. One process: its own digest."""
    mine = digest(obj)
    if not _joined():
        return [mine]
    hashes: list[Any] = [None] * tdist.get_world_size()
    tdist.all_gather_object(hashes, mine)
    bad = [r for r, d in enumerate(hashes) if d != hashes[0]]
    if bad:
        raise DistError(
            f"the processes disagree on {what}: rank(s) {', '.join(map(str, bad))} differ from rank 0 "
            f"({hashes[bad[0]][:12]} vs {hashes[0][:12]}); the run stopped rather than save a mix"
        )
    return [str(d) for d in hashes]


# -- the student in DistributedDataParallel ------------------------------------------------


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce`` (sum) with its gradient: every rank's input feeds every rank's output, so the
    gradient of an input is the sum of the output gradients over the ranks."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        tdist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        tdist.all_reduce(out)
        return out


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch, for CPU processes
    (``torch.nn.SyncBatchNorm`` is GPU-only): per-channel sums, sums of squares and counts are
    summed over the ranks by an ``all_reduce`` whose backward sums the gradients back. In eval mode, and in a single process, it is the plain batch norm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and _joined()):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        count = torch.tensor(float(input.numel() // input.shape[1]), dtype=input.dtype)
        stats = torch.cat([input.sum(dims), (input * input).sum(dims), count.reshape(1)])
        stats = _SumOverRanks.apply(stats)
        c = input.shape[1]
        total = stats[-1]
        mean = stats[:c] / total
        var = (stats[c : 2 * c] / total - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp_min(1)
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * unbiased.detach())
        shape = (1, c) + (1,) * (input.dim() - 2)
        out = (input - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


_SYNC_FROM = "_pakd_sync_bn_from"


def convert_sync_bn(model: nn.Module, device: str) -> None:
    """Turn every batch norm of ``model`` into a synchronized one, in place. The class of the
    module changes, not the module: its parameters, buffers, gates and hooks stay as they are
    (``nn.SyncBatchNorm.convert_sync_batchnorm`` makes new modules, which would drop them)."""
    sync: type[nn.modules.batchnorm._BatchNorm] = (
        nn.SyncBatchNorm if torch.device(device).type == "cuda" else CpuSyncBatchNorm
    )
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, (nn.SyncBatchNorm, CpuSyncBatchNorm)):
            setattr(m, _SYNC_FROM, type(m))
            m.__class__ = sync
            if sync is nn.SyncBatchNorm:
                m.process_group = None  # type: ignore[assignment]


def unwrap_sync_bn(model: nn.Module) -> None:
    """Give back every batch norm :func:`convert_sync_bn` changed its own class."""
    for m in model.modules():
        original = getattr(m, _SYNC_FROM, None)
        if original is not None:
            m.__class__ = original
            delattr(m, _SYNC_FROM)
            if "process_group" in m.__dict__:
                del m.__dict__["process_group"]


def wrap(model: nn.Module, device: str, parallel: ParallelConfig | None = None) -> nn.Module:
    """``model`` in DistributedDataParallel (``model`` itself in a single process). The wrapper
    shares ``model``'s parameters; a new one is made for every training (a structural change
    between two trainings changes the parameter set)."""
    if not _joined():
        return model
    if parallel is not None and parallel.sync_bn:
        convert_sync_bn(model, device)
    from torch.nn.parallel import DistributedDataParallel

    dev = torch.device(device)
    ids = [dev] if dev.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


@torch.no_grad()
def broadcast_module(model: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (after training: each rank's last forward
    moved its own batch-norm statistics)."""
    if not _joined():
        return
    dev = _comm_device()
    for t in [*model.parameters(), *model.buffers()]:
        buf = t.detach().to(dev)
        tdist.broadcast(buf, src=0)
        t.copy_(buf.to(t.device))


# -- launching -----------------------------------------------------------------------------


def launch(nproc: int, args: Sequence[str], resume_hint: str) -> None:
    """Run ``python -m pakd ARGS`` as ``nproc`` processes of one data-parallel run on this
    machine, through torch's elastic launcher (what ``torchrun --nproc-per-node`` does). A process
    that fails ends the run; :class:`DistError` says which and how to continue."""
    import sys

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"pakd-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=0.2,
    )
    agent_log = logging.getLogger("torch.distributed.elastic")
    level = agent_log.level
    agent_log.setLevel(logging.CRITICAL)  # its per-process report becomes the one line below
    try:
        elastic_launch(config, entrypoint=sys.executable)("-u", "-m", "pakd", *args)
    except ChildFailedError as exc:
        raise DistError(_failure_line(exc, nproc, resume_hint)) from None
    finally:
        agent_log.setLevel(level)


def _failure_line(exc: Any, nproc: int, resume_hint: str) -> str:
    """One line on the first process that failed (the others were stopped by the launcher)."""
    try:
        rank, first = exc.get_first_failure()
    except (AttributeError, ValueError, IndexError):
        return f"the run stopped: a process failed; finished epochs are saved: {resume_hint}"
    code = int(getattr(first, "exitcode", 1))
    if code == PakdError.exit_code:  # it said why itself, on stderr above
        return f"the run stopped: process {rank} of {nproc} gave up (its error is above)"
    if code < 0:
        try:
            why = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            why = f"was killed by signal {-code}"
    else:
        why = f"ended with exit code {code}"
    return f"the run stopped: process {rank} of {nproc} {why}; finished epochs are saved: {resume_hint}"
