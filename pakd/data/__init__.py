"""Datasets: the built-in ones (Fashion-MNIST from the Debian package, digits, synthetic) and the
user's own (an ImageFolder, an .npz, a factory of torch Datasets), kept as tensors in memory or
streamed when over the memory budget. :func:`load_data` is the one entry point."""

from .datasets import (
    DATASETS,
    DEFAULT_FMNIST_DIR,
    FMNIST_CLASSES,
    SPLIT_SEED,
    AnySplit,
    DataBundle,
    Split,
    fashion_mnist_dir,
    load_digits,
    load_fashion_mnist,
    load_synthetic,
)
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from .loading import (
    DATA_FORMS,
    DEFAULT_MEMORY,
    data_kind,
    data_label,
    load_data,
    load_dataset,
    parse_image_size,
    parse_memory,
)
from .stream import StreamSplit

__all__ = [
    "DATASETS",
    "DATA_FORMS",
    "DEFAULT_FMNIST_DIR",
    "DEFAULT_MEMORY",
    "FMNIST_CLASSES",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "SPLIT_SEED",
    "AnySplit",
    "DataBundle",
    "Split",
    "StreamSplit",
    "data_kind",
    "data_label",
    "fashion_mnist_dir",
    "load_data",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_synthetic",
    "parse_image_size",
    "parse_memory",
    "read_idx",
]
