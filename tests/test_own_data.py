"""A user's own data and model through the whole path (issue 14's acceptance).

The test writes what a user would bring: an ImageFolder of Fashion-MNIST images saved as 32x32 RGB
PNGs with a random tint per image (so colour matters and the shape is not 1x28x28), and a model
module of its own (not in the zoo) with a squeeze-excite block, a concat of two branches, a
depthwise and a grouped convolution, hardswish and a mean over H and W. Then it runs, as the user
would, ``pakd train --model own_models:net --data <folder>`` -> ``pakd compress`` (channel
pruning, unstructured pruning, k-means) -> ``pakd build --target rpi4`` -> ``pakd verify
--emulate`` -> ``pakd bench`` (the model on this machine's engines, and both bundles under qemu)
-> ``pakd report``. An ``.npz`` and a factory dataset take a shorter path (train, compress, build
for the host, verify).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pakd.data import FMNIST_CLASSES, IMAGES_MAGIC, LABELS_MAGIC, fashion_mnist_dir, read_idx
from tests.conftest import run_cli
from tests.deploy.conftest import require_target, shared_build_cache

pytestmark = pytest.mark.slow  # trains, compresses, cross-builds and emulates

OWN_MODELS = '''
import torch
import torch.nn.functional as F
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels, hidden):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.Hardswish):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act()
    )


class Net(nn.Module):
    def __init__(self, in_channels=3, num_classes=10, width=16):
        super().__init__()
        self.stem = conv_bn(in_channels, width, stride=2)           # 32 -> 16
        self.depthwise = conv_bn(width, width, groups=width)
        self.se = SqueezeExcite(width, 8)
        self.branch_a = conv_bn(width, width, k=1, act=nn.ReLU)
        self.branch_b = conv_bn(width, width, groups=4, act=nn.ReLU)  # grouped
        self.down = conv_bn(2 * width, 2 * width, stride=2)          # 16 -> 8
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.se(self.depthwise(self.stem(x)))
        x = torch.cat([self.branch_a(x), self.branch_b(x)], 1)
        x = self.down(x)
        return self.head(x.mean((2, 3)))


def net(in_channels=3, num_classes=10, width=16):
    return Net(in_channels, num_classes, width)


class ArrayDataset(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def tinted_digits():
    """A factory dataset: scikit-learn's digits as 3x16x16 tinted images (train, test)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    g = torch.Generator().manual_seed(0)
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    tint = torch.rand(len(x), 3, 1, 1, generator=g) * 0.7 + 0.3
    x = x * tint
    y = torch.tensor(d.target)
    return ArrayDataset(x[:1500], y[:1500]), ArrayDataset(x[1500:], y[1500:])
'''

RECIPE = """
[recipe]
name = "own"
batch_size = 64
huffman = true

[[stage]]
name = "channels"
epochs = 1
lr = 0.02
optimizer = "sgd"
[stage.prune]
method = "channel"
criterion = "l1"
target = "macs"
amount = 0.4
scope = "global"
[stage.distill]
teachers = ["teacher"]

[[stage]]
name = "prune"
epochs = 1
lr = 0.01
optimizer = "sgd"
[stage.prune]
method = "unstructured"
criterion = "magnitude"
scope = "global"
amount = 0.6
[stage.distill]
teachers = ["teacher"]

[[stage]]
name = "quantize"
epochs = 1
lr = 0.001
optimizer = "sgd"
[stage.quantize]
method = "kmeans"
bits = { conv = 8, linear = 6 }
"""

PER_CLASS_TRAIN, PER_CLASS_TEST = 240, 40


def _fmnist_u8(split: str) -> tuple[np.ndarray, np.ndarray]:
    root = fashion_mnist_dir()
    prefix = "train" if split == "train" else "t10k"
    n = 60000 if split == "train" else 10000
    x = read_idx(root / f"{prefix}-images-idx3-ubyte.gz", IMAGES_MAGIC, n, (28, 28))
    y = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", LABELS_MAGIC, n, ())
    return np.asarray(x), np.asarray(y)


def make_image_folder(root: Path) -> Path:
    """root/{train,test}/<class>/*.png: Fashion-MNIST resized to 32x32, RGB, a random tint each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, per_class in (("train", PER_CLASS_TRAIN), ("test", PER_CLASS_TEST)):
        x, y = _fmnist_u8(split)
        for label, name in enumerate(FMNIST_CLASSES):
            folder = root / split / name.replace("/", "-")
            folder.mkdir(parents=True)
            for i, idx in enumerate(np.flatnonzero(y == label)[:per_class]):
                grey = Image.fromarray(x[idx]).resize((32, 32), Image.BILINEAR)
                tint = rng.uniform(0.35, 1.0, size=3)
                rgb = (np.asarray(grey, dtype=np.float32)[..., None] * tint).round().astype(np.uint8)
                Image.fromarray(rgb, "RGB").save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    require_target("rpi4", emulator=True)
    root = tmp_path_factory.mktemp("own")
    (root / "own_models.py").write_text(textwrap.dedent(OWN_MODELS))
    (root / "recipe.toml").write_text(RECIPE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    return root, env, shared_build_cache(tmp_path_factory)


def _ok(result) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_image_folder_through_the_whole_path(own):
    root, env, cache = own
    data = make_image_folder(root / "images")
    runs, builds, db = root / "runs", root / "builds", root / "results.db"

    _ok(
        run_cli(
            "train",
            "--model",
            "own_models:net",
            "--data",
            str(data),
            "--epochs",
            "5",
            "--augment",
            "none",
            "--runs-dir",
            str(runs),
            "--name",
            "own",
            "--quiet",
            cwd=root,
            env=env,
        )
    )
    teacher = runs / "own" / "teacher"
    spec = json.loads((teacher / "spec.json").read_text())
    assert spec["data"]["input_shape"] == [3, 32, 32]
    assert spec["data"]["num_classes"] == 10
    assert len(spec["data"]["normalize"]["mean"]) == 3  # per channel, from the training split
    assert spec["metrics"]["test_top1"] > 0.5  # 10 classes: chance is 0.1

    out = _ok(
        run_cli(
            "compress",
            "--teacher",
            str(teacher),
            "--recipe",
            str(root / "recipe.toml"),
            "--runs-dir",
            str(runs),
            "--name",
            "own-c",
            "--quiet",
            cwd=root,
            env=env,
        )
    )
    assert "smaller" in out
    run = runs / "own-c"
    ledger = json.loads((run / "ledger.json").read_text())
    assert ledger  # every stage recorded

    for name, src in (("teacher", teacher), ("student", run)):
        _ok(run_cli("build", str(src), "--target", "rpi4", "-o", str(builds / name), cwd=root, env=env))
    verified = _ok(run_cli("verify", str(builds / "student"), "--emulate", cwd=root, env=env))
    assert "cortex-a72" in verified

    _ok(
        run_cli(
            "bench",
            str(run),
            "--db",
            str(db),
            "--repeats",
            "20",
            "--warmup",
            "2",
            "--min-time",
            "0.05",
            "--same-process",
            "-q",
            cwd=root,
            env=env,
        )
    )
    _ok(
        run_cli(
            "bench",
            str(builds / "teacher"),
            str(builds / "student"),
            "--device",
            "qemu:rpi4",
            "--no-peers",
            "--db",
            str(db),
            "-q",
            cwd=root,
            env=env,
        )
    )
    _ok(run_cli("report", str(run), "--db", str(db), "-o", str(root / "report"), cwd=root, env=env))
    md = (root / "report" / "report.md").read_text()
    assert "Ankle boot" in md and "input 3x32x32, 10 classes" in md and "400 test images" in md


def test_npz_and_factory_data(own):
    root, env, cache = own
    x, y = _fmnist_u8("train")
    xt, yt = _fmnist_u8("test")
    npz = root / "fm.npz"
    np.savez(npz, x_train=x[:2000, :, :, None], y_train=y[:2000], x_test=xt[:300, :, :, None], y_test=yt[:300])
    runs = root / "runs-small"
    for name, data, channels in (("npz", str(npz), "1"), ("factory", "own_models:tinted_digits", "3")):
        _ok(
            run_cli(
                "train",
                "--model",
                "own_models:net",
                "--model-arg",
                f"in_channels={channels}",
                "--data",
                data,
                "--epochs",
                "1",
                "--runs-dir",
                str(runs),
                "--name",
                name,
                "--quiet",
                cwd=root,
                env=env,
            )
        )
        teacher = runs / name / "teacher"
        _ok(
            run_cli(
                "compress",
                "--teacher",
                str(teacher),
                "--recipe",
                str(root / "recipe.toml"),
                "--runs-dir",
                str(runs),
                "--name",
                f"{name}-c",
                "--quiet",
                cwd=root,
                env=env,
            )
        )
        _ok(
            run_cli(
                "build", str(runs / f"{name}-c"), "--target", "host", "-o", str(root / "b" / name), cwd=root, env=env
            )
        )
        _ok(run_cli("verify", str(root / "b" / name), cwd=root, env=env))
