"""Small model folders for the benchmark tests (random weights: outputs are compared between
engines, not with labels), written once per session."""

from __future__ import annotations

import pytest
import torch

from pakd.modelio import save_model
from pakd.models import build_model

SPEC = {"data": {"name": "fashion-mnist", "input_shape": [1, 28, 28]}}


def save_zoo_model(folder, name: str, net: torch.nn.Module | None = None, **extra):
    torch.manual_seed(0)
    net = net if net is not None else build_model(name)
    return save_model(folder, net, {"model": {"name": name, "args": {}}, **SPEC, **extra})


@pytest.fixture(scope="session")
def zoo_folder():
    """``zoo_folder(folder, name, net=None, **spec_extra)``: write a model folder (random weights)."""
    return save_zoo_model


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Engines set torch's process-wide thread count; put it back for the other tests."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def lenet5_folder(tmp_path_factory):
    return save_zoo_model(tmp_path_factory.mktemp("lenet5"), "lenet5")


@pytest.fixture(scope="session")
def test_image(fmnist):
    return fmnist.test.images[:1].numpy().copy()
