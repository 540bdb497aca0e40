"""The built-in datasets (Fashion-MNIST from real files, scikit-learn digits, synthetic) and the
in-memory :class:`Split` every dataset that fits the memory budget is kept as.

Every dataset is a :class:`DataBundle` of normalized float32 images ``(N, C, H, W)`` and int64
labels, with a deterministic train/validation split of the training set (unless the data has its
own validation split). The test split is kept apart: it is only used for reported numbers, never
for choosing anything. The user's own data (folders, ``.npz``, factories) is loaded by
:mod:`pakd.data.user`; data larger than the budget streams (:mod:`pakd.data.stream`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import DataError
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

DEFAULT_FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_INSTALL_HINT = (
    "install it with: sudo apt-get install dataset-fashion-mnist, "
    "or point --data-dir / PAKD_DATA_DIR at a folder holding the IDX .gz files"
)
FMNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SPLIT_SEED = 20150101  # fixed: the validation split never depends on the training seed


Batch = tuple[torch.Tensor, torch.Tensor]


class AnySplit(Protocol):
    """What training, evaluation and every stage use of a split: an in-memory :class:`Split` or a
    streaming :class:`pakd.data.stream.StreamSplit` (same batches, same values)."""

    @property
    def labels(self) -> torch.Tensor: ...

    def __len__(self) -> int: ...
    @property
    def sample_shape(self) -> tuple[int, ...]: ...
    @property
    def streaming(self) -> bool: ...
    @property
    def nbytes(self) -> int: ...
    def subset(self, n: int) -> AnySplit: ...
    def take(self, idx: torch.Tensor) -> Split: ...
    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]: ...


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # float32 (N, C, H, W), normalized
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    @property
    def streaming(self) -> bool:
        return False

    @property
    def nbytes(self) -> int:
        """Bytes this split holds in memory."""
        return self.images.nelement() * self.images.element_size() + self.labels.nelement() * 8

    def subset(self, n: int) -> Split:
        return Split(self.images[:n], self.labels[:n])

    def take(self, idx: torch.Tensor) -> Split:
        """The samples at ``idx`` (in that order), as tensors."""
        return Split(self.images[idx], self.labels[idx])

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
        """Mini-batches in index order, or in ``order`` (a permutation of the sample indices)."""
        for i in range(0, len(self), batch_size):
            if order is None:
                yield self.images[i : i + batch_size], self.labels[i : i + batch_size]
            else:
                idx = order[i : i + batch_size]
                yield self.images[idx], self.labels[idx]


@dataclass(frozen=True)
class DataBundle:
    name: str
    train: AnySplit
    val: AnySplit
    test: AnySplit
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of the training split
    std: tuple[float, ...]
    record: dict[str, Any] = field(default_factory=lambda: {"kind": "builtin"})  # how to load it again

    def __post_init__(self) -> None:
        # one value per channel; a scalar (old callers, old specs) means the same for every channel
        c = int(self.input_shape[0])
        for attr in ("mean", "std"):
            v = getattr(self, attr)
            if isinstance(v, (int, float)):
                object.__setattr__(self, attr, tuple([float(v)] * c))
            else:
                object.__setattr__(self, attr, tuple(float(x) for x in v))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.sample_shape)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def kind(self) -> str:
        return str(self.record.get("kind", "builtin"))

    @property
    def streaming(self) -> bool:
        return any(s.streaming for s in (self.train, self.val, self.test))

    @property
    def nbytes(self) -> int:
        """Bytes the three splits hold in memory (streaming splits hold labels and indices only)."""
        return sum(s.nbytes for s in (self.train, self.val, self.test))

    def describe(self) -> dict:
        """What spec.json records: enough to load the same data again (:func:`pakd.data.load_data`)."""
        return {
            "name": self.name,
            **self.record,
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "split_seed": SPLIT_SEED,
            "normalize": {"mean": list(self.mean), "std": list(self.std)},
        }


def _split_train_val(images: torch.Tensor, labels: torch.Tensor, val_size: int) -> tuple[Split, Split]:
    n = labels.shape[0]
    if not 0 <= val_size < n:
        raise DataError(f"validation size {val_size} must be in [0, {n})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
    return Split(images[train_idx], labels[train_idx]), Split(images[val_idx], labels[val_idx])


def _normalize(u8: np.ndarray, mean: float, std: float) -> torch.Tensor:
    x = torch.from_numpy(u8.astype(np.float32)).div_(255.0)
    return x.sub_(mean).div_(std).unsqueeze(1).contiguous()


def fashion_mnist_dir(data_dir: str | Path | None = None) -> Path:
    return Path(data_dir or os.environ.get("PAKD_DATA_DIR") or DEFAULT_FMNIST_DIR)


def load_fashion_mnist(data_dir: str | Path | None = None, val_size: int = 5000) -> DataBundle:
    root = fashion_mnist_dir(data_dir)
    kw = dict(missing_hint=FMNIST_INSTALL_HINT)
    train_x = read_idx(root / "train-images-idx3-ubyte.gz", IMAGES_MAGIC, 60000, (28, 28), **kw)
    train_y = read_idx(root / "train-labels-idx1-ubyte.gz", LABELS_MAGIC, 60000, (), **kw)
    test_x = read_idx(root / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, 10000, (28, 28), **kw)
    test_y = read_idx(root / "t10k-labels-idx1-ubyte.gz", LABELS_MAGIC, 10000, (), **kw)
    for name, y in (("train-labels-idx1-ubyte.gz", train_y), ("t10k-labels-idx1-ubyte.gz", test_y)):
        if y.max() >= len(FMNIST_CLASSES):
            raise DataError(f"{root / name}: label {int(y.max())} out of range 0..9")
    mean, std = 0.2860, 0.3530  # Fashion-MNIST training-set statistics
    train, val = _split_train_val(_normalize(train_x, mean, std), torch.from_numpy(train_y.astype(np.int64)), val_size)
    test = Split(_normalize(test_x, mean, std), torch.from_numpy(test_y.astype(np.int64)))
    return DataBundle("fashion-mnist", train, val, test, FMNIST_CLASSES, (mean,), (std,))


def load_digits(data_dir: str | Path | None = None, val_size: int = 200) -> DataBundle:
    """scikit-learn's bundled 8x8 digits (1797 images), upsampled to 28x28; 300 held out as test."""
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    mean, std = float(x.mean()), float(x.std())
    x = ((x - mean) / std).contiguous()
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
    test_idx, rest = perm[:300].sort().values, perm[300:].sort().values
    train, val = _split_train_val(x[rest], y[rest], val_size)
    return DataBundle(
        "digits", train, val, Split(x[test_idx], y[test_idx]), tuple(str(i) for i in range(10)), (mean,), (std,)
    )


def load_synthetic(
    data_dir: str | Path | None = None,
    val_size: int = 500,
    n_train: int = 3000,
    n_test: int = 1000,
    num_classes: int = 10,
) -> DataBundle:
    """A learnable synthetic task made here: each class is a fixed random blob pattern plus noise."""
    g = torch.Generator().manual_seed(SPLIT_SEED)
    protos = torch.nn.functional.avg_pool2d(torch.randn(num_classes, 1, 28, 28, generator=g), 5, 1, 2) * 3

    def make(n: int) -> Split:
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = protos[y] + 0.8 * torch.randn(n, 1, 28, 28, generator=g)
        return Split(x.contiguous(), y)

    full, test = make(n_train + val_size), make(n_test)
    train, val = _split_train_val(full.images, full.labels, val_size)
    classes = tuple(f"class{i}" for i in range(num_classes))
    return DataBundle("synthetic", train, val, test, classes, (0.0,), (1.0,))


DATASETS: dict[str, Callable[..., DataBundle]] = {
    "fashion-mnist": load_fashion_mnist,
    "digits": load_digits,
    "synthetic": load_synthetic,
}
