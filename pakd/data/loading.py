"""The one entry point every stage loads data by: :func:`load_data` takes what ``--data`` takes (a
built-in name, an ImageFolder, an ``.npz``, ``package.module:function``) or the ``data`` record a
spec.json holds, and returns a :class:`DataBundle` with the same images, splits and normalization
every time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .datasets import DATASETS, SPLIT_SEED, AnySplit, DataBundle, Split
from .stream import SCAN_CHUNK, SampleSet, StreamSplit, normalize_, scan
from .user import Opened, open_factory, open_folder, open_npz

DEFAULT_MEMORY = 1024**3  # --data-memory: 1 GiB (with a training step and the runtime, under 3 GB)
VAL_FRACTION = 0.1  # held out of train when the data has no validation split of its own
KINDS = ("builtin", "folder", "npz", "factory")
# A latency-only model's spec (random weights, e.g. benchmarks/test_bench_mobile224.py) records
# {"kind": "random", "input_shape": [C, H, W], "num_classes": K}: its "data" is made by the code.
RANDOM_KIND = "random"
RANDOM_SAMPLES = 8
DATA_FORMS = (
    "a built-in name (fashion-mnist, digits, synthetic), a folder ROOT with ROOT/train/<class>/*.png|jpg|jpeg|bmp|"
    "webp and ROOT/test/<class>/... (optional ROOT/val/), an .npz file with x_train, y_train, x_test, y_test, or "
    "package.module:function returning torch Datasets (train, test[, val])"
)
_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def data_kind(source: str) -> str:
    """Which of the ``--data`` forms ``source`` is."""
    if source in DATASETS:
        return "builtin"
    p = Path(source).expanduser()
    if p.is_dir():
        return "folder"
    if p.suffix.lower() == ".npz" or p.is_file():
        return "npz"
    if _FACTORY.fullmatch(source):
        return "factory"
    raise DataError(
        f"--data {source!r}: not a built-in dataset ({', '.join(DATASETS)}), an existing folder, an .npz file "
        "or package.module:function"
    )


def data_label(source: str) -> str:
    """A short name for ``source`` (run folder names): the built-in name, the folder's or file's
    name, or the factory with ``.`` and ``:`` as ``-``."""
    if source in DATASETS:
        return source
    kind = data_kind(source)
    if kind in ("folder", "npz"):
        p = Path(source).expanduser().resolve()
        return p.stem if kind == "npz" else p.name
    return source.replace(":", "-").replace(".", "-")


def parse_image_size(text: str | int | Sequence[int] | None) -> tuple[int, int] | None:
    """``--image-size``: N (square) or HxW."""
    if text is None:
        return None
    if isinstance(text, int):
        text = str(text)
    if not isinstance(text, str):
        vals = [int(v) for v in text]
        return (vals[0], vals[-1])
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise DataError(f"--image-size {text!r}: give N (square) or HxW, e.g. 32 or 32x48")
    h = int(m.group(1))
    return (h, int(m.group(2)) if m.group(2) else h)


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2}
_UNITS.update({"g": 1024**3, "gb": 1000**3, "gib": 1024**3, "t": 1024**4, "tb": 1000**4, "tib": 1024**4})


def parse_memory(text: str | int | None) -> int:
    """``--data-memory``: bytes, or a number with K/M/G (binary) or KB/MB/GB, KiB/MiB/GiB."""
    if text is None:
        return DEFAULT_MEMORY
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise DataError(f"--data-memory {text!r}: give bytes or a size such as 512MiB or 2GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _check_channels(channels: int | None) -> None:
    if channels is not None and channels not in (1, 3):
        raise DataError(f"--channels {channels}: give 1 (grey) or 3 (RGB)")


def _labels(raw: Any, idx: np.ndarray) -> torch.Tensor | None:
    known = raw.known_labels()
    return None if known is None else torch.from_numpy(np.asarray(known, dtype=np.int64)[idx].copy())


def _check_labels(where: str, labels: torch.Tensor, k: int, what: str) -> None:
    if len(labels) == 0:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= k:
        bad = lo if lo < 0 else hi
        raise DataError(f"{where}: label {bad} {what} 0..{k - 1}")


def assemble(
    name: str,
    opened: Opened,
    *,
    budget: int,
    normalize: Mapping[str, Any] | None = None,
    classes: Sequence[str] | None = None,
) -> DataBundle:
    """The bundle of an opened source: train/val/test, labels checked, normalization per channel
    from the training split (or ``normalize``), kept as tensors when the three splits fit
    ``budget`` bytes as float32, streamed otherwise."""
    shape = tuple(opened.train.sample_shape)
    n = len(opened.train)
    if opened.val is None:
        if n < 2:
            raise DataError(f"{opened.train.where}: {n} training image(s); at least 2 are needed (one is held out)")
        val_size = max(1, round(n * VAL_FRACTION))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
        parts = [
            (opened.train, perm[val_size:].sort().values.numpy()),
            (opened.train, perm[:val_size].sort().values.numpy()),
        ]
        val_from = "split"
    else:
        parts = [(opened.train, np.arange(n)), (opened.val, np.arange(len(opened.val)))]
        val_from = "own"
    parts.append((opened.test, np.arange(len(opened.test))))
    sample_bytes = 4 * int(np.prod(shape))
    total = sum(len(idx) for _, idx in parts) * sample_bytes
    # kept: the tensors and the reading pass's batch in flight fit the budget
    keep = total + min(SCAN_CHUNK, len(parts[0][1])) * sample_bytes <= budget
    scan_budget = max(0, budget - total) if keep else budget
    stats = None
    if normalize is not None:
        mean, std = normalize.get("mean"), normalize.get("std")
        c = shape[0]
        mean = [float(mean)] * c if isinstance(mean, (int, float)) else [float(v) for v in mean]  # type: ignore[union-attr]
        std = [float(std)] * c if isinstance(std, (int, float)) else [float(v) for v in std]  # type: ignore[union-attr]
        if len(mean) != c or len(std) != c:
            raise DataError(f"the recorded normalization has {len(mean)} channel(s), the data {c}")
        stats = (mean, std)

    images: list[torch.Tensor | None] = []
    labels: list[torch.Tensor] = []
    for k, (raw, idx) in enumerate(parts):
        want_stats = k == 0 and stats is None
        known = _labels(raw, idx)
        if keep or want_stats or known is None:
            x, y, moments = scan(SampleSet(raw, idx), keep=keep, stats=want_stats, budget=scan_budget)
            if moments is not None:
                stats = moments
        else:
            x, y = None, known
        images.append(x)
        labels.append(y)
    assert stats is not None
    mean, std = stats

    train_y = labels[0]
    if classes is None:
        classes = opened.classes
    if classes is None:
        k = int(train_y.max()) + 1 if len(train_y) else 0
        if len(train_y) and int(train_y.min()) < 0:
            raise DataError(f"{opened.train.where}: label {int(train_y.min())} out of range (labels are 0..K-1)")
        classes = [str(i) for i in range(k)]
        unknown = "is not a class of the training split, whose labels are"
    else:
        unknown = "out of range"
    names = ("train", "val", "test")
    for split_name, (raw, _), y in zip(names, parts, labels, strict=True):
        _check_labels(raw.where, y, len(classes), "out of range" if split_name == "train" else unknown)

    splits: list[AnySplit] = []
    for (raw, idx), x, y in zip(parts, images, labels, strict=True):
        if x is not None:
            splits.append(Split(normalize_(x, mean, std), y))
        else:
            splits.append(StreamSplit(SampleSet(raw, idx, mean, std), y, budget))
    record = {**opened.record, "val_from": val_from}
    return DataBundle(name, splits[0], splits[1], splits[2], tuple(classes), tuple(mean), tuple(std), record)


def random_data(record: Mapping[str, Any]) -> DataBundle:
    """The data of a latency-only model: :data:`RANDOM_SAMPLES` standard-normal images of the
    record's ``input_shape`` per split (seed 0) and labels 0..K-1, already normalized. Enough for a
    golden input and a benchmark image; no accuracy on it means anything (nothing reports one)."""
    shape = record.get("input_shape")
    k = record.get("num_classes", 10)
    if not (
        isinstance(shape, Sequence)
        and len(shape) == 3
        and all(isinstance(d, int) and d > 0 for d in shape)
        and isinstance(k, int)
        and k > 0
    ):
        raise DataError("a random data record needs input_shape [C, H, W] and num_classes, positive integers")
    g = torch.Generator().manual_seed(0)
    train, val, test = (
        Split(torch.randn(RANDOM_SAMPLES, *shape, generator=g), torch.arange(RANDOM_SAMPLES) % k) for _ in range(3)
    )
    c = int(shape[0])
    classes = tuple(str(i) for i in range(k))
    rec = {"kind": RANDOM_KIND, "input_shape": list(shape), "num_classes": k}
    return DataBundle("random", train, val, test, classes, (0.0,) * c, (1.0,) * c, rec)


def _builtin(
    name: str, data_dir: str | Path | None, channels: int | None, image_size: tuple[int, int] | None
) -> DataBundle:
    if name not in DATASETS:
        raise DataError(f"unknown built-in dataset {name!r} (one of {', '.join(sorted(DATASETS))})")
    bundle = DATASETS[name](data_dir)
    c, h, w = bundle.input_shape
    if (channels is not None and channels != c) or (image_size is not None and tuple(image_size) != (h, w)):
        raise DataError(
            f"--data {name} is {c}x{h}x{w}; --channels and --image-size convert folders, .npz files and "
            "factories, not the built-in datasets"
        )
    return bundle


def load_data(
    source: str | Path | Mapping[str, Any],
    data_dir: str | Path | None = None,
    *,
    channels: int | None = None,
    image_size: str | Sequence[int] | None = None,
    memory: str | int | None = None,
    normalize: Mapping[str, Any] | None = None,
) -> DataBundle:
    """Load ``source``: what ``--data`` takes, or a spec's ``data`` record (or a whole spec).

    A record loads the same data again: the same source, channels, image size, class names and
    the normalization it recorded. ``channels`` / ``image_size`` force the images' channels
    (1 or 3) and size (N or HxW); ``normalize`` ({"mean", "std"}, per channel) replaces the
    statistics of the training split (a model's own, to evaluate it on other data); ``memory`` is
    the budget in bytes (or "1GiB") above which the data streams instead of being kept as tensors.
    ``data_dir`` is where the Fashion-MNIST files are."""
    _check_channels(channels)
    size = parse_image_size(image_size)
    budget = parse_memory(memory)
    classes: Sequence[str] | None = None
    if isinstance(source, Mapping):
        record = source.get("data", source) if "model" in source and "data" in source else source
        if not isinstance(record, Mapping) or not (record.get("source") or record.get("name")):
            raise DataError("the spec's data record names no dataset")
        kind = str(record.get("kind") or "builtin")
        src = str(record.get("source") or record.get("name"))
        if kind == RANDOM_KIND:
            return random_data(record)
        if kind == "builtin":
            if src not in DATASETS:
                raise DataError(f"the spec's data record names {src!r}, not a built-in dataset ({', '.join(DATASETS)})")
            return _builtin(src, data_dir, channels, size)
        if kind not in KINDS:
            raise DataError(f"the spec's data record has unknown kind {kind!r} (one of {', '.join(KINDS)})")
        channels = channels or record.get("channels")
        size = size or parse_image_size(record.get("image_size"))
        normalize = normalize if normalize is not None else record.get("normalize")
        classes = record.get("classes")
        if kind in ("folder", "npz") and not Path(src).exists():
            raise DataError(f"{src}: the data this model was trained on is gone (give --data to use other data)")
        name = str(record.get("name") or src)
    else:
        src = str(source)
        kind = data_kind(src)
        if kind == "builtin":  # fixed statistics of their own
            return _builtin(src, data_dir, channels, size)
        name = data_label(src)
    opener = {"folder": open_folder, "npz": open_npz, "factory": open_factory}[kind]
    opened = opener(src, channels, size)
    if classes is not None and opened.classes is not None and list(classes) != list(opened.classes):
        raise DataError(f"{src}: its classes {opened.classes} are not the recorded ones {list(classes)}")
    bundle = assemble(name, opened, budget=budget, normalize=normalize, classes=classes)
    if isinstance(source, Mapping):
        now = [len(bundle.train), len(bundle.val), len(bundle.test)]
        then = [record.get(k) for k in ("train", "val", "test")]
        if all(isinstance(v, int) for v in then) and now != then:
            raise DataError(
                f"{src}: the data changed since the model's spec.json recorded it: train/val/test "
                f"{'/'.join(map(str, now))} images now, {'/'.join(map(str, then))} then"
            )
    return bundle


def load_dataset(name: str, data_dir: str | Path | None = None, **options: Any) -> DataBundle:
    """:func:`load_data` for a ``--data`` value (the name kept for its callers)."""
    return load_data(name, data_dir, **options)
