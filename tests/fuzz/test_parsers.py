"""Property-based fuzzing of every reader of a file a user hands PaKD: recipe TOML, target TOML,
devices TOML, a bundle's manifest.json and a model folder's spec.json. Each starts from a real,
valid document (a shipped recipe, a shipped target, a devices file, a bundle and a model folder
written by PaKD), mutates its parsed tree (keys removed, values replaced by other TOML/JSON values,
keys added, lists and tables swapped) or its text (bytes flipped, cut, inserted), and reads it
back: the document is accepted, or refused with one of PaKD's own errors (a PakdError, one line),
and nothing else ever comes out. The example count is bounded (EXAMPLES per test, two tests per
reader) so CI stays fast; a longer run outside CI sets PAKD_FUZZ_EXAMPLES (docs/reliability.md).
The .pakd loader has its own fuzz target (csrc/fuzz, tests/tools/test_fuzz_loader.py)."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pakd.bench.devices import load_devices
from pakd.deploy.bundle import open_bundle, runner_argv, write_manifest
from pakd.errors import PakdError
from pakd.modelio import load_model, read_spec, save_model
from pakd.models import build_model
from pakd.pipeline.recipe import parse_recipe
from pakd.resources import recipes_dir
from pakd.targets import default_targets_dir, load_target

EXAMPLES = int(os.environ.get("PAKD_FUZZ_EXAMPLES", "150"))  # per test; CI: 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples in every run: CI is reproducible, a finding stays found
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- values and mutations ---------------------------------------------------------------------

_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 8, 65535, 65536, 2**31, 10**6]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["", "none", "teacher", "previous", "kmeans", "int8", "sgd", "rpi4", "host", "..", "/", "\x00"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _keys_of(tree: Any, out: set[str]) -> set[str]:
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.add(k)
            _keys_of(v, out)
    elif isinstance(tree, list):
        for v in tree:
            _keys_of(v, out)
    return out


def _containers(tree: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every dict and list in ``tree`` (the root included)."""
    found = [path] if isinstance(tree, dict | list) else []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for k, v in items:
        found += _containers(v, (*path, k))
    return found


def _at(tree: Any, path: tuple) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def mutate(data: st.DataObject, seed: Any, vocabulary: set[str]) -> Any:
    """A copy of ``seed`` after 1..4 random edits: delete, replace, add a key (known or new),
    duplicate a list entry, or wrap a value in a list."""
    tree = copy.deepcopy(seed)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        where = _containers(tree)
        node = _at(tree, data.draw(st.sampled_from(where), label="at"))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        op = data.draw(st.sampled_from(["delete", "replace", "add", "dup", "wrap"]), label="op")
        if op == "add" and isinstance(node, dict):
            key = data.draw(st.one_of(st.sampled_from(sorted(vocabulary)), st.text(min_size=1, max_size=8)))
            node[key] = data.draw(_values, label="value")
        elif not keys:
            continue
        else:
            key = data.draw(st.sampled_from(keys), label="key")
            if op == "delete":
                del node[key]
            elif op == "replace":
                node[key] = data.draw(_values, label="value")
            elif op == "dup" and isinstance(node, list):
                node.append(copy.deepcopy(node[key]))
            else:
                node[key] = [node[key]]
    return tree


def mutate_text(data: st.DataObject, text: bytes) -> bytes:
    """``text`` with 1..8 byte edits: flip, set, cut, insert."""
    b = bytearray(text)
    for _ in range(data.draw(st.integers(1, 8), label="byte edits")):
        if not b:
            break
        i = data.draw(st.integers(0, len(b) - 1), label="offset")
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]), label="byte op")
        if op == "flip":
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set":
            b[i] = data.draw(st.sampled_from(b'"=[]{}.,#\n\\\x00 0aZ\xff'))
        elif op == "cut":
            del b[i : i + data.draw(st.integers(1, 64))]
        else:
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    return bytes(b)


# -- a small TOML writer (inline tables: what tomllib reads back is the tree written) ----------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k, ensure_ascii=False)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(tree: Any) -> str:
    if not isinstance(tree, dict):
        return f"value = {_toml_value(tree)}\n"
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in tree.items())


def only_pakd_errors(fn: Any, *args: Any) -> None:
    """``fn(*args)`` returns, or raises a PakdError whose message is one line."""
    try:
        fn(*args)
    except PakdError as exc:
        assert "\n" not in str(exc).strip(), f"a message of several lines: {exc}"


# -- recipe TOML ------------------------------------------------------------------------------

RECIPES = sorted(recipes_dir().glob("*.toml"))
RECIPE_SEEDS = [tomllib.loads(p.read_text()) for p in RECIPES]
RECIPE_WORDS = set().union(*(_keys_of(s, set()) for s in RECIPE_SEEDS))


def test_the_seeds_are_valid():
    """The fuzzers start from documents that parse (else they would test only refusals)."""
    assert RECIPES and all(parse_recipe(to_toml(s)) for s in RECIPE_SEEDS)
    assert load_target(default_targets_dir() / "rpi4.toml").name == "rpi4"


@FUZZ
@given(st.data())
def test_recipe_tree_mutants(data):
    seed = data.draw(st.sampled_from(RECIPE_SEEDS), label="seed")
    only_pakd_errors(parse_recipe, to_toml(mutate(data, seed, RECIPE_WORDS)), "fuzz.toml")


@FUZZ
@given(st.data())
def test_recipe_text_mutants(data):
    path = data.draw(st.sampled_from(RECIPES), label="seed")
    text = mutate_text(data, path.read_bytes())
    only_pakd_errors(parse_recipe, text.decode("utf-8", errors="replace"), "fuzz.toml")


# -- target TOML ------------------------------------------------------------------------------

TARGETS = sorted(default_targets_dir().glob("*.toml"))
TARGET_SEEDS = [tomllib.loads(p.read_text()) for p in TARGETS]
TARGET_WORDS = set().union(*(_keys_of(s, set()) for s in TARGET_SEEDS))


@FUZZ
@given(st.data())
def test_target_tree_mutants(tmp_path, data):
    path = tmp_path / "fuzz.toml"
    path.write_text(to_toml(mutate(data, data.draw(st.sampled_from(TARGET_SEEDS)), TARGET_WORDS)))
    only_pakd_errors(load_target, path)


@FUZZ
@given(st.data())
def test_target_text_mutants(tmp_path, data):
    path = tmp_path / "fuzz.toml"
    path.write_bytes(mutate_text(data, data.draw(st.sampled_from(TARGETS)).read_bytes()))
    only_pakd_errors(load_target, path)


# -- devices TOML -----------------------------------------------------------------------------

DEVICES = {
    "devices": {
        "board": {
            "host": "127.0.0.1",
            "port": 2222,
            "user": "pi",
            "identity_file": "keys/id_ed25519",
            "known_hosts": "keys/known_hosts",
            "workdir": "pakd-bench",
            "target": "rpi4",
            "connect_timeout": 10,
            "command_timeout": 600.0,
        },
        "pi3": {"host": "pi3.local", "target": "rpi3"},
    }
}
DEVICE_WORDS = _keys_of(DEVICES, set()) | {"strict_host_key", "password", "local"}


@FUZZ
@given(st.data())
def test_devices_tree_mutants(tmp_path, data):
    path = tmp_path / "devices.toml"
    path.write_text(to_toml(mutate(data, DEVICES, DEVICE_WORDS)))
    only_pakd_errors(load_devices, path)


@FUZZ
@given(st.data())
def test_devices_text_mutants(tmp_path, data):
    path = tmp_path / "devices.toml"
    path.write_bytes(mutate_text(data, to_toml(DEVICES).encode()))
    only_pakd_errors(load_devices, path)


# -- bundle manifest --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle_seed(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("bundle")
    (root / "bin").mkdir()
    for rel, data in {"model.pakd": b"PAKD" + bytes(60), "bin/pakd-run": b"\x7fELF", "input.f32": bytes(16)}.items():
        (root / rel).write_bytes(data)
    manifest = write_manifest(
        root,
        {"model.pakd": "model", "bin/pakd-run": "runner", "input.f32": "golden-input"},
        target={"name": "rpi4", "triple": "aarch64-linux-gnu"},
        backend="native",
        golden={"input": "input.f32", "shape": [1, 2, 2], "atol": 1e-4},
        run={"argv": ["bin/pakd-run", "model.pakd"], "output_option": "--save-output", "iters_option": "--iters"},
    )
    return root, manifest


def _read_bundle(root: Path) -> None:
    """What the commands do with a bundle: open it (hashes checked), then read its target,
    backend, runner command line and files by role."""
    b = open_bundle(root)
    assert isinstance(b.target, str) and isinstance(b.backend, str)
    runner_argv(b, output=root / "out.f32", iters=3)
    for role in ("model", "runner", "golden-input"):
        b.file(role)


@FUZZ
@given(st.data())
def test_manifest_tree_mutants(bundle_seed, data):
    root, manifest = bundle_seed
    words = _keys_of(manifest, set()) | {"role", "bytes", "sha256", "../x", "/etc/passwd"}
    (root / "manifest.json").write_text(json.dumps(mutate(data, manifest, words)))
    only_pakd_errors(_read_bundle, root)


@FUZZ
@given(st.data())
def test_manifest_text_mutants(bundle_seed, data):
    root, manifest = bundle_seed
    (root / "manifest.json").write_bytes(mutate_text(data, json.dumps(manifest, indent=2).encode()))
    only_pakd_errors(_read_bundle, root)


# -- spec.json --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_seed(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    net = build_model("lenet5", num_classes=10, in_channels=1)
    save_model(
        folder,
        net,
        {
            "model": {"name": "lenet5", "args": {"num_classes": 10, "in_channels": 1}},
            "data": {"name": "fashion-mnist", "input_shape": [1, 28, 28], "num_classes": 10},
            "metrics": {"test_top1": 0.9},
        },
    )
    return folder, json.loads((folder / "spec.json").read_text())


def _read_model(folder: Path) -> None:
    read_spec(folder)
    load_model(folder)


@FUZZ
@given(st.data())
def test_spec_tree_mutants(model_seed, data):
    folder, spec = model_seed
    words = _keys_of(spec, set()) | {"structure", "input_size", "width", "depth"}
    (folder / "spec.json").write_text(json.dumps(mutate(data, spec, words)))
    only_pakd_errors(_read_model, folder)


@FUZZ
@given(st.data())
def test_spec_text_mutants(model_seed, data):
    folder, spec = model_seed
    (folder / "spec.json").write_bytes(mutate_text(data, json.dumps(spec, indent=2).encode()))
    only_pakd_errors(_read_model, folder)
