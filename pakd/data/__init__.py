"""Datasets kept as tensors in memory (Fashion-MNIST from the Debian package, digits, synthetic)."""

from .datasets import (
    DATASETS,
    DEFAULT_FMNIST_DIR,
    FMNIST_CLASSES,
    DataBundle,
    Split,
    fashion_mnist_dir,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_synthetic,
)
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

__all__ = [
    "DATASETS",
    "DEFAULT_FMNIST_DIR",
    "FMNIST_CLASSES",
    "DataBundle",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "Split",
    "fashion_mnist_dir",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_synthetic",
    "read_idx",
]
