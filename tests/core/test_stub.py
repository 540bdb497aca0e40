"""pakd/_core.pyi (what editors and type checkers see) names exactly what the compiled module has."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pakd._core as core

STUB = Path(core.__file__).resolve().parent / "_core.pyi"
if not STUB.exists():  # an installed wheel keeps the stub beside the package sources
    STUB = Path(__file__).resolve().parents[2] / "pakd" / "_core.pyi"


def _stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text())


def _public(names) -> set[str]:
    return {n for n in names if not n.startswith("_")}


def test_every_public_name_of_the_module_is_in_the_stub_and_nothing_else():
    stub = {node.name for node in _stub_tree().body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    module = {n for n in _public(dir(core)) if inspect.isroutine(getattr(core, n)) or inspect.isclass(getattr(core, n))}
    typed_dicts = {"GemmKernelInfo", "CpuFeatures", "KernelInfo"}  # return types, stub-only
    assert module == stub - typed_dicts


def test_stub_signatures_name_the_bound_arguments():
    """Keyword names in the stub are the ones pybind11 binds (a renamed argument fails here)."""
    for node in _stub_tree().body:
        if not isinstance(node, ast.FunctionDef):
            continue
        doc = getattr(core, node.name).__doc__ or ""
        signature = doc.splitlines()[0]  # pybind11: "name(arg: type = default, ...) -> result"
        for arg in node.args.args:
            assert f"{arg.arg}:" in signature, (node.name, arg.arg, signature)


def test_session_methods_and_properties_match():
    cls = next(n for n in _stub_tree().body if isinstance(n, ast.ClassDef) and n.name == "Session")
    stub = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)} - {"__init__"}
    assert _public(dir(core.Session)) == stub
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    signature = core.Session.__init__.__doc__.splitlines()[0]
    for arg in init.args.args[1:]:
        assert f"{arg.arg}:" in signature, (arg.arg, signature)
