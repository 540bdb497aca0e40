"""The smaller datasets used for smoke tests."""

import pytest
import torch

from pakd.data import load_dataset
from pakd.errors import DataError


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_small_datasets_are_28x28_ten_classes(name):
    d = load_dataset(name)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert len(d.train) > 1000 and len(d.val) > 0 and len(d.test) > 0
    assert d.train.images.dtype == torch.float32 and d.train.labels.dtype == torch.int64
    assert set(d.train.labels.unique().tolist()) == set(range(10))


def test_synthetic_is_deterministic():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DataError, match="fashion-mnist, digits, synthetic"):
        load_dataset("imagenet")
