"""The user's own data: an ImageFolder tree, an ``.npz`` archive, or a ``package.module:function``
returning torch Datasets. Each opens as :class:`pakd.data.stream.RawSplit` s (unnormalized float32
images of one shape, int labels) that :mod:`pakd.data.loading` turns into a bundle.

Every problem a user's data can have is a :class:`DataError` with one line naming the file,
folder, key or item.
"""

from __future__ import annotations

import importlib
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .stream import RawSplit

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
WIDE_GREY = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}  # 16-bit, 32-bit and float grey
NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's RGB -> L


@dataclass
class Opened:
    """A source opened: its splits (val may be None), class names if it has them, its shape."""

    train: RawSplit
    test: RawSplit
    val: RawSplit | None
    classes: list[str] | None
    record: dict[str, Any]


def size_text(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"


def conform(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """``x`` (C, H, W) float32 with ``shape[0]`` channels (1 <-> 3 only) and size ``shape[1:]``."""
    c, h, w = shape
    if x.shape[0] != c:
        if x.shape[0] == 1 and c == 3:
            x = x.expand(3, -1, -1)
        elif x.shape[0] == 3 and c == 1:
            x = (LUMA[0] * x[0] + LUMA[1] * x[1] + LUMA[2] * x[2])[None]
        else:
            raise DataError(f"cannot turn {x.shape[0]} channels into {c} (only 1 <-> 3)")
    if tuple(x.shape[1:]) != (h, w):
        x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    return x.contiguous()


# -- ImageFolder ---------------------------------------------------------------------------------


def _class_dirs(split_dir: Path) -> list[Path]:
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS
    )


def _unreadable(path: Path, exc: BaseException) -> DataError:
    text = str(exc).strip() or type(exc).__name__
    return DataError(f"{path}: unreadable image ({text})")


def _decode(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    from PIL import Image

    c, h, w = shape
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in WIDE_GREY:
                scale = 1.0 if img.mode == "F" else 65535.0  # 16-bit grey
                a = np.asarray(img.convert("F"), dtype=np.float32) / np.float32(scale)
                if a.shape != (h, w):
                    a = np.asarray(Image.fromarray(a, mode="F").resize((w, h), Image.Resampling.BILINEAR))
                x = torch.from_numpy(np.ascontiguousarray(a))[None]
                return x.expand(3, -1, -1).contiguous() if c == 3 else x
            img2 = img.convert("L" if c == 1 else "RGB")
            if img2.size != (w, h):
                img2 = img2.resize((w, h), Image.Resampling.BILINEAR)
            t = torch.from_numpy(np.array(img2, dtype=np.uint8))
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise _unreadable(path, exc) from None
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return t.float().div_(255.0).contiguous()


class FolderSplit:
    def __init__(self, where: str, files: list[str], labels: np.ndarray, shape: tuple[int, int, int]) -> None:
        self.where, self.files, self.labels, self.sample_shape = where, files, labels, shape

    def __len__(self) -> int:
        return len(self.files)

    def item(self, i: int) -> tuple[torch.Tensor, int]:
        return _decode(Path(self.files[i]), self.sample_shape), int(self.labels[i])

    def known_labels(self) -> np.ndarray | None:
        return self.labels


def open_folder(root: str | Path, channels: int | None = None, image_size: tuple[int, int] | None = None) -> Opened:
    """``root/train/<class>/*`` and ``root/test/<class>/*`` (and ``root/val/`` if there)."""
    from PIL import Image

    root = Path(root).expanduser().resolve()
    layout = "expected ROOT/train/<class>/*.png|jpg|jpeg|bmp|webp and ROOT/test/<class>/..."
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{root}: no {split}/ folder ({layout})")
    classes = [d.name for d in _class_dirs(root / "train")]
    if not classes:
        raise DataError(f"{root / 'train'}: no class folders ({layout})")
    files: dict[str, tuple[list[Path], list[int]]] = {}
    for split in ("train", "test", "val"):
        split_dir = root / split
        if split == "val" and not split_dir.is_dir():
            continue
        names = [d.name for d in _class_dirs(split_dir)]
        for name in names:
            if name not in classes:
                raise DataError(
                    f"{split_dir / name}: class {name!r} is not one of the training classes ({', '.join(classes)})"
                )
        paths: list[Path] = []
        labels: list[int] = []
        for k, name in enumerate(classes):
            if name not in names:
                raise DataError(f"{split_dir / name}: missing class folder (train/ has class {name!r})")
            found = _image_files(split_dir / name)
            if not found:
                raise DataError(f"{split_dir / name}: empty class folder (no {', '.join(IMAGE_EXTS)} images)")
            paths += found
            labels += [k] * len(found)
        files[split] = (paths, labels)

    # headers only: sizes and modes, without decoding
    first: tuple[Path, tuple[int, int]] | None = None
    grey = True
    for paths, _ in files.values():
        for path in paths:
            try:
                with Image.open(path) as img:
                    size, mode = img.size, img.mode
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
                raise _unreadable(path, exc) from None
            grey = grey and mode in GREY_MODES
            hw = (size[1], size[0])
            if first is None:
                first = (path, hw)
            elif image_size is None and hw != first[1]:
                raise DataError(
                    f"images differ in size: {first[0]} is {size_text(first[1])}, {path} is {size_text(hw)} "
                    "(HxW); give --image-size N or HxW to resize them all"
                )
    assert first is not None
    c = channels or (1 if grey else 3)
    hw = image_size or first[1]
    shape = (c, hw[0], hw[1])
    splits = {
        s: FolderSplit(str(root / s), [str(p) for p in paths], np.asarray(labels, dtype=np.int64), shape)
        for s, (paths, labels) in files.items()
    }
    record = {"kind": "folder", "source": str(root), "channels": c, "image_size": list(hw)}
    return Opened(splits["train"], splits["test"], splits.get("val"), classes, record)


# -- .npz ----------------------------------------------------------------------------------------


def _member(path: Path, z: Any, key: str) -> np.ndarray:
    """An array of the archive: memory-mapped when stored uncompressed (np.savez), else read."""
    name = key + ".npy"
    try:
        info = z.zip.getinfo(name)
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as fh:
                fh.seek(info.header_offset)
                local = fh.read(30)
                n_name, n_extra = struct.unpack("<HH", local[26:30])
                fh.seek(info.header_offset + 30 + n_name + n_extra)
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                offset = fh.tell()
            if not dtype.hasobject and len(shape) > 0 and int(np.prod(shape)) > 0:
                return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
        return np.asarray(z[key])
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "object" in str(exc):
            raise DataError(f"{path}: {key} holds Python objects; save plain numeric arrays") from None
        raise DataError(f"{path}: {key} is not a readable array ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, struct.error) as exc:
        raise DataError(f"{path}: {key} is not a readable array ({exc})") from None


def _layout(path: Path, key: str, x: np.ndarray) -> str:
    if x.ndim == 3:
        return "NHW"
    if x.ndim == 4:
        if x.shape[1] in (1, 3):
            return "NCHW"
        if x.shape[3] in (1, 3):
            return "NHWC"
    raise DataError(
        f"{path}: {key} has shape {tuple(x.shape)}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3"
    )


def _chw(layout: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if layout == "NHW":
        return (1, shape[1], shape[2])
    if layout == "NCHW":
        return (shape[1], shape[2], shape[3])
    return (shape[3], shape[1], shape[2])


class ArraySplit:
    def __init__(self, where: str, x: np.ndarray, y: np.ndarray, layout: str, shape: tuple[int, int, int]) -> None:
        self.where, self.x, self.y, self.layout, self.sample_shape = where, x, y, layout, shape

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def item(self, i: int) -> tuple[torch.Tensor, int]:
        a = np.array(self.x[i])  # a copy: out of a memory map, writable
        t = torch.from_numpy(a)
        if self.layout == "NHW":
            t = t[None]
        elif self.layout == "NHWC":
            t = t.permute(2, 0, 1)
        t = t.float().div_(255.0) if a.dtype == np.uint8 else t.float()
        return conform(t, self.sample_shape), int(self.y[i])

    def known_labels(self) -> np.ndarray | None:
        return np.asarray(self.y, dtype=np.int64)


def open_npz(path: str | Path, channels: int | None = None, image_size: tuple[int, int] | None = None) -> Opened:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single array, not an .npz archive of x_train, y_train, x_test, y_test")
    with z:
        keys = set(z.files)
        missing = [k for k in NPZ_REQUIRED if k not in keys]
        if missing:
            raise DataError(
                f"{path}: missing {', '.join(missing)} (an .npz needs x_train, y_train, x_test, y_test; "
                "x_val, y_val and classes are optional)"
            )
        if ("x_val" in keys) != ("y_val" in keys):
            raise DataError(
                f"{path}: x_val and y_val go together (it has only {'x_val' if 'x_val' in keys else 'y_val'})"
            )
        splits = ("train", "test", "val") if "x_val" in keys else ("train", "test")
        arrays: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
        native: tuple[int, int, int] | None = None
        for s in splits:
            x, y = _member(path, z, f"x_{s}"), _member(path, z, f"y_{s}")
            if not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
                raise DataError(f"{path}: x_{s} has dtype {x.dtype}; expected uint8 (0..255) or float")
            if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"{path}: y_{s} must be a 1-D integer array (has dtype {y.dtype}, shape {y.shape})")
            layout = _layout(path, f"x_{s}", x)
            if x.shape[0] != y.shape[0]:
                raise DataError(f"{path}: x_{s} holds {x.shape[0]} images but y_{s} {y.shape[0]} labels")
            if x.shape[0] == 0:
                raise DataError(f"{path}: x_{s} is empty")
            chw = _chw(layout, x.shape)
            if native is None:
                native = chw
            elif chw != native and image_size is None and channels is None:
                raise DataError(
                    f"{path}: x_{s} images are {chw[0]}x{chw[1]}x{chw[2]} (CxHxW) but x_train's are "
                    f"{native[0]}x{native[1]}x{native[2]}"
                )
            arrays[s] = (x, y, layout)
        classes = None
        if "classes" in keys:
            c_arr = _member(path, z, "classes")
            if c_arr.ndim != 1 or c_arr.dtype.kind not in "US":
                raise DataError(f"{path}: classes must be a 1-D array of strings (has dtype {c_arr.dtype})")
            classes = [str(c) for c in c_arr.tolist()]
    assert native is not None
    c = channels or native[0]
    hw = image_size or (native[1], native[2])
    shape = (c, hw[0], hw[1])
    raws = {s: ArraySplit(f"{path} (y_{s})", x, y, layout, shape) for s, (x, y, layout) in arrays.items()}
    record = {"kind": "npz", "source": str(path), "channels": c, "image_size": list(hw)}
    return Opened(raws["train"], raws["test"], raws.get("val"), classes, record)


# -- package.module:function ---------------------------------------------------------------------


class FactorySplit:
    def __init__(self, where: str, ds: Any, shape: tuple[int, int, int], forced: bool) -> None:
        self.where, self.ds, self.sample_shape, self.forced = where, ds, shape, forced

    def __len__(self) -> int:
        return len(self.ds)

    def raw_item(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            it = self.ds[i]
        except Exception as exc:  # the user's code: say where, keep one line
            raise DataError(f"{self.where}: item {i} raised {type(exc).__name__}: {exc}") from None
        if not isinstance(it, (tuple, list)) or len(it) < 2:
            raise DataError(
                f"{self.where}: item {i} is a {type(it).__name__}, expected (image tensor CxHxW, int label)"
            )
        x, y = it[0], it[1]
        if not isinstance(x, torch.Tensor):
            raise DataError(f"{self.where}: item {i}'s image is a {type(x).__name__}, expected a torch.Tensor (CxHxW)")
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3:
            raise DataError(f"{self.where}: item {i}'s image has shape {tuple(x.shape)}, expected CxHxW")
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        elif x.is_floating_point():
            x = x.float()
        else:
            raise DataError(f"{self.where}: item {i}'s image has dtype {x.dtype}, expected uint8 or float")
        if isinstance(y, torch.Tensor) and y.numel() == 1 and not y.is_floating_point() and y.dtype != torch.bool:
            label = int(y.item())
        elif isinstance(y, (int, np.integer)) and not isinstance(y, bool):
            label = int(y)
        else:
            raise DataError(f"{self.where}: item {i}'s label is a {type(y).__name__}, expected an int")
        return x, label

    def item(self, i: int) -> tuple[torch.Tensor, int]:
        x, label = self.raw_item(i)
        if tuple(x.shape) != self.sample_shape:
            if not self.forced:
                c, h, w = self.sample_shape
                raise DataError(
                    f"{self.where}: item {i} is {'x'.join(map(str, x.shape))} (CxHxW), the first training item "
                    f"{c}x{h}x{w}; give --image-size / --channels to make them agree"
                )
            x = conform(x, self.sample_shape)
        return x.contiguous(), label

    def known_labels(self) -> np.ndarray | None:
        targets = getattr(self.ds, "targets", None)
        if targets is None:
            return None
        try:
            arr = np.asarray(targets.tolist() if isinstance(targets, torch.Tensor) else list(targets))
        except (TypeError, ValueError):
            return None
        if arr.ndim != 1 or arr.shape[0] != len(self) or not np.issubdtype(arr.dtype, np.integer):
            return None
        return arr.astype(np.int64)


def open_factory(spec: str, channels: int | None = None, image_size: tuple[int, int] | None = None) -> Opened:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own code failing
        raise DataError(f"--data {spec}: cannot import {module_name!r} ({type(exc).__name__}: {exc})") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise DataError(f"--data {spec}: module {module_name!r} has no callable {attr!r}")
    try:
        result = fn()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"--data {spec}: the factory raised {type(exc).__name__}: {exc}") from None
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 3):
        raise DataError(
            f"--data {spec}: the factory returned {type(result).__name__}; expected (train, test) or "
            "(train, test, val) torch Datasets"
        )
    names = ("train", "test", "val")
    for name, ds in zip(names, result, strict=False):
        if not (hasattr(ds, "__getitem__") and hasattr(ds, "__len__")):
            raise DataError(f"--data {spec}: its {name} set is a {type(ds).__name__}, not a torch Dataset (map-style)")
        if len(ds) == 0:
            raise DataError(f"--data {spec}: its {name} set is empty")
    probe = FactorySplit(f"{spec} train", result[0], (0, 0, 0), True)
    x0, _ = probe.raw_item(0)
    native = (int(x0.shape[0]), int(x0.shape[1]), int(x0.shape[2]))
    c = channels or native[0]
    hw = image_size or (native[1], native[2])
    shape = (c, hw[0], hw[1])
    forced = shape != native
    raws = [FactorySplit(f"{spec} {name}", ds, shape, forced) for name, ds in zip(names, result, strict=False)]
    classes = getattr(result[0], "classes", None)
    if classes is not None:
        if not isinstance(classes, (list, tuple)) or not all(isinstance(c_, str) for c_ in classes):
            raise DataError(f"--data {spec}: the train set's classes must be a list of strings")
        classes = list(classes)
    record = {"kind": "factory", "source": spec, "channels": c, "image_size": list(hw)}
    return Opened(raws[0], raws[1], raws[2] if len(raws) == 3 else None, classes, record)
