"""Splits that stream from their source through a ``DataLoader`` when the data is over the memory
budget, and the one pass (``scan``) that reads a source: into tensors, for the per-channel
statistics of the training split, and for labels not known without decoding.

Both kinds of split give the same batches with the same values: an in-memory split is filled by
the same :class:`SampleSet` a streaming one draws from, and normalized by the same float32 ops.
What a streaming split keeps in memory is its labels and indices, plus the batches in flight:
``(2 * workers + 1)`` batches at most, the worker count chosen so that they fit the budget.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from .datasets import Batch, Split

SCAN_CHUNK = 256  # samples per pass batch; fixed, so that the statistics never depend on the path
PREFETCH = 2  # batches each worker holds ready


class RawSplit(Protocol):
    """A source's split: unnormalized float32 images (C, H, W) of one shape, and int labels."""

    where: str  # for messages: the folder, file or factory and split
    sample_shape: tuple[int, int, int]

    def __len__(self) -> int: ...
    def item(self, i: int) -> tuple[torch.Tensor, int]: ...
    def known_labels(self) -> np.ndarray | None: ...  # without decoding, or None


class SampleSet(Dataset):
    """``raw[indices[k]]``, normalized per channel when ``mean``/``std`` are given."""

    def __init__(
        self,
        raw: RawSplit,
        indices: np.ndarray,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        self.raw, self.indices = raw, np.asarray(indices, dtype=np.int64)
        self.mean = None if mean is None else torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        x, y = self.raw.item(int(self.indices[k]))
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return x, y

    def sub(self, indices: np.ndarray) -> SampleSet:
        out = SampleSet.__new__(SampleSet)
        out.raw, out.indices, out.mean, out.std = self.raw, self.indices[indices], self.mean, self.std
        return out


def max_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, cores))


def plan_workers(batch_bytes: int, budget: int, most: int | None = None) -> int:
    """Loader workers whose batches in flight, ``(2 * workers + 1) * batch_bytes``, fit ``budget``
    (0: batches are made one at a time in this process)."""
    most = max_workers() if most is None else most
    fit = budget // max(1, batch_bytes)
    return int(max(0, min(most, (fit - 1) // PREFETCH)))


def in_flight_bytes(workers: int, batch_bytes: int) -> int:
    return (PREFETCH * workers + 1) * batch_bytes


def worker_error(exc: BaseException) -> DataError:
    """A DataError raised in a loader worker comes back with the worker's traceback in its text:
    keep its own one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else str(exc)
    for prefix in ("pakd.errors.DataError: ", "DataError: "):
        if last.startswith(prefix):
            last = last[len(prefix) :]
    return DataError(last)


def _collate(items: list[tuple[torch.Tensor, int]]) -> Batch:
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.int64)


def iterate(samples: SampleSet, index_batches: list[list[int]], workers: int) -> Iterator[Batch]:
    """The batches ``index_batches`` of ``samples``, made by ``workers`` loader processes."""
    if not index_batches:
        return
    loader = DataLoader(
        samples,
        batch_sampler=index_batches,
        num_workers=workers,
        collate_fn=_collate,
        prefetch_factor=PREFETCH if workers else None,
        multiprocessing_context="fork" if workers else None,
    )
    it = iter(loader)
    try:
        yield from it
    except DataError as exc:
        _stop(it)
        raise worker_error(exc) from None
    except BaseException:  # an error in the loop, Ctrl-C, or the consumer closing us early
        _stop(it)
        raise


def _stop(it: object) -> None:
    """End a loader's workers now: left to the garbage collector, workers stopped mid-epoch are
    joined with a timeout of 5 s each."""
    for w in getattr(it, "_workers", ()):
        if w.is_alive():
            w.terminate()
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def _index_batches(n: int, batch_size: int, order: torch.Tensor | None) -> list[list[int]]:
    idx = list(range(n)) if order is None else [int(i) for i in order.tolist()]
    return [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]


class StreamSplit:
    """A split read from its source batch by batch (files decoded, arrays memory-mapped, a
    factory's Dataset indexed), normalized as it is drawn."""

    def __init__(self, samples: SampleSet, labels: torch.Tensor, budget: int, workers: int | None = None) -> None:
        self.samples, self.labels, self.budget = samples, labels, int(budget)
        self.workers = max_workers() if workers is None else workers

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.samples.raw.sample_shape)

    @property
    def sample_bytes(self) -> int:
        return 4 * int(np.prod(self.sample_shape))

    @property
    def streaming(self) -> bool:
        return True

    @property
    def nbytes(self) -> int:
        return self.labels.nelement() * 8 + self.samples.indices.nbytes

    def workers_for(self, batch_size: int) -> int:
        return plan_workers(batch_size * self.sample_bytes, self.budget, self.workers)

    def subset(self, n: int) -> StreamSplit:
        return StreamSplit(self.samples.sub(np.arange(min(n, len(self)))), self.labels[:n], self.budget, self.workers)

    def take(self, idx: torch.Tensor) -> Split:
        items = [self.samples[int(k)] for k in idx.tolist()]
        if not items:
            return Split(torch.empty(0, *self.sample_shape), torch.empty(0, dtype=torch.int64))
        x, y = _collate(items)
        return Split(x, y)

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        yield from iterate(self.samples, _index_batches(len(self), batch_size, order), self.workers_for(batch_size))


def scan(
    samples: SampleSet, *, keep: bool, stats: bool, budget: int, workers: int | None = None
) -> tuple[torch.Tensor | None, torch.Tensor, tuple[list[float], list[float]] | None]:
    """One pass over ``samples`` in index order: the images (``keep``), the labels, and the
    per-channel mean and standard deviation (``stats``; over all pixels, population std)."""
    n = len(samples)
    shape = tuple(samples.raw.sample_shape)
    c = shape[0]
    images = torch.empty((n, *shape), dtype=torch.float32) if keep else None
    labels = torch.empty(n, dtype=torch.int64)
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    chunk_bytes = SCAN_CHUNK * 4 * int(np.prod(shape))
    w = 0 if n <= 2 * SCAN_CHUNK else plan_workers(chunk_bytes, budget, workers)
    at = 0
    for x, y in iterate(samples, _index_batches(n, SCAN_CHUNK, None), w):
        b = x.shape[0]
        if images is not None:
            images[at : at + b] = x
        labels[at : at + b] = y
        if stats:
            xd = x.double()
            s1 += xd.sum(dim=(0, 2, 3))
            s2 += (xd * xd).sum(dim=(0, 2, 3))
        at += b
    moments = None
    if stats:
        count = max(1, n * shape[1] * shape[2])
        mean = s1 / count
        var = (s2 / count - mean * mean).clamp_min(0)
        std = var.sqrt()
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant channel: leave its scale
        moments = ([float(v) for v in mean], [float(v) for v in std])
    return images, labels, moments


def normalize_(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """In place, per channel: the same float32 ops as :class:`SampleSet`'s, so both paths agree."""
    m = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
    return images.sub_(m).div_(s)
