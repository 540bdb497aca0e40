"""Bad user data: one DataError line naming the folder, file, key or item (the CLI prints it and
exits 2), never a traceback."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pakd.data import load_data
from pakd.errors import DataError
from tests.conftest import run_cli
from tests.data.conftest import make_npz


def _fails(source, match, **kw):
    with pytest.raises(DataError, match=match) as info:
        load_data(str(source), **kw)
    assert "\n" not in str(info.value)


def test_missing_split_or_class_folders(folder):
    shutil.rmtree(folder / "test")
    _fails(folder, r"imgs: no test/ folder")
    shutil.copytree(folder / "train" / "class-0", folder / "test" / "class-0")
    _fails(folder, r"test/class-1: missing class folder \(train/ has class 'class-1'\)")


def test_empty_class_folder(folder):
    for p in (folder / "train" / "class-2").iterdir():
        p.unlink()
    (folder / "train" / "class-2" / "notes.txt").write_text("not an image")
    _fails(folder, r"train/class-2: empty class folder")


def test_test_class_unknown_to_train(folder):
    shutil.copytree(folder / "test" / "class-0", folder / "test" / "cat")
    _fails(folder, r"test/cat: class 'cat' is not one of the training classes")


def test_truncated_image_is_named(folder):
    victim = sorted((folder / "train" / "class-1").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:-40])
    _fails(folder, rf"{victim.name}: unreadable image")


def test_truncated_image_is_named_when_streaming_through_workers(folder):
    victim = sorted((folder / "test" / "class-1").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-40])
    data = load_data(str(folder), memory=100 * 1024)  # headers are fine: the test split streams
    with pytest.raises(DataError, match=rf"{victim.name}: unreadable image") as info:
        list(data.test.batches(4))
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)


def test_not_an_image_is_named(folder):
    bad = folder / "train" / "class-0" / "zz.png"
    bad.write_bytes(b"this is not a png")
    _fails(folder, r"zz\.png: unreadable image")


def test_npz_missing_key(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.zeros(4, np.int64))
    _fails(tmp_path / "d.npz", r"d\.npz: missing x_test, y_test")


def test_npz_mismatched_lengths(tmp_path):
    make_npz(tmp_path / "d.npz", y_train=np.zeros(7, np.int64))
    _fails(tmp_path / "d.npz", r"x_train holds 36 images but y_train 7 labels")


def test_npz_labels_out_of_range(tmp_path):
    y = np.repeat(np.arange(3), 12)
    y[5] = 9
    make_npz(tmp_path / "d.npz", y_train=y, classes=np.array(["a", "b", "c"]))
    _fails(tmp_path / "d.npz", r"y_train\): label 9 out of range 0\.\.2")


def test_npz_test_classes_unknown_to_train(tmp_path):
    y = np.arange(12) % 3
    y[0] = 5
    make_npz(tmp_path / "d.npz", y_test=y)
    _fails(tmp_path / "d.npz", r"y_test\): label 5 is not a class of the training split")


def test_npz_bad_dtype_and_not_an_archive(tmp_path):
    make_npz(tmp_path / "d.npz", y_train=np.zeros(36, np.float32))
    _fails(tmp_path / "d.npz", r"y_train must be a 1-D integer array")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    _fails(tmp_path / "junk.npz", r"junk\.npz: not a readable \.npz archive")


def test_factory_that_fails(factory_module):
    _fails("nosuchpackage_xyz.data:make", r"cannot import 'nosuchpackage_xyz\.data'")
    _fails(f"{factory_module}:missing", r"has no callable 'missing'")
    _fails(f"{factory_module}:raises", r"the factory raised FileNotFoundError: no such archive")
    _fails(f"{factory_module}:not_a_pair", r"expected \(train, test\) or \(train, test, val\)")
    _fails(f"{factory_module}:bad_type", r"its train set is a list|item 0")
    _fails(f"{factory_module}:bad_items", r"item 0's image is a str, expected a torch\.Tensor")


def test_cli_prints_one_line_and_exits_2(folder):
    shutil.rmtree(folder / "train" / "class-1")
    (folder / "train" / "class-1").mkdir()
    res = run_cli("train", "--model", "lenet5", "--data", str(folder), "--epochs", "1", "-q", cwd=folder.parent)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "class-1: empty class folder" in lines[0]
    assert not (folder.parent / "runs").exists()
