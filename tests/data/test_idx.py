"""The IDX reader against the real Fashion-MNIST files and against broken copies of them."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from pakd.data import IMAGES_MAGIC, LABELS_MAGIC, load_fashion_mnist, read_idx
from pakd.errors import DataError
from tests.conftest import run_cli

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def test_real_files_have_expected_counts_and_balanced_classes(fmnist):
    assert len(fmnist.train) + len(fmnist.val) == 60000
    assert len(fmnist.test) == 10000
    assert fmnist.input_shape == (1, 28, 28)
    full_train = np.concatenate([fmnist.train.labels.numpy(), fmnist.val.labels.numpy()])
    assert np.bincount(full_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(fmnist.test.labels.numpy(), minlength=10).tolist() == [1000] * 10


def test_raw_images_are_uint8_28x28(fmnist_dir):
    x = read_idx(fmnist_dir / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, 10000, (28, 28))
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert 0 < x.mean() < 255


@pytest.mark.slow
def test_train_validation_split_is_deterministic_and_disjoint(fmnist_dir):
    a, b = load_fashion_mnist(fmnist_dir), load_fashion_mnist(fmnist_dir)
    assert bool((a.val.images == b.val.images).all())
    # no validation image appears in the training part
    train_keys = {hash(row.numpy().tobytes()) for row in a.train.images[:, 0, 10]}
    overlap = sum(hash(row.numpy().tobytes()) in train_keys for row in a.val.images[:200, 0, 10])
    assert overlap < 5  # a row of pixels may repeat by chance (blank rows), whole splits do not


@pytest.fixture
def broken_dir(tmp_path, fmnist_dir) -> Path:
    for name in FILES:
        shutil.copy(fmnist_dir / name, tmp_path / name)
    return tmp_path


def _rewrite(path: Path, transform) -> None:
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(transform(raw), compresslevel=1))


def test_missing_file_names_the_file_and_the_install_command(broken_dir):
    (broken_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz.*apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(broken_dir)


def test_wrong_magic_is_reported(broken_dir):
    _rewrite(broken_dir / "train-labels-idx1-ubyte.gz", lambda raw: IMAGES_MAGIC.to_bytes(4, "big") + raw[4:])
    with pytest.raises(DataError, match="wrong IDX magic 0x00000803, expected 0x00000801"):
        load_fashion_mnist(broken_dir)


def test_truncated_gzip_stream_is_reported(broken_dir):
    path = broken_dir / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated gzip stream"):
        load_fashion_mnist(broken_dir)


def test_truncated_body_is_reported(broken_dir):
    _rewrite(broken_dir / "t10k-images-idx3-ubyte.gz", lambda raw: raw[:-1000])
    with pytest.raises(DataError, match="data truncated"):
        load_fashion_mnist(broken_dir)


def test_wrong_count_is_reported(broken_dir):
    _rewrite(broken_dir / "t10k-labels-idx1-ubyte.gz", lambda raw: raw[:4] + (9999).to_bytes(4, "big") + raw[8:-1])
    with pytest.raises(DataError, match="holds 9999 items, expected 10000"):
        load_fashion_mnist(broken_dir)


def test_not_gzip_is_reported(broken_dir):
    (broken_dir / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="not a valid gzip file"):
        load_fashion_mnist(broken_dir)


def test_label_out_of_range_is_reported(broken_dir):
    _rewrite(broken_dir / "t10k-labels-idx1-ubyte.gz", lambda raw: raw[:-1] + bytes([42]))
    with pytest.raises(DataError, match="label 42 out of range"):
        load_fashion_mnist(broken_dir)


def test_truncated_header_is_reported(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(LABELS_MAGIC.to_bytes(4, "big") + b"\x00\x00"))
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(path, LABELS_MAGIC, 1)


@pytest.mark.slow
def test_cli_reports_a_corrupt_file_in_one_line_without_traceback(broken_dir):
    path = broken_dir / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    res = run_cli("eval", "--model", "lenet5", "--data-dir", str(broken_dir))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr + res.stdout
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:") and "t10k-images-idx3-ubyte.gz" in res.stderr


@pytest.mark.slow
def test_cli_reports_missing_data_dir_with_install_hint(tmp_path):
    res = run_cli("eval", "--model", "lenet5", "--data-dir", str(tmp_path / "nowhere"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "apt-get install dataset-fashion-mnist" in res.stderr
