"""User models given as package.module:factory, with safetensors weights."""

from __future__ import annotations

import textwrap

import pytest
import torch
from safetensors.torch import save_file

from pakd.errors import ModelError
from pakd.models import build_model, load_weights


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent("""
        from torch import nn

        def tiny(hidden=16):
            return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))

        def not_a_model():
            return 42
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_user_factory_with_arguments_and_weights(user_module, tmp_path):
    model = build_model("my_models:tiny", hidden=8)
    reference = build_model("my_models:tiny", hidden=8)
    save_file(reference.state_dict(), str(tmp_path / "w.safetensors"))
    load_weights(model, tmp_path / "w.safetensors")
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(model(x), reference(x))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("my_models:nope", "has no callable 'nope'"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("my_models:not_a_model", "returned int, not a torch.nn.Module"),
        ("resnet21", "unknown model 'resnet21'"),
    ],
)
def test_bad_model_specs_are_clear(user_module, spec, message):
    with pytest.raises(ModelError, match=message):
        build_model(spec)


def test_unexpected_argument_is_clear(user_module):
    with pytest.raises(ModelError, match="does not accept arguments"):
        build_model("my_models:tiny", width=3)


def test_weights_that_do_not_fit_are_refused(user_module, tmp_path):
    save_file(build_model("my_models:tiny", hidden=4).state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ModelError, match="has shape"):
        load_weights(build_model("my_models:tiny"), tmp_path / "w.safetensors")


def test_a_pickle_is_not_accepted_as_weights(user_module, tmp_path):
    path = tmp_path / "w.safetensors"
    torch.save(build_model("my_models:tiny").state_dict(), path)  # a pickle in disguise
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        load_weights(build_model("my_models:tiny"), path)
