"""Data the tests make themselves: scikit-learn's digits saved as small tinted RGB (or grey) PNGs
in the ImageFolder layout, the same as an .npz, and a module of torch Datasets."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest


def digit_images(
    classes: int, per_class: int, size: int, offset: int = 0, rgb: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W, 3) or (N, H, W) of digits 0..classes-1, each with its own tint."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(offset)
    xs, ys = [], []
    for c in range(classes):
        imgs = d.images[d.target == c]
        for i in range(per_class):
            g = Image.fromarray((imgs[(offset + i) % len(imgs)] * 255 / 16).astype(np.uint8)).resize((size, size))
            a = np.asarray(g, dtype=np.float32) / 255
            if rgb:
                a = a[..., None] * rng.uniform(0.4, 1.0, 3)
            xs.append((a * 255).astype(np.uint8))
            ys.append(c)
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def make_folder(
    root: Path,
    classes: int = 3,
    per_class: int = 12,
    test_per_class: int = 4,
    size: int = 16,
    rgb: bool = True,
    val_per_class: int = 0,
) -> Path:
    from PIL import Image

    counts = {"train": per_class, "test": test_per_class, "val": val_per_class}
    for k, (split, n) in enumerate(counts.items()):
        if not n:
            continue
        x, y = digit_images(classes, n, size, offset=100 * k, rgb=rgb)
        for i, (img, label) in enumerate(zip(x, y, strict=True)):
            folder = root / split / f"class-{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """3 classes of 16x16 RGB PNGs: 12 per class to train, 4 to test."""
    return make_folder(tmp_path / "imgs")


def make_npz(path: Path, n_classes: int = 3, per_class: int = 12, size: int = 16, nchw: bool = False, **extra) -> Path:
    xtr, ytr = digit_images(n_classes, per_class, size, offset=0)
    xte, yte = digit_images(n_classes, 4, size, offset=100)
    if nchw:
        xtr, xte = xtr.transpose(0, 3, 1, 2), xte.transpose(0, 3, 1, 2)
    arrays = {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte, **extra}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


FACTORY = textwrap.dedent(
    """
    import torch
    from torch.utils.data import Dataset

    class Tinted(Dataset):
        def __init__(self, n, seed, classes=3, size=12, targets=True):
            g = torch.Generator().manual_seed(seed)
            self.y = torch.arange(n) % classes
            base = torch.rand(classes, 1, size, size, generator=g)
            tint = torch.rand(n, 3, 1, 1, generator=g)
            self.x = (base[self.y] * tint + 0.05 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)
            if targets:
                self.targets = self.y.tolist()
        def __len__(self):
            return len(self.y)
        def __getitem__(self, i):
            return self.x[i], int(self.y[i])

    def make():
        return Tinted(60, 0), Tinted(15, 1)

    def make_no_targets():
        return Tinted(60, 0, targets=False), Tinted(15, 1, targets=False), Tinted(9, 2, targets=False)

    def bad_type():
        return [1, 2, 3], Tinted(15, 1)

    def bad_items():
        return [("not a tensor", 0)], [(torch.zeros(3, 4, 4), 0)]

    def not_a_pair():
        return Tinted(5, 0)

    def raises():
        raise FileNotFoundError("no such archive: /nowhere/data.bin")
    """
)


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module ``userdata_<n>`` of Dataset factories; returns its name."""
    import uuid

    name = f"userdata_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name
