"""Datasets as in-memory tensors: Fashion-MNIST (real files), scikit-learn digits, synthetic.

Every dataset returns a :class:`DataBundle` of normalized float32 images ``(N, C, 28, 28)`` and
int64 labels, with a deterministic train/validation split of the training set. The test split is
kept apart: it is only used for reported numbers, never for choosing anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # float32 (N, C, H, W), normalized
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, n: int) -> Split:
        return Split(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class DataBundle:
    name: str
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]
    mean: float
    std: float

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "split_seed": SPLIT_SEED,
            "normalize": {"mean": self.mean, "std": self.std},
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
    return DataBundle("fashion-mnist", train, val, test, FMNIST_CLASSES, mean, std)


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
        "digits", train, val, Split(x[test_idx], y[test_idx]), tuple(str(i) for i in range(10)), mean, std
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
    return DataBundle("synthetic", train, val, test, tuple(f"class{i}" for i in range(num_classes)), 0.0, 1.0)


DATASETS: dict[str, Callable[..., DataBundle]] = {
    "fashion-mnist": load_fashion_mnist,
    "digits": load_digits,
    "synthetic": load_synthetic,
}


def load_dataset(name: str, data_dir: str | Path | None = None) -> DataBundle:
    try:
        loader = DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None
    return loader(data_dir)
