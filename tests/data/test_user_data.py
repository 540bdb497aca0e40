"""The user's own data: ImageFolder trees, .npz archives and Dataset factories load with their own
shape and classes, per-channel statistics of the training split, and reload from spec.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pakd.data import data_kind, data_label, load_data, parse_image_size, parse_memory
from pakd.errors import DataError
from tests.data.conftest import make_folder, make_npz


def test_rgb_folder_keeps_its_shape_classes_and_per_channel_statistics(folder):
    d = load_data(str(folder))
    assert d.input_shape == (3, 16, 16) and d.classes == ("class-0", "class-1", "class-2")
    assert (len(d.train), len(d.val), len(d.test)) == (32, 4, 12)  # 10% of train held out
    assert not d.streaming and d.train.images.dtype == torch.float32
    # normalized by the training split's own per-channel statistics
    x = d.train.images
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert len(set(d.mean)) == 3  # the tints make the channels differ
    rec = d.describe()
    assert rec["kind"] == "folder" and rec["source"] == str(folder.resolve())
    assert rec["channels"] == 3 and rec["image_size"] == [16, 16] and rec["classes"] == list(d.classes)
    assert rec["normalize"]["mean"] == list(d.mean) and len(rec["normalize"]["std"]) == 3


def test_a_spec_record_reloads_the_same_data(folder):
    d = load_data(str(folder))
    again = load_data(json.loads(json.dumps({"model": {"name": "x"}, "data": d.describe()})))  # a spec.json
    for a, b in ((d.train, again.train), (d.val, again.val), (d.test, again.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_old_specs_with_a_name_and_scalar_statistics_still_load():
    d = load_data({"name": "synthetic", "normalize": {"mean": 0.0, "std": 1.0}, "input_shape": [1, 28, 28]})
    assert (
        d.input_shape == (1, 28, 28) and d.mean == (0.0,) and d.describe()["normalize"] == {"mean": [0.0], "std": [1.0]}
    )


def test_grey_folder_is_one_channel_and_channels_and_size_can_be_forced(tmp_path):
    root = make_folder(tmp_path / "grey", rgb=False, size=12)
    assert load_data(str(root)).input_shape == (1, 12, 12)
    forced = load_data(str(root), channels=3, image_size="20x24")
    assert forced.input_shape == (3, 20, 24)
    img = forced.test.images[0]
    assert torch.allclose(img[0], img[1]) and torch.allclose(img[1], img[2])  # grey replicated


def test_own_val_folder_is_used(tmp_path):
    d = load_data(str(make_folder(tmp_path / "v", val_per_class=2)))
    assert len(d.val) == 6 and len(d.train) == 36 and d.record["val_from"] == "own"


def test_images_of_different_sizes_name_two_files_unless_resized(tmp_path):
    from PIL import Image

    root = make_folder(tmp_path / "mixed")
    odd = root / "test" / "class-1" / "odd.png"
    Image.new("RGB", (20, 18)).save(odd)
    with pytest.raises(DataError, match=r"differ in size: .*\.png is 16x16, .*odd\.png is 18x20.*--image-size"):
        load_data(str(root))
    assert load_data(str(root), image_size="16").input_shape == (3, 16, 16)


def test_npz_nhwc_uint8_and_nchw_float_are_the_same_data(tmp_path):
    a = load_data(str(make_npz(tmp_path / "a.npz", classes=np.array(["zero", "one", "two"]))))
    xtr, ytr = np.load(tmp_path / "a.npz")["x_train"], np.load(tmp_path / "a.npz")["y_train"]
    z = np.load(tmp_path / "a.npz")
    np.savez_compressed(
        tmp_path / "b.npz",
        x_train=xtr.transpose(0, 3, 1, 2).astype(np.float32) / 255,
        y_train=ytr,
        x_test=z["x_test"].transpose(0, 3, 1, 2).astype(np.float32) / 255,
        y_test=z["y_test"],
    )
    b = load_data(str(tmp_path / "b.npz"))
    assert a.input_shape == b.input_shape == (3, 16, 16)
    assert a.classes == ("zero", "one", "two") and b.classes == ("0", "1", "2")
    assert torch.allclose(a.train.images, b.train.images, atol=1e-4)
    assert a.describe()["kind"] == "npz" and a.name == "a"


def test_npz_with_its_own_validation_split(tmp_path):
    xv, yv = np.zeros((5, 16, 16, 3), np.uint8), np.array([0, 1, 2, 0, 1])
    d = load_data(str(make_npz(tmp_path / "v.npz", x_val=xv, y_val=yv)))
    assert len(d.val) == 5 and len(d.train) == 36


def test_factory_datasets_load_with_targets_classes_and_a_val_set(factory_module):
    d = load_data(f"{factory_module}:make")
    assert d.input_shape == (3, 12, 12) and d.num_classes == 3 and (len(d.train), len(d.val)) == (54, 6)
    e = load_data(f"{factory_module}:make_no_targets", image_size=8, channels=1)  # labels found by reading
    assert e.input_shape == (1, 8, 8) and len(e.val) == 9 and e.record["val_from"] == "own"
    assert sorted(set(e.train.labels.tolist())) == [0, 1, 2]
    assert data_kind(f"{factory_module}:make") == "factory" and data_label("a.b:c") == "a-b-c"


def test_forms_and_option_parsing(tmp_path):
    assert data_kind("fashion-mnist") == "builtin"
    with pytest.raises(DataError, match="not a built-in dataset"):
        data_kind("no/such/place")
    assert parse_image_size("32") == (32, 32) and parse_image_size("24x32") == (24, 32)
    with pytest.raises(DataError, match="--image-size"):
        parse_image_size("big")
    assert parse_memory("2GiB") == 2 * 1024**3 and parse_memory("512k") == 512 * 1024 and parse_memory("1000") == 1000
    with pytest.raises(DataError, match="--data-memory"):
        parse_memory("lots")
    with pytest.raises(DataError, match="--channels 2"):
        load_data("synthetic", channels=2)
    with pytest.raises(DataError, match="built-in"):
        load_data("synthetic", image_size="32")


def test_a_record_whose_data_changed_is_refused(folder):
    from PIL import Image

    rec = load_data(str(folder)).describe()
    Image.new("RGB", (16, 16)).save(folder / "test" / "class-0" / "extra.png")
    with pytest.raises(DataError, match=r"the data changed .* 32/4/13 images now, 32/4/12 then"):
        load_data(rec)


def test_jpeg_bmp_and_webp_files_are_read_too(folder):
    from PIL import Image

    src = sorted((folder / "train" / "class-0").iterdir())[0]
    for ext in ("jpg", "jpeg", "bmp", "webp", "PNG"):
        Image.open(src).save(folder / "train" / "class-0" / f"extra.{ext}")
    d = load_data(str(folder))
    assert len(d.train) + len(d.val) == 36 + 5 and d.input_shape == (3, 16, 16)
