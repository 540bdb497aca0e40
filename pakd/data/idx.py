"""Reader for the IDX format of (Fashion-)MNIST (gzip-compressed), validating every header field.

IDX layout: 2 zero bytes, a type byte (0x08 = uint8), a dimension count byte, one big-endian
uint32 per dimension, then the data in C order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension


def _decompress(path: Path, missing_hint: str) -> bytes:
    if not path.is_file():
        raise DataError(f"dataset file not found: {path} ({missing_hint})")
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except EOFError:
        raise DataError(f"{path}: truncated gzip stream (file is incomplete; reinstall it)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc})") from None


def read_idx(
    path: str | Path,
    expect_magic: int,
    expect_count: int | None = None,
    expect_shape: tuple[int, ...] = (),
    missing_hint: str = "",
) -> np.ndarray:
    """Read one IDX ``.gz`` file into a uint8 array, checking magic, dimensions and counts.

    ``expect_shape`` gives the per-item shape (e.g. ``(28, 28)`` for images).
    Every failure raises :class:`DataError` with one line naming the file and the problem.
    """
    path = Path(path)
    raw = _decompress(path, missing_hint)
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expect_magic:
        raise DataError(f"{path}: wrong IDX magic 0x{magic:08x}, expected 0x{expect_magic:08x}")
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} of {header_len} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if expect_count is not None and dims[0] != expect_count:
        raise DataError(f"{path}: holds {dims[0]} items, expected {expect_count}")
    if dims[1:] != tuple(expect_shape):
        raise DataError(f"{path}: items have shape {dims[1:]}, expected {tuple(expect_shape)}")
    size = int(np.prod(dims, dtype=np.int64))
    body = len(raw) - header_len
    if body != size:
        what = "truncated" if body < size else "has trailing bytes"
        raise DataError(f"{path}: data {what}: {body} bytes after the header, expected {size}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)
